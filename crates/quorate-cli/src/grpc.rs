//! Endpoint parsing and gRPC channels for the client commands (`check`, `status`, `bench`).
//!
//! Operators type endpoints as `host:port` or `http://host:port`, repeated or comma-separated; everything here
//! turns that into `http://host:port` URLs and tonic channels, so each command only decides what to call.

use std::time::Duration;

use anyhow::{Context, bail};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// Normalises one endpoint to `http://host:port`.
///
/// Accepts `host:port` and `http://host:port` (a trailing `/` is dropped). The port must be explicit: Quorate has
/// no well-known port, and a silent default of 80 would only produce a confusing connection error.
///
/// # Errors
///
/// Returns an error naming the endpoint if it is empty, uses another scheme (TLS is not supported), has a path,
/// lacks a port or is not a valid URI.
pub fn endpoint_url(raw: &str) -> anyhow::Result<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let authority = match trimmed.split_once("://") {
        None => trimmed,
        Some(("http", rest)) => rest,
        Some((scheme, _)) => bail!("endpoint {raw:?}: scheme {scheme:?} is not supported, use host:port or http://"),
    };
    if authority.is_empty() {
        bail!("endpoint {raw:?} is empty");
    }
    if authority.contains('/') {
        bail!("endpoint {raw:?} has a path; expected host:port");
    }
    let has_port =
        authority.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !has_port {
        bail!("endpoint {raw:?} has no port; expected host:port");
    }
    let url = format!("http://{authority}");
    Endpoint::from_shared(url.clone()).with_context(|| format!("endpoint {raw:?} is not a valid address"))?;
    Ok(url)
}

/// Normalises a list of endpoints as given on the command line: each item may hold several, comma-separated.
///
/// # Errors
///
/// Returns an error if any endpoint is invalid (see [`endpoint_url`]) or if the list is empty.
pub fn endpoint_list(raw: &[String]) -> anyhow::Result<Vec<String>> {
    let urls = raw
        .iter()
        .flat_map(|item| item.split(','))
        .filter(|part| !part.trim().is_empty())
        .map(endpoint_url)
        .collect::<anyhow::Result<Vec<_>>>()?;
    if urls.is_empty() {
        bail!("no endpoint given");
    }
    Ok(urls)
}

/// Builds the tonic endpoint for a normalised URL: `connect_timeout` bounds the TCP connect and `request_timeout`
/// every call made on the channel (a stuck call ends as `DEADLINE_EXCEEDED`/`CANCELLED` instead of hanging).
fn endpoint(url: &str, connect_timeout: Duration, request_timeout: Duration) -> anyhow::Result<Endpoint> {
    let endpoint = Endpoint::from_shared(url.to_owned()).with_context(|| format!("endpoint {url:?}"))?;
    Ok(endpoint.connect_timeout(connect_timeout).timeout(request_timeout).tcp_nodelay(true))
}

/// Opens one HTTP/2 connection to `url` now, so that an unreachable node fails here rather than on the first call.
///
/// # Errors
///
/// Returns an error (with the endpoint as context) if the URL is invalid or the connection fails or times out.
pub async fn connect(url: &str, connect_timeout: Duration, request_timeout: Duration) -> anyhow::Result<Channel> {
    endpoint(url, connect_timeout, request_timeout)?.connect().await.with_context(|| format!("connecting to {url}"))
}

/// Builds a channel that connects on first use (and reconnects after a failure); for calls that must not block
/// start-up, such as the bench's status polls.
///
/// # Errors
///
/// Returns an error if the URL is invalid.
pub fn connect_lazy(url: &str, connect_timeout: Duration, request_timeout: Duration) -> anyhow::Result<Channel> {
    Ok(endpoint(url, connect_timeout, request_timeout)?.connect_lazy())
}

/// Returns the canonical gRPC name of a status code (`UNAVAILABLE`, `INVALID_ARGUMENT`, ...), as the API docs
/// use them; tonic's `Display` prints a long English sentence instead.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Formats a gRPC error as `<CODE>: <message>`, the form every client command prints.
pub fn status_line(status: &tonic::Status) -> String {
    format!("{}: {}", code_name(status.code()), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_port_gets_http_scheme() {
        assert_eq!(endpoint_url("127.0.0.1:7101").unwrap(), "http://127.0.0.1:7101");
        assert_eq!(endpoint_url(" http://localhost:7101/ ").unwrap(), "http://localhost:7101");
        assert_eq!(endpoint_url("[::1]:7101").unwrap(), "http://[::1]:7101");
    }

    #[test]
    fn endpoints_without_port_or_with_other_schemes_are_rejected() {
        for bad in ["", "http://", "127.0.0.1", "localhost:", ":7101", "https://a:1", "a:1/path", "a:99999"] {
            assert!(endpoint_url(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn endpoint_lists_split_on_commas_and_keep_order() {
        let raw = vec!["a:1,http://b:2".to_owned(), " c:3 ,".to_owned()];
        assert_eq!(endpoint_list(&raw).unwrap(), ["http://a:1", "http://b:2", "http://c:3"]);
        assert!(endpoint_list(&[",".to_owned()]).is_err());
        assert!(endpoint_list(&["a:1,b".to_owned()]).is_err());
    }

    #[test]
    fn status_line_uses_canonical_code_names() {
        let status = tonic::Status::resource_exhausted("key table full");
        assert_eq!(status_line(&status), "RESOURCE_EXHAUSTED: key table full");
    }
}
