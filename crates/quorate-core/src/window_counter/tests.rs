#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

const SECOND: Nanos = 1_000_000_000;
const MINUTE: Nanos = 60 * SECOND;
const T0: Nanos = 1_795_000_000 * SECOND;

#[test]
fn previous_window_weighs_in_proportionally() {
    let wc = WindowCounter::new(10, 10 * SECOND).unwrap();
    let mut state = WindowCounterState::default();
    assert!(wc.check(&mut state, 0, 10, 10, true).allowed);
    // Half-way through the next window the previous 10 count as 5.
    let d = wc.check(&mut state, 15 * SECOND, 1, 10, false);
    assert_eq!(d.remaining, 5);
    assert!(wc.check(&mut state, 15 * SECOND, 5, 10, true).allowed);
    let denied = wc.check(&mut state, 15 * SECOND, 1, 10, true);
    assert!(!denied.allowed);
    let at = 15 * SECOND + denied.retry_after;
    assert!(!wc.check(&mut state.clone(), at - 1, 1, 10, true).allowed);
    assert!(wc.check(&mut state, at, 1, 10, true).allowed);
}

#[test]
fn retry_moves_into_the_next_window_when_the_current_is_full() {
    let wc = WindowCounter::new(4, SECOND).unwrap();
    let mut state = WindowCounterState::default();
    assert!(wc.check(&mut state, 0, 4, 4, true).allowed);
    let denied = wc.check(&mut state, 10, 4, 4, true);
    // A cost equal to the limit fits only once both windows are empty.
    assert_eq!(10 + denied.retry_after, 2 * SECOND);
    assert!(!wc.check(&mut state.clone(), 2 * SECOND - 1, 4, 4, true).allowed);
    assert!(wc.check(&mut state, 2 * SECOND, 4, 4, true).allowed);
}

#[test]
fn a_boundary_instant_belongs_to_the_new_window_with_the_previous_counted_whole() {
    let wc = WindowCounter::new(10, 10 * SECOND).unwrap();
    let mut state = WindowCounterState::default();
    assert!(wc.check(&mut state, 10 * SECOND - 1, 10, 10, true).allowed);
    // At the boundary the previous 10 count in full: nothing fits.
    assert!(!wc.check(&mut state, 10 * SECOND, 1, 10, true).allowed);
    // They count as 9 (exactly, no rounding) a tenth of the window in, and not a nanosecond earlier.
    assert!(!wc.check(&mut state, 11 * SECOND - 1, 1, 10, true).allowed);
    assert!(wc.check(&mut state, 11 * SECOND, 1, 10, true).allowed);
}

/// Admits one unit at a time at `at` until the counter denies; returns how many were admitted.
fn fill(wc: &WindowCounter, state: &mut WindowCounterState, at: Nanos) -> u64 {
    let mut admitted = 0;
    while wc.check(state, at, 1, wc.limit(), true).allowed {
        admitted += 1;
    }
    admitted
}

#[test]
fn adversarial_burst_reaches_the_bound() {
    // The pattern of the module docs: `limit` in the last nanosecond of a window, then as much as fits 2 ns
    // before the next window ends. The two instants are W - 1 ns apart, inside one span of length W.
    for (limit, window) in [(100, MINUTE), (1, MINUTE), (7, 10), (5, 3), (3, 2), (4, 1), (1_000, SECOND), (50, 60)] {
        let wc = WindowCounter::new(limit, window).unwrap();
        let boundary = (T0 / window + 1) * window;
        let mut state = WindowCounterState::default();
        let late = fill(&wc, &mut state, boundary - 1);
        assert_eq!(late, limit);
        let next = fill(&wc, &mut state, (boundary + window).saturating_sub(2).max(boundary - 1));
        assert_eq!(late + next, wc.max_per_window(), "limit {limit}, window {window}ns");
    }
    // For every real policy that is one short of twice the limit.
    assert_eq!(WindowCounter::new(100, MINUTE).unwrap().max_per_window(), 199);
}

#[test]
fn bound_formula_matches_the_small_cases() {
    let bound = |limit, window| WindowCounter::new(limit, window).unwrap().max_per_window();
    // A 1 ns window is a fixed window; at 2 ns the previous window still counts whole at every instant that
    // shares a span with it.
    assert_eq!(bound(4, 1), 4);
    assert_eq!(bound(4, 2), 4);
    assert_eq!(bound(7, 10), 12);
    assert_eq!(bound(1, MINUTE), 1);
    assert_eq!(bound(bounds::MAX_COUNT, 1_000), 2 * bounds::MAX_COUNT - bounds::MAX_COUNT.div_ceil(500));
}

fn params() -> impl Strategy<Value = (u64, Nanos)> {
    // Tiny windows make every arrival land near a boundary; the realistic ones check the common case.
    (1u64..30, prop_oneof![1u64..40, Just(1_000u64), Just(SECOND)])
}

fn ops(window: Nanos) -> impl Strategy<Value = Vec<(Nanos, u64)>> {
    let gap = prop_oneof![Just(0u64), 0..window.max(2), 0..3 * window.max(2), Just(window - 1)];
    prop::collection::vec((gap, 1u64..30), 1..120)
}

proptest! {
    /// Every span of one window length holds at most `max_per_window`, and every fixed window at most the limit.
    #[test]
    fn never_admits_more_than_the_bound_in_any_span(
        ((limit, window), ops) in params().prop_flat_map(|p| (Just(p), ops(p.1))),
        cut in 1u64..=100,
    ) {
        let wc = WindowCounter::new(limit, window).unwrap();
        let effective = (limit * cut / 100).max(1);
        let bound = WindowCounter::new(effective, window).unwrap().max_per_window();
        let mut state = WindowCounterState::default();
        let mut admitted: Vec<(Nanos, u64)> = Vec::new();
        let mut now = T0;
        for (dt, cost) in ops {
            now += dt;
            let cost = cost.min(effective);
            if wc.check(&mut state, now, cost, effective, true).allowed {
                admitted.push((now, cost));
                // The span (now - W, now] ends at an admission: every span's content fits in one of these.
                let span: u64 = admitted.iter().filter(|&&(t, _)| t + window > now).map(|&(_, c)| c).sum();
                prop_assert!(span <= bound, "{span} in a span of {window}ns, bound {bound}");
                let fixed: u64 = admitted.iter().filter(|&&(t, _)| t / window == now / window).map(|&(_, c)| c).sum();
                prop_assert!(fixed <= effective);
            }
        }
    }
}

#[test]
fn sustained_overload_settles_one_below_the_limit() {
    // After a non-empty window, `previous * (W - e) / W` stays positive up to the boundary, so `current` never
    // reaches the limit: a key hammered at 60 times its limit gets 100, then 99 per window.
    let wc = WindowCounter::new(100, MINUTE).unwrap();
    let mut state = WindowCounterState::default();
    let start = (T0 / MINUTE + 1) * MINUTE;
    let mut per_window = [0u64; 6];
    for i in 0..6 * 6_000 {
        let t = start + i * 10_000_000;
        if wc.check(&mut state, t, 1, 100, true).allowed {
            per_window[((t - start) / MINUTE) as usize] += 1;
        }
    }
    assert_eq!(per_window, [100, 99, 99, 99, 99, 99]);
}
