//! Cluster load: each node samples its own CPU and memory, API servers report signals, and the leader folds the
//! latest of all of them into the Raft log about once a second.
//!
//! Nothing here is on the check path. The sampler runs in the background; a node sends its samples to the
//! leader as `cpu@node<id>` / `memory@node<id>` signals. The leader's [`LoadTracker`] holds every live signal;
//! its folding task proposes a [`Request::Load`] entry when the signals changed meaningfully, or while limits are
//! tightened (so that they can relax on time). Replicas compute the cluster load with [`cluster_load`] and the
//! multiplier with quorate-core's controller at that log position, identically everywhere.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quorate_core::Nanos;
use quorate_core::adaptive::{Aggregation, LoadSignals, Multiplier, PPM};
use quorate_proto::v1::ReportLoadRequest;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;

use crate::api::{Route, Router};
use crate::clock::Clock;
use crate::command::{ReportedSignal, Request};
use crate::raft::{NodeId, Raft};

/// How often nodes sample and the leader considers folding.
pub const LOAD_INTERVAL: Duration = Duration::from_secs(1);
/// A change of at least this much (2%) in any signal is worth a log entry.
const MEANINGFUL_CHANGE_PPM: u32 = 20_000;
/// Even unchanged signals are folded at least this often, so expiry is seen by every replica.
const REFOLD_AFTER: Duration = Duration::from_secs(10);
/// How long a node's own samples count if it stops sending them (e.g. it crashed).
const NODE_SIGNAL_TTL: Duration = Duration::from_secs(5);

/// The combined cluster load in ppm: signals named `kind@node` are aggregated per kind across nodes (max or
/// mean), every other signal counts on its own, and the highest of those is the cluster load.
pub fn cluster_load(signals: &LoadSignals, now: Nanos, aggregation: Aggregation) -> u32 {
    let mut groups: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for driver in signals.drivers(now) {
        let kind = driver.name.split_once('@').map_or(driver.name, |(kind, _)| kind);
        groups.entry(kind).or_default().push(driver.value_ppm);
    }
    groups
        .values()
        .map(|values| match aggregation {
            Aggregation::Max => values.iter().copied().max().unwrap_or(0),
            Aggregation::Mean => {
                let sum: u64 = values.iter().map(|&v| u64::from(v)).sum();
                u32::try_from(sum / values.len().max(1) as u64).unwrap_or(PPM)
            }
        })
        .max()
        .unwrap_or(0)
}

/// This node's own load, as last sampled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalLoad {
    /// CPU use across all cores, ppm.
    pub cpu_ppm: u32,
    /// Memory in use, ppm of total.
    pub memory_ppm: u32,
}

/// Signals collected on this node (on the leader: the whole cluster's) and this node's own sample.
#[derive(Debug, Clone, Default)]
pub struct LoadTracker {
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
    /// A message if the name is invalid or too many signals are tracked.
    pub fn report(&self, name: &str, value_ppm: u32, now: Nanos, ttl: Nanos) -> Result<(), String> {
        self.lock().signals.report(name, value_ppm, now, ttl).map_err(|e| e.to_string())
    }

    /// This node's latest own sample.
    pub fn local(&self) -> LocalLoad {
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

/// Samples this node's CPU and memory every [`LOAD_INTERVAL`] and sends them to the leader.
pub async fn run_sampler(id: NodeId, router: Router, tracker: LoadTracker, clock: Arc<dyn Clock>) {
    let mut system = match sysinfo::System::new() {
        Ok(system) => system,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read system load; this node reports none");
            return;
        }
    };
    let mut ticks = tokio::time::interval(LOAD_INTERVAL);
    loop {
        ticks.tick().await;
        system.refresh_cpu_usage();
        system.refresh_memory();
        let cpu_ppm = (f64::from(system.global_cpu_usage()) / 100.0 * f64::from(PPM)).clamp(0.0, f64::from(PPM)) as u32;
        let total = system.total_memory().max(1);
        let memory_ppm = (system.used_memory().min(total) as u128 * u128::from(PPM) / u128::from(total)) as u32;
        tracker.lock().local = LocalLoad { cpu_ppm, memory_ppm };
        let ttl = NODE_SIGNAL_TTL.as_nanos() as Nanos;
        for (kind, value) in [("cpu", cpu_ppm), ("memory", memory_ppm)] {
            let name = format!("{kind}@node{id}");
            match tokio::time::timeout(LOAD_INTERVAL, router.route()).await {
                Ok(Route::Local) => {
                    let _ = tracker.report(&name, value, clock.now(), ttl);
                }
                Ok(Route::Remote { addr, channel }) => {
                    let request = crate::api::forwarded(ReportLoadRequest {
                        name,
                        value: f64::from(value) / f64::from(PPM),
                        ttl_ms: NODE_SIGNAL_TTL.as_millis() as u64,
                    });
                    if RateLimiterClient::new(channel).report_load(request).await.is_err() {
                        router.forget(&addr);
                    }
                }
                Err(_) => {}
            }
        }
    }
}

/// On the leader, folds the collected signals into the log every [`LOAD_INTERVAL`] when worthwhile.
pub async fn run_folder(
    id: NodeId,
    raft: Raft,
    tracker: LoadTracker,
    clock: Arc<dyn Clock>,
    multiplier: impl Fn() -> Multiplier,
) {
    let mut ticks = tokio::time::interval(LOAD_INTERVAL);
    loop {
        ticks.tick().await;
        if raft.metrics().borrow().current_leader != Some(id) {
            continue;
        }
        let now = clock.now();
        // While limits are tightened, fold every second so that the controller sees time pass and can relax.
        let force = multiplier() < Multiplier::ONE;
        if let Some(signals) = tracker.to_fold(now, force) {
            if let Err(e) = raft.client_write(Request::Load { time: now, signals }).await {
                tracing::debug!(error = %e, "could not fold load signals");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Nanos = 1_000_000_000;

    #[test]
    fn node_samples_aggregate_per_kind_and_the_highest_kind_wins() {
        let mut signals = LoadSignals::new();
        signals.report("cpu@node1", 900_000, 0, 10 * SECOND).unwrap();
        signals.report("cpu@node2", 100_000, 0, 10 * SECOND).unwrap();
        signals.report("cpu@node3", 200_000, 0, 10 * SECOND).unwrap();
        signals.report("db_pool_utilization", 300_000, 0, 10 * SECOND).unwrap();
        assert_eq!(cluster_load(&signals, SECOND, Aggregation::Max), 900_000);
        assert_eq!(cluster_load(&signals, SECOND, Aggregation::Mean), 400_000);
        // Expired signals no longer count.
        assert_eq!(cluster_load(&signals, 11 * SECOND, Aggregation::Max), 0);
    }

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
