//! [`Decision`]: the typed answer to a check, from the cluster or from the client's [`FailureMode`].
//!
//! Durations are converted from the wire's nanoseconds once, here, so callers never do unit arithmetic.
//!
//! [`FailureMode`]: crate::FailureMode

use std::sync::Arc;
use std::time::Duration;

use quorate_proto::v1 as pb;

/// Where a [`Decision`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A cluster node decided (it may still be degraded: see [`Decision::degraded`]).
    Cluster,
    /// The cluster was unreachable and the client's local fallback limiter decided
    /// ([`FailureMode::Local`](crate::FailureMode::Local)).
    Fallback,
    /// The cluster was unreachable and the client allowed the request without counting it
    /// ([`FailureMode::Open`](crate::FailureMode::Open)).
    FailOpen,
    /// This client decided it from quota the cluster leased to it
    /// ([`ClientBuilder::leases`](crate::ClientBuilder::leases)); not degraded: the units were charged by the
    /// cluster before they were spent.
    Lease,
}

/// The decision of one limit: a policy applied to one descriptor's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitDecision {
    /// The policy's name (`"local"` for the fallback limiter). Shared, not copied: a decision from a lease
    /// allocates nothing for it.
    pub policy: Arc<str>,
    /// The key counted, `"dimension=value"`.
    pub key: Arc<str>,
    /// Whether this limit allowed the request.
    pub allowed: bool,
    /// The limit in force, after adaptive tightening.
    pub limit: u64,
    /// The configured limit, before adaptive tightening.
    pub base_limit: u64,
    /// Units left.
    pub remaining: u64,
    /// Time until the limit is fresh again (`X-RateLimit-Reset`, `RateLimit` `t=`).
    pub reset_after: Duration,
    /// Time until the same cost would be allowed if nothing else arrives (`Retry-After`); zero when allowed.
    pub retry_after: Duration,
    /// The policy's window or refill period (`RateLimit-Policy` `w=`).
    pub window: Duration,
}

impl LimitDecision {
    pub(crate) fn from_wire(status: &pb::LimitStatus) -> LimitDecision {
        LimitDecision {
            policy: status.policy.as_str().into(),
            key: status.key.as_str().into(),
            allowed: status.allowed,
            limit: status.limit,
            base_limit: status.base_limit,
            remaining: status.remaining,
            reset_after: Duration::from_nanos(status.reset_after_ns),
            retry_after: Duration::from_nanos(status.retry_after_ns),
            window: Duration::from_nanos(status.window_ns),
        }
    }
}

/// The answer to a check: allowed or not, the most restrictive limit and every limit checked.
///
/// The accessors ([`Decision::limit`], [`Decision::remaining`], ...) read [`Decision::overall`], the limit to put
/// in response headers; they return `None` when no limit applies (a fail-open decision).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Where the decision came from.
    pub source: Source,
    /// True if it was made without a cluster quorum: by a node in degraded mode, or by this client's failure
    /// mode ([`Source::Fallback`], [`Source::FailOpen`]).
    pub degraded: bool,
    /// The most restrictive limit, if any limit applied.
    pub overall: Option<LimitDecision>,
    /// One entry per limit checked, in descriptor order.
    pub limits: Vec<LimitDecision>,
    /// The version of the cluster's policy set that decided (0 when the cluster did not decide).
    pub policy_version: u64,
}

impl Decision {
    pub(crate) fn from_wire(response: &pb::CheckResponse) -> Decision {
        Decision {
            allowed: response.allowed,
            source: Source::Cluster,
            degraded: response.degraded,
            overall: response.overall.as_ref().map(LimitDecision::from_wire),
            limits: response.limits.iter().map(LimitDecision::from_wire).collect(),
            policy_version: response.policy_version,
        }
    }

    /// A decision this client made from leased quota: allowed, strict (the units were charged by the cluster).
    pub(crate) fn leased(limits: Vec<LimitDecision>) -> Decision {
        let overall = limits.iter().min_by_key(|l| l.remaining).cloned();
        Decision { allowed: true, source: Source::Lease, degraded: false, overall, limits, policy_version: 0 }
    }

    /// A decision made by this client alone: fail-open (no limit) or the local fallback (one limit per key).
    pub(crate) fn local(source: Source, allowed: bool, limits: Vec<LimitDecision>) -> Decision {
        let overall = most_restrictive(&limits).cloned();
        Decision { allowed, source, degraded: true, overall, limits, policy_version: 0 }
    }

    /// Returns the overall limit in force.
    pub fn limit(&self) -> Option<u64> {
        self.overall.as_ref().map(|s| s.limit)
    }

    /// Returns the units left under the overall limit.
    pub fn remaining(&self) -> Option<u64> {
        self.overall.as_ref().map(|s| s.remaining)
    }

    /// Returns the time until the overall limit is fresh again.
    pub fn reset_after(&self) -> Option<Duration> {
        self.overall.as_ref().map(|s| s.reset_after)
    }

    /// Returns how long to wait before the same request could be allowed: zero when allowed.
    pub fn retry_after(&self) -> Duration {
        self.overall.as_ref().map_or(Duration::ZERO, |s| s.retry_after)
    }

    /// Returns the name of the overall limit's policy.
    pub fn policy(&self) -> Option<&str> {
        self.overall.as_ref().map(|s| &*s.policy)
    }

    /// Returns the overall limit's window or refill period.
    pub fn window(&self) -> Option<Duration> {
        self.overall.as_ref().map(|s| s.window)
    }
}

impl From<&pb::CheckResponse> for Decision {
    /// Converts a raw `Check` response, for callers that use the generated gRPC client directly.
    fn from(response: &pb::CheckResponse) -> Decision {
        Decision::from_wire(response)
    }
}

/// The limit to report: a denying one with the longest wait, else the one with the fewest units left.
fn most_restrictive(limits: &[LimitDecision]) -> Option<&LimitDecision> {
    let denied = limits.iter().filter(|l| !l.allowed).max_by_key(|l| l.retry_after);
    denied.or_else(|| limits.iter().min_by_key(|l| l.remaining))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(policy: &str, allowed: bool, remaining: u64, retry_ns: u64) -> pb::LimitStatus {
        pb::LimitStatus {
            policy: policy.into(),
            key: format!("k={policy}"),
            allowed,
            limit: 10,
            base_limit: 10,
            remaining,
            reset_after_ns: 1_500_000_000,
            retry_after_ns: retry_ns,
            window_ns: 60_000_000_000,
        }
    }

    #[test]
    fn wire_nanoseconds_become_durations() {
        let response = pb::CheckResponse {
            allowed: false,
            overall: Some(status("agent", false, 0, 250_000_000)),
            limits: vec![status("agent", false, 0, 250_000_000)],
            degraded: false,
            policy_version: 3,
            ..Default::default()
        };
        let decision = Decision::from_wire(&response);
        assert_eq!(decision.source, Source::Cluster);
        assert_eq!(decision.retry_after(), Duration::from_millis(250));
        assert_eq!(decision.reset_after(), Some(Duration::from_millis(1500)));
        assert_eq!(decision.window(), Some(Duration::from_secs(60)));
        assert_eq!(decision.policy(), Some("agent"));
        assert_eq!(decision.policy_version, 3);
    }

    #[test]
    fn local_decisions_report_the_denying_limit_with_the_longest_wait() {
        let limits = vec![
            LimitDecision::from_wire(&status("a", false, 0, 100)),
            LimitDecision::from_wire(&status("b", false, 0, 900)),
            LimitDecision::from_wire(&status("c", true, 1, 0)),
        ];
        let decision = Decision::local(Source::Fallback, false, limits);
        assert_eq!(decision.policy(), Some("b"));
        assert!(decision.degraded);
    }

    #[test]
    fn fail_open_decisions_have_no_overall_limit() {
        let decision = Decision::local(Source::FailOpen, true, Vec::new());
        assert_eq!((decision.limit(), decision.retry_after()), (None, Duration::ZERO));
    }
}
