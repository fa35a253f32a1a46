#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

const SECOND: Nanos = 1_000_000_000;
const T0: Nanos = 1_795_000_000 * SECOND;

/// The exact reference: a log of every admitted (time, cost).
#[derive(Debug, Default)]
struct TimestampLog {
    admitted: Vec<(Nanos, u64)>,
}

impl TimestampLog {
    /// Units admitted in the half-open interval (now - window, now].
    fn in_window(&self, now: Nanos, window: Nanos) -> u64 {
        self.admitted.iter().filter(|&&(t, _)| t + window > now && t <= now).map(|&(_, c)| c).sum()
    }
}

#[test]
fn never_admits_more_than_the_limit_in_a_window() {
    let sw = SlidingWindow::new(10, 10 * SECOND, 10).unwrap();
    let mut state = SlidingWindowState::default();
    assert!(sw.check(&mut state, T0, 10, 10, true).allowed);
    // 9.5 s later the window still covers the first burst.
    let denied = sw.check(&mut state, T0 + 9_500_000_000, 1, 10, true);
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert!(sw.check(&mut state, T0 + denied.retry_after + 9_500_000_000, 10, 10, true).allowed);
}

#[test]
fn partly_expired_bucket_counts_whole() {
    // One-second buckets. A hit at 0.9 s into a bucket keeps counting until that bucket fully leaves the window.
    let sw = SlidingWindow::new(1, 10 * SECOND, 10).unwrap();
    let mut state = SlidingWindowState::default();
    let t = T0 + 900_000_000;
    assert!(sw.check(&mut state, t, 1, 1, true).allowed);
    let denied = sw.check(&mut state, t + 10 * SECOND - 900_000_000, 1, 1, true);
    assert!(!denied.allowed, "10.0 s after the bucket started, a hit at 0.9 s may be 9.1 s old");
    // The bucket [T0, T0+1s) stops counting at T0 + 11 s.
    assert_eq!(T0 + 10 * SECOND + denied.retry_after, T0 + 11 * SECOND);
}

#[test]
fn memory_does_not_grow_with_the_limit_or_the_traffic() {
    let sw = SlidingWindow::new(1_000_000, 60 * SECOND, 60).unwrap();
    let mut state = SlidingWindowState::default();
    for i in 0..10_000 {
        sw.check(&mut state, T0 + i * 7_000_000, 3, 1_000_000, true);
    }
    assert_eq!(state.counts.len(), 61);
}

#[test]
fn peek_on_a_fresh_key_allocates_nothing() {
    let sw = SlidingWindow::new(5, SECOND, 10).unwrap();
    let mut state = SlidingWindowState::default();
    let d = sw.check(&mut state, T0, 5, 5, false);
    assert!(d.allowed);
    assert_eq!(d.remaining, 5);
    assert!(state.counts.is_empty());
}

#[test]
fn refund_takes_back_from_the_newest_bucket() {
    let sw = SlidingWindow::new(10, 10 * SECOND, 10).unwrap();
    let mut state = SlidingWindowState::default();
    assert!(sw.check(&mut state, T0, 4, 10, true).allowed);
    assert!(sw.check(&mut state, T0 + 5 * SECOND, 6, 10, true).allowed);
    sw.refund(&mut state, T0 + 5 * SECOND, 2, 10);
    let d = sw.check(&mut state, T0 + 5 * SECOND, 1, 10, false);
    assert_eq!(d.remaining, 2);
    // The 4 from T0 still expire first: after T0 + 11 s only the 4 of T0 + 5 s remain.
    assert_eq!(sw.check(&mut state, T0 + 11 * SECOND, 1, 10, false).remaining, 6);
    sw.refund(&mut state, T0 + 11 * SECOND, 100, 10);
    assert_eq!(state.total, 0);
}

#[test]
fn rejects_a_window_that_does_not_divide_into_buckets() {
    let err = SlidingWindow::new(10, 1_000, 7).unwrap_err();
    assert!(err.to_string().contains("precision"), "{err}");
    assert!(SlidingWindow::new(10, 1_000, 0).is_err());
    assert!(SlidingWindow::new(0, 1_000, 10).is_err());
}

fn params() -> impl Strategy<Value = (u64, Nanos, u32)> {
    (1u64..40, 1u32..12, prop_oneof![Just(1u64), 1u64..1_000, Just(SECOND)])
        .prop_map(|(limit, precision, width)| (limit, width * u64::from(precision), precision))
}

fn ops(scale: Nanos) -> impl Strategy<Value = Vec<(Nanos, u64)>> {
    prop::collection::vec((prop_oneof![Just(0u64), 0..scale, 0..4 * scale], 1u64..10), 1..80)
}

proptest! {
    /// Invariant: for every key and every window, admitted units never exceed the limit.
    #[test]
    fn never_over_admits_against_a_timestamp_log(
        (limit, window, precision) in params(),
        ops in ops(SECOND),
        scale in 1u64..20,
    ) {
        let sw = SlidingWindow::new(limit, window, precision).unwrap();
        let mut state = SlidingWindowState::default();
        let mut log = TimestampLog::default();
        let mut now = T0;
        for (dt, cost) in ops {
            now += dt * scale / 10 % (3 * window);
            let cost = cost.min(limit);
            let d = sw.check(&mut state, now, cost, limit, true);
            if d.allowed {
                log.admitted.push((now, cost));
                // Every window ending at an admission (the worst ones) holds at most `limit`.
                prop_assert!(log.in_window(now, window) <= limit);
            } else {
                // Liveness: the only reason to deny is the conservative extra bucket.
                let width = window / u64::from(precision);
                prop_assert!(log.in_window(now, window + width) + cost > limit);
            }
        }
    }

    /// A retry at `retry_after` succeeds and one nanosecond earlier fails.
    #[test]
    fn retry_after_is_exact((limit, window, precision) in params(), ops in ops(SECOND), cut in 1u64..=100) {
        let sw = SlidingWindow::new(limit, window, precision).unwrap();
        let effective = (limit * cut / 100).max(1);
        let mut state = SlidingWindowState::default();
        let mut now = T0;
        for (dt, cost) in ops {
            now += dt % (2 * window);
            let cost = cost.min(effective);
            let d = sw.check(&mut state, now, cost, effective, true);
            if !d.allowed {
                prop_assert!(d.retry_after > 0);
                prop_assert!(!sw.check(&mut state.clone(), now + d.retry_after - 1, cost, effective, true).allowed);
                prop_assert!(sw.check(&mut state.clone(), now + d.retry_after, cost, effective, true).allowed);
            }
        }
    }

    /// A state past `fresh_at` answers exactly like a fresh one, and `reset_after` points there.
    #[test]
    fn state_is_fresh_after_fresh_at((limit, window, precision) in params(), ops in ops(SECOND), probe in 1u64..10) {
        let sw = SlidingWindow::new(limit, window, precision).unwrap();
        let mut state = SlidingWindowState::default();
        let mut now = T0;
        let mut last = None;
        for (dt, cost) in ops {
            now += dt % (2 * window);
            last = Some(sw.check(&mut state, now, cost.min(limit), limit, true));
        }
        let at = sw.fresh_at(&state).max(now);
        if let Some(d) = last {
            prop_assert_eq!(now + d.reset_after, at);
        }
        let probe = probe.min(limit);
        let mut a = state.clone();
        let da = sw.check(&mut a, at, probe, limit, true);
        let db = sw.check(&mut SlidingWindowState::default(), at, probe, limit, true);
        prop_assert_eq!(da, db);
    }
}
