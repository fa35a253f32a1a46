//! Endpoints as operators type them (`host:port`, `http://host:port`, `https://host:port`, comma-separated
//! lists), and channels to them with the client's [`Credentials`]: shared by the [`Client`](crate::Client) and
//! the `quorate` command line.

use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

use crate::error::ClientError;
use crate::security::{Credentials, NodeChannel};

/// Normalises one endpoint of a plaintext client to `http://host:port` (a trailing `/` is dropped; the port must
/// be explicit: Quorate has no well-known port, and a silent default of 80 would only produce a confusing
/// connection error). [`normalize_for`] does the same for a client with TLS.
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
    normalize_for(raw, false)
}

/// Normalises one endpoint to `https://host:port` if `tls`, else `http://host:port`; a bare `host:port` takes
/// that scheme, an explicit other one is an error (a client either uses TLS with every node or with none).
///
/// # Errors
///
/// As [`normalize`]; also an `https://` endpoint without TLS settings and an `http://` one with them.
///
/// # Examples
///
/// ```
/// use quorate_client::endpoint::normalize_for;
///
/// assert_eq!(normalize_for("quorate-1.internal:7101", true).unwrap(), "https://quorate-1.internal:7101");
/// assert!(normalize_for("http://quorate-1.internal:7101", true).is_err());
/// assert!(normalize_for("https://quorate-1.internal:7101", false).is_err());
/// ```
pub fn normalize_for(raw: &str, tls: bool) -> Result<String, ClientError> {
    let bad = |reason: &str| ClientError::InvalidEndpoint { endpoint: raw.to_owned(), reason: reason.to_owned() };
    let trimmed = raw.trim().trim_end_matches('/');
    let authority = match (trimmed.split_once("://"), tls) {
        (None, _) | (Some(("http", _)), false) | (Some(("https", _)), true) => {
            trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest)
        }
        (Some(("http", _)), true) => return Err(bad("uses http:// but the client is set up for TLS")),
        (Some(("https", _)), false) => {
            return Err(bad("uses https:// but the client has no TLS settings (give it the cluster's CA)"));
        }
        (Some(_), _) => return Err(bad("uses a scheme other than http:// or https://")),
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
    let url = format!("{}://{authority}", if tls { "https" } else { "http" });
    Endpoint::from_shared(url.clone()).map_err(|_| bad("is not a valid address"))?;
    Ok(url)
}

/// Normalises a list of endpoints as given on a command line or in config: each item may hold several,
/// comma-separated; duplicates are dropped, order is kept. `tls` picks the scheme as in [`normalize_for`].
///
/// # Errors
///
/// [`ClientError::InvalidEndpoint`] for the first bad endpoint, [`ClientError::NoEndpoints`] if there is none.
pub fn normalize_all<S: AsRef<str>>(raw: &[S], tls: bool) -> Result<Vec<String>, ClientError> {
    let mut urls = Vec::new();
    for endpoint in raw.iter().flat_map(|e| e.as_ref().split(',')).filter(|e| !e.trim().is_empty()) {
        let url = normalize_for(endpoint, tls)?;
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    if urls.is_empty() {
        return Err(ClientError::NoEndpoints);
    }
    Ok(urls)
}

/// The tonic endpoint of a normalised URL with the credentials' TLS settings: `connect_timeout` bounds the TCP
/// connect (and the TLS handshake), `request_timeout` (if any) every call made on the channel, so a stuck call
/// ends instead of hanging.
///
/// # Errors
///
/// [`ClientError::InvalidEndpoint`] for a bad URL, [`ClientError::InvalidConfig`] if tonic refuses the TLS
/// settings.
pub fn endpoint(
    url: &str,
    credentials: &Credentials,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
) -> Result<Endpoint, ClientError> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|_| ClientError::InvalidEndpoint {
        endpoint: url.to_owned(),
        reason: "is not a valid address".to_owned(),
    })?;
    let endpoint = endpoint.connect_timeout(connect_timeout).tcp_nodelay(true);
    let endpoint = match (&credentials.tls, url.starts_with("https://")) {
        (Some(tls), true) => endpoint.tls_config(tls.config()).map_err(|error| ClientError::InvalidConfig {
            field: "tls",
            reason: format!("rejected by the TLS library: {error}"),
        })?,
        _ => endpoint,
    };
    Ok(match request_timeout {
        Some(timeout) => endpoint.timeout(timeout),
        None => endpoint,
    })
}

/// Opens one HTTP/2 connection to `url` now, so that an unreachable node (or a failed TLS handshake) fails here
/// rather than on the first call.
///
/// # Errors
///
/// [`ClientError::InvalidEndpoint`] for a bad URL, [`ClientError::Unavailable`] if the connection fails or
/// times out.
pub async fn connect(
    url: &str,
    credentials: &Credentials,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
) -> Result<NodeChannel, ClientError> {
    let started = tokio::time::Instant::now();
    let endpoint = endpoint(url, credentials, connect_timeout, request_timeout)?;
    let channel = endpoint.connect().await.map_err(|error| ClientError::Unavailable {
        attempts: 1,
        elapsed: started.elapsed(),
        last: format!("{url}: {}", error_chain(&error)),
    })?;
    Ok(InterceptedService::new(channel, credentials.token.clone()))
}

/// A channel to `url` that connects on first use (and reconnects after a failure).
///
/// # Errors
///
/// As [`endpoint`].
pub fn connect_lazy(
    url: &str,
    credentials: &Credentials,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
) -> Result<NodeChannel, ClientError> {
    let channel = endpoint(url, credentials, connect_timeout, request_timeout)?.connect_lazy();
    Ok(InterceptedService::new(channel, credentials.token.clone()))
}

/// An error and its causes on one line: tonic's transport error says only "transport error"; the cause says
/// what happened (connection refused, certificate not valid for name, ...).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
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
        assert_eq!(normalize_all(&raw, false).unwrap(), ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(normalize_all(&["a:1,https://b:2"], true).unwrap(), ["https://a:1", "https://b:2"]);
        assert_eq!(normalize_all(&[","], false).unwrap_err(), ClientError::NoEndpoints);
        assert!(normalize_all(&["a:1,b"], false).is_err());
        assert!(normalize_all(&["https://a:1", "b:2"], false).is_err());
    }
}
