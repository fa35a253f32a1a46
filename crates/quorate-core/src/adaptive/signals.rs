//! [`LoadSignals`]: the named load readings (CPU, memory, LLM latency, ...) that make up cluster load.
//!
//! Every signal is a value in ppm with an expiry. A reporter that dies stops refreshing its signal, and the signal
//! then drops out at `expires_at` instead of pinning the cluster at its last (possibly high) reading. Signals live in
//! a `BTreeMap` so that iteration, [`LoadSignals::drivers`] and snapshots are in the same order on every replica.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PPM;
use crate::{CoreError, Nanos};

/// The most signals tracked at once, so that a reporter inventing names cannot grow the state without bound.
pub const MAX_SIGNALS: usize = 256;

/// The longest signal (or scale) name accepted, in bytes.
pub const MAX_SIGNAL_NAME_LEN: usize = 128;

/// How unexpired signals combine into one cluster load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The highest signal wins: any one saturated resource tightens limits (the default).
    #[default]
    Max,
    /// The mean of all signals, rounded down: only broad pressure tightens limits.
    Mean,
}

/// One signal's latest reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// The reading in ppm, `0..=1_000_000`.
    pub value_ppm: u32,
    /// The signal counts while `now < expires_at` and is gone from then on.
    pub expires_at: Nanos,
}

/// A signal as shown to operators: which reading drives the cluster load, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Driver<'a> {
    /// The signal's name, e.g. `cpu` or `llm_latency_p95_ms`.
    pub name: &'a str,
    /// The reading in ppm.
    pub value_ppm: u32,
    /// When the reading expires unless it is reported again.
    pub expires_at: Nanos,
}

/// The set of named load signals, each with an expiry.
///
/// Reports overwrite the previous reading of the same name. Expired signals are ignored by every query and
/// removed by [`LoadSignals::expire`] (and by [`LoadSignals::report`] when the set is full).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadSignals {
    signals: BTreeMap<String, Signal>,
}

impl LoadSignals {
    /// Creates an empty signal set.
    pub fn new() -> Self {
        LoadSignals::default()
    }

    /// Records `value_ppm` (clamped to `1_000_000`) for `name`, valid from `now` for `ttl`.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if `name` is empty or longer than [`MAX_SIGNAL_NAME_LEN`], or if it is new
    /// and [`MAX_SIGNALS`] unexpired signals are already tracked. The set is unchanged then.
    pub fn report(&mut self, name: &str, value_ppm: u32, now: Nanos, ttl: Nanos) -> Result<(), CoreError> {
        check_signal_name("signals", name)?;
        let signal = Signal { value_ppm: value_ppm.min(PPM), expires_at: now.saturating_add(ttl) };
        if let Some(existing) = self.signals.get_mut(name) {
            *existing = signal;
            return Ok(());
        }
        if self.signals.len() >= MAX_SIGNALS {
            // Make room from expired readings before refusing: only live signals count against the cap.
            self.expire(now);
            if self.signals.len() >= MAX_SIGNALS {
                return Err(CoreError::invalid(
                    "signals",
                    format!("cannot track `{name}`: {MAX_SIGNALS} signals are already reported"),
                ));
            }
        }
        self.signals.insert(name.to_owned(), signal);
        Ok(())
    }

    /// Removes the signals that have expired at `now` (`expires_at <= now`) and returns how many there were.
    pub fn expire(&mut self, now: Nanos) -> usize {
        let before = self.signals.len();
        self.signals.retain(|_, signal| signal.is_live(now));
        before - self.signals.len()
    }

    /// Combines the signals unexpired at `now` into one load in ppm; 0 when there are none.
    pub fn combined(&self, now: Nanos, aggregation: Aggregation) -> u32 {
        let live = self.live(now).map(|(_, signal)| signal.value_ppm);
        match aggregation {
            Aggregation::Max => live.max().unwrap_or(0),
            Aggregation::Mean => {
                let (sum, count) = live.fold((0u64, 0u64), |(sum, count), v| (sum + u64::from(v), count + 1));
                // The mean of values <= PPM is <= PPM, so it fits a u32.
                sum.checked_div(count).map_or(0, |mean| mean as u32)
            }
        }
    }

    /// The load of a cluster in ppm: signals named `kind@node` (each node's own samples, e.g. `cpu@node1`) are
    /// combined per kind across nodes with `aggregation`, every other signal counts on its own, and the highest of
    /// those is the cluster load; 0 when no signal is live.
    ///
    /// Grouping by kind first keeps `Aggregation::Mean` meaningful: three nodes' CPU readings average into one CPU
    /// figure instead of diluting an LLM latency signal reported once.
    pub fn cluster_load(&self, now: Nanos, aggregation: Aggregation) -> u32 {
        let mut groups: BTreeMap<&str, (u32, u64, u64)> = BTreeMap::new();
        for (name, signal) in self.live(now) {
            let kind = name.split_once('@').map_or(name, |(kind, _)| kind);
            let (max, sum, count) = groups.entry(kind).or_default();
            *max = (*max).max(signal.value_ppm);
            *sum += u64::from(signal.value_ppm);
            *count += 1;
        }
        groups
            .values()
            .map(|&(max, sum, count)| match aggregation {
                Aggregation::Max => max,
                // The mean of values <= PPM is <= PPM, so it fits a u32; count is at least 1.
                Aggregation::Mean => (sum / count.max(1)) as u32,
            })
            .max()
            .unwrap_or(0)
    }

    /// The signals unexpired at `now`, highest reading first and by name among equals: the first one drives a
    /// [`Aggregation::Max`] load.
    pub fn drivers(&self, now: Nanos) -> Vec<Driver<'_>> {
        let mut drivers: Vec<Driver<'_>> = self
            .live(now)
            .map(|(name, signal)| Driver { name, value_ppm: signal.value_ppm, expires_at: signal.expires_at })
            .collect();
        // The map iterates by name, and the sort is stable: equal readings stay in name order.
        drivers.sort_by_key(|driver| std::cmp::Reverse(driver.value_ppm));
        drivers
    }

    /// The latest reading of `name`, expired or not.
    pub fn get(&self, name: &str) -> Option<&Signal> {
        self.signals.get(name)
    }

    /// All tracked readings in name order, including expired ones not yet removed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Signal)> {
        self.signals.iter().map(|(name, signal)| (name.as_str(), signal))
    }

    /// The number of tracked signals, including expired ones not yet removed.
    pub fn len(&self) -> usize {
        self.signals.len()
    }

    /// Whether no signal is tracked.
    pub fn is_empty(&self) -> bool {
        self.signals.is_empty()
    }

    fn live(&self, now: Nanos) -> impl Iterator<Item = (&str, &Signal)> {
        self.iter().filter(move |(_, signal)| signal.is_live(now))
    }
}

impl Signal {
    fn is_live(&self, now: Nanos) -> bool {
        now < self.expires_at
    }
}

/// Checks that a signal name is 1 to [`MAX_SIGNAL_NAME_LEN`] bytes long.
pub(crate) fn check_signal_name(field: &str, name: &str) -> Result<(), CoreError> {
    if name.is_empty() || name.len() > MAX_SIGNAL_NAME_LEN {
        return Err(CoreError::invalid(
            field,
            format!("signal name `{name}` must be 1 to {MAX_SIGNAL_NAME_LEN} bytes long"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SECOND: Nanos = 1_000_000_000;

    fn signals(readings: &[(&str, u32)], now: Nanos, ttl: Nanos) -> LoadSignals {
        let mut signals = LoadSignals::new();
        for &(name, value) in readings {
            signals.report(name, value, now, ttl).unwrap();
        }
        signals
    }

    #[test]
    fn signals_expire_exactly_at_expires_at() {
        let mut set = signals(&[("cpu", 700_000)], 100, 30 * SECOND);
        let expires_at = 100 + 30 * SECOND;
        assert_eq!(set.get("cpu").unwrap().expires_at, expires_at);
        assert_eq!(set.combined(expires_at - 1, Aggregation::Max), 700_000);
        assert_eq!(set.drivers(expires_at - 1).len(), 1);
        assert_eq!(set.combined(expires_at, Aggregation::Max), 0);
        assert!(set.drivers(expires_at).is_empty());

        assert_eq!(set.expire(expires_at - 1), 0);
        assert_eq!(set.expire(expires_at), 1);
        assert!(set.is_empty());
    }

    #[test]
    fn a_new_report_replaces_the_reading_and_extends_its_life() {
        let mut set = signals(&[("cpu", 900_000)], 0, 10 * SECOND);
        set.report("cpu", 200_000, 5 * SECOND, 10 * SECOND).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.combined(12 * SECOND, Aggregation::Max), 200_000);
    }

    #[test]
    fn max_takes_the_highest_signal_and_mean_the_rounded_down_average() {
        let set = signals(&[("cpu", 300_000), ("memory", 500_000), ("llm_latency", 900_000)], 0, SECOND);
        assert_eq!(set.combined(0, Aggregation::Max), 900_000);
        assert_eq!(set.combined(0, Aggregation::Mean), 566_666);
        assert_eq!(LoadSignals::new().combined(0, Aggregation::Mean), 0);
        assert_eq!(LoadSignals::new().combined(0, Aggregation::Max), 0);
    }

    #[test]
    fn expired_signals_do_not_count_in_either_aggregation() {
        let mut set = signals(&[("cpu", 200_000)], 0, 10 * SECOND);
        set.report("llm_latency", 1_000_000, 0, SECOND).unwrap();
        assert_eq!(set.combined(SECOND, Aggregation::Max), 200_000);
        assert_eq!(set.combined(SECOND, Aggregation::Mean), 200_000);
    }

    #[test]
    fn readings_above_one_are_clamped() {
        let set = signals(&[("cpu", 3_000_000)], 0, SECOND);
        assert_eq!(set.combined(0, Aggregation::Max), PPM);
    }

    #[test]
    fn drivers_are_sorted_by_value_then_name() {
        let set = signals(&[("memory", 500_000), ("cpu", 500_000), ("db_pool", 800_000), ("disk", 100_000)], 0, SECOND);
        let names: Vec<&str> = set.drivers(0).iter().map(|d| d.name).collect();
        assert_eq!(names, ["db_pool", "cpu", "memory", "disk"]);
    }

    #[test]
    fn aggregation_parses_as_snake_case() {
        #[derive(Deserialize)]
        struct Wrapper {
            aggregation: Aggregation,
        }
        let parse = |s: &str| toml::from_str::<Wrapper>(s).map(|w| w.aggregation);
        assert_eq!(parse("aggregation = \"max\"").unwrap(), Aggregation::Max);
        assert_eq!(parse("aggregation = \"mean\"").unwrap(), Aggregation::Mean);
        assert!(parse("aggregation = \"Mean\"").is_err());
    }

    #[test]
    fn bad_names_and_a_full_set_are_refused_without_changing_state() {
        let mut set = LoadSignals::new();
        assert!(set.report("", 1, 0, SECOND).is_err());
        assert!(set.report(&"x".repeat(MAX_SIGNAL_NAME_LEN + 1), 1, 0, SECOND).is_err());
        assert!(set.is_empty());

        for i in 0..MAX_SIGNALS {
            set.report(&format!("s{i:03}"), 1, 0, SECOND).unwrap();
        }
        let full = set.clone();
        let err = set.report("one_more", 1, 0, SECOND).unwrap_err();
        assert!(matches!(err, CoreError::InvalidParameter { ref field, .. } if field == "signals"));
        assert_eq!(set, full);
        // Known names still update, and expired readings make room.
        set.report("s000", 2, 0, SECOND).unwrap();
        set.report("one_more", 1, SECOND, SECOND).unwrap();
        assert_eq!(set.len(), 1);
    }
}
