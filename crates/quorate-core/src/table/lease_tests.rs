//! Leases on the keyed table: grants charge like checks, keep the reserve, end with their bucket, and returns go
//! back where they were charged. The property tests drive strict checks, grants, local spending and returns in
//! random order and judge the history by when each unit was *used*: leases admit no more than strict checks
//! would (windows), or at most `rate × ttl` more over any span (token bucket).

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::WindowSpan;

const SECOND: Nanos = 1_000_000_000;
const T0: Nanos = 1_795_000_000 * SECOND;

fn table() -> LimiterTable {
    LimiterTable::new(TableConfig::default())
}

#[test]
fn a_grant_charges_like_a_check_of_its_size_and_keeps_the_reserve() {
    let limiter: Limiter = SlidingWindow::new(100, 60 * SECOND, 60).unwrap().into();
    let limit = LimitRef::new(0, limiter, "k");
    let mut t = table();
    let grant = t.grant(T0, &limit, 30, 10).unwrap();
    assert_eq!((grant.units, grant.decision.remaining), (30, 70));
    assert_eq!(grant.horizon, (T0 / SECOND + 1) * SECOND, "a sliding-window lease ends with its bucket");
    assert_eq!(t.peek(T0, &[limit], 1).unwrap().decision.remaining, 70);
    // Only what exceeds the reserve is granted: 70 free, 10 kept, so at most 60.
    assert_eq!(t.grant(T0, &limit, 1_000, 10).unwrap().units, 60);
    assert_eq!(t.grant(T0, &limit, 1, 10).unwrap().units, 0, "the reserve is never leased");
    assert!(t.check(T0, &[limit], 10).unwrap().allowed, "strict checks still get the reserve");
}

#[test]
fn returned_units_go_back_to_the_bucket_they_were_charged_to() {
    let limiter: Limiter = SlidingWindow::new(10, 10 * SECOND, 10).unwrap().into();
    let limit = LimitRef::new(0, limiter, "k");
    let mut t = table();
    assert_eq!(t.grant(T0, &limit, 5, 0).unwrap().units, 5);
    assert!(t.check(T0 + 3 * SECOND, &[limit], 5).unwrap().allowed);
    // Three of the leased units were used; two come back, out of the first bucket, not the newest.
    t.return_units(T0 + 4 * SECOND, T0, &limit, 2);
    assert_eq!(t.peek(T0 + 4 * SECOND, &[limit], 1).unwrap().decision.remaining, 2);
    // When the first bucket leaves the window, only its three used units free up, never the later five.
    assert_eq!(t.peek(T0 + 11 * SECOND, &[limit], 1).unwrap().decision.remaining, 5);
}

#[test]
fn a_return_after_the_charge_left_the_window_changes_nothing() {
    let limiter: Limiter = FixedWindow::new(10, WindowSpan::Every(10 * SECOND)).unwrap().into();
    let limit = LimitRef::new(0, limiter, "k");
    let mut t = table();
    assert_eq!(t.grant(T0, &limit, 4, 0).unwrap().units, 4);
    let next_window = (T0 / (10 * SECOND) + 1) * 10 * SECOND;
    assert!(t.check(next_window, &[limit], 10).unwrap().allowed);
    t.return_units(next_window + 1, T0, &limit, 4);
    assert!(!t.check(next_window + 2, &[limit], 1).unwrap().allowed, "the new window's count is untouched");
}

#[test]
fn token_bucket_leases_have_no_horizon_and_unused_tokens_refill_at_the_rate() {
    let limiter: Limiter = TokenBucket::new(10, 10, 10 * SECOND).unwrap().into();
    let limit = LimitRef::new(0, limiter, "k");
    let mut t = table();
    let grant = t.grant(T0, &limit, 8, 1).unwrap();
    assert_eq!((grant.units, grant.horizon), (8, Nanos::MAX));
    // Found by the property test below: putting tokens back after the bucket could have refilled over-admits.
    t.return_units(T0, T0, &limit, 8);
    assert_eq!(t.peek(T0, &[limit], 1).unwrap().decision.remaining, 2);
    assert_eq!(t.peek(T0 + 8 * SECOND, &[limit], 1).unwrap().decision.remaining, 10);
}

/// One step of a random history on one key.
#[derive(Debug, Clone)]
enum Op {
    /// Time passes (ms).
    Wait(u64),
    /// A strict check of this cost.
    Check(u64),
    /// A holder asks for this many units for `ttl` ms.
    Grant { want: u64, ttl: u64 },
    /// The holder of lease `which` (modulo the live ones) spends this many of its units now.
    Spend { which: usize, units: u64 },
    /// The holder of lease `which` returns what it has not spent.
    Return { which: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u64..700).prop_map(Op::Wait),
        (1u64..4).prop_map(Op::Check),
        (1u64..8, 50u64..600).prop_map(|(want, ttl)| Op::Grant { want, ttl }),
        (0usize..4, 1u64..4).prop_map(|(which, units)| Op::Spend { which, units }),
        (0usize..4).prop_map(|which| Op::Return { which }),
    ]
}

struct Lease {
    charged_at: Nanos,
    until: Nanos,
    left: u64,
}

/// Runs `ops` on one key of `limiter` and returns when each admitted unit was used (ms since T0).
fn run(limiter: Limiter, reserve: u64, ops: &[Op]) -> Vec<u64> {
    let limit = LimitRef::new(0, limiter, "k");
    let mut t = table();
    let mut now = T0;
    let mut leases: Vec<Lease> = Vec::new();
    let mut used = Vec::new();
    for op in ops {
        match *op {
            Op::Wait(ms) => now += ms * 1_000_000,
            Op::Check(cost) => {
                if t.check(now, &[limit], cost).unwrap().allowed {
                    used.extend(std::iter::repeat_n((now - T0) / 1_000_000, cost as usize));
                }
            }
            Op::Grant { want, ttl } => {
                let grant = t.grant(now, &limit, want, reserve).unwrap();
                if grant.units > 0 {
                    let until = (now + ttl * 1_000_000).min(grant.horizon);
                    leases.push(Lease { charged_at: now, until, left: grant.units });
                }
            }
            Op::Spend { which, units } => {
                // A holder spends only from a lease that has not expired (its own clock is exact here).
                let live: Vec<usize> = (0..leases.len()).filter(|&i| now < leases[i].until).collect();
                if let Some(&i) = live.get(which % live.len().max(1)) {
                    let spent = units.min(leases[i].left);
                    leases[i].left -= spent;
                    used.extend(std::iter::repeat_n((now - T0) / 1_000_000, spent as usize));
                }
            }
            Op::Return { which } => {
                if !leases.is_empty() {
                    let lease = leases.remove(which % leases.len());
                    t.return_units(now, lease.charged_at, &limit, lease.left);
                }
            }
        }
    }
    used
}

/// The most units used in any span of `span_ms` (inclusive of both ends' milliseconds: a conservative count).
fn most_in_any_span(used: &[u64], span_ms: u64) -> usize {
    let mut most = 0;
    for (i, &start) in used.iter().enumerate() {
        let n = used[i..].iter().take_while(|&&t| t < start + span_ms).count();
        most = most.max(n);
    }
    most
}

proptest! {
    /// Sliding window with leases: no window of its length ever holds more than the limit, as in strict mode.
    #[test]
    fn leased_sliding_windows_never_admit_more_than_the_limit_in_any_window(
        ops in prop::collection::vec(op(), 1..200), reserve in 0u64..4,
    ) {
        let limiter: Limiter = SlidingWindow::new(12, 2 * SECOND, 4).unwrap().into();
        let used = run(limiter, reserve, &ops);
        prop_assert!(most_in_any_span(&used, 2_000) <= 12, "{used:?}");
    }

    /// Fixed window with leases: never more than the limit in one window.
    #[test]
    fn leased_fixed_windows_never_admit_more_than_the_limit_per_window(
        ops in prop::collection::vec(op(), 1..200), reserve in 0u64..4,
    ) {
        let limiter: Limiter = FixedWindow::new(10, WindowSpan::Every(SECOND)).unwrap().into();
        let used = run(limiter, reserve, &ops);
        let mut per_window = std::collections::BTreeMap::new();
        for t in &used {
            *per_window.entry((T0 / 1_000_000 + t) / 1_000).or_insert(0) += 1;
        }
        prop_assert!(per_window.values().all(|&n| n <= 10), "{per_window:?}");
    }

    /// Token bucket with leases: over any span W at most what the bucket allows over W + ttl, the longest lease
    /// lifetime: `burst + rate × (W + ttl)`.
    #[test]
    fn leased_token_buckets_admit_at_most_rate_times_ttl_more_than_strict(
        ops in prop::collection::vec(op(), 1..200), reserve in 0u64..3,
    ) {
        // 8 per 2 s, burst 8: one token every 250 ms.
        let limiter: Limiter = TokenBucket::new(8, 8, 2 * SECOND).unwrap().into();
        let used = run(limiter, reserve, &ops);
        let ttl_ms: u64 = 600; // the longest lease the ops draw
        for span_ms in [1u64, 250, 1_000, 2_000, 5_000] {
            let bound = 8 + (8 * (span_ms + ttl_ms)).div_ceil(2_000) as usize;
            prop_assert!(most_in_any_span(&used, span_ms) <= bound, "span {span_ms}: {used:?}");
        }
    }
}
