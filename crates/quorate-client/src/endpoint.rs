//! Endpoints as operators type them (`host:port`, `http://host:port`, comma-separated lists), and channels to
//! them: shared by the [`Client`](crate::Client) and the `quorate` command line.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::ClientError;

/// Normalises one endpoint to `http://host:port` (a trailing `/` is dropped; the port must be explicit: Quorate
/// has no well-known port, and a silent default of 80 would only produce a confusing connection error).
///
/// # Errors
///
/// [`ClientError::InvalidEndpoint`] naming the endpoint if it is empty, uses another scheme, has a path, lacks a
/// port or is not a valid URI.
///
/// # Examples
///
/// ```
/// use quorate_client::endpoint::normalize;
///
/// assert_eq!(normalize("127.0.0.1:7101").unwrap(), "http://127.0.0.1:7101");
/// assert_eq!(normalize(" http://localhost:7101/ ").unwrap(), "http://localhost:7101");
/// assert!(normalize("localhost").is_err());
/// ```
pub fn normalize(raw: &str) -> Result<String, ClientError> {
    let bad = |reason: &str| ClientError::InvalidEndpoint { endpoint: raw.to_owned(), reason: reason.to_owned() };
    let trimmed = raw.trim().trim_end_matches('/');
    let authority = match trimmed.split_once("://") {
        None => trimmed,
        Some(("http", rest)) => rest,
        Some(_) => return Err(bad("uses a scheme other than http (TLS is not supported)")),
    };
    if authority.is_empty() {
        return Err(bad("is empty"));
    }
    if authority.contains('/') {
        return Err(bad("has a path; expected host:port"));
    }
    let has_port =
        authority.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !has_port {
        return Err(bad("has no port; expected host:port"));
    }
    let url = format!("http://{authority}");
    Endpoint::from_shared(url.clone()).map_err(|_| bad("is not a valid address"))?;
    Ok(url)
}

/// Normalises a list of endpoints as given on a command line or in config: each item may hold several,
/// comma-separated; duplicates are dropped, order is kept.
///
/// # Errors
///
/// [`ClientError::InvalidEndpoint`] for the first bad endpoint, [`ClientError::NoEndpoints`] if there is none.
pub fn normalize_all<S: AsRef<str>>(raw: &[S]) -> Result<Vec<String>, ClientError> {
    let mut urls = Vec::new();
    for endpoint in raw.iter().flat_map(|e| e.as_ref().split(',')).filter(|e| !e.trim().is_empty()) {
        let url = normalize(endpoint)?;
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    if urls.is_empty() {
        return Err(ClientError::NoEndpoints);
    }
    Ok(urls)
}

/// The tonic endpoint of a normalised URL: `connect_timeout` bounds the TCP connect, `request_timeout` (if any)
/// every call made on the channel, so a stuck call ends instead of hanging.
fn endpoint(url: &str, connect_timeout: Duration, request_timeout: Option<Duration>) -> Result<Endpoint, ClientError> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|_| ClientError::InvalidEndpoint {
        endpoint: url.to_owned(),
        reason: "is not a valid address".to_owned(),
    })?;
    let endpoint = endpoint.connect_timeout(connect_timeout).tcp_nodelay(true);
    Ok(match request_timeout {
        Some(timeout) => endpoint.timeout(timeout),
        None => endpoint,
    })
}

/// Opens one HTTP/2 connection to `url` now, so that an unreachable node fails here rather than on the first
/// call.
///
/// # Errors
///
/// [`ClientError::InvalidEndpoint`] for a bad URL, [`ClientError::Unavailable`] if the connection fails or
/// times out.
pub async fn connect(
    url: &str,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
) -> Result<Channel, ClientError> {
    let started = tokio::time::Instant::now();
    endpoint(url, connect_timeout, request_timeout)?.connect().await.map_err(|error| ClientError::Unavailable {
        attempts: 1,
        elapsed: started.elapsed(),
        last: format!("{url}: {error}"),
    })
}

/// A channel to `url` that connects on first use (and reconnects after a failure).
///
/// # Errors
///
/// [`ClientError::InvalidEndpoint`] for a bad URL.
pub fn connect_lazy(
    url: &str,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
) -> Result<Channel, ClientError> {
    Ok(endpoint(url, connect_timeout, request_timeout)?.connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_port_gets_http_scheme() {
        assert_eq!(normalize("127.0.0.1:7101").unwrap(), "http://127.0.0.1:7101");
        assert_eq!(normalize("[::1]:7101").unwrap(), "http://[::1]:7101");
    }

    #[test]
    fn endpoints_without_port_or_with_other_schemes_are_rejected() {
        for bad in ["", "http://", "127.0.0.1", "localhost:", ":7101", "https://a:1", "a:1/path", "a:99999"] {
            assert!(normalize(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn endpoint_lists_split_on_commas_and_keep_order() {
        let raw = ["a:1,http://b:2", " c:3 ,", "a:1"];
        assert_eq!(normalize_all(&raw).unwrap(), ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(normalize_all(&[","]).unwrap_err(), ClientError::NoEndpoints);
        assert!(normalize_all(&["a:1,b"]).is_err());
    }
}
