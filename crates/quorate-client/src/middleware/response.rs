//! What the middleware adds to a response or answers itself, for a decision or a client error.
//!
//! The rate-limit headers themselves come from [`crate::headers`]. Error bodies are JSON with a stable `error`
//! code; messages never include internal addresses or keys (the error itself is logged instead).

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Response, StatusCode};
use serde_json::json;

use crate::decision::Decision;
use crate::error::ClientError;
use crate::headers;

/// What to do with a request once its check has an outcome.
pub(crate) enum Verdict {
    /// Call the inner service and add these headers to its response.
    Proceed(HeaderMap),
    /// Answer with this response instead.
    Reject(Response<Bytes>),
}

/// Turns a check's outcome into the verdict: allowed passes, denied is a 429, an unreachable cluster (fail
/// closed) or a full key table a 503, any other error a 500.
pub(crate) fn verdict(outcome: Result<Decision, ClientError>) -> Verdict {
    match outcome {
        Ok(decision) if decision.allowed => Verdict::Proceed(rate_limit_headers(&decision)),
        Ok(decision) => Verdict::Reject(too_many_requests(&decision)),
        Err(error) if error.is_unreachable() => {
            tracing::warn!(%error, "rate limiter unreachable: answering 503 (fail closed)");
            Verdict::Reject(unavailable("the rate limiter could not be reached; retry shortly"))
        }
        Err(error @ ClientError::ResourceExhausted { .. }) => {
            tracing::warn!(%error, "rate limiter at capacity: answering 503");
            Verdict::Reject(unavailable("the rate limiter is at capacity; retry shortly"))
        }
        Err(error) => {
            tracing::error!(%error, "rate limiter refused the check: answering 500");
            let body = json!({
                "error": "rate_limiter_error",
                "message": "the rate limiter could not decide on this request",
            });
            Verdict::Reject(json_response(StatusCode::INTERNAL_SERVER_ERROR, &body, HeaderMap::new()))
        }
    }
}

/// The rate-limit headers of [`crate::headers::rate_limit_headers`] as a header map.
pub(crate) fn rate_limit_headers(decision: &Decision) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers::rate_limit_headers(decision) {
        // Always valid: the names are static tokens and the values visible ASCII.
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            map.insert(name, value);
        }
    }
    map
}

/// The 429 for a denial: JSON body, `Retry-After` (at least 1 s: "0" would invite an immediate retry that is
/// denied again) and the rate-limit headers.
pub(crate) fn too_many_requests(decision: &Decision) -> Response<Bytes> {
    let retry_after = headers::retry_after_secs(decision);
    let message = match decision.policy() {
        Some(policy) => format!("rate limit exceeded (policy {policy}); retry in {retry_after} s"),
        None => format!("rate limit exceeded; retry in {retry_after} s"),
    };
    let body = json!({ "error": "rate_limit_exceeded", "message": message, "retry_after": retry_after });
    json_response(StatusCode::TOO_MANY_REQUESTS, &body, rate_limit_headers(decision))
}

/// The 503 when no decision could be made: JSON body and `Retry-After: 1`.
pub(crate) fn unavailable(message: &str) -> Response<Bytes> {
    let body = json!({ "error": "rate_limiter_unavailable", "message": message, "retry_after": 1 });
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, HeaderValue::from(1u64));
    json_response(StatusCode::SERVICE_UNAVAILABLE, &body, headers)
}

fn json_response(status: StatusCode, body: &serde_json::Value, headers: HeaderMap) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
