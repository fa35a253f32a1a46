//! What the clients saw, and the invariants every run must satisfy, checked on that history (not on logs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::cluster::{KEYS, LEASED_LIMIT, LEASED_WINDOW, LOCAL_LIMIT, NODES, STRICT_LIMIT};
use crate::nemesis::Scenario;

/// How soon after the last heal a strict decision must come back.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(10);

/// What one check answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed; `degraded` if decided without a quorum.
    Allowed {
        /// Decided without a quorum.
        degraded: bool,
    },
    /// Denied; `degraded` if decided without a quorum.
    Denied {
        /// Decided without a quorum.
        degraded: bool,
    },
    /// UNAVAILABLE with a message: a clear error.
    Unavailable,
    /// No answer within the client's timeout.
    Timeout,
    /// The client's connection to the node broke (e.g. the node crashed during the call).
    Unreachable,
    /// Any other error: never acceptable.
    Error(String),
}

/// One check in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The client host (1 or 2).
    pub client: u8,
    /// The node called.
    pub node: u64,
    /// `strict`, `local` or `leased`.
    pub policy: &'static str,
    /// The key index.
    pub key: u64,
    /// When it was sent, ms of simulated time since the clients started.
    pub at_ms: u64,
    /// When it was sent, µs of simulated time since the clients started.
    pub sent_us: u64,
    /// When its answer arrived, µs of simulated time since the clients started: the cluster decided it in between.
    pub answered_us: u64,
    /// What came back.
    pub outcome: Outcome,
    /// Whether the node decided it from its leases, with no log entry.
    pub leased: bool,
}

/// Every check of a run, in the order the clients completed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History(pub Vec<Event>);

/// The cluster's state read back after the last heal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalState {
    /// Remaining units per (policy, key), from a strict (non-degraded) peek.
    pub remaining: BTreeMap<(&'static str, u64), u64>,
    /// Per node: (applied index, state digest).
    pub digests: BTreeMap<u64, (u64, u64)>,
}

impl History {
    /// A digest of the whole history: the same seed must give the same value.
    pub fn digest(&self) -> u64 {
        let mut text = String::new();
        for event in &self.0 {
            let _ = writeln!(text, "{event:?}");
        }
        text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    }

    fn allowed(&self, policy: &str, key: u64, degraded: bool) -> u64 {
        self.0
            .iter()
            .filter(|e| e.policy == policy && e.key == key && e.outcome == Outcome::Allowed { degraded })
            .count() as u64
    }

    /// The most checks of `policy`'s `key` allowed (not degraded) that were certainly decided within one window:
    /// sent at or after some allowed check was sent, and answered less than a window after that. With the send
    /// time it starts from, in µs; `None` if none was allowed.
    fn busiest_window(&self, policy: &str, key: u64) -> Option<(u64, u64)> {
        let allowed: Vec<&Event> = self
            .0
            .iter()
            .filter(|e| e.policy == policy && e.key == key && e.outcome == Outcome::Allowed { degraded: false })
            .collect();
        let window = LEASED_WINDOW.as_micros() as u64;
        allowed
            .iter()
            .map(|from| {
                let within = allowed
                    .iter()
                    .filter(|e| e.sent_us >= from.sent_us && e.answered_us < from.sent_us + window)
                    .count() as u64;
                (within, from.sent_us)
            })
            .max()
    }

    /// Counts of each outcome kind, for reports.
    pub fn summary(&self) -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for event in &self.0 {
            let kind = match &event.outcome {
                Outcome::Error(_) => "error".to_owned(),
                other => format!("{other:?}"),
            };
            *counts.entry(kind).or_default() += 1;
        }
        let leased = self.0.iter().filter(|e| e.leased).count();
        format!("{} checks ({leased} from leases): {counts:?}", self.0.len())
    }

    /// Checks every invariant; returns the violations found (empty when the run is correct).
    pub fn violations(&self, scenario: &Scenario, final_state: &FinalState) -> Vec<String> {
        let mut found = Vec::new();
        // Every call got a decision or a clear error.
        for event in &self.0 {
            if let Outcome::Error(message) = &event.outcome {
                found.push(format!("unexpected error at {} ms from n{}: {message}", event.at_ms, event.node));
            }
        }
        for key in 0..KEYS {
            // Strict decisions never admit more than the limit (the window is longer than the run).
            let strict = self.allowed("strict", key, false);
            if strict > STRICT_LIMIT {
                found.push(format!("strict k{key}: {strict} admitted > limit {STRICT_LIMIT}"));
            }
            // deny mode: a degraded decision never admits.
            let degraded = self.allowed("strict", key, true);
            if degraded > 0 {
                found.push(format!("strict k{key}: {degraded} admitted while degraded in deny mode"));
            }
            // local mode: strict ones within the limit, and each node alone within its share (limit / N) of the
            // window — across partitions and restarts alike (the window outlives the run) — so at most twice the
            // limit in all.
            let local_strict = self.allowed("local", key, false);
            if local_strict > LOCAL_LIMIT {
                found.push(format!("local k{key}: {local_strict} admitted strictly > limit {LOCAL_LIMIT}"));
            }
            for node in 1..=NODES {
                let alone = self
                    .0
                    .iter()
                    .filter(|e| e.policy == "local" && e.key == key && e.node == node)
                    .filter(|e| e.outcome == Outcome::Allowed { degraded: true })
                    .count() as u64;
                if alone > LOCAL_LIMIT / NODES {
                    found.push(format!(
                        "local k{key}: n{node} admitted {alone} alone > its share {}",
                        LOCAL_LIMIT / NODES
                    ));
                }
            }
            // Every admitted decision survived every crash and restart: the final state has consumed it.
            for (policy, limit, admitted) in [("strict", STRICT_LIMIT, strict), ("local", LOCAL_LIMIT, local_strict)] {
                match final_state.remaining.get(&(policy, key)) {
                    None => found.push(format!("{policy} k{key}: no strict answer after the last heal")),
                    Some(&remaining) if remaining > limit - admitted.min(limit) => found.push(format!(
                        "{policy} k{key}: {admitted} admitted but {remaining} of {limit} remain: quota was refunded"
                    )),
                    Some(_) => {}
                }
            }
        }
        // Leases: decisions from leases and strict ones together never admit more than the limit in any window of
        // simulated time (the nodes' wall clocks must agree for that: a leader whose clock runs ahead moves every
        // window forward, leases or not), and a node without a quorum denies once its leases are spent.
        if scenario.skew.iter().all(|&skew| skew == 0) {
            if let Some((most, from_us)) = self.busiest_window("leased", 0) {
                if most > LEASED_LIMIT {
                    found.push(format!("leased k0: {most} admitted within {LEASED_WINDOW:?} from {from_us} µs"));
                }
            }
        }
        let first_fault = scenario.faults.first().map_or(0, |(at, _)| at.as_millis() as u64);
        if scenario.name.contains("lease") && !self.0.iter().any(|e| e.leased && e.at_ms >= first_fault) {
            found.push("no decision came from a lease once faults began: the scenario tested nothing of them".into());
        }
        let degraded = self.allowed("leased", 0, true);
        if degraded > 0 {
            found.push(format!("leased k0: {degraded} admitted while degraded in deny mode"));
        }
        if !final_state.remaining.contains_key(&("leased", 0)) {
            found.push("leased k0: no strict answer after the last heal".to_owned());
        }
        // Liveness: strict decisions come back soon after the last heal.
        let healed = scenario.healed_at().as_millis() as u64;
        let recovered = self.0.iter().find(|e| {
            e.at_ms >= healed
                && matches!(e.outcome, Outcome::Allowed { degraded: false } | Outcome::Denied { degraded: false })
        });
        match recovered {
            Some(event) if event.at_ms - healed <= LIVENESS_BOUND.as_millis() as u64 => {}
            Some(event) => found.push(format!("first strict decision {} ms after the heal", event.at_ms - healed)),
            None => found.push("no strict decision after the last heal".to_owned()),
        }
        // After the heal all replicas converge to identical state.
        let digests: Vec<&(u64, u64)> = final_state.digests.values().collect();
        if digests.len() != NODES as usize {
            found.push(format!("only {} of {NODES} nodes answered for their state digest", digests.len()));
        } else if digests.iter().any(|d| d.0 != digests[0].0) {
            found.push(format!("replicas did not converge on one applied index: {:?}", final_state.digests));
        } else if digests.iter().any(|d| d.1 != digests[0].1) {
            found.push(format!("replicas differ at the same applied index: {:?}", final_state.digests));
        }
        found
    }
}
