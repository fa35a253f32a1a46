//! [`LeaseBook`]: the leases every replica knows of, granted and returned through the log.
//!
//! A grant is charged to the limiter table by the same entry that records it here, at the entry's cluster time;
//! a return gives the unused units back into the bucket they were charged to and forgets the lease. A lease
//! never returned (its holder crashed, or the return was lost) only stays charged: it can under-admit, never
//! over-admit. Records live until well after they expired, so a late return still finds its lease and returns
//! its units (which, for a window that moved on, changes nothing); after that a return is ignored. Everything is
//! in ordered maps and computed from the log alone (design.md invariant 1), and the book is part of snapshots.

use std::collections::{BTreeMap, BTreeSet};

use compact_str::CompactString;
use quorate_core::{LimitRef, Limiter, LimiterTable, Nanos, PolicyId};
use serde::{Deserialize, Serialize};

use crate::command::{HolderId, LeaseId, LeaseReturn};

/// How long a lease's record outlives its expiry, for returns that arrive late.
pub(crate) const RECORD_RETENTION: Nanos = 10_000_000_000;

/// Records examined for expiry after each batch.
const EXPIRE_PER_BATCH: usize = 64;

/// One lease as the replicas record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    /// Who holds it.
    pub(crate) holder: HolderId,
    /// The table id its key lives under.
    pub(crate) policy: PolicyId,
    /// The table key.
    pub(crate) key: CompactString,
    /// The limiter it was charged with (for the return).
    pub(crate) limiter: Limiter,
    /// Units granted.
    pub(crate) units: u64,
    /// Cluster time of the grant: the bucket or window the units were charged to.
    pub(crate) charged_at: Nanos,
    /// Cluster time after which the holder may spend nothing more.
    pub(crate) expires_at: Nanos,
}

/// Every lease not yet returned or forgotten.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseBook {
    next: LeaseId,
    leases: BTreeMap<LeaseId, LeaseRecord>,
    /// The leases of each (holder, policy, key), to cap what one holder holds of a key.
    held: BTreeMap<(HolderId, PolicyId, CompactString), BTreeSet<LeaseId>>,
    /// Leases in the order their records are due to be forgotten.
    due: BTreeSet<(Nanos, LeaseId)>,
    /// Grants per holder since the cluster started, for status pages.
    grants: BTreeMap<HolderId, u64>,
}

impl LeaseBook {
    /// Units `holder` holds of `policy`'s `key` by leases unexpired at `now`.
    pub(crate) fn held(&self, holder: HolderId, policy: PolicyId, key: &str, now: Nanos) -> u64 {
        let Some(ids) = self.held.get(&(holder, policy, CompactString::from(key))) else { return 0 };
        ids.iter()
            .filter_map(|id| self.leases.get(id))
            .filter(|lease| lease.expires_at > now)
            .map(|lease| lease.units)
            .sum()
    }

    /// Records a lease just charged and returns its id.
    pub(crate) fn record(&mut self, lease: LeaseRecord) -> LeaseId {
        self.next += 1;
        let id = self.next;
        self.held.entry((lease.holder, lease.policy, lease.key.clone())).or_default().insert(id);
        self.due.insert((lease.expires_at.saturating_add(RECORD_RETENTION), id));
        *self.grants.entry(lease.holder).or_insert(0) += 1;
        self.leases.insert(id, lease);
        id
    }

    /// Gives back the unused units of `holder`'s returned leases into `table` at `now`; unknown or already
    /// returned leases, and those of another holder, are ignored, and a return never gives back more than the
    /// lease was granted.
    pub(crate) fn return_leases(
        &mut self,
        table: &mut LimiterTable,
        now: Nanos,
        holder: HolderId,
        returns: &[LeaseReturn],
    ) {
        for returned in returns {
            if self.leases.get(&returned.lease).is_none_or(|lease| lease.holder != holder) {
                continue;
            }
            let Some(lease) = self.leases.remove(&returned.lease) else { continue };
            let unused = returned.unused.min(lease.units);
            let limit = LimitRef::new(lease.policy, lease.limiter, &lease.key);
            table.return_units(now, lease.charged_at, &limit, unused);
            self.release(returned.lease, &lease);
        }
    }

    /// Forgets leases whose records have outlived their retention (at most a few per call, oldest ids first).
    pub(crate) fn expire(&mut self, now: Nanos) {
        for _ in 0..EXPIRE_PER_BATCH {
            let Some(&(at, id)) = self.due.first() else { return };
            if at > now {
                return;
            }
            self.due.pop_first();
            if let Some(lease) = self.leases.remove(&id) {
                self.release(id, &lease);
            }
        }
    }

    /// Renumbers the leases' policies after a policy change (`map` as for the table); leases of a policy that is
    /// gone are forgotten (their keys are gone from the table too).
    pub(crate) fn remap_policies(&mut self, map: impl Fn(PolicyId) -> Option<PolicyId>) {
        let leases = std::mem::take(&mut self.leases);
        self.held.clear();
        self.due.clear();
        for (id, mut lease) in leases {
            if let Some(policy) = map(lease.policy) {
                lease.policy = policy;
                self.held.entry((lease.holder, policy, lease.key.clone())).or_default().insert(id);
                self.due.insert((lease.expires_at.saturating_add(RECORD_RETENTION), id));
                self.leases.insert(id, lease);
            }
        }
    }

    /// The number of leases recorded (returned ones are gone; expired ones stay for a while).
    pub(crate) fn len(&self) -> usize {
        self.leases.len()
    }

    /// Grants ever made to `holder`.
    pub(crate) fn grants_to(&self, holder: HolderId) -> u64 {
        self.grants.get(&holder).copied().unwrap_or(0)
    }

    fn release(&mut self, id: LeaseId, lease: &LeaseRecord) {
        self.due.remove(&(lease.expires_at.saturating_add(RECORD_RETENTION), id));
        let slot = (lease.holder, lease.policy, lease.key.clone());
        if let Some(ids) = self.held.get_mut(&slot) {
            ids.remove(&id);
            if ids.is_empty() {
                self.held.remove(&slot);
            }
        }
    }
}
