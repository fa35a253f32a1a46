//! What the middleware adds to a response or answers itself, for a decision or a client error.
//!
//! Seconds are rounded up everywhere: a client told to wait less than needed comes back too early and is denied
//! again. Error bodies are JSON with a stable `error` code; messages never include internal addresses or keys
//! (the error itself is logged instead).

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Response, StatusCode};
use serde_json::json;

use crate::decision::{Decision, LimitDecision};
use crate::error::ClientError;

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

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

/// Whole seconds, rounded up.
pub(crate) fn secs_ceil(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
}

/// The `X-RateLimit-*` trio and the draft-10 `RateLimit-Policy` / `RateLimit` fields for the overall limit;
/// empty if no limit applied (a fail-open decision).
pub(crate) fn rate_limit_headers(decision: &Decision) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Some(overall) = &decision.overall else { return headers };
    let LimitDecision { policy, limit, remaining, reset_after, window, .. } = overall;
    let policy = sf_string(policy);
    let reset = secs_ceil(*reset_after);
    headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(*limit));
    headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(*remaining));
    headers.insert(X_RATELIMIT_RESET, HeaderValue::from(reset));
    let fields = [
        (RATELIMIT_POLICY, format!("{policy};q={limit};w={}", secs_ceil(*window))),
        (RATELIMIT, format!("{policy};r={remaining};t={reset}")),
    ];
    for (name, value) in fields {
        // Always valid: sf_string leaves only visible ASCII; the rest are digits.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers
}

/// The 429 for a denial: JSON body, `Retry-After` (at least 1 s: "0" would invite an immediate retry that is
/// denied again) and the rate-limit headers.
pub(crate) fn too_many_requests(decision: &Decision) -> Response<Bytes> {
    let retry_after = secs_ceil(decision.retry_after()).max(1);
    let message = match decision.policy() {
        Some(policy) => format!("rate limit exceeded (policy {policy}); retry in {retry_after} s"),
        None => format!("rate limit exceeded; retry in {retry_after} s"),
    };
    let body = json!({ "error": "rate_limit_exceeded", "message": message, "retry_after": retry_after });
    let mut headers = rate_limit_headers(decision);
    headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
    json_response(StatusCode::TOO_MANY_REQUESTS, &body, headers)
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

/// Encodes a policy name as a structured-field string (RFC 8941 §3.3.3): `\` and `"` escaped, characters an
/// sf-string cannot carry (control, non-ASCII) replaced by `?`.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        assert_eq!(secs_ceil(Duration::ZERO), 0);
        assert_eq!(secs_ceil(Duration::from_nanos(1)), 1);
        assert_eq!(secs_ceil(Duration::from_millis(1000)), 1);
        assert_eq!(secs_ceil(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn policy_names_are_escaped_as_structured_field_strings() {
        assert_eq!(sf_string("agent"), r#""agent""#);
        assert_eq!(sf_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(sf_string("é\n"), r#""??""#);
    }
}
