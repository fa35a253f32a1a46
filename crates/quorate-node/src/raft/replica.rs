//! [`Replica`]: the replicated state — limiter table, policy set, load signals — and the deterministic apply.
//!
//! Everything here is a pure function of the log (design.md invariant 1): no clock, no randomness, ordered maps
//! only. Time comes from each entry and is made monotone in one place, the limiter table
//! ([`LimiterTable::advance_clock`]).
//!
//! Commands carry plans ([`Plan`]): a replica applies one only under the policy set version it was made with, so
//! no replica resolves descriptors itself. Envoy limit overrides live under their own synthetic policy ids, which
//! a policy set change leaves in place.

use std::sync::Arc;

use quorate_core::adaptive::{AdaptiveController, AdaptiveState, Aggregation, LoadSignals, Multiplier};
use quorate_core::plan::{LimitOverride, Plan};
use quorate_core::policy::PolicySet;
use quorate_core::{CheckOutcome, CoreError, LimiterTable, Nanos, TableConfig, TableSnapshot, TableSnapshotView};
use serde::{Deserialize, Serialize};

use super::leases::{LeaseBook, LeaseRecord};
use super::typ::{LogId, StoredMembership};
use crate::command::{Applied, Command, CommandOutcome, EntryResponse, LeaseAsk, LeaseGrant, LogEntry, ReportedSignal};
use crate::error::{CheckError, PolicyError};

/// Extra keys examined for eviction after each applied batch, on top of the table's per-operation sweep.
const SWEEP_PER_BATCH: usize = 64;

/// The state every replica computes from the log.
#[derive(Debug, Clone)]
pub(crate) struct Replica {
    /// The last log entry applied.
    pub(crate) last_applied: Option<LogId>,
    /// The membership as of the last applied membership entry.
    pub(crate) membership: StoredMembership,
    /// Limiter state per (policy, key); its clock is cluster time.
    pub(crate) table: LimiterTable,
    /// The policy set in force; `None` until the first leader installs one.
    pub(crate) policies: Option<Arc<PolicySet>>,
    /// The TOML text the policy set was built from, for the Admin API.
    pub(crate) policy_toml: String,
    /// The load signals of the last applied load entry.
    pub(crate) signals: LoadSignals,
    /// Turns cluster load into the multiplier adaptive policies apply.
    pub(crate) controller: AdaptiveController,
    /// The leases granted and not yet returned or forgotten.
    pub(crate) leases: LeaseBook,
}

/// The serialised form of a [`Replica`], the content of a Raft snapshot.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReplicaSnapshot {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    now: Nanos,
    table: TableSnapshot,
    policies: Option<PolicySet>,
    policy_toml: String,
    signals: LoadSignals,
    adaptive: AdaptiveState,
    leases: LeaseBook,
}

/// A [`ReplicaSnapshot`] that borrows the replica: the same fields in the same order, so the same bytes, without
/// copying every key (see [`TableSnapshotView`]).
#[derive(Debug, Serialize)]
pub(crate) struct ReplicaSnapshotView<'a> {
    last_applied: Option<LogId>,
    membership: &'a StoredMembership,
    now: Nanos,
    table: TableSnapshotView<'a>,
    policies: Option<&'a PolicySet>,
    policy_toml: &'a str,
    signals: &'a LoadSignals,
    adaptive: &'a AdaptiveState,
    leases: &'a LeaseBook,
}

impl Replica {
    /// An empty replica: nothing applied, no policies yet.
    pub(crate) fn new(table: TableConfig) -> Self {
        Replica {
            last_applied: None,
            membership: StoredMembership::default(),
            table: LimiterTable::new(table),
            policies: None,
            policy_toml: String::new(),
            signals: LoadSignals::new(),
            controller: AdaptiveController::default(),
            leases: LeaseBook::default(),
        }
    }

    /// Cluster time: the latest entry time applied.
    pub(crate) fn now(&self) -> Nanos {
        self.table.now()
    }

    /// The canonical snapshot form (keys sorted): equal replicas give equal bytes.
    pub(crate) fn snapshot(&self) -> ReplicaSnapshot {
        ReplicaSnapshot {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            now: self.now(),
            table: self.table.snapshot(),
            policies: self.policies.as_deref().cloned(),
            policy_toml: self.policy_toml.clone(),
            signals: self.signals.clone(),
            adaptive: self.controller.state().clone(),
            leases: self.leases.clone(),
        }
    }

    /// The snapshot form, borrowed: encodes to the same bytes as [`Replica::snapshot`] without a copy of the
    /// table. Encode it from a clone (cheap) while the replica goes on applying.
    pub(crate) fn snapshot_view(&self) -> ReplicaSnapshotView<'_> {
        ReplicaSnapshotView {
            last_applied: self.last_applied,
            membership: &self.membership,
            now: self.now(),
            table: self.table.snapshot_view(),
            policies: self.policies.as_deref(),
            policy_toml: &self.policy_toml,
            signals: &self.signals,
            adaptive: self.controller.state(),
            leases: &self.leases,
        }
    }

    /// Rebuilds a replica from a snapshot.
    ///
    /// # Errors
    ///
    /// If the snapshot's table or adaptive state is malformed.
    pub(crate) fn restore(config: TableConfig, snapshot: ReplicaSnapshot) -> Result<Self, CoreError> {
        let adaptive = snapshot.policies.as_ref().map(|p| p.adaptive().clone()).unwrap_or_default();
        let mut table = LimiterTable::restore(config, snapshot.table)?;
        table.advance_clock(snapshot.now);
        Ok(Replica {
            last_applied: snapshot.last_applied,
            membership: snapshot.membership,
            table,
            policies: snapshot.policies.map(Arc::new),
            policy_toml: snapshot.policy_toml,
            signals: snapshot.signals,
            controller: AdaptiveController::with_state(adaptive, snapshot.adaptive)?,
            leases: snapshot.leases,
        })
    }

    /// Applies one entry at its log position.
    pub(crate) fn apply(&mut self, entry: &LogEntry) -> EntryResponse {
        match entry {
            LogEntry::Batch { time, commands } => {
                let now = self.table.advance_clock(*time);
                let outcomes = commands.iter().map(|c| self.apply_command(c)).collect();
                self.table.sweep(now, SWEEP_PER_BATCH);
                self.leases.expire(now);
                EntryResponse::Batch(outcomes)
            }
            LogEntry::Load { time, signals } => {
                self.table.advance_clock(*time);
                self.apply_load(signals);
                EntryResponse::Empty
            }
            LogEntry::SetPolicies { toml, expected_version } => {
                EntryResponse::Policies(self.set_policies(toml, *expected_version))
            }
        }
    }

    /// The multiplier adaptive policies apply at this log position.
    pub(crate) fn multiplier(&self) -> Multiplier {
        self.controller.multiplier()
    }

    /// The cluster load (ppm) as of the last load entry.
    pub(crate) fn cluster_load(&self) -> u32 {
        self.signals.cluster_load(self.now(), self.aggregation())
    }

    fn aggregation(&self) -> Aggregation {
        self.policies.as_ref().map_or(Aggregation::Max, |p| p.adaptive().aggregation)
    }

    /// Replaces the signals with the leader's latest and steps the controller at the entry's time.
    fn apply_load(&mut self, signals: &[ReportedSignal]) {
        let now = self.now();
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
        let policies = self.policies.clone().ok_or(CheckError::NoPolicies)?;
        if let Some(plan) = command.plan()
            && plan.policy_version != policies.version()
        {
            return Err(CheckError::PolicyChanged { planned: plan.policy_version, current: policies.version() });
        }
        match command {
            Command::Check { plan, peek, lease } => {
                if let Some(ask) = lease {
                    let now = self.now();
                    self.leases.return_leases(&mut self.table, now, ask.holder, &ask.returns);
                }
                let outcome = self.apply_check(&policies, plan, *peek)?;
                let grants = match lease {
                    Some(ask) if outcome.allowed && !*peek => self.grant(&policies, plan, ask)?,
                    _ => Vec::new(),
                };
                Ok(Applied::Checked { outcome, grants })
            }
            Command::Refund { plan } => self.apply_refund(&policies, plan).map(|()| Applied::Refunded),
            Command::ReturnLeases { holder, returns } => {
                let now = self.now();
                self.leases.return_leases(&mut self.table, now, *holder, returns);
                Ok(Applied::Returned)
            }
        }
    }

    fn apply_check(&mut self, policies: &PolicySet, plan: &Plan, peek: bool) -> Result<CheckOutcome, CheckError> {
        let limits = plan.limit_refs(policies, self.controller.multiplier())?;
        let now = self.now();
        // When every limit is charged the same, the table's uniform (and cheaper) path.
        let outcome = match plan.uniform_cost() {
            Some(cost) if peek => self.table.peek(now, &limits, cost.get()),
            Some(cost) => self.table.check(now, &limits, cost.get()),
            None if peek => self.table.peek_each(now, &limits, &plan.costs()),
            None => self.table.check_each(now, &limits, &plan.costs()),
        }?;
        Ok(outcome)
    }

    /// Grants the leases `ask` wants, on limits whose policy allows leases: each at most the holder's share of the
    /// limit in force (less what it already holds), never from the policy's reserve, charged now like a check of
    /// its size, spendable until the ttl or the end of the bucket it was charged to, whichever comes first.
    fn grant(&mut self, policies: &PolicySet, plan: &Plan, ask: &LeaseAsk) -> Result<Vec<LeaseGrant>, CheckError> {
        let now = self.now();
        let multiplier = self.controller.multiplier();
        let limits = plan.limit_refs(policies, multiplier)?;
        let mut grants = Vec::new();
        for (i, (limit, want)) in limits.iter().zip(&ask.want).enumerate() {
            let Some(config) = policies.policy(limit.policy).and_then(|p| p.lease()) else { continue };
            // Overrides' synthetic ids are never a configured policy's, so they never get here.
            let held = self.leases.held(ask.holder, limit.policy, limit.key, now);
            let want = (*want).min(config.share_cap(limit.effective_limit).saturating_sub(held));
            if want == 0 {
                continue;
            }
            let grant = self.table.grant(now, limit, want, config.reserve(limit.effective_limit))?;
            if grant.units == 0 {
                continue;
            }
            let expires_at = now.saturating_add(config.ttl).min(grant.horizon);
            let lease = self.leases.record(LeaseRecord {
                holder: ask.holder,
                policy: limit.policy,
                key: limit.key.into(),
                limiter: limit.limiter,
                units: grant.units,
                charged_at: now,
                expires_at,
            });
            grants.push(LeaseGrant {
                limit: i,
                lease,
                units: grant.units,
                valid_for: expires_at - now,
                decision: grant.decision,
            });
        }
        Ok(grants)
    }

    fn apply_refund(&mut self, policies: &PolicySet, plan: &Plan) -> Result<(), CheckError> {
        // Refunds give back what was charged at the base limit: a limit never goes below fresh anyway.
        let limits = plan.limit_refs(policies, Multiplier::ONE)?;
        let amount = plan.uniform_cost().ok_or_else(|| CoreError::InvalidRequest("a refund has one amount".into()))?;
        let now = self.now();
        self.table.refund(now, &limits, amount.get())?;
        Ok(())
    }

    fn set_policies(&mut self, toml: &str, expected_version: u64) -> Result<u64, PolicyError> {
        let current = self.policies.as_ref().map_or(0, |p| p.version());
        if expected_version != 0 && expected_version != current {
            return Err(PolicyError::VersionMismatch { current, expected: expected_version });
        }
        let next = PolicySet::from_toml(toml).map_err(PolicyError::Invalid)?.with_version(current + 1);
        // Checked before anything changes: a refused set must leave the replica as it was.
        let controller = {
            let mut controller = self.controller.clone();
            controller.set_config(next.adaptive().clone()).map_err(PolicyError::Invalid)?;
            controller
        };
        if let Some(old) = &self.policies {
            // Policy ids are positions in name order: carry each surviving policy's keys over to its new id.
            let map: Vec<Option<u32>> = old.policies().map(|(_, p)| next.id_of(p.name())).collect();
            // Envoy limit overrides do not belong to the policy set: their state stays under its ids.
            let remap =
                |id| if LimitOverride::is_override_id(id) { Some(id) } else { map.get(id as usize).copied().flatten() };
            self.table.remap_policies(remap);
            self.leases.remap_policies(remap);
        }
        // The new set's [adaptive] section takes over; the controller keeps its current level and smoothing.
        self.controller = controller;
        self.policies = Some(Arc::new(next));
        self.policy_toml = toml.to_owned();
        Ok(current + 1)
    }
}

#[cfg(test)]
mod tests;
