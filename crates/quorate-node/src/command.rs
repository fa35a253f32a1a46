//! The vocabulary of the Raft log: what an entry carries ([`LogEntry`]) and what applying it answers ([`Applied`]).
//!
//! Limiter commands carry [`Plan`]s, not requests: the node that received a request resolved it once against its
//! policy set, and every replica applies the plan only under that policy set version (otherwise the command
//! fails with [`CheckError::PolicyChanged`] and the request is planned again). So replicas never resolve
//! descriptors, and a policy change between proposal and commit cannot make them disagree.
//!
//! Entries are bincode ([`crate::raft::codec`]): changing a type here changes the log format.

use quorate_core::plan::Plan;
use quorate_core::{CheckOutcome, Decision, Nanos};
use serde::{Deserialize, Serialize};

use crate::error::{CheckError, PolicyError};

/// One Raft log entry's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LogEntry {
    /// Limiter commands sealed together by the leader's batcher, applied in order at cluster time `time`.
    Batch {
        /// The leader's wall clock when it sealed the batch (ns since the Unix epoch); replicas apply at
        /// `max(previous time, time)` so cluster time never runs backwards across leaders.
        time: Nanos,
        /// The commands, in the order their callers queued them.
        commands: Vec<Command>,
    },
    /// The cluster's load signals as the leader last collected them, folded in about once a second; every
    /// replica recomputes the cluster load and the adaptive multiplier from them at this log position.
    Load {
        /// The leader's wall clock when it sealed the entry.
        time: Nanos,
        /// Every live signal: node samples (`cpu@node1`) and signals reported by API servers.
        signals: Vec<ReportedSignal>,
    },
    /// Replaces the policy set with the one in `toml` (the policies-file format).
    SetPolicies {
        /// The new policy set, as TOML text.
        toml: String,
        /// If non-zero, applies only if the current version equals it.
        expected_version: u64,
    },
}

/// One load signal as carried in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReportedSignal {
    /// The signal's name.
    pub name: String,
    /// Its value in parts per million (0..=1_000_000).
    pub value_ppm: u32,
    /// When it stops counting unless refreshed (cluster time, ns).
    pub expires_at: Nanos,
}

/// One limiter operation, planned by the node that received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Command {
    /// Check (and charge, unless `peek`) every limit of the plan, all or none; if allowed, also grant the leases
    /// asked for.
    Check {
        /// The limits and their costs.
        plan: Plan,
        /// Evaluate only; charge nothing.
        peek: bool,
        /// Leases to grant alongside, if the check is allowed.
        lease: Option<LeaseAsk>,
    },
    /// Give each limit of the plan its cost back.
    Refund {
        /// The limits and the amounts.
        plan: Plan,
    },
    /// Give back what leases did not use (idempotent: a lease is returned once; an unknown one, or one of another
    /// holder, is ignored).
    ReturnLeases {
        /// The holder returning them.
        holder: HolderId,
        /// The leases and their unused units.
        returns: Vec<LeaseReturn>,
    },
}

impl Command {
    /// The plan the command applies, if it applies one.
    pub(crate) fn plan(&self) -> Option<&Plan> {
        match self {
            Command::Check { plan, .. } | Command::Refund { plan } => Some(plan),
            Command::ReturnLeases { .. } => None,
        }
    }
}

/// Who holds a lease: a node (its id, below [`CLIENT_HOLDERS`]) or a client in an API server (a random id it
/// chose, at or above it).
pub(crate) type HolderId = u64;

/// The first holder id of clients: a client's id has the top bit set, so it can never name a node.
pub(crate) const CLIENT_HOLDERS: HolderId = 1 << 63;

/// A lease's id: numbered in log order by the replicas, the same on every one.
pub(crate) type LeaseId = u64;

/// Leases a check asks for: `want[i]` units of the plan's limit `i` (0: none) for `holder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseAsk {
    /// The holder the units are for.
    pub(crate) holder: HolderId,
    /// Units wanted per limit of the plan, in plan order.
    pub(crate) want: Vec<u64>,
    /// The holder's leases given back before the grant (spent or too small), so that they stop counting
    /// against its share at once.
    pub(crate) returns: Vec<LeaseReturn>,
}

/// A lease given back, with what it did not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseReturn {
    /// The lease.
    pub(crate) lease: LeaseId,
    /// Units it did not spend.
    pub(crate) unused: u64,
}

/// A lease granted with a check: units of one of its limits that the holder may spend locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseGrant {
    /// The index of the limit in the check's plan.
    pub(crate) limit: usize,
    /// The lease's id, to return it by.
    pub(crate) lease: LeaseId,
    /// Units granted.
    pub(crate) units: u64,
    /// How long the holder may spend them, from when it sent the check (cluster time, ns; the holder shortens it
    /// for clock drift).
    pub(crate) valid_for: Nanos,
    /// The limit's decision after the grant: what others have left, and when the key is fresh again.
    pub(crate) decision: Decision,
}

/// What applying one [`Command`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Applied {
    /// A check's decision, and the leases granted with it.
    Checked {
        /// The decision.
        outcome: CheckOutcome,
        /// The leases granted (none unless asked for and the check was allowed).
        grants: Vec<LeaseGrant>,
    },
    /// A refund was applied.
    Refunded,
    /// Leases were returned.
    Returned,
}

/// The outcome of one command: applied, or why nothing was charged.
pub(crate) type CommandOutcome = Result<Applied, CheckError>;

/// What applying one log entry answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EntryResponse {
    /// Entries that carry no client request (load, membership, blank) answer nothing.
    Empty,
    /// One outcome per command of a [`LogEntry::Batch`], in order.
    Batch(Vec<CommandOutcome>),
    /// The result of [`LogEntry::SetPolicies`]: the new version, or why the set was refused.
    Policies(Result<u64, PolicyError>),
}
