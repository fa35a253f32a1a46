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
    use super::*;
    use crate::Source;

    fn decision(policy: &str, allowed: bool, remaining: u64, reset: Duration, retry: Duration) -> Decision {
        let limit = LimitDecision {
            policy: policy.to_owned(),
            key: "api_key=agent_42".to_owned(),
            allowed,
            limit: 100,
            base_limit: 100,
            remaining,
            reset_after: reset,
            retry_after: retry,
            window: Duration::from_secs(60),
        };
        Decision::local(Source::Cluster, allowed, vec![limit])
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(secs_ceil(Duration::ZERO), 0);
        assert_eq!(secs_ceil(Duration::from_nanos(1)), 1);
        assert_eq!(secs_ceil(Duration::from_millis(1000)), 1);
        assert_eq!(secs_ceil(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn policy_names_become_valid_structured_field_strings() {
        assert_eq!(sf_string("agent"), r#""agent""#);
        assert_eq!(sf_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(sf_string("é\n"), r#""??""#);
    }

    #[test]
    fn allowed_decision_gets_limit_headers_without_retry_after() {
        let headers =
            rate_limit_headers(&decision("free", true, 99, Duration::from_nanos(600_000_001), Duration::ZERO));
        let expected = [
            ("X-RateLimit-Limit", "100"),
            ("X-RateLimit-Remaining", "99"),
            ("X-RateLimit-Reset", "1"),
            ("RateLimit-Policy", "\"free\";q=100;w=60"),
            ("RateLimit", "\"free\";r=99;t=1"),
        ];
        assert_eq!(headers, expected.map(|(n, v)| (n, v.to_owned())));
    }

    #[test]
    fn denied_decision_adds_retry_after_rounded_up_and_at_least_one() {
        let denied = decision("free", false, 0, Duration::from_secs(59), Duration::from_millis(1200));
        assert_eq!(rate_limit_headers(&denied).last(), Some(&("Retry-After", "2".to_owned())));
        let immediate = decision("free", false, 0, Duration::ZERO, Duration::ZERO);
        assert_eq!(rate_limit_headers(&immediate).last(), Some(&("Retry-After", "1".to_owned())));
    }

    #[test]
    fn no_limit_means_no_headers() {
        assert!(rate_limit_headers(&Decision::local(Source::FailOpen, true, Vec::new())).is_empty());
    }
}
