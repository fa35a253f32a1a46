//! How a node listens and dials: real TCP, or turmoil's simulated network (feature `turmoil`).
//!
//! This is the only file that knows about the simulation's network: every other path is the same in production
//! and in simulation (style.md habit 17).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::{Router, TcpIncoming};
use tonic::transport::{Channel, Endpoint};

use crate::error::NodeError;
use crate::io::IoMode;

/// How long a connection attempt to a peer may take before the call counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Builds a lazy tonic channel to `addr` (`host:port`) over `transport`: nothing is dialled until the first call.
///
/// HTTP/2 keep-alives detect a connection that died silently (a partition that dropped packets without FIN/RST).
///
/// # Errors
///
/// If `addr` is not a valid authority.
pub(crate) fn lazy_channel(transport: Transport, addr: &str) -> Result<Channel, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    Ok(transport.channel(endpoint))
}

/// The network a node uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// Real TCP sockets.
    #[default]
    Tcp,
    /// turmoil's simulated TCP (deterministic simulation only).
    #[cfg(feature = "turmoil")]
    Turmoil,
}

/// A bound listener, ready to serve.
pub(crate) enum Listener {
    /// A real socket.
    Tcp(TcpListener),
    /// A simulated socket.
    #[cfg(feature = "turmoil")]
    Turmoil(turmoil::net::TcpListener),
}

impl Transport {
    /// Binds `addr`.
    ///
    /// # Errors
    ///
    /// [`NodeError::Listen`] if the address cannot be bound.
    pub(crate) async fn bind(self, addr: SocketAddr) -> Result<(Listener, SocketAddr), NodeError> {
        let listen_error = |e: std::io::Error| NodeError::Listen { addr: addr.to_string(), source: e };
        match self {
            Transport::Tcp => {
                let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
                let local = listener.local_addr().map_err(listen_error)?;
                Ok((Listener::Tcp(listener), local))
            }
            #[cfg(feature = "turmoil")]
            Transport::Turmoil => {
                let listener = turmoil::net::TcpListener::bind(addr).await.map_err(listen_error)?;
                let local = listener.local_addr().map_err(listen_error)?;
                Ok((Listener::Turmoil(listener), local))
            }
        }
    }

    /// Where storage should run its blocking IO on this network: inline under simulation.
    pub(crate) fn io_mode(self) -> IoMode {
        match self {
            Transport::Tcp => IoMode::Background,
            #[cfg(feature = "turmoil")]
            Transport::Turmoil => IoMode::Inline,
        }
    }

    /// A lazy channel to `endpoint`: nothing is dialled until the first call.
    pub fn channel(self, endpoint: Endpoint) -> Channel {
        match self {
            Transport::Tcp => endpoint.connect_lazy(),
            #[cfg(feature = "turmoil")]
            Transport::Turmoil => sim::connect_lazy(endpoint),
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listener::Tcp(listener) => f.debug_tuple("Tcp").field(listener).finish(),
            #[cfg(feature = "turmoil")]
            Listener::Turmoil(_) => f.write_str("Turmoil"),
        }
    }
}

impl Listener {
    /// Serves `router` until `shutdown` resolves.
    ///
    /// # Errors
    ///
    /// If the server fails.
    pub(crate) async fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error> {
        match self {
            Listener::Tcp(listener) => {
                router
                    .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
                    .await
            }
            #[cfg(feature = "turmoil")]
            Listener::Turmoil(listener) => router.serve_with_incoming_shutdown(sim::incoming(listener), shutdown).await,
        }
    }
}

/// The glue between tonic and turmoil: an accepted-stream newtype and a connector (stack-notes §6).
#[cfg(feature = "turmoil")]
mod sim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::Stream;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tonic::transport::server::Connected;
    use tonic::transport::{Channel, Endpoint, Uri};

    /// A simulated connection tonic can serve.
    pub(super) struct SimConn(turmoil::net::TcpStream);

    impl Connected for SimConn {
        type ConnectInfo = ();

        fn connect_info(&self) -> Self::ConnectInfo {}
    }

    impl AsyncRead for SimConn {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for SimConn {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    /// The accepted connections of `listener`, as tonic wants them.
    pub(super) fn incoming(listener: turmoil::net::TcpListener) -> impl Stream<Item = std::io::Result<SimConn>> {
        futures::stream::unfold(listener, |listener| async move {
            let next = listener.accept().await.map(|(stream, _)| SimConn(stream));
            Some((next, listener))
        })
    }

    /// A lazy channel that dials through turmoil (host names resolve through turmoil's DNS).
    pub(super) fn connect_lazy(endpoint: Endpoint) -> Channel {
        endpoint.connect_with_connector_lazy(tower::service_fn(|uri: Uri| async move {
            let host = uri.host().unwrap_or_default().to_owned();
            let port = uri.port_u16().unwrap_or(80);
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }))
    }
}
