//! How a Quorate decision becomes an Envoy `RateLimitResponse`, and the X-RateLimit headers built from it.
//!
//! - `overall_code`: OK if the check was allowed (and charged), else OVER_LIMIT (nothing was charged).
//! - `statuses`: one per request descriptor, in order. A descriptor's code is OVER_LIMIT if its own limit could
//!   not take its cost, else OK; in an OVER_LIMIT answer an OK descriptor was not charged either. A descriptor no
//!   rule limits (with `unmatched = "ignore"`) gets OK and no `current_limit`.
//! - `current_limit`: the limit in force, named after its policy (or `override 10/minute`), with the unit whose
//!   length is the policy's window or refill period; a period that is no unit's length is sent as UNKNOWN.
//! - `limit_remaining` (capped at `u32::MAX`) and `duration_until_reset` (until the limit is back to fresh).
//!
//! Headers are computed by the node Envoy called, from the statuses alone, so a forwarded request gets the
//! headers its first node's config asks for.

use quorate_core::Nanos;
use quorate_proto::envoy::config::core::v3::HeaderValue;
use quorate_proto::envoy::service::ratelimit::v3::RateLimitResponse;
use quorate_proto::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use quorate_proto::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus, RateLimit};

use quorate_core::Decision;

use crate::check::Verdict;

const SECOND: Nanos = 1_000_000_000;
const DAY: Nanos = 86_400 * SECOND;

/// Header carrying the limit of the most restrictive descriptor.
pub(crate) const LIMIT_HEADER: &str = "x-ratelimit-limit";
/// Header carrying the units left under that limit.
pub(crate) const REMAINING_HEADER: &str = "x-ratelimit-remaining";
/// Header carrying the whole seconds (rounded up) until that limit is back to fresh.
pub(crate) const RESET_HEADER: &str = "x-ratelimit-reset";

/// Builds the response to a request of `descriptors` descriptors from its verdict; no headers yet.
pub(crate) fn response(verdict: &Verdict, descriptors: usize) -> RateLimitResponse {
    let mut statuses = vec![DescriptorStatus { code: Code::Ok as i32, ..DescriptorStatus::default() }; descriptors];
    for (planned, limit) in verdict.limits() {
        if let Some(status) = statuses.get_mut(planned.descriptor()) {
            let name = planned.name(&verdict.policies).into_owned();
            *status = descriptor_status(name, planned.window(&verdict.policies), &limit.decision);
        }
    }
    RateLimitResponse {
        overall_code: if verdict.allowed() { Code::Ok } else { Code::OverLimit } as i32,
        statuses,
        response_headers_to_add: Vec::new(),
        raw_body: Vec::new(),
    }
}

fn descriptor_status(name: String, window: Nanos, decision: &Decision) -> DescriptorStatus {
    DescriptorStatus {
        code: if decision.allowed { Code::Ok } else { Code::OverLimit } as i32,
        current_limit: Some(RateLimit {
            name,
            requests_per_unit: u32::try_from(decision.limit).unwrap_or(u32::MAX),
            unit: unit_of(window) as i32,
        }),
        limit_remaining: u32::try_from(decision.remaining).unwrap_or(u32::MAX),
        duration_until_reset: Some(duration(decision.reset_after)),
    }
}

/// The Envoy unit whose length is `window`; UNKNOWN if none is. A calendar month (up to 31 days) is MONTH.
fn unit_of(window: Nanos) -> Unit {
    match window {
        SECOND => Unit::Second,
        w if w == 60 * SECOND => Unit::Minute,
        w if w == 3_600 * SECOND => Unit::Hour,
        DAY => Unit::Day,
        w if w == 7 * DAY => Unit::Week,
        w if w == 30 * DAY || w == 31 * DAY => Unit::Month,
        w if w == 365 * DAY => Unit::Year,
        _ => Unit::Unknown,
    }
}

fn duration(nanos: Nanos) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(nanos / SECOND).unwrap_or(i64::MAX),
        // Below 10^9, so it fits.
        nanos: (nanos % SECOND) as i32,
    }
}

/// Builds `x-ratelimit-limit`, `-remaining` and `-reset` from the most restrictive status: the one with the
/// fewest units remaining, then the longest time to reset. None if no descriptor has a limit.
pub(crate) fn rate_limit_headers(statuses: &[DescriptorStatus]) -> Vec<HeaderValue> {
    let reset = |s: &DescriptorStatus| s.duration_until_reset.map_or((0, 0), |d| (d.seconds, d.nanos));
    let tightest = statuses
        .iter()
        .filter_map(|s| s.current_limit.as_ref().map(|limit| (s, limit)))
        .min_by_key(|(s, _)| (s.limit_remaining, std::cmp::Reverse(reset(s))));
    let Some((status, limit)) = tightest else { return Vec::new() };
    let (seconds, nanos) = reset(status);
    let reset_seconds = seconds.saturating_add(i64::from(nanos > 0));
    let header = |key: &str, value: String| HeaderValue { key: key.to_owned(), value };
    vec![
        header(LIMIT_HEADER, limit.requests_per_unit.to_string()),
        header(REMAINING_HEADER, status.limit_remaining.to_string()),
        header(RESET_HEADER, reset_seconds.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use quorate_core::plan::{Check, Cost, Plan};
    use quorate_core::policy::{Descriptor, PolicySet};
    use quorate_core::{CheckOutcome, LimitDecision};

    use super::*;

    const POLICIES: &str = "unmatched = \"ignore\"\n\
        [policies.p0]\nalgorithm = \"fixed_window\"\nlimit = 10\nperiod = \"1m\"\n\
        [policies.p2]\nalgorithm = \"fixed_window\"\nlimit = 10\nperiod = \"7s\"\n\
        [[rules]]\ndimension = \"a\"\npolicy = \"p0\"\n[[rules]]\ndimension = \"c\"\npolicy = \"p2\"\n";

    /// A verdict on descriptors `a`, `b` (no rule) and `c`, with the given decisions for `a` and `c`.
    fn verdict(allowed: bool, decisions: [(bool, u64, Nanos); 2]) -> Verdict {
        let policies = Arc::new(PolicySet::from_toml(POLICIES).unwrap());
        let descriptors = vec![Descriptor::new("a", "1"), Descriptor::new("b", "2"), Descriptor::new("c", "3")];
        let plan = Plan::check(&policies, &Check::new(descriptors, Cost::ONE)).unwrap();
        let limits: Vec<LimitDecision> = decisions
            .iter()
            .zip(&plan.limits)
            .map(|(&(allowed, remaining, reset_after), planned)| LimitDecision {
                policy: planned.table_id(),
                base_limit: 10,
                decision: Decision { allowed, limit: 10, remaining, reset_after, retry_after: 0 },
            })
            .collect();
        let outcome = CheckOutcome { allowed, decision: limits[1].decision, limits };
        Verdict::strict(outcome, plan, policies, Vec::new())
    }

    #[test]
    fn statuses_follow_descriptor_order_and_unlimited_descriptors_are_ok() {
        let response = response(&verdict(false, [(true, 4, 2 * SECOND), (false, 0, SECOND / 2)]), 3);
        assert_eq!(response.overall_code, Code::OverLimit as i32);
        let codes: Vec<i32> = response.statuses.iter().map(|s| s.code).collect();
        assert_eq!(codes, [Code::Ok as i32, Code::Ok as i32, Code::OverLimit as i32]);
        assert_eq!(response.statuses[1], DescriptorStatus { code: Code::Ok as i32, ..Default::default() });
        let first = &response.statuses[0];
        assert_eq!(
            first.current_limit,
            Some(RateLimit { name: "p0".into(), requests_per_unit: 10, unit: Unit::Minute as i32 })
        );
        assert_eq!((first.limit_remaining, first.duration_until_reset.map(|d| d.seconds)), (4, Some(2)));
        assert_eq!(response.statuses[2].current_limit.as_ref().map(|l| l.unit), Some(Unit::Unknown as i32));
        assert_eq!(response.statuses[2].duration_until_reset.map(|d| d.nanos), Some(500_000_000));
    }

    #[test]
    fn units_are_named_only_for_exact_lengths() {
        assert_eq!(unit_of(SECOND), Unit::Second);
        assert_eq!(unit_of(3_600 * SECOND), Unit::Hour);
        assert_eq!(unit_of(DAY), Unit::Day);
        assert_eq!(unit_of(7 * DAY), Unit::Week);
        assert_eq!(unit_of(31 * DAY), Unit::Month);
        assert_eq!(unit_of(365 * DAY), Unit::Year);
        assert_eq!(unit_of(30 * SECOND), Unit::Unknown);
    }

    #[test]
    fn headers_describe_the_most_restrictive_limit_with_reset_rounded_up() {
        let response = response(&verdict(true, [(true, 9, 5 * SECOND), (true, 3, 2 * SECOND + 1)]), 3);
        let headers = rate_limit_headers(&response.statuses);
        let pairs: Vec<(&str, &str)> = headers.iter().map(|h| (h.key.as_str(), h.value.as_str())).collect();
        assert_eq!(pairs, [(LIMIT_HEADER, "10"), (REMAINING_HEADER, "3"), (RESET_HEADER, "3")]);
        assert!(rate_limit_headers(&[DescriptorStatus::default()]).is_empty());
    }
}
