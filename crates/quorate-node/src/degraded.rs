//! Degraded decisions: what a node answers when it cannot reach a quorum within the check deadline.
//!
//! Each policy chooses with `on_no_quorum`:
//!
//! - `deny` (default, fail closed): the request is denied. Nothing is over-admitted, ever.
//! - `allow` (fail open): the request is allowed and nothing is counted. Unbounded while the split lasts: only for
//!   limits that are a courtesy, not a protection.
//! - `local`: this node alone enforces `1/N` of the (effective) limit, N being the number of voters, in a
//!   node-local table that is never replicated or persisted. In the worst case the quorum side keeps admitting up
//!   to the limit strictly while each of the other N-1 nodes admits up to limit/N on its own during the same
//!   window, so the cluster never admits more than `limit × (1 + (N-1)/N)` per window (4/3 of the limit for
//!   N = 3); with no quorum anywhere, at most `limit` in total.
//!
//! The `local` bound holds only if the nodes on the quorum side do not spend local shares too. They lose their
//! leader as well when the old leader is cut off, and answer degraded until they elect a new one. So a node spends
//! its local share only once it has been without a working leader for a grace period (twice the maximum election
//! timeout by default): the quorum side elects within it and denies meanwhile, a node cut off for good goes local
//! after it. (Found by the network-namespace partition test: without the grace, the followers of an isolated
//! leader admitted their shares during the election, up to limit × 2 in all.)
//!
//! A request with several limits is denied if any of them is `deny`; `local` limits are checked atomically
//! together; `allow` limits pass. Every degraded response says `degraded: true`.

use std::sync::Mutex;

use quorate_core::adaptive::Multiplier;
use quorate_core::policy::{Descriptor, NoQuorumMode, PolicySet};
use quorate_core::{Decision, LimitRef, LimiterTable, Nanos, TableConfig};
use quorate_proto::v1::{CheckResponse, LimitStatus};
use tonic::Status;

use crate::raft::replica::resolve;

/// How long a degraded denial asks the caller to wait before retrying: about one election.
const DENY_RETRY_AFTER: Nanos = 1_000_000_000;

/// The node-local limiter used for `local` policies while there is no quorum.
#[derive(Debug)]
pub struct DegradedLimiter {
    table: Mutex<LimiterTable>,
}

impl DegradedLimiter {
    /// Creates an empty local limiter.
    pub fn new(config: TableConfig) -> Self {
        DegradedLimiter { table: Mutex::new(LimiterTable::new(config)) }
    }

    /// Decides a check without the cluster, following each policy's `on_no_quorum`; `local` limits are denied
    /// unless `local_allowed` (the node has been without a working leader for the grace period).
    ///
    /// # Errors
    ///
    /// INVALID_ARGUMENT if the descriptors do not resolve; RESOURCE_EXHAUSTED if the local table is full.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        policies: &PolicySet,
        multiplier: Multiplier,
        voters: u64,
        descriptors: &[Descriptor],
        cost: u64,
        peek: bool,
        now: Nanos,
        local_allowed: bool,
    ) -> Result<CheckResponse, Status> {
        let resolved = resolve(policies, descriptors, cost).map_err(Status::invalid_argument)?;
        let voters = voters.max(1);
        let mut statuses: Vec<Option<LimitStatus>> = vec![None; resolved.len()];
        let mut local = Vec::new();
        let mut local_index = Vec::new();
        for (i, limit) in resolved.iter().enumerate() {
            let Some(policy) = policies.policy(limit.policy) else { continue };
            let effective = policy.effective_limit(multiplier);
            let status = |decision: Decision| LimitStatus {
                policy: policy.name().to_owned(),
                key: limit.key.to_string(),
                allowed: decision.allowed,
                limit: decision.limit,
                base_limit: policy.base_limit(),
                remaining: decision.remaining,
                reset_after_ns: decision.reset_after,
                retry_after_ns: decision.retry_after,
                window_ns: policy.limiter().window(),
            };
            // Inside the grace period a `local` limit is denied like a `deny` one (see the module docs).
            let mode = match policy.on_no_quorum() {
                NoQuorumMode::Local if !local_allowed => NoQuorumMode::Deny,
                mode => mode,
            };
            match mode {
                NoQuorumMode::Deny => {
                    let decision = Decision {
                        allowed: false,
                        limit: effective,
                        remaining: 0,
                        reset_after: 0,
                        retry_after: DENY_RETRY_AFTER,
                    };
                    statuses[i] = Some(status(decision));
                }
                NoQuorumMode::Allow => {
                    let decision = Decision {
                        allowed: true,
                        limit: effective,
                        remaining: effective,
                        reset_after: 0,
                        retry_after: 0,
                    };
                    statuses[i] = Some(status(decision));
                }
                NoQuorumMode::Local => {
                    let share = effective / voters;
                    if share < cost {
                        // This node's share cannot ever hold the request: deny rather than round up.
                        let decision = Decision {
                            allowed: false,
                            limit: share,
                            remaining: share,
                            reset_after: 0,
                            retry_after: DENY_RETRY_AFTER,
                        };
                        statuses[i] = Some(status(decision));
                    } else {
                        local.push(
                            LimitRef::new(limit.policy, policy.limiter(), &limit.key).with_effective_limit(share),
                        );
                        local_index.push(i);
                    }
                }
            }
        }
        let any_denied = statuses.iter().flatten().any(|s| !s.allowed);
        if !local.is_empty() {
            let mut table = self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Charge the local limits only if every other limit allows the request (all or nothing).
            let outcome =
                if peek || any_denied { table.peek(now, &local, cost) } else { table.check(now, &local, cost) };
            let outcome = outcome.map_err(|e| Status::resource_exhausted(e.to_string()))?;
            for (limit, &i) in outcome.limits.iter().zip(&local_index) {
                let Some(policy) = policies.policy(limit.policy) else { continue };
                statuses[i] = Some(LimitStatus {
                    policy: policy.name().to_owned(),
                    key: resolved[i].key.to_string(),
                    allowed: limit.decision.allowed,
                    limit: limit.decision.limit,
                    base_limit: policy.base_limit(),
                    remaining: limit.decision.remaining,
                    reset_after_ns: limit.decision.reset_after,
                    retry_after_ns: limit.decision.retry_after,
                    window_ns: policy.limiter().window(),
                });
            }
        }
        let limits: Vec<LimitStatus> = statuses.into_iter().flatten().collect();
        let allowed = limits.iter().all(|l| l.allowed);
        let overall = most_restrictive(&limits);
        Ok(CheckResponse { allowed, overall, limits, degraded: true, policy_version: policies.version() })
    }
}

/// The status to put in headers: a denial with the latest retry, else the least remaining.
fn most_restrictive(limits: &[LimitStatus]) -> Option<LimitStatus> {
    limits.iter().min_by_key(|l| (l.allowed, std::cmp::Reverse(l.retry_after_ns), l.remaining)).cloned()
}

#[cfg(test)]
mod tests {
    use quorate_core::policy::SAMPLE_POLICIES_TOML;

    use super::*;

    const T0: Nanos = 1_795_000_000_000_000_000;

    fn policies() -> PolicySet {
        let extra = "\n[policies.courtesy]\nalgorithm = \"token_bucket\"\nlimit = 10\nperiod = \"1m\"\non_no_quorum = \"allow\"\n\
                     \n[policies.shared]\nalgorithm = \"sliding_window\"\nlimit = 30\nperiod = \"1m\"\non_no_quorum = \"local\"\n";
        PolicySet::from_toml(&format!("{SAMPLE_POLICIES_TOML}{extra}")).unwrap()
    }

    fn descriptor(policy: &str) -> Vec<Descriptor> {
        vec![Descriptor::new("api_key", "k").with_policy(policy)]
    }

    #[test]
    fn deny_mode_fails_closed() {
        let limiter = DegradedLimiter::new(TableConfig::default());
        let r = limiter.decide(&policies(), Multiplier::ONE, 3, &descriptor("default"), 1, false, T0, true).unwrap();
        assert!(!r.allowed && r.degraded);
        assert_eq!(r.overall.unwrap().retry_after_ns, DENY_RETRY_AFTER);
    }

    #[test]
    fn allow_mode_fails_open() {
        let limiter = DegradedLimiter::new(TableConfig::default());
        for _ in 0..100 {
            let r =
                limiter.decide(&policies(), Multiplier::ONE, 3, &descriptor("courtesy"), 1, false, T0, true).unwrap();
            assert!(r.allowed && r.degraded);
        }
    }

    #[test]
    fn local_mode_admits_one_nth_of_the_limit() {
        let limiter = DegradedLimiter::new(TableConfig::default());
        let allowed = (0..30)
            .filter(|_| {
                limiter
                    .decide(&policies(), Multiplier::ONE, 3, &descriptor("shared"), 1, false, T0, true)
                    .unwrap()
                    .allowed
            })
            .count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn local_mode_denies_within_the_grace_period() {
        let limiter = DegradedLimiter::new(TableConfig::default());
        let r = limiter.decide(&policies(), Multiplier::ONE, 3, &descriptor("shared"), 1, false, T0, false).unwrap();
        assert!(!r.allowed && r.degraded);
        let after = limiter.decide(&policies(), Multiplier::ONE, 3, &descriptor("shared"), 1, true, T0, true).unwrap();
        assert_eq!(after.overall.unwrap().remaining, 10, "nothing was spent while denied");
    }

    #[test]
    fn a_deny_limit_keeps_local_limits_uncharged() {
        let limiter = DegradedLimiter::new(TableConfig::default());
        let both = vec![
            Descriptor::new("api_key", "k").with_policy("shared"),
            Descriptor::new("ip", "1.2.3.4").with_policy("default"),
        ];
        for _ in 0..20 {
            assert!(!limiter.decide(&policies(), Multiplier::ONE, 3, &both, 1, false, T0, true).unwrap().allowed);
        }
        let alone = limiter.decide(&policies(), Multiplier::ONE, 3, &descriptor("shared"), 1, true, T0, true).unwrap();
        assert_eq!(alone.overall.unwrap().remaining, 10);
    }
}
