//! Degraded decisions: what a node answers when it cannot get a check committed within the deadline.
//!
//! Each policy chooses with `on_no_quorum`:
//!
//! - `deny` (default, fail closed): the request is denied. Nothing is over-admitted, ever.
//! - `allow` (fail open): the request is allowed and nothing is counted. Unbounded while the split lasts: only for
//!   limits that are a courtesy, not a protection.
//! - `local`: this node alone admits up to `1/N` of the (effective) limit per window, N being the number of
//!   voters, in a node-local table that is not replicated but is on the node's disk: every local charge is in the
//!   [`LocalJournal`] before its answer leaves, and a restarted node replays it, so a crash never hands out the
//!   share twice. Units a node spends alone are never seen by the others, so the bound adds up per node: in any
//!   window a key admits at most `limit` through the log (leases included) plus `limit / N` for each node that
//!   decided it alone in that window — at most `2 × limit` when every node did, whatever the sequence of
//!   partitions and restarts. (The earlier claim of `limit × (1 + (N-1)/N)` was false: a key the quorum had spent
//!   before a partition, or nodes cut off one after another, reach `2 × limit`; and the in-memory table gave a
//!   restarted node a fresh share.)
//!
//! The `local` bound above is only as tight as it is if the nodes on the quorum side do not spend local shares
//! in passing. They lose their leader as well when the old leader is cut off, and answer degraded until they
//! elect a new one. So a node spends its local share only once it has been without a working leader for a grace
//! period (twice the maximum election timeout by default): the quorum side elects within it and denies
//! meanwhile, a node cut off for good goes local after it. (Found by the network-namespace partition test:
//! without the grace, the followers of an isolated leader admitted their shares during the election.)
//!
//! A request with several limits is denied if any of them is `deny`; `local` limits are checked atomically
//! together; `allow` limits pass. An Envoy limit override has no `on_no_quorum` of its own and is denied. Every
//! degraded decision is marked degraded.

use std::sync::Mutex;
use std::time::Duration;

use quorate_core::adaptive::Multiplier;
use quorate_core::plan::{LimitSource, Plan};
use quorate_core::policy::{NoQuorumMode, PolicySet};
use quorate_core::{CheckOutcome, Decision, LimitDecision, LimitRef, LimiterTable, Nanos, TableConfig};
use tokio::time::Instant;

use super::local_journal::{JournalError, LocalCharge, LocalJournal};
use crate::error::CheckError;

/// How long a degraded denial asks the caller to wait before retrying: about one election.
const DENY_RETRY_AFTER: Nanos = 1_000_000_000;

/// The node-local limiter used for `local` policies while there is no quorum, and the grace period before it
/// may spend.
#[derive(Debug)]
pub(crate) struct DegradedLimiter {
    table: Mutex<LimiterTable>,
    journal: LocalJournal,
    grace: Duration,
    leaderless_since: Mutex<Option<Instant>>,
}

/// A degraded decision, and the local charges it made: they must be on disk before it is answered.
#[derive(Debug)]
pub(crate) struct DegradedDecision {
    /// The decision.
    pub(crate) outcome: CheckOutcome,
    /// What it charged to this node's local table.
    pub(crate) charges: Vec<LocalCharge>,
}

/// What a degraded decision is made from besides the plan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DegradedContext {
    /// The adaptive multiplier last applied on this node.
    pub(crate) multiplier: Multiplier,
    /// Voters in the cluster: a `local` policy's share is 1/voters of its limit.
    pub(crate) voters: u64,
    /// This node's clock.
    pub(crate) now: Nanos,
}

impl DegradedLimiter {
    /// The local limiter recorded in `journal` (replayed at `now`), spending `local` shares only after `grace`
    /// without a working leader.
    ///
    /// # Errors
    ///
    /// If the journal cannot be read.
    pub(crate) fn open(
        journal: LocalJournal,
        config: TableConfig,
        grace: Duration,
        now: Nanos,
    ) -> Result<Self, JournalError> {
        let mut table = LimiterTable::new(config);
        let replayed = journal.replay(&mut table, now)?;
        if replayed > 0 {
            tracing::info!(replayed, "local-mode charges from before the restart still count");
        }
        Ok(DegradedLimiter { table: Mutex::new(table), journal, grace, leaderless_since: Mutex::new(None) })
    }

    /// Puts a batch of decisions' local charges on disk; until this returns, none of them may be answered.
    ///
    /// # Errors
    ///
    /// If the journal cannot be written: the decisions must then be refused (the charges stay in memory, which
    /// only under-admits).
    pub(crate) async fn record(&self, charges: &[LocalCharge], now: Nanos) -> Result<(), JournalError> {
        if charges.is_empty() {
            return Ok(());
        }
        self.journal.append(charges, now).await
    }

    /// How long a node must be without a working leader before it spends `local` shares.
    pub(crate) fn grace(&self) -> Duration {
        self.grace
    }

    /// Records whether this node has a working leader right now; returns whether it has been without one for the
    /// whole grace period, so that `local` limits may spend.
    pub(crate) fn observe_leader(&self, healthy: bool) -> bool {
        let mut since = self.leaderless_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if healthy {
            *since = None;
            return false;
        }
        let started = *since.get_or_insert_with(Instant::now);
        started.elapsed() >= self.grace
    }

    /// Decides a planned check without the cluster, following each policy's `on_no_quorum`; `local` limits are
    /// denied unless `local_allowed` (see the module docs). The caller [records](Self::record) the charges before
    /// answering.
    ///
    /// # Errors
    ///
    /// [`CheckError::TableFull`] if a `local` limit needs a new key while the local table is full.
    pub(crate) fn decide(
        &self,
        policies: &PolicySet,
        plan: &Plan,
        peek: bool,
        context: DegradedContext,
        local_allowed: bool,
    ) -> Result<DegradedDecision, CheckError> {
        let voters = context.voters.max(1);
        let mut decisions: Vec<Option<LimitDecision>> = vec![None; plan.limits.len()];
        let mut local: Vec<LimitRef<'_>> = Vec::new();
        let mut local_index = Vec::new();
        for (i, limit) in plan.limits.iter().enumerate() {
            let cost = limit.cost.get();
            let (mode, limiter, effective) = match limit.source {
                LimitSource::Policy(id) => match policies.policy(id) {
                    Some(policy) => {
                        (policy.on_no_quorum(), policy.limiter(), policy.effective_limit(context.multiplier))
                    }
                    None => continue,
                },
                LimitSource::Override(o) => match o.limiter() {
                    Ok(limiter) => (NoQuorumMode::Deny, limiter, limiter.base_limit()),
                    Err(_) => continue,
                },
            };
            let decided = |decision: Decision| LimitDecision {
                policy: limit.table_id(),
                base_limit: limiter.base_limit(),
                decision,
            };
            // Inside the grace period a `local` limit is denied like a `deny` one (see the module docs).
            let mode = match mode {
                NoQuorumMode::Local if !local_allowed => NoQuorumMode::Deny,
                mode => mode,
            };
            match mode {
                NoQuorumMode::Deny => decisions[i] = Some(decided(denied(effective, 0))),
                NoQuorumMode::Allow => {
                    let allowed = Decision {
                        allowed: true,
                        limit: effective,
                        remaining: effective,
                        reset_after: 0,
                        retry_after: 0,
                    };
                    decisions[i] = Some(decided(allowed));
                }
                NoQuorumMode::Local => {
                    let share = effective / voters;
                    if share < cost {
                        // This node's share cannot ever hold the request: deny rather than round up.
                        decisions[i] = Some(decided(denied(share, share)));
                    } else {
                        local.push(LimitRef::new(limit.table_id(), limiter, &limit.key).with_effective_limit(share));
                        local_index.push(i);
                    }
                }
            }
        }
        let any_denied = decisions.iter().flatten().any(|d| !d.decision.allowed);
        let mut charges = Vec::new();
        if !local.is_empty() {
            let costs: Vec<u64> = local_index.iter().map(|&i| plan.limits[i].cost.get()).collect();
            let mut table = self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Charge the local limits only if every other limit allows the request (all or nothing).
            let charge = !peek && !any_denied;
            let outcome = match charge {
                true => table.check_each(context.now, &local, &costs),
                false => table.peek_each(context.now, &local, &costs),
            }?;
            if charge && outcome.allowed {
                charges = local
                    .iter()
                    .zip(&costs)
                    .map(|(limit, &cost)| LocalCharge {
                        policy: limit.policy,
                        key: limit.key.into(),
                        limiter: limit.limiter,
                        share: limit.effective_limit,
                        cost,
                        at: context.now,
                    })
                    .collect();
            }
            for (decision, &i) in outcome.limits.into_iter().zip(&local_index) {
                decisions[i] = Some(decision);
            }
        }
        let limits: Vec<LimitDecision> = decisions.into_iter().flatten().collect();
        let allowed = !limits.is_empty() && limits.iter().all(|l| l.decision.allowed);
        let decision = most_restrictive(&limits).unwrap_or_else(|| denied(0, 0));
        Ok(DegradedDecision { outcome: CheckOutcome { allowed, decision, limits }, charges })
    }
}

fn denied(limit: u64, remaining: u64) -> Decision {
    Decision { allowed: false, limit, remaining, reset_after: 0, retry_after: DENY_RETRY_AFTER }
}

/// The decision to put in headers: a denial with the latest retry, else the least remaining.
fn most_restrictive(limits: &[LimitDecision]) -> Option<Decision> {
    limits.iter().map(|l| l.decision).min_by_key(|d| (d.allowed, std::cmp::Reverse(d.retry_after), d.remaining))
}

#[cfg(test)]
mod tests {
    use quorate_core::plan::{Check, Cost};
    use quorate_core::policy::{Descriptor, SAMPLE_POLICIES_TOML};

    use super::*;

    const T0: Nanos = 1_795_000_000_000_000_000;

    fn policies() -> PolicySet {
        let extra = "\n[policies.courtesy]\nalgorithm = \"token_bucket\"\nlimit = 10\nperiod = \"1m\"\non_no_quorum = \"allow\"\n\
                     \n[policies.shared]\nalgorithm = \"sliding_window\"\nlimit = 30\nperiod = \"1m\"\non_no_quorum = \"local\"\n";
        PolicySet::from_toml(&format!("{SAMPLE_POLICIES_TOML}{extra}")).unwrap()
    }

    fn plan(descriptors: Vec<Descriptor>) -> Plan {
        Plan::check(&policies(), &Check::new(descriptors, Cost::ONE)).unwrap()
    }

    fn one(policy: &str) -> Plan {
        plan(vec![Descriptor::new("api_key", "k").with_policy(policy)])
    }

    fn decide(limiter: &DegradedLimiter, plan: &Plan, peek: bool, local_allowed: bool) -> CheckOutcome {
        let context = DegradedContext { multiplier: Multiplier::ONE, voters: 3, now: T0 };
        limiter.decide(&policies(), plan, peek, context, local_allowed).unwrap().outcome
    }

    fn open(db: &sled::Db) -> DegradedLimiter {
        let journal = LocalJournal::open(db, crate::io::IoMode::Background).unwrap();
        DegradedLimiter::open(journal, TableConfig::default(), Duration::from_secs(1), T0).unwrap()
    }

    fn limiter() -> DegradedLimiter {
        open(&sled::Config::new().temporary(true).open().unwrap())
    }

    #[test]
    fn deny_mode_fails_closed() {
        let r = decide(&limiter(), &one("default"), false, true);
        assert!(!r.allowed);
        assert_eq!(r.decision.retry_after, DENY_RETRY_AFTER);
    }

    #[test]
    fn allow_mode_fails_open() {
        let limiter = limiter();
        for _ in 0..100 {
            assert!(decide(&limiter, &one("courtesy"), false, true).allowed);
        }
    }

    #[test]
    fn local_mode_admits_one_nth_of_the_limit() {
        let limiter = limiter();
        let allowed = (0..30).filter(|_| decide(&limiter, &one("shared"), false, true).allowed).count();
        assert_eq!(allowed, 10);
    }

    #[tokio::test]
    async fn a_restarted_node_does_not_get_its_local_share_again() {
        let dir = tempfile::tempdir().unwrap();
        {
            let limiter = open(&super::super::local_journal::reopen(dir.path()));
            let context = DegradedContext { multiplier: Multiplier::ONE, voters: 3, now: T0 };
            for _ in 0..7 {
                let decided = limiter.decide(&policies(), &one("shared"), false, context, true).unwrap();
                assert!(decided.outcome.allowed);
                limiter.record(&decided.charges, T0).await.unwrap();
            }
            let peeked = limiter.decide(&policies(), &one("shared"), true, context, true).unwrap();
            assert!(peeked.charges.is_empty(), "a peek charges nothing");
        }
        let restarted = open(&super::super::local_journal::reopen(dir.path()));
        let allowed = (0..30).filter(|_| decide(&restarted, &one("shared"), false, true).allowed).count();
        assert_eq!(allowed, 3, "7 of the share of 10 were spent before the restart");
    }

    #[test]
    fn local_mode_denies_within_the_grace_period() {
        let limiter = limiter();
        assert!(!decide(&limiter, &one("shared"), false, false).allowed);
        let after = decide(&limiter, &one("shared"), true, true);
        assert_eq!(after.decision.remaining, 10, "nothing was spent while denied");
    }

    #[test]
    fn a_deny_limit_keeps_local_limits_uncharged() {
        let limiter = limiter();
        let both = plan(vec![
            Descriptor::new("api_key", "k").with_policy("shared"),
            Descriptor::new("ip", "1.2.3.4").with_policy("default"),
        ]);
        for _ in 0..20 {
            assert!(!decide(&limiter, &both, false, true).allowed);
        }
        assert_eq!(decide(&limiter, &one("shared"), true, true).decision.remaining, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn local_spending_starts_only_after_the_grace_period_without_a_leader() {
        let limiter = limiter();
        assert!(!limiter.observe_leader(false));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!limiter.observe_leader(false));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(limiter.observe_leader(false));
        assert!(!limiter.observe_leader(true), "a working leader resets the grace");
        assert!(!limiter.observe_leader(false));
    }
}
