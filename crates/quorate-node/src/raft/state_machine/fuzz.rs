//! Fuzz harnesses of snapshots: the data a leader installs on a follower and the record a node restores at
//! restart. A snapshot either becomes a replica that goes on applying entries, or is refused with an error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use quorate_core::TableConfig;

use super::{StoredSnapshot, restore_snapshot, restore_stored};
use crate::command::LogEntry;
use crate::fuzzing::samples::{self, SECOND, T0};
use crate::fuzzing::{config, mutated_bytes, timed};
use crate::raft::codec::{decode, encode};
use crate::raft::replica::{Replica, ReplicaSnapshot};

/// Encoded snapshots of an empty and a busy replica.
fn snapshots() -> &'static [Vec<u8>] {
    static SNAPSHOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SNAPSHOTS.get_or_init(|| {
        [samples::empty_replica(), samples::busy_replica(), Replica::new(TableConfig::default())]
            .iter()
            .map(|r| encode(&r.snapshot()).expect("a snapshot encodes"))
            .collect()
    })
}

/// The stored records of [`snapshots`].
fn stored() -> Vec<Vec<u8>> {
    snapshots()
        .iter()
        .map(|data| encode(&StoredSnapshot { meta: samples::snapshot_meta(), data: data.clone() }).expect("encodes"))
        .collect()
}

/// A restored replica goes on: it applies a batch and a load entry, snapshots, and that snapshot restores.
fn keeps_working(mut replica: Replica) -> Result<(), TestCaseError> {
    timed("apply", || {
        let commands = samples::commands_for(&replica);
        replica.apply(&LogEntry::Batch { time: T0 + 30 * SECOND, commands: samples::new_key_checks(&replica) });
        replica.apply(&LogEntry::Batch { time: T0 + 31 * SECOND, commands: commands.clone() });
        replica.apply(&samples::log_entries()[1]);
        replica.apply(&LogEntry::Batch { time: T0 + 90_000 * SECOND, commands });
    })?;
    let bytes = encode(&replica.snapshot()).expect("encodes");
    prop_assert!(restore_snapshot(&bytes, TableConfig::default()).is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// InstallSnapshot's data, mutated: a replica that keeps working, or an error.
    #[test]
    fn fuzz_snapshot_data(bytes in mutated_bytes(snapshots().to_vec())) {
        if let Ok(replica) = timed("restore", || restore_snapshot(&bytes, TableConfig::default()))? {
            let snapshot: ReplicaSnapshot = decode(&bytes).expect("restored, so it decodes");
            let again = encode(&snapshot).expect("encodes");
            prop_assert!(decode::<ReplicaSnapshot>(&again).is_ok());
            keeps_working(replica)?;
        }
    }

    /// The snapshot record a node restores at start, mutated.
    #[test]
    fn fuzz_stored_snapshot(bytes in mutated_bytes(stored())) {
        if let Ok(replica) = timed("restore", || restore_stored(&bytes, TableConfig::default()))? {
            keeps_working(replica)?;
        }
    }
}

#[test]
fn fuzz_seed_snapshots_restore() {
    for data in snapshots() {
        keeps_working(restore_snapshot(data, TableConfig::default()).unwrap()).unwrap();
    }
    for record in stored() {
        restore_stored(&record, TableConfig::default()).unwrap();
    }
}
