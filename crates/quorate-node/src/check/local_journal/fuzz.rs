//! Fuzz harness of the local-mode journal a node replays at start: a damaged record is
//! [`JournalError::Damaged`], and any record that decodes replays into the node-local table without a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use quorate_core::{
    CalendarUnit, FixedWindow, LimiterTable, SlidingWindow, TableConfig, TokenBucket, WindowCounter, WindowSpan,
};

use super::{JournalError, LocalCharge, replay_record};
use crate::fuzzing::samples::{SECOND, T0};
use crate::fuzzing::{config, decodes_or_fails, mutated_bytes, timed};
use crate::raft::codec::encode;

fn charges() -> Vec<LocalCharge> {
    let limiters = [
        TokenBucket::new(100, 100, 60 * SECOND).unwrap().into(),
        SlidingWindow::new(30, 60 * SECOND, 60).unwrap().into(),
        WindowCounter::new(20, SECOND).unwrap().into(),
        FixedWindow::new(1000, WindowSpan::Calendar(CalendarUnit::Day)).unwrap().into(),
        FixedWindow::new(5, WindowSpan::Every(3_600 * SECOND)).unwrap().into(),
    ];
    limiters
        .into_iter()
        .enumerate()
        .map(|(i, limiter)| LocalCharge {
            policy: i as u32,
            key: format!("user=u{i}").into(),
            limiter,
            share: 10,
            cost: 1 + i as u64,
            at: T0,
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Journal records, damaged, replayed at a time near or far from when they were made.
    #[test]
    fn fuzz_local_journal_record(
        bytes in mutated_bytes(charges().iter().map(|c| encode(c).expect("encodes")).collect()),
        now in prop_oneof![Just(T0), T0..T0 + 3_600 * SECOND, any::<u64>()],
    ) {
        decodes_or_fails::<LocalCharge>(&bytes)?;
        let mut table = LimiterTable::new(TableConfig::default());
        match timed("replay", || replay_record(&mut table, &bytes, now))? {
            Ok(_) | Err(JournalError::Damaged(_)) => {}
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
        // The table still answers.
        let probe = charges()[0].clone();
        prop_assert!(table.peek_each(now, &[probe.limit()], &[1]).is_ok());
    }
}

#[test]
fn fuzz_seed_records_replay() {
    let mut table = LimiterTable::new(TableConfig::default());
    for charge in charges() {
        assert!(replay_record(&mut table, &encode(&charge).unwrap(), T0 + SECOND).unwrap());
    }
}
