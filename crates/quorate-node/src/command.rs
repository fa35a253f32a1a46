//! What travels through the Raft log ([`Request`]) and what applying it answers ([`Response`]).
//!
//! Commands carry the request's descriptors, not resolved limits: every replica resolves them against the policy
//! set at the same log position, so a policy change between proposal and commit cannot split replicas. The leader
//! resolves once before proposing too, so that invalid requests are refused without costing a log entry.
//!
//! Entries are bincode ([`crate::raft::codec`]): adding a field to a command changes the encoding, so a log
//! written by an older build cannot be read by a newer one with a different [`Command`] shape.

use quorate_core::policy::Descriptor;
use quorate_core::{Decision, Nanos};
use serde::{Deserialize, Serialize};

use crate::limit_override::LimitOverride;

/// One Raft log entry's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
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
pub struct ReportedSignal {
    /// The signal's name.
    pub name: String,
    /// Its value in parts per million (0..=1_000_000).
    pub value_ppm: u32,
    /// When it stops counting unless refreshed (cluster time, ns).
    pub expires_at: Nanos,
}

/// One limiter operation requested by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Check (and charge, unless `peek`) `cost` against every limit the descriptors resolve to.
    Check {
        /// The request's descriptors.
        descriptors: Vec<Descriptor>,
        /// Units the request costs, at least 1.
        cost: u64,
        /// Evaluate only; charge nothing.
        peek: bool,
        /// Per-descriptor cost and limit overrides (Envoy's `hits_addend` and `limit`): empty when no descriptor
        /// has any, else one entry per descriptor, in order.
        overrides: Vec<DescriptorOverride>,
    },
    /// Give `amount` units back to every limit the descriptors resolve to.
    Refund {
        /// The request's descriptors.
        descriptors: Vec<Descriptor>,
        /// Units to give back, at least 1.
        amount: u64,
    },
}

/// What one descriptor of a check sets for itself instead of taking the request's cost and the rules' limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorOverride {
    /// Units this descriptor's limit is charged instead of the request's `cost`; at least 1.
    pub cost: Option<u64>,
    /// A limit enforced for this descriptor instead of the policy the rules choose.
    pub limit: Option<LimitOverride>,
}

/// What applying one log entry answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Entries that carry no client request (membership, blank) answer nothing.
    Empty,
    /// One outcome per command of a [`Request::Batch`], in order.
    Batch(Vec<CommandOutcome>),
    /// The result of [`Request::SetPolicies`]: the new version, or why the set was refused.
    Policies(Result<u64, String>),
}

/// The outcome of one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    /// A check's decision.
    Checked(CheckReply),
    /// A refund was applied.
    Refunded,
    /// The command was refused as invalid (the message says why); nothing was charged.
    Invalid(String),
    /// The command needs a key the full table cannot take; nothing was charged.
    TableFull(String),
    /// No policy set has been installed yet.
    NoPolicies,
}

/// A check's decision with the names the API reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReply {
    /// Whether every limit allowed the request (and it was charged, unless it was a peek).
    pub allowed: bool,
    /// Index in `limits` of the most restrictive limit.
    pub overall: usize,
    /// One entry per limit, in descriptor order.
    pub limits: Vec<LimitReply>,
    /// The version of the policy set that decided.
    pub policy_version: u64,
}

/// One limit's decision, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitReply {
    /// The index of the request descriptor this limit belongs to (descriptors no rule limits have none).
    pub descriptor: usize,
    /// The policy's name, or the override's (`override 10/minute`).
    pub policy: String,
    /// The key, `dimension=value` (an override's key is prefixed with its parameters).
    pub key: String,
    /// The policy's configured limit.
    pub base_limit: u64,
    /// The policy's window or refill period.
    pub window: Nanos,
    /// The decision (its `limit` is the one in force).
    pub decision: Decision,
}
