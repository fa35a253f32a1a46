//! [`Replica`]: the replicated state — limiter table, policy set, cluster time — and the deterministic apply.
//!
//! Everything here is a pure function of the log (design.md invariant 1): no clock, no randomness, ordered maps
//! only. Time comes from each batch entry and is made monotone with `max(previous, entry time)`.
//!
//! Checks charge the limits [`resolve_check`] finds: configured policies, and Envoy limit overrides under their
//! synthetic policy ids ([`LimitOverride`]), which a policy set change leaves in place.

use std::sync::Arc;

use quorate_core::adaptive::Multiplier;
use quorate_core::policy::{Descriptor, PolicySet, ResolvedLimit};
use quorate_core::{CoreError, LimitDecision, LimiterTable, Nanos, TableConfig, TableSnapshot};
use serde::{Deserialize, Serialize};

use super::limits::{CheckLimit, resolve_check};
use super::typ::{LogId, StoredMembership};
use crate::command::{CheckReply, Command, CommandOutcome, DescriptorOverride, LimitReply, Request, Response};
use crate::limit_override::LimitOverride;

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
        }
    }

    /// Rebuilds a replica from a snapshot.
    ///
    /// # Errors
    ///
    /// If the snapshot's table is malformed.
    pub fn restore(config: TableConfig, snapshot: ReplicaSnapshot) -> Result<Self, CoreError> {
        Ok(Replica {
            last_applied: snapshot.last_applied,
            membership: snapshot.membership,
            now: snapshot.now,
            table: LimiterTable::restore(config, snapshot.table)?,
            policies: snapshot.policies.map(Arc::new),
            policy_toml: snapshot.policy_toml,
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
            Request::SetPolicies { toml, expected_version } => {
                Response::Policies(self.set_policies(toml, *expected_version))
            }
        }
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
        let planned = match resolve_check(policies, descriptors, cost, overrides) {
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
        self.policies = Some(Arc::new(next));
        self.policy_toml = toml.to_owned();
        Ok(current + 1)
    }
}

/// The reply of one limit of a check, named after its policy or override.
fn limit_reply(policies: &PolicySet, decision: &LimitDecision, planned: &CheckLimit) -> LimitReply {
    let (policy, window) = match (&planned.limit_override, policies.policy(planned.policy)) {
        (Some(limit_override), _) => (limit_override.name(), limit_override.unit.length()),
        (None, Some(policy)) => (policy.name().to_owned(), policy.limiter().period()),
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
