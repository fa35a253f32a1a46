//! [`Histogram`]: fixed buckets of atomic counters, so that recording on the check path is a few atomic adds —
//! no lock, no allocation (prometheus-client's own histogram takes a lock per observation).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A histogram over fixed upper bounds; the last bucket is +Inf.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// One more than `bounds`: the +Inf bucket.
    counts: Box<[AtomicU64]>,
    /// Sum of the observations in millionths of their unit (microseconds for seconds).
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// Bucket bounds for latencies in seconds: 50 µs to 10 s.
pub(crate) const LATENCY_SECONDS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Bucket bounds for counts of checks in one log entry.
pub(crate) const BATCH_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Bucket bounds for sizes in bytes: 1 KiB to 1 GiB.
pub(crate) const SIZES_BYTES: &[f64] =
    &[1024.0, 16384.0, 131072.0, 1048576.0, 8388608.0, 67108864.0, 268435456.0, 1073741824.0];

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation of `value` (in the unit of the bounds).
    pub(crate) fn observe(&self, value: f64) {
        let bucket = self.bounds.iter().position(|bound| value <= *bound).unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((value.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a duration in seconds.
    pub(crate) fn observe_duration(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    /// Sum, count and the per-bucket (not cumulative) counts with their upper bounds, +Inf last: what the
    /// OpenMetrics encoder takes.
    pub(crate) fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets = self
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        (self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6, self.count.load(Ordering::Relaxed), buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let histogram = Histogram::new(&[1.0, 10.0]);
        for value in [0.5, 1.0, 3.0, 11.0, 100.0] {
            histogram.observe(value);
        }
        let (sum, count, buckets) = histogram.snapshot();
        assert_eq!(count, 5);
        assert!((sum - 115.5).abs() < 1e-6);
        assert_eq!(buckets, [(1.0, 2), (10.0, 1), (f64::INFINITY, 2)]);
    }
}
