use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, LogState, Membership, RaftLogReader, StorageIOError};
use quorate_core::TableConfig;
use tempfile::TempDir;

use super::{LOGS_TREE, META_TREE, SledLogStore, StoreMeta, key, meta, open_db};
use crate::command::LogEntry;
use crate::raft::TypeConfig;
use crate::raft::snapshot_file::SnapshotFile;
use crate::raft::state_machine::StateMachineStore;
use crate::raft::typ::{Entry, LogId, StorageError, Vote};
use crate::raft::watermark::Watermark;

/// A small page cache: tests hold a handful of entries.
const CACHE_BYTES: u64 = 1 << 20;

fn log_id(term: u64, index: u64) -> LogId {
    LogId { leader_id: CommittedLeaderId::new(term, 1), index }
}

fn blank(term: u64, index: u64) -> Entry {
    Entry { log_id: log_id(term, index), payload: EntryPayload::Blank }
}

/// Blank entries of term 1 at `indexes`.
fn blanks(indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|i| blank(1, i)).collect()
}

fn open_store(dir: &Path) -> anyhow::Result<(sled::Db, SledLogStore)> {
    let db = open_db(dir, CACHE_BYTES)?;
    let store = SledLogStore::open(&db, watermark(dir)?, Default::default())?;
    Ok((db, store))
}

fn watermark(dir: &Path) -> Result<Arc<Watermark>, StorageError> {
    let (watermark, _) = Watermark::open(dir).map_err(|e| StorageIOError::write(&e))?;
    Ok(Arc::new(watermark))
}

/// Builds each Suite case on a fresh database holding both stores, as a node does.
struct Builder;

impl StoreBuilder<TypeConfig, SledLogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, SledLogStore, StateMachineStore), StorageError> {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let db = open_db(dir.path(), CACHE_BYTES).map_err(|e| StorageIOError::write(&e))?;
        let log_store = SledLogStore::open(&db, watermark(dir.path())?, Default::default())?;
        let file = SnapshotFile::new(dir.path());
        let state_machine =
            StateMachineStore::open(&db, file, None, TableConfig::default(), crate::io::IoMode::Background)?;
        Ok((dir, log_store, state_machine))
    }
}

// A plain #[test]: the Suite builds a runtime for each case.
#[test]
fn passes_the_openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(Builder)
}

#[tokio::test]
async fn reopened_store_keeps_vote_log_and_committed() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let vote = Vote::new_committed(2, 1);
    let entries = vec![
        blank(1, 1),
        Entry {
            log_id: log_id(1, 2),
            payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1, 2, 3])], None)),
        },
        Entry {
            log_id: log_id(2, 3),
            payload: EntryPayload::Normal(LogEntry::SetPolicies { toml: "[x]".to_owned(), expected_version: 7 }),
        },
    ];
    {
        let (_db, mut store) = open_store(dir.path())?;
        store.save_vote(&vote).await?;
        store.blocking_append(entries.clone()).await?;
        store.save_committed(Some(log_id(1, 2))).await?;
    } // Every handle dropped: sled locks its directory exclusively.

    let (_db, mut store) = open_store(dir.path())?;
    assert_eq!(store.read_vote().await?, Some(vote));
    assert_eq!(store.read_committed().await?, Some(log_id(1, 2)));
    assert_eq!(store.try_get_log_entries(..).await?, entries);
    assert_eq!(store.try_get_log_entries(2..3).await?, entries[1..2]);
    assert_eq!(store.get_log_state().await?, LogState { last_purged_log_id: None, last_log_id: Some(log_id(2, 3)) });
    Ok(())
}

#[tokio::test]
async fn purge_persists_last_purged_before_deleting() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    {
        let (_db, mut store) = open_store(dir.path())?;
        store.blocking_append(blanks(1..=10)).await?;
        store.purge(log_id(1, 4)).await?;
    }

    let (_db, mut store) = open_store(dir.path())?;
    assert_eq!(
        store.get_log_state().await?,
        LogState { last_purged_log_id: Some(log_id(1, 4)), last_log_id: Some(log_id(1, 10)) }
    );
    assert_eq!(store.try_get_log_entries(..).await?, blanks(5..=10));

    // Purging past the last entry leaves no entry: the last log id falls back to last_purged.
    store.purge(log_id(1, 12)).await?;
    assert_eq!(
        store.get_log_state().await?,
        LogState { last_purged_log_id: Some(log_id(1, 12)), last_log_id: Some(log_id(1, 12)) }
    );
    wait_until_empty(&mut store).await
}

/// Waits (against a deadline) until the log is empty: purge deletes on the flusher thread, after it returned.
async fn wait_until_empty(store: &mut SledLogStore) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !store.try_get_log_entries(..).await?.is_empty() {
        anyhow::ensure!(std::time::Instant::now() < deadline, "purged entries were never deleted");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Ok(())
}

#[tokio::test]
async fn crash_between_purge_steps_is_harmless() -> anyhow::Result<()> {
    // A crash after the pointer is durable but before the deletion reaches disk leaves entries at or below it.
    let dir = TempDir::new()?;
    {
        let (_db, mut store) = open_store(dir.path())?;
        store.blocking_append(blanks(1..=5)).await?;
        store.put_meta::<meta::LastPurged>(&log_id(1, 6))?;
        store.flush(meta::LastPurged::SUBJECT).await?;
    }

    let (_db, mut store) = open_store(dir.path())?;
    assert_eq!(
        store.get_log_state().await?,
        LogState { last_purged_log_id: Some(log_id(1, 6)), last_log_id: Some(log_id(1, 6)) }
    );
    // The next purge starts from the first key, so the leftovers go too.
    store.purge(log_id(1, 6)).await?;
    wait_until_empty(&mut store).await
}

#[tokio::test]
async fn corrupt_entry_is_an_error_not_a_panic() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let (db, mut store) = open_store(dir.path())?;
    store.blocking_append(blanks(1..=1)).await?;
    db.open_tree(LOGS_TREE)?.insert(key(2), b"garbage".as_slice())?;

    let err = store.try_get_log_entries(..).await.err().ok_or_else(|| anyhow::anyhow!("garbage entry read"))?;
    assert!(err.to_string().contains("LogIndex(2)"), "error should name the index: {err}");
    assert!(store.get_log_state().await.is_err(), "the last entry is the garbage one");
    assert_eq!(store.try_get_log_entries(1..2).await?, blanks(1..=1));

    // An entry under another index's key is corrupt too.
    db.open_tree(LOGS_TREE)?.insert(key(3), crate::raft::codec::encode(&blank(1, 4))?)?;
    assert!(store.try_get_log_entries(3..4).await.is_err());

    db.open_tree(META_TREE)?.insert(meta::Vote::KEY, b"\xff".as_slice())?;
    assert!(store.read_vote().await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_purge_larger_than_a_chunk_completes_between_appends() -> anyhow::Result<()> {
    // The flusher deletes a chunk at a time between flushes; appends meanwhile go on, and the purge finishes.
    let dir = TempDir::new()?;
    let (_db, mut store) = open_store(dir.path())?;
    store.blocking_append(blanks(1..=1_000)).await?;
    store.purge(log_id(1, 900)).await?;
    store.blocking_append(blanks(1_001..=1_010)).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left = store.try_get_log_entries(..).await?;
        if left == blanks(901..=1_010) {
            return Ok(());
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "{} entries left, 110 expected", left.len());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[test]
fn reopening_waits_for_a_lock_this_process_is_about_to_release() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let held = open_db(dir.path(), CACHE_BYTES)?;
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(held);
    });
    let reopened = open_db(dir.path(), CACHE_BYTES);
    release.join().map_err(|_| anyhow::anyhow!("the releasing thread panicked"))?;
    reopened?;

    // A lock that stays taken is still an error, after the wait.
    let _held = open_db(dir.path(), CACHE_BYTES)?;
    let error = open_db(dir.path(), CACHE_BYTES).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("could not acquire lock"), "{error}");
    Ok(())
}

#[test]
fn removing_some_entries_stops_at_its_count_or_budget_and_always_progresses() -> anyhow::Result<()> {
    use std::time::Duration;
    let dir = TempDir::new()?;
    let logs = sled::Config::new().path(dir.path()).open()?.open_tree("logs")?;
    for index in 1..=10u64 {
        logs.insert(key(index), vec![0u8; 100])?;
    }
    let all = ..=key(10);
    assert_eq!(super::remove_some(&logs, all, 3, Duration::MAX)?, (3, false));
    // No time at all still removes one, so a purge cannot stall.
    assert_eq!(super::remove_some(&logs, all, 3, Duration::ZERO)?, (1, false));
    assert_eq!(logs.first()?.map(|(k, _)| k.to_vec()), Some(key(5).to_vec()));
    assert_eq!(super::remove_some(&logs, ..=key(8), usize::MAX, Duration::MAX)?, (4, true));
    assert_eq!(super::remove_some(&logs, ..=key(8), 3, Duration::MAX)?, (0, true));
    assert_eq!(logs.len(), 2);
    Ok(())
}
