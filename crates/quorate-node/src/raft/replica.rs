//! [`Replica`]: the replicated state — limiter table, policy set, cluster time — and the deterministic apply.
//!
//! Everything here is a pure function of the log (design.md invariant 1): no clock, no randomness, ordered maps
//! only. Time comes from each batch entry and is made monotone with `max(previous, entry time)`.
//!
//! Checks charge the limits [`resolve_check`] finds: configured policies, and Envoy limit overrides under their
//! synthetic policy ids ([`LimitOverride`]), which a policy set change leaves in place.

use std::sync::Arc;

use quorate_core::adaptive::{AdaptiveController, AdaptiveState, Aggregation, LoadSignals, Multiplier};
use quorate_core::policy::{Descriptor, PolicySet, ResolvedLimit};
use quorate_core::{CoreError, LimitDecision, LimiterTable, Nanos, TableConfig, TableSnapshot};
use serde::{Deserialize, Serialize};

use super::limits::{CheckLimit, resolve_check};
use super::typ::{LogId, StoredMembership};
use crate::command::{
    CheckReply, Command, CommandOutcome, DescriptorOverride, LimitReply, ReportedSignal, Request, Response,
};
use crate::limit_override::LimitOverride;
use crate::load::cluster_load;

/// Extra keys examined for eviction after each applied batch, on top of the table's per-operation sweep.
const SWEEP_PER_BATCH: usize = 64;

/// The state every replica computes from the log.
#[derive(Debug, Clone)]
pub struct Replica {
    /// The last log entry applied.
    pub last_applied: Option<LogId>,
    /// The membership as of the last applied membership entry.
    pub membership: StoredMembership,
    /// Cluster time: the latest batch time applied.
    pub now: Nanos,
    /// Limiter state per (policy, key).
    pub table: LimiterTable,
    /// The policy set in force; `None` until the first leader installs one.
    pub policies: Option<Arc<PolicySet>>,
    /// The TOML text the policy set was built from, for the Admin API.
    pub policy_toml: String,
    /// The load signals of the last applied load entry.
    pub signals: LoadSignals,
    /// Turns cluster load into the multiplier adaptive policies apply.
    pub controller: AdaptiveController,
}

/// The serialised form of a [`Replica`], the content of a Raft snapshot.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReplicaSnapshot {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    now: Nanos,
    table: TableSnapshot,
    policies: Option<PolicySet>,
    policy_toml: String,
    signals: LoadSignals,
    adaptive: AdaptiveState,
}

impl Replica {
    /// An empty replica: nothing applied, no policies yet.
    pub fn new(table: TableConfig) -> Self {
        Replica {
            last_applied: None,
            membership: StoredMembership::default(),
            now: 0,
            table: LimiterTable::new(table),
            policies: None,
            policy_toml: String::new(),
            signals: LoadSignals::new(),
            controller: AdaptiveController::default(),
        }
    }

    /// The canonical snapshot form (keys sorted): equal replicas give equal bytes.
    pub fn snapshot(&self) -> ReplicaSnapshot {
        ReplicaSnapshot {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            now: self.now,
            table: self.table.snapshot(),
            policies: self.policies.as_deref().cloned(),
            policy_toml: self.policy_toml.clone(),
            signals: self.signals.clone(),
            adaptive: self.controller.state().clone(),
        }
    }

    /// Rebuilds a replica from a snapshot.
    ///
    /// # Errors
    ///
    /// If the snapshot's table is malformed.
    pub fn restore(config: TableConfig, snapshot: ReplicaSnapshot) -> Result<Self, CoreError> {
        let adaptive = snapshot.policies.as_ref().map(|p| p.adaptive().clone()).unwrap_or_default();
        Ok(Replica {
            last_applied: snapshot.last_applied,
            membership: snapshot.membership,
            now: snapshot.now,
            table: LimiterTable::restore(config, snapshot.table)?,
            policies: snapshot.policies.map(Arc::new),
            policy_toml: snapshot.policy_toml,
            signals: snapshot.signals,
            controller: AdaptiveController::with_state(adaptive, snapshot.adaptive)?,
        })
    }

    /// Applies one client request at its log position.
    pub fn apply_request(&mut self, request: &Request) -> Response {
        match request {
            Request::Batch { time, commands } => {
                self.now = self.now.max(*time);
                let outcomes = commands.iter().map(|c| self.apply_command(c)).collect();
                self.table.sweep(self.now, SWEEP_PER_BATCH);
                Response::Batch(outcomes)
            }
            Request::Load { time, signals } => {
                self.now = self.now.max(*time);
                self.apply_load(signals);
                Response::Empty
            }
            Request::SetPolicies { toml, expected_version } => {
                Response::Policies(self.set_policies(toml, *expected_version))
            }
        }
    }

    /// The multiplier adaptive policies apply at this log position.
    pub fn multiplier(&self) -> Multiplier {
        self.controller.multiplier()
    }

    /// The cluster load (ppm) as of the last load entry.
    pub fn cluster_load(&self) -> u32 {
        cluster_load(&self.signals, self.now, self.aggregation())
    }

    fn aggregation(&self) -> Aggregation {
        self.policies.as_ref().map_or(Aggregation::Max, |p| p.adaptive().aggregation)
    }

    /// Replaces the signals with the leader's latest and steps the controller at the entry's time.
    fn apply_load(&mut self, signals: &[ReportedSignal]) {
        let now = self.now;
        let mut live = LoadSignals::new();
        for signal in signals.iter().filter(|s| s.expires_at > now) {
            // Names were validated when reported; a bad one from an old log is skipped, never fatal.
            let _ = live.report(&signal.name, signal.value_ppm, now, signal.expires_at - now);
        }
        self.signals = live;
        let load = self.cluster_load();
        self.controller.update(now, load);
    }

    fn apply_command(&mut self, command: &Command) -> CommandOutcome {
        let Some(policies) = self.policies.clone() else { return CommandOutcome::NoPolicies };
        match command {
            Command::Check { descriptors, cost, peek, overrides } => {
                self.apply_check(&policies, descriptors, *cost, *peek, overrides)
            }
            Command::Refund { descriptors, amount } => self.apply_refund(&policies, descriptors, *amount),
        }
    }

    fn apply_check(
        &mut self,
        policies: &PolicySet,
        descriptors: &[Descriptor],
        cost: u64,
        peek: bool,
        overrides: &[DescriptorOverride],
    ) -> CommandOutcome {
        let cost = cost.max(1);
        let planned = match resolve_check(policies, self.controller.multiplier(), descriptors, cost, overrides) {
            Ok(planned) => planned,
            Err(message) => return CommandOutcome::Invalid(message),
        };
        let limits: Vec<_> = planned.iter().map(CheckLimit::limit_ref).collect();
        let now = self.now;
        // Without per-descriptor costs every limit is charged `cost`: the table's uniform (and cheaper) path.
        let result = if overrides.iter().all(|o| o.cost.is_none()) {
            if peek { self.table.peek(now, &limits, cost) } else { self.table.check(now, &limits, cost) }
        } else {
            let costs: Vec<u64> = planned.iter().map(|l| l.cost).collect();
            if peek { self.table.peek_each(now, &limits, &costs) } else { self.table.check_each(now, &limits, &costs) }
        };
        match result {
            Ok(outcome) => {
                let overall = outcome.limits.iter().position(|l| l.decision == outcome.decision).unwrap_or_default();
                let limits = outcome.limits.iter().zip(&planned).map(|(l, p)| limit_reply(policies, l, p)).collect();
                CommandOutcome::Checked(CheckReply {
                    allowed: outcome.allowed,
                    overall,
                    limits,
                    policy_version: policies.version(),
                })
            }
            Err(e @ CoreError::TableFull { .. }) => CommandOutcome::TableFull(e.to_string()),
            Err(e) => CommandOutcome::Invalid(e.to_string()),
        }
    }

    fn apply_refund(&mut self, policies: &PolicySet, descriptors: &[Descriptor], amount: u64) -> CommandOutcome {
        // A refund larger than a limit is harmless (a limit never goes below fresh), so only checks are bounded.
        let resolved = match resolve(policies, descriptors, 1) {
            Ok(resolved) => resolved,
            Err(message) => return CommandOutcome::Invalid(message),
        };
        let limits = match policies.limit_refs(&resolved, Multiplier::ONE) {
            Ok(limits) => limits,
            Err(e) => return CommandOutcome::Invalid(e.to_string()),
        };
        match self.table.refund(self.now, &limits, amount.max(1)) {
            Ok(()) => CommandOutcome::Refunded,
            Err(e) => CommandOutcome::Invalid(e.to_string()),
        }
    }

    fn set_policies(&mut self, toml: &str, expected_version: u64) -> Result<u64, String> {
        let current = self.policies.as_ref().map_or(0, |p| p.version());
        if expected_version != 0 && expected_version != current {
            return Err(format!("policy set version is {current}, not the expected {expected_version}"));
        }
        let next = PolicySet::from_toml(toml).map_err(|e| e.to_string())?.with_version(current + 1);
        if let Some(old) = &self.policies {
            // Policy ids are positions in name order: carry each surviving policy's keys over to its new id.
            let map: Vec<Option<u32>> = old.policies().map(|(_, p)| next.id_of(p.name())).collect();
            // Envoy limit overrides do not belong to the policy set: their state stays under its ids.
            self.table.remap_policies(|id| {
                if LimitOverride::is_override_id(id) { Some(id) } else { map.get(id as usize).copied().flatten() }
            });
        }
        // The new set's [adaptive] section takes over; the controller keeps its current level and smoothing.
        self.controller.set_config(next.adaptive().clone()).map_err(|e| e.to_string())?;
        self.policies = Some(Arc::new(next));
        self.policy_toml = toml.to_owned();
        Ok(current + 1)
    }
}

/// The reply of one limit of a check, named after its policy or override.
fn limit_reply(policies: &PolicySet, decision: &LimitDecision, planned: &CheckLimit) -> LimitReply {
    let (policy, window) = match (&planned.limit_override, policies.policy(planned.policy)) {
        (Some(limit_override), _) => (limit_override.name(), limit_override.unit.length()),
        (None, Some(policy)) => (policy.name().to_owned(), policy.limiter().window()),
        (None, None) => (String::new(), 0),
    };
    LimitReply {
        descriptor: planned.descriptor,
        policy,
        key: planned.key.clone(),
        base_limit: decision.base_limit,
        window,
        decision: decision.decision,
    }
}

/// Resolves a refund's descriptors (checks use [`resolve_check`]), refusing costs that no limit could ever allow,
/// with the policy named.
///
/// The leader runs this before proposing (so that bad requests never reach the log) and every replica runs it
/// again at apply time against the policy set at that log position.
///
/// # Errors
///
/// A message for the client saying what is wrong with the request.
pub fn resolve(policies: &PolicySet, descriptors: &[Descriptor], cost: u64) -> Result<Vec<ResolvedLimit>, String> {
    let resolved = policies.resolve(descriptors).map_err(|e| e.to_string())?;
    for limit in &resolved {
        if let Some(policy) = policies.policy(limit.policy)
            && cost > policy.base_limit()
        {
            let error =
                CoreError::CostExceedsLimit { policy: policy.name().to_owned(), cost, limit: policy.base_limit() };
            return Err(error.to_string());
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod adaptive_tests {
    use quorate_core::policy::SAMPLE_POLICIES_TOML;

    use super::*;
    use crate::raft::codec;

    const SECOND: Nanos = 1_000_000_000;
    const T0: Nanos = 1_795_000_000 * SECOND;

    fn replica() -> Replica {
        let mut replica = Replica::new(TableConfig::default());
        let toml = format!("{SAMPLE_POLICIES_TOML}\n[adaptive]\nsmoothing = 1.0\n");
        let set = Request::SetPolicies { toml, expected_version: 0 };
        assert_eq!(replica.apply_request(&set), Response::Policies(Ok(1)));
        replica
    }

    fn load(time: Nanos, value_ppm: u32) -> Request {
        let signals = vec![ReportedSignal { name: "llm".into(), value_ppm, expires_at: time + 30 * SECOND }];
        Request::Load { time, signals }
    }

    fn check(time: Nanos, api_key: &str) -> Request {
        let descriptors = vec![Descriptor::new("api_key", api_key)];
        Request::Batch {
            time,
            commands: vec![Command::Check { descriptors, cost: 1, peek: false, overrides: Vec::new() }],
        }
    }

    fn limit_of(response: &Response) -> (u64, u64) {
        match response {
            Response::Batch(outcomes) => match &outcomes[0] {
                CommandOutcome::Checked(reply) => (reply.limits[0].decision.limit, reply.limits[0].base_limit),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_entries_tighten_adaptive_policies_at_their_log_position() {
        let mut replica = replica();
        assert_eq!(limit_of(&replica.apply_request(&check(T0, "agent_1"))), (200, 200));
        replica.apply_request(&load(T0 + SECOND, 800_000));
        assert_eq!(replica.multiplier().ppm(), 500_000);
        assert_eq!(limit_of(&replica.apply_request(&check(T0 + SECOND, "agent_1"))), (100, 200));
        // per_ip is not adaptive.
        let ip = Request::Batch {
            time: T0 + SECOND,
            commands: vec![Command::Check {
                descriptors: vec![Descriptor::new("ip", "10.0.0.1")],
                cost: 1,
                peek: true,
                overrides: Vec::new(),
            }],
        };
        assert_eq!(limit_of(&replica.apply_request(&ip)), (600, 600));
    }

    #[test]
    fn expired_signals_stop_counting() {
        let mut replica = replica();
        replica.apply_request(&load(T0, 950_000));
        assert_eq!(replica.cluster_load(), 950_000);
        // The next load entry comes after the signal's expiry and carries it no more.
        replica.apply_request(&Request::Load { time: T0 + 31 * SECOND, signals: vec![] });
        assert_eq!(replica.cluster_load(), 0);
    }

    #[test]
    fn same_log_gives_the_same_snapshot_bytes() {
        let log = [check(T0, "agent_1"), load(T0 + SECOND, 900_000), check(T0 + 2 * SECOND, "user_2")];
        let (mut a, mut b) = (replica(), replica());
        for entry in &log {
            assert_eq!(a.apply_request(entry), b.apply_request(entry));
        }
        let bytes = |r: &Replica| codec::encode(&r.snapshot()).unwrap();
        assert_eq!(bytes(&a), bytes(&b));
        let restored = Replica::restore(TableConfig::default(), codec::decode(&bytes(&a)).unwrap()).unwrap();
        assert_eq!(bytes(&restored), bytes(&a));
        assert_eq!(restored.multiplier(), a.multiplier());
    }

    #[test]
    fn policy_change_keeps_spent_quota_under_the_new_ids() {
        let mut replica = replica();
        for _ in 0..60 {
            replica.apply_request(&check(T0, "user_1"));
        }
        // Adding a policy that sorts first shifts every id by one.
        let toml = format!(
            "{SAMPLE_POLICIES_TOML}\n[policies.aaa]\nalgorithm = \"token_bucket\"\nlimit = 5\nperiod = \"1m\"\n"
        );
        assert_eq!(
            replica.apply_request(&Request::SetPolicies { toml, expected_version: 1 }),
            Response::Policies(Ok(2))
        );
        match replica.apply_request(&check(T0, "user_1")) {
            Response::Batch(outcomes) => match &outcomes[0] {
                CommandOutcome::Checked(reply) => assert!(!reply.allowed, "the spent bucket must survive: {reply:?}"),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        let stale = Request::SetPolicies { toml: SAMPLE_POLICIES_TOML.into(), expected_version: 1 };
        assert!(matches!(replica.apply_request(&stale), Response::Policies(Err(_))));
    }
}
