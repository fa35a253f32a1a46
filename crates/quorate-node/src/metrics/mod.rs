//! Prometheus metrics: what a node counts while it works, and the HTTP listener that serves them.
//!
//! [`NodeMetrics`] is shared by the parts that count (the check pipeline, the batcher, the log store, the state
//! machine); counting is an atomic add, never a lock or an allocation. Everything else — Raft's term, role,
//! indexes and replication, the limiter table, the adaptive load, refused calls — is read when a scrape asks
//! ([`export`]). Labels are bounded: policy names (at most [`decisions::POLICY_SLOTS`] a set), paths, outcomes,
//! gRPC codes, follower ids, listener names and load signal names (at most 256); never keys.
//!
//! [`http`] serves `/metrics` (OpenMetrics text, by prometheus-client), `/healthz` and `/readyz`.

pub(crate) mod decisions;
pub(crate) mod export;
mod histogram;
pub(crate) mod http;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use self::decisions::DecisionCounters;
use self::histogram::{BATCH_SIZES, Histogram, LATENCY_SECONDS, SIZES_BYTES};
use crate::api::status::code_of;
use crate::check::Verdict;
use crate::error::CheckError;

/// How a check was decided, as the latency histogram and the path counters tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// Committed by this node as the leader.
    Leader,
    /// Committed by the leader for this follower.
    Forwarded,
    /// Decided by this node from its leases, with no log entry.
    Leased,
    /// Decided without a quorum, by the policy's `on_no_quorum` mode.
    Degraded,
}

impl Path {
    const ALL: [Path; 4] = [Path::Leader, Path::Forwarded, Path::Leased, Path::Degraded];

    fn name(self) -> &'static str {
        match self {
            Path::Leader => "leader",
            Path::Forwarded => "forwarded",
            Path::Leased => "leased",
            Path::Degraded => "degraded",
        }
    }
}

/// What a node counts on its working paths.
#[derive(Debug)]
pub(crate) struct NodeMetrics {
    /// Decisions per policy and outcome (per limit of a check).
    pub(crate) decisions: DecisionCounters,
    /// Checks per path: allowed, denied.
    by_path: [[AtomicU64; 2]; 4],
    /// Time from a check's arrival in the pipeline to its decision, per path.
    latency: [Histogram; 4],
    /// Checks that got an error, per gRPC code (tonic's numbering).
    errors: [AtomicU64; 17],
    /// Checks sealed into each log entry the batcher proposed.
    pub(crate) batch_checks: Histogram,
    /// Log entries the batcher proposed.
    pub(crate) entries_proposed: AtomicU64,
    /// Duration of the log store's flushes (fsync).
    pub(crate) fsync: Histogram,
    /// Snapshots this node built, and their sizes.
    pub(crate) snapshots_built: AtomicU64,
    pub(crate) snapshot_bytes: Histogram,
    /// Times this node saw the leader change (including to none).
    pub(crate) leader_changes: AtomicU64,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            decisions: DecisionCounters::default(),
            by_path: Default::default(),
            latency: std::array::from_fn(|_| Histogram::new(LATENCY_SECONDS)),
            errors: Default::default(),
            batch_checks: Histogram::new(BATCH_SIZES),
            entries_proposed: AtomicU64::new(0),
            fsync: Histogram::new(LATENCY_SECONDS),
            snapshots_built: AtomicU64::new(0),
            snapshot_bytes: Histogram::new(SIZES_BYTES),
            leader_changes: AtomicU64::new(0),
        }
    }
}

impl NodeMetrics {
    /// Counts the results of one call to the pipeline, which took `elapsed`; `leader` says whether this node
    /// led when the strict ones were decided.
    pub(crate) fn record_checks(&self, results: &[Result<Verdict, CheckError>], elapsed: Duration, leader: bool) {
        for result in results {
            match result {
                Ok(verdict) => {
                    let path = match (verdict.leased, verdict.degraded, leader) {
                        (true, _, _) => Path::Leased,
                        (_, true, _) => Path::Degraded,
                        (_, _, true) => Path::Leader,
                        _ => Path::Forwarded,
                    };
                    let index = path as usize;
                    self.by_path[index][usize::from(!verdict.outcome.allowed)].fetch_add(1, Ordering::Relaxed);
                    self.latency[index].observe_duration(elapsed);
                    for limit in &verdict.outcome.limits {
                        self.decisions.record(&verdict.policies, limit.policy, limit.decision.allowed);
                    }
                }
                Err(error) => {
                    let code = code_of(error) as usize;
                    if let Some(counter) = self.errors.get(code) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Counts the leader changes this node sees (including losing the leader), until Raft shuts down.
pub(crate) async fn count_leader_changes(raft: crate::raft::Raft, metrics: std::sync::Arc<NodeMetrics>) {
    let mut watch = raft.metrics();
    let mut leader = watch.borrow_and_update().current_leader;
    while watch.changed().await.is_ok() {
        let now = watch.borrow_and_update().current_leader;
        if now != leader {
            metrics.leader_changes.fetch_add(1, Ordering::Relaxed);
            leader = now;
        }
    }
}
