//! Fuzz harnesses of snapshots: the data a leader installs on a follower and the record a node restores at
//! restart. A snapshot either becomes a replica that goes on applying entries, or is refused with an error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use quorate_core::TableConfig;

use tempfile::TempDir;

use super::restore_snapshot;
use crate::command::LogEntry;
use crate::fuzzing::samples::{self, SECOND, T0};
use crate::fuzzing::{config, mutated_bytes, timed};
use crate::raft::codec::{decode, encode};
use crate::raft::replica::{Replica, ReplicaSnapshot};
use crate::raft::snapshot_file::{self, SnapshotFile, StoredSnapshot};

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

/// The snapshot files of [`snapshots`], as a node writes them.
fn files() -> Vec<Vec<u8>> {
    let dir = TempDir::new().expect("temp dir");
    let file = SnapshotFile::new(dir.path());
    snapshots()
        .iter()
        .map(|data| {
            file.write(
                &StoredSnapshot { meta: samples::snapshot_meta(), data: data.clone() },
                snapshot_file::Pace::Full,
            )
            .expect("writes");
            std::fs::read(file.path()).expect("reads")
        })
        .collect()
}

/// The payloads of [`files`]: what the checksum covers.
fn payloads() -> Vec<Vec<u8>> {
    files().into_iter().map(|bytes| bytes[snapshot_file::header(&[]).len()..].to_vec()).collect()
}

/// Writes `bytes` as a data directory's snapshot file, then restores from it as a node does at start.
fn restore_file(bytes: &[u8]) -> Result<Option<Replica>, TestCaseError> {
    let dir = TempDir::new().expect("temp dir");
    let file = SnapshotFile::new(dir.path());
    std::fs::write(file.path(), bytes).expect("writes");
    Ok(match file.read() {
        Ok(Some(stored)) => timed("restore", || restore_snapshot(&stored.data, TableConfig::default()))?.ok(),
        Ok(None) | Err(_) => None,
    })
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

    /// The snapshot file a node restores at start, mutated: the checksum refuses almost all of it.
    #[test]
    fn fuzz_snapshot_file(bytes in mutated_bytes(files())) {
        if let Some(replica) = restore_file(&bytes)? {
            keeps_working(replica)?;
        }
    }

    /// A snapshot file whose payload is mutated and whose checksum is then made to match, so the decoding
    /// behind the checksum is fuzzed too.
    #[test]
    fn fuzz_snapshot_file_payload(payload in mutated_bytes(payloads())) {
        let mut bytes = snapshot_file::header(&[&payload]).to_vec();
        bytes.extend_from_slice(&payload);
        if let Some(replica) = restore_file(&bytes)? {
            keeps_working(replica)?;
        }
    }
}

#[test]
fn fuzz_seed_snapshots_restore() {
    for data in snapshots() {
        keeps_working(restore_snapshot(data, TableConfig::default()).unwrap()).unwrap();
    }
    for file in files() {
        assert!(restore_file(&file).unwrap().is_some());
    }
}
