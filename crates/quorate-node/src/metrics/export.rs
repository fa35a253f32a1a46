//! [`Exporter`]: the node's metrics as prometheus-client encodes them, read at each scrape.
//!
//! Counters that the working paths keep ([`NodeMetrics`]) are read with relaxed loads; Raft's state comes from
//! its metrics channel, the table and the load from the replica (under its lock, once per scrape, never on the
//! check path).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use openraft::ServerState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tonic::Code;

use super::histogram::Histogram;
use super::{NodeMetrics, Path};
use crate::auth::Access;
use crate::raft::Raft;
use crate::raft::state_machine::StateMachineStore;

/// Reads a node's metrics at scrape time.
#[derive(Clone)]
pub(crate) struct Exporter {
    pub(crate) metrics: Arc<NodeMetrics>,
    pub(crate) raft: Raft,
    pub(crate) state_machine: StateMachineStore,
    /// Each listener's access rules, whose refusals are counted.
    pub(crate) access: Vec<(&'static str, Arc<Access>)>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// The OpenMetrics text of every metric.
    pub(crate) fn render(&self) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("quorate");
        registry.register_collector(Box::new(self.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }

    /// Whether the node knows a leader and has applied a policy set: `/readyz`.
    pub(crate) fn ready(&self) -> bool {
        self.raft.metrics().borrow().current_leader.is_some() && self.state_machine.policies().is_some()
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn histogram(encoder: &mut DescriptorEncoder, name: &str, help: &str, h: &Histogram) -> Result<(), std::fmt::Error> {
    let (sum, count, buckets) = h.snapshot();
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
}

fn code_name(code: usize) -> &'static str {
    match Code::from_i32(code as i32) {
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::Unavailable => "UNAVAILABLE",
        Code::Internal => "INTERNAL",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        _ => "OTHER",
    }
}

impl Collector for Exporter {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.metrics;

        let mut family = encoder.encode_descriptor(
            "decisions",
            "Decisions this node answered, per limit: by policy and outcome",
            None,
            MetricType::Counter,
        )?;
        for (policy, allowed, denied) in m.decisions.totals() {
            for (outcome, value) in [("allowed", allowed), ("denied", denied)] {
                let labels = [("policy", policy.as_str()), ("outcome", outcome)];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "checks",
            "Checks this node answered, by path (leader, forwarded, leased, degraded) and outcome",
            None,
            MetricType::Counter,
        )?;
        for path in Path::ALL {
            for (outcome, slot) in [("allowed", 0), ("denied", 1)] {
                let value = m.by_path[path as usize][slot].load(Ordering::Relaxed);
                ConstCounter::new(value)
                    .encode(family.encode_family(&[("path", path.name()), ("outcome", outcome)])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "check_errors",
            "Checks answered with an error instead of a decision, by gRPC code",
            None,
            MetricType::Counter,
        )?;
        for (code, counter) in m.errors.iter().enumerate() {
            let value = counter.load(Ordering::Relaxed);
            if value > 0 {
                ConstCounter::new(value).encode(family.encode_family(&[("code", code_name(code))])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "check_duration_seconds",
            "Time from a check's arrival to its decision, by path",
            None,
            MetricType::Histogram,
        )?;
        for path in Path::ALL {
            let (sum, count, buckets) = m.latency[path as usize].snapshot();
            let labels = [("path", path.name())];
            family
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
        }
        histogram(
            &mut encoder,
            "batch_checks",
            "Checks sealed into each log entry this node proposed",
            &m.batch_checks,
        )?;
        counter(
            &mut encoder,
            "entries_proposed",
            "Log entries of checks this node proposed as leader",
            m.entries_proposed.load(Ordering::Relaxed),
        )?;
        histogram(&mut encoder, "fsync_duration_seconds", "Duration of the Raft log's flushes to disk", &m.fsync)?;
        counter(
            &mut encoder,
            "snapshots_built",
            "Snapshots this node built",
            m.snapshots_built.load(Ordering::Relaxed),
        )?;
        histogram(&mut encoder, "snapshot_bytes", "Size of the snapshots this node built", &m.snapshot_bytes)?;
        counter(
            &mut encoder,
            "leader_changes",
            "Times this node saw the leader change (to another or to none)",
            m.leader_changes.load(Ordering::Relaxed),
        )?;

        let raft = self.raft.metrics().borrow().clone();
        gauge(&mut encoder, "raft_term", "Current Raft term", raft.current_term as i64)?;
        let mut family =
            encoder.encode_descriptor("raft_role", "1 for this node's current Raft role", None, MetricType::Gauge)?;
        for (role, state) in [
            ("leader", ServerState::Leader),
            ("follower", ServerState::Follower),
            ("candidate", ServerState::Candidate),
            ("learner", ServerState::Learner),
        ] {
            ConstGauge::new(i64::from(raft.state == state)).encode(family.encode_family(&[("role", role)])?)?;
        }
        gauge(
            &mut encoder,
            "raft_leader_id",
            "The leader this node knows (0: none)",
            raft.current_leader.unwrap_or(0) as i64,
        )?;
        let last_log = raft.last_log_index.unwrap_or(0);
        let applied = raft.last_applied.map_or(0, |id| id.index);
        gauge(
            &mut encoder,
            "raft_last_log_index",
            "Index of the last entry in this node's log (appended)",
            last_log as i64,
        )?;
        gauge(
            &mut encoder,
            "raft_applied_index",
            "Index of the last entry applied (committed and applied)",
            applied as i64,
        )?;
        gauge(
            &mut encoder,
            "raft_snapshot_index",
            "Index the latest snapshot covers",
            raft.snapshot.map_or(0, |id| id.index) as i64,
        )?;
        let mut family = encoder.encode_descriptor(
            "raft_replication_lag",
            "On the leader: entries each follower's log is behind the leader's",
            None,
            MetricType::Gauge,
        )?;
        if let Some(replication) = &raft.replication {
            for (follower, matched) in replication.iter() {
                let lag = last_log.saturating_sub(matched.map_or(0, |id| id.index));
                let follower = follower.to_string();
                ConstGauge::new(lag as i64).encode(family.encode_family(&[("follower", follower.as_str())])?)?;
            }
        }

        let (keys, load, multiplier, signals) = {
            let replica = self.state_machine.replica();
            let signals: Vec<(String, u32)> =
                replica.signals.drivers(replica.now()).iter().map(|d| (d.name.to_owned(), d.value_ppm)).collect();
            (replica.table.len(), replica.cluster_load(), replica.multiplier().ppm(), signals)
        };
        gauge(&mut encoder, "tracked_keys", "(policy, key) pairs in the limiter table", keys as i64)?;
        let ppm = |value: u32| f64::from(value) / 1e6;
        ConstGauge::new(ppm(load)).encode(encoder.encode_descriptor(
            "cluster_load",
            "Cluster load the adaptive limits follow (0..1)",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(ppm(multiplier)).encode(encoder.encode_descriptor(
            "adaptive_multiplier",
            "Factor adaptive policies' limits are multiplied by",
            None,
            MetricType::Gauge,
        )?)?;
        let mut family =
            encoder.encode_descriptor("load_signal", "Each live load signal (0..1)", None, MetricType::Gauge)?;
        for (name, value) in &signals {
            ConstGauge::new(ppm(*value)).encode(family.encode_family(&[("signal", name.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "auth_refused",
            "Calls refused for a missing, unknown or insufficient token, by listener",
            None,
            MetricType::Counter,
        )?;
        for (listener, access) in &self.access {
            ConstCounter::new(access.refused()).encode(family.encode_family(&[("listener", *listener)])?)?;
        }
        Ok(())
    }
}
