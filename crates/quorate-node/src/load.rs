//! Cluster load: each node samples its own CPU and memory, API servers report signals, and the leader folds the
//! latest of all of them into the Raft log about once a second.
//!
//! Nothing here is on the check path. The sampler runs in the background; a node sends its samples to the leader
//! as `cpu@node<id>` / `memory@node<id>` signals through a [`LoadReporter`]. The leader's [`LoadTracker`] holds
//! every live signal; its folding task proposes a [`LogEntry::Load`] entry when the signals changed
//! meaningfully, or while limits are tightened (so that they can relax on time). Replicas compute the cluster
//! load ([`LoadSignals::cluster_load`]) and the multiplier with quorate-core's controller at that log position,
//! identically everywhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use quorate_core::adaptive::{LoadSignals, Multiplier, PPM};
use quorate_core::{CoreError, Nanos};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::cluster::{Cluster, PeerCall, Route};
use crate::command::{LogEntry, ReportedSignal};
use crate::error::CheckError;
use crate::raft::Raft;

/// How often nodes sample and the leader considers folding.
pub(crate) const LOAD_INTERVAL: Duration = Duration::from_secs(1);
/// A change of at least this much (2%) in any signal is worth a log entry.
const MEANINGFUL_CHANGE_PPM: u32 = 20_000;
/// Even unchanged signals are folded at least this often, so expiry is seen by every replica.
const REFOLD_AFTER: Duration = Duration::from_secs(10);
/// How long a node's own samples count if it stops sending them (e.g. it crashed).
const NODE_SIGNAL_TTL: Duration = Duration::from_secs(5);

/// This node's own load, as last sampled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LocalLoad {
    /// CPU use across all cores, ppm.
    pub(crate) cpu_ppm: u32,
    /// Memory in use, ppm of total.
    pub(crate) memory_ppm: u32,
}

/// Signals collected on this node (on the leader: the whole cluster's) and this node's own sample.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadTracker {
    inner: Arc<Mutex<Tracked>>,
}

#[derive(Debug, Default)]
struct Tracked {
    local: LocalLoad,
    signals: LoadSignals,
    folded: Vec<ReportedSignal>,
    folded_at: Nanos,
}

impl LoadTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a signal (already scaled to ppm) valid for `ttl` from `now`.
    ///
    /// # Errors
    ///
    /// [`CoreError`] if the name is invalid or too many signals are tracked.
    pub(crate) fn report(&self, name: &str, value_ppm: u32, now: Nanos, ttl: Nanos) -> Result<(), CoreError> {
        self.lock().signals.report(name, value_ppm, now, ttl)
    }

    /// This node's latest own sample.
    pub(crate) fn local(&self) -> LocalLoad {
        self.lock().local
    }

    /// The live signals to fold at `now`, if they differ enough from the last folded set (or `force`).
    fn to_fold(&self, now: Nanos, force: bool) -> Option<Vec<ReportedSignal>> {
        let mut tracked = self.lock();
        tracked.signals.expire(now);
        let current: Vec<ReportedSignal> = tracked
            .signals
            .iter()
            .map(|(name, s)| ReportedSignal { name: name.to_owned(), value_ppm: s.value_ppm, expires_at: s.expires_at })
            .collect();
        let stale = now.saturating_sub(tracked.folded_at) >= REFOLD_AFTER.as_nanos() as Nanos;
        if force || stale || changed(&tracked.folded, &current) {
            tracked.folded = current.clone();
            tracked.folded_at = now;
            return Some(current);
        }
        None
    }
}

fn changed(before: &[ReportedSignal], after: &[ReportedSignal]) -> bool {
    before.len() != after.len()
        || before
            .iter()
            .zip(after)
            .any(|(a, b)| a.name != b.name || a.value_ppm.abs_diff(b.value_ppm) >= MEANINGFUL_CHANGE_PPM)
}

/// Hands load signals to the leader's [`LoadTracker`], wherever the leader is.
#[derive(Debug, Clone)]
pub(crate) struct LoadReporter {
    cluster: Cluster,
    tracker: LoadTracker,
    clock: Arc<dyn Clock>,
    deadline: Duration,
}

impl LoadReporter {
    /// A reporter for node `cluster`, recording into `tracker` when this node leads, waiting at most `deadline`
    /// for a leader.
    pub(crate) fn new(cluster: Cluster, tracker: LoadTracker, clock: Arc<dyn Clock>, deadline: Duration) -> Self {
        LoadReporter { cluster, tracker, clock, deadline }
    }

    /// Reports `name` at `value_ppm` for `ttl` to the leader.
    ///
    /// # Errors
    ///
    /// [`CheckError::Invalid`] for a bad name; [`CheckError::NoLeader`] (or another no-quorum error) if no leader
    /// took it within the deadline.
    pub(crate) async fn report(&self, name: String, value_ppm: u32, ttl: Nanos) -> Result<(), CheckError> {
        match self.cluster.route(Instant::now() + self.deadline).await? {
            Route::Local => self.report_here(&name, value_ppm, ttl),
            Route::Remote(peer) => peer.call(&PeerCall::ReportLoad { name, value_ppm, ttl }).await?,
        }
    }

    /// Records a signal a peer forwarded: here if this node leads, else [`CheckError::NotLeader`].
    ///
    /// # Errors
    ///
    /// [`CheckError::NotLeader`], or [`CheckError::Invalid`] for a bad name.
    pub(crate) fn report_here(&self, name: &str, value_ppm: u32, ttl: Nanos) -> Result<(), CheckError> {
        if !self.cluster.is_leader() {
            return Err(CheckError::NotLeader { leader: None });
        }
        self.tracker.report(name, value_ppm, self.clock.now(), ttl).map_err(CheckError::Invalid)
    }
}

/// Samples this node's CPU and memory every [`LOAD_INTERVAL`] and sends them to the leader.
pub(crate) async fn run_sampler(reporter: LoadReporter) {
    let mut system = match sysinfo::System::new() {
        Ok(system) => system,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read system load; this node reports none");
            return;
        }
    };
    let id = reporter.cluster.id();
    let mut ticks = tokio::time::interval(LOAD_INTERVAL);
    loop {
        ticks.tick().await;
        system.refresh_cpu_usage();
        system.refresh_memory();
        let cpu_ppm = (f64::from(system.global_cpu_usage()) / 100.0 * f64::from(PPM)).clamp(0.0, f64::from(PPM)) as u32;
        let total = system.total_memory().max(1);
        let memory_ppm = (system.used_memory().min(total) as u128 * u128::from(PPM) / u128::from(total)) as u32;
        reporter.tracker.lock().local = LocalLoad { cpu_ppm, memory_ppm };
        let ttl = NODE_SIGNAL_TTL.as_nanos() as Nanos;
        for (kind, value) in [("cpu", cpu_ppm), ("memory", memory_ppm)] {
            let sent = tokio::time::timeout(LOAD_INTERVAL, reporter.report(format!("{kind}@node{id}"), value, ttl));
            if let Ok(Err(error)) = sent.await {
                tracing::debug!(%error, "could not report this node's load");
            }
        }
    }
}

/// On the leader, folds the collected signals into the log every [`LOAD_INTERVAL`] when worthwhile.
pub(crate) async fn run_folder(
    cluster: Cluster,
    tracker: LoadTracker,
    clock: Arc<dyn Clock>,
    multiplier: impl Fn() -> Multiplier,
) {
    let raft: Raft = cluster.raft().clone();
    let mut ticks = tokio::time::interval(LOAD_INTERVAL);
    loop {
        ticks.tick().await;
        if !cluster.is_leader() {
            continue;
        }
        let now = clock.now();
        // While limits are tightened, fold every second so that the controller sees time pass and can relax.
        let force = multiplier() < Multiplier::ONE;
        if let Some(signals) = tracker.to_fold(now, force)
            && let Err(e) = raft.client_write(LogEntry::Load { time: now, signals }).await
        {
            tracing::debug!(error = %e, "could not fold load signals");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Nanos = 1_000_000_000;

    #[test]
    fn folding_skips_small_changes_but_not_large_ones() {
        let tracker = LoadTracker::default();
        tracker.report("llm", 500_000, 0, 60 * SECOND).unwrap();
        assert!(tracker.to_fold(SECOND, false).is_some());
        tracker.report("llm", 505_000, SECOND, 60 * SECOND).unwrap();
        assert!(tracker.to_fold(2 * SECOND, false).is_none());
        tracker.report("llm", 700_000, 2 * SECOND, 60 * SECOND).unwrap();
        assert!(tracker.to_fold(3 * SECOND, false).is_some());
        assert!(tracker.to_fold(4 * SECOND, true).is_some(), "forced while tightened");
        assert!(tracker.to_fold(14 * SECOND, false).is_some(), "refolded after 10 s");
    }
}
