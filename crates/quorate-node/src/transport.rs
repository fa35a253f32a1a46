//! How a node listens and dials: real TCP, or turmoil's simulated network (feature `turmoil`).
//!
//! This is the only file that knows about the simulation's network: every other path is the same in production
//! and in simulation (style.md habit 17).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::{Router, TcpIncoming};
use tonic::transport::{Channel, Endpoint};

use tower::layer::util::{Identity, Stack};

use crate::auth::AccessLayer;
use crate::config::host_of;
use crate::error::NodeError;
use crate::io::IoMode;
use crate::tls::{PeerTls, ServerTls};

/// How long a connection attempt to a peer may take before the call counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How a node dials its peers: over which network, and with which TLS identity.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dialer {
    transport: Transport,
    tls: Option<Arc<PeerTls>>,
}

impl Dialer {
    /// Dials over `transport`, with mutual TLS if `tls` is set.
    pub(crate) fn new(transport: Transport, tls: Option<Arc<PeerTls>>) -> Self {
        Dialer { transport, tls }
    }

    /// A lazy channel to the peer listener at `addr` (`host:port`): nothing is dialled until the first call. With
    /// TLS, the peer's certificate must name `addr`'s host, and this node presents its own.
    ///
    /// HTTP/2 keep-alives detect a connection that died silently (a partition that dropped packets without
    /// FIN/RST).
    ///
    /// # Errors
    ///
    /// If `addr` is not a valid authority.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.client_config(host_of(addr)))?;
        }
        Ok(self.transport.channel(endpoint))
    }
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

/// A listener's routes, behind its [`AccessLayer`].
pub(crate) type NodeRouter = Router<Stack<AccessLayer, Identity>>;

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
    /// Serves `router` until `shutdown` resolves; with `tls`, every connection is a TLS handshake first.
    ///
    /// # Errors
    ///
    /// If the server fails.
    pub(crate) async fn serve(
        self,
        router: NodeRouter,
        tls: Option<Arc<ServerTls>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error> {
        match (self, tls) {
            (Listener::Tcp(listener), None) => {
                router
                    .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
                    .await
            }
            (Listener::Tcp(listener), Some(tls)) => {
                router.serve_with_incoming_shutdown(secure::incoming(listener, tls), shutdown).await
            }
            #[cfg(feature = "turmoil")]
            (Listener::Turmoil(listener), _) => {
                router.serve_with_incoming_shutdown(sim::incoming(listener), shutdown).await
            }
        }
    }
}

/// TLS on accepted TCP connections: each handshake runs on its own task (a slow or hostile client holds up no
/// one), with a deadline; only completed handshakes reach the server.
mod secure {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::Stream;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tokio_rustls::server::TlsStream;

    use crate::tls::ServerTls;

    /// How long a client may take to finish its handshake.
    const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

    /// The stream of handshaken connections; accepting stops when the server drops the stream.
    pub(super) fn incoming(
        listener: TcpListener,
        tls: Arc<ServerTls>,
    ) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
        let (ready, received) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = ready.closed() => return,
                };
                let (stream, from) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait a moment rather than spin.
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = tls.acceptor();
                let ready = ready.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = ready.send(Ok(stream)).await;
                        }
                        Ok(Err(error)) => tracing::info!(%from, %error, "refused a TLS handshake"),
                        Err(_) => tracing::info!(%from, "a TLS handshake timed out"),
                    }
                });
            }
        });
        futures::stream::unfold(
            received,
            |mut received| async move { received.recv().await.map(|item| (item, received)) },
        )
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
