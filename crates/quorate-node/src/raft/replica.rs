//! [`Replica`]: the replicated state — limiter table, policy set, cluster time — and the deterministic apply.
//!
//! Everything here is a pure function of the log (design.md invariant 1): no clock, no randomness, ordered maps
//! only. Time comes from each batch entry and is made monotone with `max(previous, entry time)`.

use std::sync::Arc;

use quorate_core::adaptive::Multiplier;
use quorate_core::policy::{Descriptor, PolicySet, ResolvedLimit};
use quorate_core::{CoreError, LimiterTable, Nanos, TableConfig, TableSnapshot};
use serde::{Deserialize, Serialize};

use super::typ::{LogId, StoredMembership};
use crate::command::{CheckReply, Command, CommandOutcome, LimitReply, Request, Response};

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
        // A refund larger than a limit is harmless (a limit never goes below fresh), so only checks are bounded.
        let (descriptors, cost) = match command {
            Command::Check { descriptors, cost, .. } => (descriptors, (*cost).max(1)),
            Command::Refund { descriptors, .. } => (descriptors, 1),
        };
        let resolved = match resolve(&policies, descriptors, cost) {
            Ok(resolved) => resolved,
            Err(message) => return CommandOutcome::Invalid(message),
        };
        let limits = match policies.limit_refs(&resolved, Multiplier::ONE) {
            Ok(limits) => limits,
            Err(e) => return CommandOutcome::Invalid(e.to_string()),
        };
        let now = self.now;
        let result = match command {
            Command::Check { cost, peek: false, .. } => self.table.check(now, &limits, (*cost).max(1)),
            Command::Check { cost, peek: true, .. } => self.table.peek(now, &limits, (*cost).max(1)),
            Command::Refund { amount, .. } => {
                return match self.table.refund(now, &limits, (*amount).max(1)) {
                    Ok(()) => CommandOutcome::Refunded,
                    Err(e) => CommandOutcome::Invalid(e.to_string()),
                };
            }
        };
        match result {
            Ok(outcome) => {
                let overall = outcome.limits.iter().position(|l| l.decision == outcome.decision).unwrap_or_default();
                let limits = outcome
                    .limits
                    .iter()
                    .zip(&resolved)
                    .map(|(l, r)| {
                        let policy = policies.policy(l.policy);
                        LimitReply {
                            policy: policy.map(|p| p.name().to_owned()).unwrap_or_default(),
                            key: r.key.to_string(),
                            base_limit: l.base_limit,
                            window: policy.map_or(0, |p| p.limiter().period()),
                            decision: l.decision,
                        }
                    })
                    .collect();
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

    fn set_policies(&mut self, toml: &str, expected_version: u64) -> Result<u64, String> {
        let current = self.policies.as_ref().map_or(0, |p| p.version());
        if expected_version != 0 && expected_version != current {
            return Err(format!("policy set version is {current}, not the expected {expected_version}"));
        }
        let next = PolicySet::from_toml(toml).map_err(|e| e.to_string())?.with_version(current + 1);
        if let Some(old) = &self.policies {
            // Policy ids are positions in name order: carry each surviving policy's keys over to its new id.
            let map: Vec<Option<u32>> = old.policies().map(|(_, p)| next.id_of(p.name())).collect();
            self.table.remap_policies(|id| map.get(id as usize).copied().flatten());
        }
        self.policies = Some(Arc::new(next));
        self.policy_toml = toml.to_owned();
        Ok(current + 1)
    }
}

/// Resolves a command's descriptors, refusing costs that no limit could ever allow, with the policy named.
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
