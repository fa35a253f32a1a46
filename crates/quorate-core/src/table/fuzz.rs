//! Fuzz harness of limiter-table snapshots (the table part of every Raft snapshot): damaged bytes decode to a
//! snapshot that restores into a table that keeps answering, or fail with an error; never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::{LimitRef, LimiterTable, TableConfig, TableSnapshot};
use crate::fuzzing::{config, mutated_bytes, timed};
use crate::{CalendarUnit, FixedWindow, Limiter, Nanos, SlidingWindow, TokenBucket, WindowCounter, WindowSpan};

const SECOND: Nanos = 1_000_000_000;
const T0: Nanos = 1_800_000_000 * SECOND;

/// One policy of every algorithm, with ids 0 to 4.
fn limiters() -> Vec<Limiter> {
    vec![
        TokenBucket::new(100, 100, 60 * SECOND).unwrap().into(),
        SlidingWindow::new(30, 60 * SECOND, 60).unwrap().into(),
        WindowCounter::new(20, SECOND).unwrap().into(),
        FixedWindow::new(5, WindowSpan::Every(3_600 * SECOND)).unwrap().into(),
        FixedWindow::new(1000, WindowSpan::Calendar(CalendarUnit::Month)).unwrap().into(),
    ]
}

/// The same ids after a policy change: other parameters, a finer and a coarser window, other algorithms.
fn changed_limiters() -> Vec<Limiter> {
    vec![
        TokenBucket::new(10, 1, SECOND).unwrap().into(),
        SlidingWindow::new(30, 60 * SECOND, 600).unwrap().into(),
        SlidingWindow::new(20, 10 * SECOND, 2).unwrap().into(),
        FixedWindow::new(5, WindowSpan::Calendar(CalendarUnit::Day)).unwrap().into(),
        WindowCounter::new(7, 86_400 * SECOND).unwrap().into(),
    ]
}

const KEYS: [&str; 3] = ["a", "user=bob", "ip=10.0.0.1"];

/// Charges every key of every policy `cost` at `now`, and the other calls a replica makes.
fn exercise(table: &mut LimiterTable, now: Nanos, cost: u64) {
    exercise_with(table, now, cost, limiters(), &KEYS);
}

/// As [`exercise`], with the policies' limiters `limiters` and the keys `keys`.
fn exercise_with(table: &mut LimiterTable, now: Nanos, cost: u64, limiters: Vec<Limiter>, keys: &[&str]) {
    for (id, limiter) in limiters.into_iter().enumerate() {
        for &key in keys {
            let limit = LimitRef::new(id as u32, limiter, key).with_effective_limit(limiter.base_limit() / 2);
            let _ = table.check_each(now, &[limit], &[cost]);
            let _ = table.peek(now, &[limit], 1);
            let _ = table.refund(now, &[limit], cost);
            table.return_units(now, now.saturating_sub(SECOND), &limit, 1);
            let _ = table.grant(now, &limit, 2, 1);
        }
    }
}

fn snapshots() -> Vec<Vec<u8>> {
    let mut table = LimiterTable::new(TableConfig::default());
    let empty = bincode::serialize(&table.snapshot()).unwrap();
    for step in 0..3 {
        exercise(&mut table, T0 + step * SECOND, 1 + step);
    }
    vec![empty, bincode::serialize(&table.snapshot()).unwrap()]
}

proptest! {
    #![proptest_config(config())]

    /// Damaged table snapshots.
    #[test]
    fn fuzz_table_snapshot(
        bytes in mutated_bytes(snapshots()),
        later in prop_oneof![Just(0u64), 0u64..100 * SECOND, any::<u64>()],
        changed in any::<bool>(),
    ) {
        let Ok(snapshot) = timed("decode", || bincode::deserialize::<TableSnapshot>(&bytes))? else { return Ok(()) };
        let Ok(mut table) = timed("restore", || LimiterTable::restore(TableConfig::default(), snapshot.clone()))? else {
            return Ok(());
        };
        let now = table.now().saturating_add(later);
        timed("use", || {
            table.advance_clock(now);
            table.sweep(now, usize::MAX);
            exercise(&mut table, now, 1);
            if changed {
                // A policy change: the limiters differ from the snapshot's; the old keys stay as they are until
                // a check of their own, which other keys' checks and the sweeps do not wait for.
                exercise_with(&mut table, now.saturating_add(SECOND), 1, changed_limiters(), &["other"]);
                table.sweep(now.saturating_add(30 * SECOND), usize::MAX);
            }
            table.sweep(now.saturating_add(400 * 86_400 * SECOND), usize::MAX);
        })?;
        let again = bincode::serialize(&table.snapshot()).unwrap();
        prop_assert_eq!(&bincode::serialize(&table.snapshot_view()).unwrap(), &again, "the view encodes differently");
        let restored = LimiterTable::restore(TableConfig::default(), bincode::deserialize(&again).unwrap());
        prop_assert!(restored.is_ok());
    }
}

#[test]
fn fuzz_seed_table_snapshots_restore() {
    for bytes in snapshots() {
        let mut table = LimiterTable::restore(TableConfig::default(), bincode::deserialize(&bytes).unwrap()).unwrap();
        exercise(&mut table, T0 + 10 * SECOND, 1);
    }
}
