use std::path::Path;
use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload};
use quorate_core::TableConfig;
use tempfile::TempDir;

use super::{Damage, OpenError, Verified, open_verified};
use crate::io::IoMode;
use crate::raft::log_store::open_db;
use crate::raft::snapshot_file;
use crate::raft::typ::{Entry, LogId, Vote};
use crate::raft::watermark::{self, RAISE_EVERY, Watermark};

fn log_id(term: u64, index: u64) -> LogId {
    LogId { leader_id: CommittedLeaderId::new(term, 1), index }
}

fn blanks(indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|i| Entry { log_id: log_id(1, i), payload: EntryPayload::Blank }).collect()
}

/// Opens `dir` as a node does; the sled handle is dropped with the stores.
fn open(dir: &Path) -> Result<Verified, OpenError> {
    let db =
        open_db(dir, 1 << 20).map_err(|e| crate::raft::typ::StorageError::from(openraft::StorageIOError::write(&e)))?;
    open_verified(dir, &db, IoMode::Background, TableConfig::default(), Default::default())
}

/// The damage `open` reports, as text; fails if it opens.
fn damage(dir: &Path) -> anyhow::Result<String> {
    match open(dir) {
        Ok(_) => anyhow::bail!("a damaged directory opened"),
        Err(OpenError::Damaged(damage)) => Ok(damage.to_string()),
        Err(e) => anyhow::bail!("another error instead of damage: {e}"),
    }
}

/// Appends entries and commits them, then waits for the flusher to raise the watermark past them.
async fn append_committed(store: &mut crate::raft::log_store::SledLogStore, entries: Vec<Entry>) -> anyhow::Result<()> {
    let last = entries.last().map(|e| e.log_id).ok_or_else(|| anyhow::anyhow!("no entries"))?;
    store.blocking_append(entries).await?;
    store.save_committed(Some(last)).await?;
    // The flusher raises the mark after a flush, at most every RAISE_EVERY: give it one more flush after that.
    tokio::time::sleep(RAISE_EVERY + Duration::from_millis(20)).await;
    store.save_vote(&Vote::new_committed(1, 1)).await?;
    store.blocking_append(blanks(last.index + 1..=last.index + 1)).await?;
    Ok(())
}

/// Copies sled's files of `dir` (not the watermark nor the snapshot) to `to`: a backup of the database.
fn copy_database(dir: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == watermark::FILE_NAME || name == snapshot_file::FILE_NAME {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_database(&entry.path(), &to.join(&name))?;
        } else {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_healthy_directory_opens_again_and_keeps_its_watermark() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    {
        let mut stores = open(dir.path())?;
        append_committed(&mut stores.log_store, blanks(0..=20)).await?;
    }
    let (_, mark) = Watermark::open(dir.path())?;
    let mark = mark.ok_or_else(|| anyhow::anyhow!("no watermark written"))?;
    assert_eq!(mark.committed, Some(20), "the flusher raised the mark to the committed index");
    assert_eq!(mark.vote, Some(Vote::new_committed(1, 1)));
    open(dir.path())?;
    Ok(())
}

#[tokio::test]
async fn a_database_restored_from_an_older_copy_is_refused() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let backup = TempDir::new()?;
    {
        let mut stores = open(dir.path())?;
        append_committed(&mut stores.log_store, blanks(0..=5)).await?;
    }
    copy_database(dir.path(), backup.path())?;
    {
        let mut stores = open(dir.path())?;
        append_committed(&mut stores.log_store, blanks(7..=40)).await?;
    }
    // Put the old database back, keeping the watermark: the node acknowledged entries 7..=41 since.
    copy_database(backup.path(), dir.path())?;
    let error = damage(dir.path())?;
    assert!(error.contains("entries up to 40 were durable") && error.contains("now ends at entry 6"), "{error}");
    assert!(error.contains(watermark::FILE_NAME), "the message names the watermark: {error}");
    Ok(())
}

#[tokio::test]
async fn a_vote_that_went_back_is_refused() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let backup = TempDir::new()?;
    {
        let mut stores = open(dir.path())?;
        stores.log_store.save_vote(&Vote::new(3, 2)).await?;
    }
    copy_database(dir.path(), backup.path())?;
    {
        let mut stores = open(dir.path())?;
        stores.log_store.save_vote(&Vote::new(5, 3)).await?;
    }
    copy_database(backup.path(), dir.path())?;
    let error = damage(dir.path())?;
    assert!(error.contains("voted in term 5") && error.contains("a vote of term 3"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_gap_in_the_log_is_refused() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    {
        let mut stores = open(dir.path())?;
        stores.log_store.blocking_append(blanks(0..=5)).await?;
        stores.log_store.blocking_append(blanks(8..=9)).await?;
    }
    let error = damage(dir.path())?;
    assert!(error.contains("entries 6 to 7 are missing"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_log_purged_past_its_snapshot_is_refused() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    {
        let mut stores = open(dir.path())?;
        stores.log_store.blocking_append(blanks(0..=9)).await?;
        // No snapshot covers what is purged: as if the snapshot file were lost.
        stores.log_store.purge(log_id(1, 4)).await?;
    }
    let error = damage(dir.path())?;
    assert!(error.contains("purged up to entry 4") && error.contains("only covers nothing"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_damaged_snapshot_file_is_refused_by_name() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    drop(open(dir.path())?);
    std::fs::write(dir.path().join(snapshot_file::FILE_NAME), vec![0x5A; 4096])?;
    let error = damage(dir.path())?;
    assert!(error.contains(snapshot_file::FILE_NAME) && error.contains("bad magic"), "{error}");
    Ok(())
}

#[test]
fn damage_reads_as_a_sentence() {
    let damage = Damage::LogGap { db: "/var/lib/quorate/db".into(), from: 3, to: 9 };
    assert_eq!(damage.to_string(), "/var/lib/quorate/db: the Raft log has a gap: entries 3 to 9 are missing");
}

#[tokio::test]
async fn a_snapshot_that_passes_its_checksum_but_does_not_restore_is_named() -> anyhow::Result<()> {
    // As a downgrade would leave it: a well-formed file whose contents this build cannot read.
    let dir = TempDir::new()?;
    drop(open(dir.path())?);
    let meta = crate::fuzzing::samples::snapshot_meta();
    let stored = snapshot_file::StoredSnapshot { meta, data: b"QRT\x09 from a newer build".to_vec() };
    snapshot_file::SnapshotFile::new(dir.path()).write(&stored, snapshot_file::Pace::Full)?;
    let error = match open(dir.path()) {
        Err(e @ OpenError::Snapshot { .. }) => e.to_string(),
        Err(e) => anyhow::bail!("another error: {e}"),
        Ok(_) => anyhow::bail!("an unreadable snapshot was restored"),
    };
    assert!(error.contains(snapshot_file::FILE_NAME) && error.contains("does not restore"), "{error}");
    assert!(error.contains("format version 9 is newer"), "the codec names the format: {error}");
    Ok(())
}
