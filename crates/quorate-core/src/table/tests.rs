#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::{CalendarUnit, WindowSpan};

const SECOND: Nanos = 1_000_000_000;
const T0: Nanos = 1_795_000_000 * SECOND;

fn bucket(capacity: u64, per: Nanos) -> Limiter {
    TokenBucket::new(capacity, capacity, per).unwrap().into()
}

fn window(limit: u64, per: Nanos) -> Limiter {
    SlidingWindow::new(limit, per, 10).unwrap().into()
}

fn table() -> LimiterTable {
    LimiterTable::new(TableConfig::default())
}

fn bytes(table: &LimiterTable) -> Vec<u8> {
    bincode::serialize(&table.snapshot()).unwrap()
}

#[test]
fn multi_limit_check_charges_all_or_nothing() {
    // Invariant 3: a multi-descriptor check is atomic.
    let mut t = table();
    let key = LimitRef::new(0, bucket(10, SECOND), "api_key=a");
    let ip = LimitRef::new(1, window(3, SECOND), "ip=1.2.3.4");
    for _ in 0..3 {
        assert!(t.check(T0, &[key, ip], 1).unwrap().allowed);
    }
    let denied = t.check(T0, &[key, ip], 1).unwrap();
    assert!(!denied.allowed);
    assert!(denied.limits[0].decision.allowed, "the key alone would have allowed it");
    assert!(!denied.limits[1].decision.allowed);
    assert_eq!(denied.decision, denied.limits[1].decision, "overall is the most restrictive");
    // Nothing was charged to the key limit by the denied check.
    assert_eq!(t.peek(T0, &[key], 1).unwrap().decision.remaining, 7);
}

#[test]
fn check_each_charges_each_limit_its_own_cost_all_or_nothing() {
    // Invariant 3 with per-limit costs: a denial on one limit charges no limit, whatever its cost.
    let mut t = table();
    let a = LimitRef::new(0, bucket(10, SECOND), "a");
    let b = LimitRef::new(1, bucket(10, SECOND), "b");
    let outcome = t.check_each(T0, &[a, b], &[1, 4]).unwrap();
    assert!(outcome.allowed);
    assert_eq!((outcome.limits[0].decision.remaining, outcome.limits[1].decision.remaining), (9, 6));
    let denied = t.check_each(T0, &[a, b], &[1, 7]).unwrap();
    assert!(!denied.allowed);
    assert!(denied.limits[0].decision.allowed && !denied.limits[1].decision.allowed);
    assert_eq!(t.peek_each(T0, &[a, b], &[1, 1]).unwrap().limits[0].decision.remaining, 9);
}

#[test]
fn check_each_refuses_mismatched_zero_or_impossible_costs() {
    let mut t = table();
    let a = LimitRef::new(0, bucket(10, SECOND), "a");
    let b = LimitRef::new(1, bucket(3, SECOND), "b");
    assert!(matches!(t.check_each(T0, &[a, b], &[1]), Err(CoreError::InvalidRequest(_))));
    assert_eq!(t.check_each(T0, &[a, b], &[1, 0]), Err(CoreError::ZeroCost));
    assert!(matches!(t.check_each(T0, &[a, b], &[10, 4]), Err(CoreError::CostExceedsLimit { cost: 4, .. })));
    assert!(t.is_empty(), "refused checks track nothing");
}

#[test]
fn overall_decision_of_an_allowed_check_has_the_least_remaining() {
    let mut t = table();
    let a = LimitRef::new(0, bucket(100, SECOND), "k");
    let b = LimitRef::new(1, bucket(5, SECOND), "k");
    let outcome = t.check(T0, &[a, b], 2).unwrap();
    assert!(outcome.allowed);
    assert_eq!(outcome.decision.remaining, 3);
    assert_eq!(outcome.decision.limit, 5);
}

#[test]
fn denied_check_consumes_nothing_and_tracks_nothing() {
    // Invariant 3: denied requests consume nothing.
    let mut t = table();
    let limit = LimitRef::new(0, bucket(2, SECOND), "k");
    assert!(t.check(T0, &[limit], 2).unwrap().allowed);
    let before = bytes(&t);
    assert!(!t.check(T0, &[limit], 1).unwrap().allowed);
    assert_eq!(bytes(&t), before);
}

#[test]
fn peek_consumes_nothing_and_does_not_track_new_keys() {
    let mut t = table();
    let limit = LimitRef::new(0, window(5, SECOND), "k");
    let peeked = t.peek(T0, &[limit], 5).unwrap();
    assert!(peeked.allowed);
    assert_eq!(peeked.decision.remaining, 5);
    assert!(t.is_empty());
    t.check(T0, &[limit], 2).unwrap();
    assert_eq!(t.peek(T0, &[limit], 4).unwrap().decision.remaining, 3);
    assert!(!t.peek(T0, &[limit], 4).unwrap().allowed);
    assert_eq!(t.peek(T0, &[limit], 3).unwrap().decision.remaining, 3);
}

#[test]
fn refund_settles_a_reservation() {
    // Reserve 1000 LLM tokens, use 250, give 750 back.
    let mut t = table();
    let budget =
        LimitRef::new(0, FixedWindow::new(2_000, WindowSpan::Calendar(CalendarUnit::Day)).unwrap().into(), "k");
    assert!(t.check(T0, &[budget], 1_000).unwrap().allowed);
    t.refund(T0 + SECOND, &[budget], 750).unwrap();
    assert_eq!(t.peek(T0 + SECOND, &[budget], 1).unwrap().decision.remaining, 1_750);
    // Refunding an untracked key does nothing (and does not start tracking it).
    t.refund(T0, &[LimitRef::new(0, budget.limiter, "other")], 5).unwrap();
    assert_eq!(t.len(), 1);
}

#[test]
fn cost_above_the_limit_is_an_error_saying_it_can_never_succeed() {
    let mut t = table();
    let err = t.check(T0, &[LimitRef::new(3, bucket(10, SECOND), "k")], 11).unwrap_err();
    assert_eq!(err, CoreError::CostExceedsLimit { policy: "#3".into(), cost: 11, limit: 10 });
    assert!(err.to_string().contains("can never be allowed"));
    assert_eq!(t.check(T0, &[LimitRef::new(3, bucket(10, SECOND), "k")], 0).unwrap_err(), CoreError::ZeroCost);
    assert_eq!(t.check(T0, &[], 1).unwrap_err(), CoreError::NoLimits);
    let dup = LimitRef::new(0, bucket(10, SECOND), "k");
    assert!(matches!(t.check(T0, &[dup, dup], 1), Err(CoreError::DuplicateLimit { .. })));
    assert!(t.is_empty());
}

#[test]
fn cost_above_a_tightened_limit_is_denied_with_a_retry_hint() {
    let mut t = table();
    let limit = LimitRef::new(0, bucket(10, SECOND), "k").with_effective_limit(4);
    let d = t.check(T0, &[limit], 6).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.decision.limit, 4);
    assert_eq!(d.limits[0].base_limit, 10);
    assert!(d.decision.retry_after >= SECOND);
}

#[test]
fn key_cap_refuses_new_keys_but_keeps_existing_ones_working() {
    let mut t = LimiterTable::new(TableConfig { max_keys: 3, sweep_per_op: 0 });
    let limiter = bucket(5, SECOND);
    for key in ["a", "b", "c"] {
        assert!(t.check(T0, &[LimitRef::new(0, limiter, key)], 1).unwrap().allowed);
    }
    let err = t.check(T0, &[LimitRef::new(0, limiter, "d")], 1).unwrap_err();
    assert_eq!(err, CoreError::TableFull { max_keys: 3 });
    assert!(t.check(T0, &[LimitRef::new(0, limiter, "a")], 1).unwrap().allowed);
    // Peeking at a new key is fine: it is not tracked.
    assert!(t.peek(T0, &[LimitRef::new(0, limiter, "d")], 1).unwrap().allowed);
    // Once the old keys are idle (fresh), a new key evicts them on demand.
    assert!(t.check(T0 + 3 * SECOND, &[LimitRef::new(0, limiter, "d")], 1).unwrap().allowed);
    assert_eq!(t.len(), 1);
}

#[test]
fn idle_keys_are_evicted_by_the_sweep() {
    let mut t = table();
    let limiter = window(10, SECOND);
    for i in 0..100 {
        t.check(T0, &[LimitRef::new(0, limiter, &format!("k{i}"))], 1).unwrap();
    }
    assert_eq!(t.len(), 100);
    // Before the window passes nothing is evictable.
    assert_eq!(t.sweep(T0 + SECOND / 2, usize::MAX), 0);
    assert_eq!(t.sweep(T0 + 3 * SECOND, 40), 40);
    assert_eq!(t.len(), 60);
    assert_eq!(t.sweep(T0 + 3 * SECOND, usize::MAX), 60);
    assert!(t.is_empty());
}

#[test]
fn remapped_policies_keep_their_keys_and_dropped_ones_forget_them() {
    let mut t = table();
    let a = bucket(5, SECOND);
    t.check(T0, &[LimitRef::new(0, a, "k")], 5).unwrap();
    t.check(T0, &[LimitRef::new(1, a, "k")], 1).unwrap();
    // Policy 0 becomes 1, policy 1 is deleted.
    t.remap_policies(|id| (id == 0).then_some(1));
    assert_eq!(t.len(), 1);
    assert!(!t.check(T0, &[LimitRef::new(1, a, "k")], 1).unwrap().allowed, "the spent bucket moved to id 1");
    assert!(t.check(T0, &[LimitRef::new(0, a, "k")], 1).unwrap().allowed);
}

#[test]
fn time_never_runs_backwards_inside_the_table() {
    let mut t = table();
    let limit = LimitRef::new(0, bucket(1, 10 * SECOND), "k");
    assert!(t.check(T0, &[limit], 1).unwrap().allowed);
    let d = t.check(T0 - 5 * SECOND, &[limit], 1).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.decision.retry_after, 10 * SECOND, "evaluated at T0, not at the earlier time");
    assert_eq!(t.now(), T0);
}

#[test]
fn snapshot_restores_an_identical_table() {
    let mut t = table();
    for i in 0..50u64 {
        let key = format!("k{}", i % 17);
        t.check(T0 + i * SECOND / 10, &[LimitRef::new(0, bucket(5, SECOND), &key)], 1).unwrap();
        t.check(T0 + i * SECOND / 10, &[LimitRef::new(1, window(5, SECOND), &key)], 1).unwrap();
    }
    let snapshot = t.snapshot();
    let encoded = bincode::serialize(&snapshot).unwrap();
    assert_eq!(bincode::serialize(&t.snapshot_view()).unwrap(), encoded, "the borrowed view encodes the same");
    let decoded: TableSnapshot = bincode::deserialize(&encoded).unwrap();
    assert_eq!(decoded, snapshot);
    let restored = LimiterTable::restore(t.config(), decoded).unwrap();
    assert_eq!(bytes(&restored), encoded);
    assert_eq!(restored.len(), t.len());
    assert_eq!(restored.keys(), t.keys());
}

#[test]
fn a_clone_keeps_its_state_while_the_table_goes_on() {
    // Snapshots are encoded from a clone while checks keep changing the table: the clone must not see them.
    let mut t = table();
    for i in 0..300u64 {
        t.check(T0, &[LimitRef::new(1, window(5, SECOND), &format!("k{i}"))], 1).unwrap();
    }
    let frozen = t.clone();
    let before = bytes(&frozen);
    for i in 0..300u64 {
        t.check(T0 + SECOND / 2, &[LimitRef::new(1, window(5, SECOND), &format!("k{i}"))], 2).unwrap();
    }
    t.sweep(T0 + 100 * SECOND, usize::MAX);
    assert_eq!(bytes(&frozen), before);
    assert_ne!(bytes(&t), before);
}

#[test]
fn restore_rejects_a_snapshot_listing_a_key_twice() {
    let mut t = table();
    t.check(T0, &[LimitRef::new(0, bucket(5, SECOND), "k")], 1).unwrap();
    let mut snapshot = t.snapshot();
    if let Some(PolicySnapshotProbe::TokenBucket(entries)) = probe(&mut snapshot) {
        let first = entries[0].clone();
        entries.push(first);
    }
    assert!(LimiterTable::restore(t.config(), snapshot).is_err());
}

/// Test access to the snapshot's entries.
enum PolicySnapshotProbe<'a> {
    TokenBucket(&'a mut Vec<(compact_str::CompactString, u32, crate::TokenBucketState)>),
}

fn probe(snapshot: &mut TableSnapshot) -> Option<PolicySnapshotProbe<'_>> {
    snapshot.token_bucket_entries_mut(0).map(PolicySnapshotProbe::TokenBucket)
}

/// One randomly generated operation on a table.
#[derive(Debug, Clone)]
enum Op {
    Check { dt: Nanos, keys: Vec<(u8, u8)>, cost: u64 },
    Peek { dt: Nanos, key: (u8, u8), cost: u64 },
    Refund { dt: Nanos, key: (u8, u8), amount: u64 },
    Sweep { dt: Nanos, budget: usize },
}

impl Op {
    /// How far the operation moves time forward.
    fn dt(&self) -> Nanos {
        match *self {
            Op::Check { dt, .. } | Op::Peek { dt, .. } | Op::Refund { dt, .. } | Op::Sweep { dt, .. } => dt,
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let dt = prop_oneof![Just(0u64), 0..SECOND, 0..20 * SECOND];
    let key = (0u8..4, 0u8..6);
    prop_oneof![
        4 => (dt.clone(), prop::collection::vec(key.clone(), 1..3), 1u64..8)
            .prop_map(|(dt, keys, cost)| Op::Check { dt, keys, cost }),
        1 => (dt.clone(), key.clone(), 1u64..8).prop_map(|(dt, key, cost)| Op::Peek { dt, key, cost }),
        1 => (dt.clone(), key, 1u64..8).prop_map(|(dt, key, amount)| Op::Refund { dt, key, amount }),
        1 => (dt, 0usize..5).prop_map(|(dt, budget)| Op::Sweep { dt, budget }),
    ]
}

/// Policy `p` (0..4) uses each algorithm once.
fn policy_limiter(p: u8) -> Limiter {
    match p {
        0 => bucket(7, 3 * SECOND),
        1 => window(6, 4 * SECOND),
        2 => WindowCounter::new(5, 2 * SECOND).unwrap().into(),
        _ => FixedWindow::new(8, WindowSpan::Every(5 * SECOND)).unwrap().into(),
    }
}

/// Runs `ops` on `table`, returning every answer.
fn run(table: &mut LimiterTable, ops: &[Op]) -> Vec<String> {
    let names: Vec<String> = (0..6).map(|k| format!("key-{k}")).collect();
    let limit = |(p, k): (u8, u8)| LimitRef::new(u32::from(p), policy_limiter(p), &names[usize::from(k)]);
    let mut now = T0;
    let mut answers = Vec::new();
    for op in ops {
        let answer = match op {
            Op::Check { dt, keys, cost } => {
                now += dt;
                let limits: Vec<LimitRef<'_>> = keys.iter().map(|&k| limit(k)).collect();
                format!("{:?}", table.check(now, &limits, *cost))
            }
            Op::Peek { dt, key, cost } => {
                now += dt;
                format!("{:?}", table.peek(now, &[limit(*key)], *cost))
            }
            Op::Refund { dt, key, amount } => {
                now += dt;
                format!("{:?}", table.refund(now, &[limit(*key)], *amount))
            }
            Op::Sweep { dt, budget } => {
                now += dt;
                table.sweep(now, *budget);
                String::new()
            }
        };
        answers.push(answer);
    }
    answers
}

proptest! {
    /// Invariant 4: eviction never changes a decision.
    #[test]
    fn eviction_never_changes_a_decision(ops in prop::collection::vec(op(), 1..120)) {
        let mut never = LimiterTable::new(TableConfig { max_keys: usize::MAX, sweep_per_op: 0 });
        let mut eager = LimiterTable::new(TableConfig { max_keys: usize::MAX, sweep_per_op: usize::MAX });
        let a = run(&mut never, &ops);
        let b = run(&mut eager, &ops);
        prop_assert_eq!(a, b);
        // Either table may hold a fresh key a little longer than the other (a key examined early is rescheduled
        // to the slot after its new expiry), but neither leaks: once every key has been idle past its longest
        // period, one sweep leaves both tables empty.
        let idle = T0 + ops.iter().map(Op::dt).sum::<Nanos>() + 60 * SECOND;
        never.sweep(idle, usize::MAX);
        eager.sweep(idle, usize::MAX);
        prop_assert_eq!((never.len(), never.keys().len()), (0, 0));
        prop_assert_eq!((eager.len(), eager.keys().len()), (0, 0));
    }

    /// Invariant 1: the same inputs give the same state bytes, whatever each process's hash seed.
    #[test]
    fn same_inputs_give_the_same_state_bytes(ops in prop::collection::vec(op(), 1..120)) {
        let mut a = table();
        let mut b = table();
        prop_assert_eq!(run(&mut a, &ops), run(&mut b, &ops));
        prop_assert_eq!(bytes(&a), bytes(&b));
    }

    /// A table restored from a snapshot taken mid-stream continues exactly like the original.
    #[test]
    fn restored_table_continues_identically(
        before in prop::collection::vec(op(), 1..80),
        after in prop::collection::vec(op(), 1..80),
    ) {
        let config = TableConfig { max_keys: 12, sweep_per_op: 1 };
        let mut original = LimiterTable::new(config);
        run(&mut original, &before);
        let encoded = bytes(&original);
        let mut restored = LimiterTable::restore(config, bincode::deserialize(&encoded).unwrap()).unwrap();
        prop_assert_eq!(bytes(&restored), encoded);
        prop_assert_eq!(run(&mut original, &after), run(&mut restored, &after));
        prop_assert_eq!(bytes(&original), bytes(&restored));
    }

    /// Random parameters, costs and times never panic.
    #[test]
    fn random_requests_never_panic(
        limit in 1u64..=crate::bounds::MAX_COUNT,
        period in 1u64..=crate::bounds::MAX_DURATION,
        cost in 0u64..u64::MAX,
        effective in 0u64..u64::MAX,
        times in prop::collection::vec(0u64..u64::MAX, 1..8),
    ) {
        let limiters: Vec<Limiter> = [
            TokenBucket::new(limit, limit, period).map(Limiter::from),
            SlidingWindow::new(limit, period - period % 8, 8).map(Limiter::from),
            WindowCounter::new(limit, period).map(Limiter::from),
            FixedWindow::new(limit, WindowSpan::Every(period)).map(Limiter::from),
            FixedWindow::new(limit, WindowSpan::Calendar(CalendarUnit::Month)).map(Limiter::from),
        ].into_iter().flatten().collect();
        let mut t = table();
        for (p, limiter) in limiters.into_iter().enumerate() {
            let l = LimitRef::new(p as u32, limiter, "k").with_effective_limit(effective);
            for &now in &times {
                let _ = t.check(now, &[l], cost);
                let _ = t.check(now, &[l], cost % limit + 1);
                let _ = t.peek(now, &[l], cost);
                let _ = t.refund(now, &[l], cost);
                t.sweep(now, 3);
            }
        }
    }
}

/// Found by `fuzz_policy_set_bytes`: past the end of slot time (2106), making room in a full table swept the
/// same not-yet-fresh key forever.
#[test]
fn fuzz_regression_full_table_past_slot_time_refuses_in_time() {
    let mut table = LimiterTable::new(TableConfig { max_keys: 1, ..TableConfig::default() });
    let now = u64::MAX / 2;
    let limiter = Limiter::from(TokenBucket::new(10, 1, 3_600 * SECOND).unwrap());
    assert!(table.check_each(now, &[LimitRef::new(0, limiter, "a")], &[5]).unwrap().allowed);
    let started = std::time::Instant::now();
    let full = table.check_each(now, &[LimitRef::new(0, limiter, "b")], &[1]);
    assert!(matches!(full, Err(crate::CoreError::TableFull { max_keys: 1 })), "{full:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // The key is still tracked, and evicted once fresh.
    assert_eq!(table.len(), 1);
    assert_eq!(table.sweep(now + 6 * 3_600 * SECOND, usize::MAX), 1);
}

/// Found by quorate-node's `fuzz_local_journal_record`: limiter parameters decoded from a snapshot or a journal
/// record were not validated, so a window beyond the bounds overflowed and a zero one divided by zero. Now they
/// are validated as a config's are, and such bytes do not decode.
#[test]
fn fuzz_regression_invalid_limiter_parameters_do_not_decode() {
    let encoded = |tag: u32, words: &[u64]| {
        let mut bytes = tag.to_le_bytes().to_vec();
        for w in words {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        bytes
    };
    let minute = 60 * SECOND;
    let mut sliding_zero_precision = encoded(1, &[30, minute]);
    sliding_zero_precision.extend_from_slice(&0u32.to_le_bytes());
    let mut fixed_every_zero = encoded(3, &[5]);
    fixed_every_zero.extend_from_slice(&0u32.to_le_bytes());
    fixed_every_zero.extend_from_slice(&0u64.to_le_bytes());
    for bytes in [
        encoded(0, &[100, 0, minute]),
        encoded(0, &[100, 100, 0]),
        sliding_zero_precision,
        encoded(2, &[20, 1 << 60]),
        encoded(2, &[0, SECOND]),
        fixed_every_zero,
    ] {
        assert!(bincode::deserialize::<Limiter>(&bytes).is_err(), "{bytes:?}");
    }
    // The same layout with valid values decodes: the format is unchanged.
    assert_eq!(
        bincode::deserialize::<Limiter>(&encoded(2, &[20, SECOND])).unwrap(),
        Limiter::from(crate::WindowCounter::new(20, SECOND).unwrap())
    );
    for limiter in [bucket(100, 60 * SECOND), window(30, 60 * SECOND)] {
        assert_eq!(bincode::deserialize::<Limiter>(&bincode::serialize(&limiter).unwrap()).unwrap(), limiter);
    }
}

/// Found by `fuzz_table_snapshot`: a sliding window's state decoded from a snapshot with a total below the sum of
/// its buckets underflowed when a bucket left the window. Such states no longer decode.
#[test]
fn fuzz_regression_inconsistent_sliding_window_state_does_not_decode() {
    let state = |total: u64, counts: &[u64]| {
        let mut bytes = 7u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&total.to_le_bytes());
        bytes.extend_from_slice(&(counts.len() as u64).to_le_bytes());
        for count in counts {
            bytes.extend_from_slice(&count.to_le_bytes());
        }
        bincode::deserialize::<crate::SlidingWindowState>(&bytes)
    };
    assert!(state(1, &[3, 0, 0]).is_err());
    assert!(state(u64::MAX, &[u64::MAX, 1]).is_err());
    assert!(state(0, &vec![0; crate::bounds::MAX_PRECISION as usize + 2]).is_err());
    assert!(state(5, &[3, 0, 2]).is_ok());
    assert!(state(0, &[]).is_ok());
    // A real state still round-trips through a table snapshot.
    let mut table = table();
    let limit = LimitRef::new(0, window(30, 60 * SECOND), "k");
    table.check_each(T0, &[limit], &[4]).unwrap();
    let restored =
        LimiterTable::restore(TableConfig::default(), bincode::deserialize(&bytes(&table)).unwrap()).unwrap();
    assert_eq!(bytes(&restored), bytes(&table));
}

/// Found by `fuzz_table_snapshot` in a 100,000-case run: a sliding window's key whose ring has the shape of an
/// older precision (the policy's precision was raised, or a snapshot paired the two) indexed past its ring when
/// the sweep asked when it is fresh, before any check had reshaped it. Raising a policy's precision through the
/// Admin API made every replica panic on its next sweep of an old key.
#[test]
fn fuzz_regression_sweep_after_a_precision_change() {
    let mut table = table();
    let coarse = Limiter::from(SlidingWindow::new(30, 60 * SECOND, 10).unwrap());
    let fine = Limiter::from(SlidingWindow::new(30, 60 * SECOND, 60).unwrap());
    for key in ["a", "b", "c", "d", "e", "f", "g"] {
        table.check_each(T0 + SECOND, &[LimitRef::new(0, coarse, key)], &[2]).unwrap();
    }
    // A check under the new precision adopts it for the whole policy; the old keys keep their ring.
    table.check_each(T0 + 2 * SECOND, &[LimitRef::new(0, fine, "new")], &[1]).unwrap();
    for seconds in [3, 30, 59, 61, 67, 70, 200] {
        table.sweep(T0 + seconds * SECOND, usize::MAX);
    }
    assert!(table.is_empty(), "every key is fresh after a window: {} left", table.len());
}
