//! The metrics listener: a small HTTP/1.1 server (hyper) with three paths.
//!
//! - `GET /metrics`: every metric in OpenMetrics text ([`Exporter::render`]);
//! - `GET /healthz`: 200 while the process serves at all;
//! - `GET /readyz`: 200 once the node knows a leader and has applied a policy set, 503 before (and while it
//!   knows no leader), for load balancers and orchestrators.
//!
//! Plain HTTP without authentication, like most exporters: bind it to loopback or a monitoring network.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::export::Exporter;

/// How long a scraper may take to send its request.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the metrics listener on `listener` until `stop` resolves.
pub(crate) async fn serve(listener: TcpListener, exporter: Exporter, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let exporter = exporter.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let exporter = exporter.clone();
                async move { Ok::<_, Infallible>(answer(&exporter, &request)) }
            });
            let connection = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
        });
    }
}

/// The response to one request.
fn answer(exporter: &Exporter, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_owned());
    }
    match request.uri().path() {
        "/metrics" => match exporter.render() {
            Ok(body) => {
                let mut response = text(StatusCode::OK, body);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                );
                response
            }
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "encoding the metrics failed\n".to_owned()),
        },
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
        "/readyz" if exporter.ready() => text(StatusCode::OK, "ready\n".to_owned()),
        "/readyz" => {
            text(StatusCode::SERVICE_UNAVAILABLE, "not ready: no leader known or no policy set applied\n".to_owned())
        }
        _ => text(StatusCode::NOT_FOUND, "not found: /metrics, /healthz, /readyz\n".to_owned()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
