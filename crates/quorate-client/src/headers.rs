//! The HTTP headers an API server sends for a [`Decision`]: the de-facto `X-RateLimit-*` trio, the IETF draft-10
//! `RateLimit-Policy` / `RateLimit` structured fields, and `Retry-After` on a denial.
//!
//! One definition for every place that shows them (the [middleware](crate::middleware) and `quorate check`), so a
//! client sees the same values whichever path answered. Seconds are rounded up everywhere: a client told to wait
//! less than needed comes back too early and is denied again.

use std::time::Duration;

use crate::decision::{Decision, LimitDecision};

/// `X-RateLimit-Limit`: the overall limit in force (the effective one when adaptive limits tightened it).
pub const X_RATELIMIT_LIMIT: &str = "X-RateLimit-Limit";
/// `X-RateLimit-Remaining`: units left under the overall limit.
pub const X_RATELIMIT_REMAINING: &str = "X-RateLimit-Remaining";
/// `X-RateLimit-Reset`: whole seconds until the overall limit is fresh again.
pub const X_RATELIMIT_RESET: &str = "X-RateLimit-Reset";
/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10): the policy's quota `q` and window `w`.
pub const RATELIMIT_POLICY: &str = "RateLimit-Policy";
/// `RateLimit` (draft-10): remaining quota `r` and seconds `t` until it is restored.
pub const RATELIMIT: &str = "RateLimit";
/// `Retry-After` (RFC 9110): whole seconds to wait after a denial.
pub const RETRY_AFTER: &str = "Retry-After";

/// Returns the rate-limit headers for `decision`, in sending order: nothing if no limit applied (a fail-open
/// decision), `Retry-After` (at least 1: "0" would invite an immediate retry that is denied again) only on a
/// denial.
pub fn rate_limit_headers(decision: &Decision) -> Vec<(&'static str, String)> {
    let Some(overall) = &decision.overall else { return Vec::new() };
    let LimitDecision { policy, limit, remaining, reset_after, window, .. } = overall;
    let policy = sf_string(policy);
    let reset = secs_ceil(*reset_after);
    let mut headers = vec![
        (X_RATELIMIT_LIMIT, limit.to_string()),
        (X_RATELIMIT_REMAINING, remaining.to_string()),
        (X_RATELIMIT_RESET, reset.to_string()),
        (RATELIMIT_POLICY, format!("{policy};q={limit};w={}", secs_ceil(*window))),
        (RATELIMIT, format!("{policy};r={remaining};t={reset}")),
    ];
    if !decision.allowed {
        headers.push((RETRY_AFTER, retry_after_secs(decision).to_string()));
    }
    headers
}

/// Returns the whole seconds a denied client should wait: the decision's retry-after rounded up, at least 1.
pub fn retry_after_secs(decision: &Decision) -> u64 {
    secs_ceil(decision.retry_after()).max(1)
}

/// Whole seconds, rounded up.
pub(crate) fn secs_ceil(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
}

/// Encodes a policy name as a structured-field string (RFC 8941 §3.3.3): `\` and `"` escaped, characters an
/// sf-string cannot carry (control, non-ASCII) replaced by `?`. The result is always a valid header value.
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
    use serde_json::Value;

    use super::*;
    use crate::Source;

    /// The header cases shared with the Python package (`clients/python/tests/test_headers.py` runs the same file),
    /// so that both clients answer with the same headers.
    const SHARED_CASES: &str = include_str!("../../../clients/testdata/rate_limit_headers.json");

    fn u64_field(value: &Value, field: &str) -> u64 {
        value[field].as_u64().unwrap_or_else(|| panic!("{field} is not a u64 in {value}"))
    }

    /// The decision a case describes: its `overall` limit (or none), allowed or not.
    fn decision(case: &Value) -> Decision {
        let allowed = case["allowed"].as_bool().expect("decision.allowed is a bool");
        let overall = match &case["overall"] {
            Value::Null => None,
            overall => Some(LimitDecision {
                policy: overall["policy"].as_str().expect("overall.policy is a string").into(),
                key: "api_key=agent_42".into(),
                allowed,
                limit: u64_field(overall, "limit"),
                base_limit: u64_field(overall, "limit"),
                remaining: u64_field(overall, "remaining"),
                reset_after: Duration::from_nanos(u64_field(overall, "reset_after_ns")),
                retry_after: Duration::from_nanos(u64_field(overall, "retry_after_ns")),
                window: Duration::from_nanos(u64_field(overall, "window_ns")),
            }),
        };
        let limits = overall.iter().cloned().collect();
        Decision { allowed, source: Source::Cluster, degraded: false, overall, limits, policy_version: 1 }
    }

    fn expected(case: &Value) -> Vec<(String, String)> {
        let pairs = case["headers"].as_array().expect("headers is an array");
        let text = |v: &Value| v.as_str().expect("a header name or value is a string").to_owned();
        pairs.iter().map(|pair| (text(&pair[0]), text(&pair[1]))).collect()
    }

    #[test]
    fn every_shared_case_gets_exactly_its_headers() {
        let file: Value = serde_json::from_str(SHARED_CASES).expect("the shared header cases are JSON");
        let cases = file["cases"].as_array().expect("a cases array");
        assert!(cases.len() >= 10, "the shared file lost its cases");
        for case in cases {
            let name = case["name"].as_str().unwrap_or("unnamed");
            let headers: Vec<(String, String)> = rate_limit_headers(&decision(&case["decision"]))
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect();
            assert_eq!(headers, expected(case), "case: {name}");
        }
    }

    #[test]
    fn retry_after_secs_matches_the_retry_after_header_of_every_denied_case() {
        let file: Value = serde_json::from_str(SHARED_CASES).expect("the shared header cases are JSON");
        for case in file["cases"].as_array().expect("a cases array") {
            let decision = decision(&case["decision"]);
            let header = expected(case).into_iter().find(|(name, _)| name == RETRY_AFTER);
            if let Some((_, value)) = header {
                assert_eq!(retry_after_secs(&decision).to_string(), value, "case: {}", case["name"]);
            }
        }
    }
}
