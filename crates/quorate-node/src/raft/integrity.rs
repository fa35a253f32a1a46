//! Opening a data directory with its integrity checked: a node whose disk lost what it acknowledged must not
//! rejoin Raft under its id.
//!
//! Raft assumes a node never forgets a vote it cast or an entry it acknowledged: two nodes that forget the same
//! committed entry can lose a decision and refund its quota. Before Raft starts, [`open_verified`] checks that
//! - the snapshot file passes its checksum ([`SnapshotFile`]);
//! - every log entry decodes, under its own index, with no gap from the snapshot to the last entry;
//! - the log was not purged past the snapshot (entries lost between them);
//! - the database holds at least the vote and committed index the [`Watermark`] says were made durable.
//!
//! Any failure is a [`Damage`] naming the file; the node refuses to start and the operator rejoins it under a
//! new id (README, "Faults a node cannot ride out").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quorate_core::TableConfig;

use super::log_store::SledLogStore;
use super::snapshot_file::{SnapshotFile, SnapshotFileError};
use super::state_machine::{RestoreError, StateMachineStore, restore_snapshot};
use super::typ::{StorageError, Vote};
use super::watermark::{Mark, Watermark, WatermarkError};
use crate::io::IoMode;
use crate::metrics::NodeMetrics;

/// The data directory does not hold what this node acknowledged, or a file in it is damaged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Damage {
    /// The snapshot file is unreadable, damaged or truncated.
    #[error(transparent)]
    Snapshot(#[from] SnapshotFileError),
    /// The watermark file is unreadable or damaged.
    #[error(transparent)]
    Watermark(#[from] WatermarkError),
    /// A log entry does not decode.
    #[error("{}: the Raft log does not read back: {source}", db.display())]
    UnreadableLog {
        /// The sled database.
        db: PathBuf,
        /// What reading it said.
        source: Box<StorageError>,
    },
    /// Entries are missing between two that are present (or between the snapshot and the first entry).
    #[error("{}: the Raft log has a gap: entries {from} to {to} are missing", db.display())]
    LogGap {
        /// The sled database.
        db: PathBuf,
        /// The first missing index.
        from: u64,
        /// The last missing index.
        to: u64,
    },
    /// The log was purged behind a snapshot that is not there.
    #[error(
        "{}: the Raft log was purged up to entry {purged}, but the snapshot ({}) only covers {}",
        db.display(), snapshot.display(), covered.map_or("nothing".to_owned(), |i| format!("up to entry {i}"))
    )]
    SnapshotBehindPurge {
        /// The sled database.
        db: PathBuf,
        /// The snapshot file.
        snapshot: PathBuf,
        /// The last purged index.
        purged: u64,
        /// The snapshot's last index.
        covered: Option<u64>,
    },
    /// The database holds fewer committed entries than the watermark recorded as durable.
    #[error(
        "{}: entries up to {marked} were durable here ({}), but the data directory now ends at {}: it went back \
         in time (a damaged or restored database)",
        db.display(), watermark.display(), found.map_or("nothing".to_owned(), |i| format!("entry {i}"))
    )]
    LogRolledBack {
        /// The sled database.
        db: PathBuf,
        /// The watermark file.
        watermark: PathBuf,
        /// The committed index the watermark recorded.
        marked: u64,
        /// The last index the directory holds (entry, purge pointer or snapshot).
        found: Option<u64>,
    },
    /// The stored vote is older than the one the watermark recorded.
    #[error(
        "{}: this node voted in term {} ({}), but the database holds {}: it went back in time",
        db.display(), marked.leader_id.term, watermark.display(),
        found.map_or("no vote".to_owned(), |v| format!("a vote of term {}", v.leader_id.term))
    )]
    VoteRolledBack {
        /// The sled database.
        db: PathBuf,
        /// The watermark file.
        watermark: PathBuf,
        /// The vote the watermark recorded.
        marked: Vote,
        /// The vote in the database.
        found: Option<Vote>,
    },
}

/// Why a data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// sled or a decoder failed: the directory may be fine (another process holds it, a newer format).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The directory is damaged or went back in time.
    #[error(transparent)]
    Damaged(#[from] Damage),
    /// The snapshot file passes its checksum but does not restore: written by a newer build (a downgrade), or
    /// damaged in a way the checksum missed.
    #[error("{}: the snapshot does not restore: {source}", path.display())]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Why it does not restore.
        source: RestoreError,
    },
}

/// The stores of a data directory whose integrity was checked.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The Raft log.
    pub(crate) log_store: SledLogStore,
    /// The state machine, restored from the snapshot.
    pub(crate) state_machine: StateMachineStore,
}

/// Opens the log store and the state machine of the data directory `dir` (sled already open as `db`) and
/// checks that they hold everything this node made durable; see the module docs.
///
/// # Errors
///
/// [`OpenError::Damaged`] naming the file when a check fails; [`OpenError::Storage`] when sled or a decoder
/// fails otherwise.
pub(crate) fn open_verified(
    dir: &Path,
    db: &sled::Db,
    io: IoMode,
    table: TableConfig,
    metrics: Arc<NodeMetrics>,
) -> Result<Verified, OpenError> {
    let (watermark, mark) = Watermark::open(dir).map_err(Damage::from)?;
    let watermark = Arc::new(watermark);
    let file = SnapshotFile::new(dir);
    let snapshot = file.read().map_err(Damage::from)?;
    let log_store = match io {
        IoMode::Background => SledLogStore::open(db, watermark.clone(), metrics.clone())?,
        IoMode::Inline => SledLogStore::open_inline(db, watermark.clone())?,
    };
    let restored = snapshot
        .map(|stored| restore_snapshot(&stored.data, table))
        .transpose()
        .map_err(|source| OpenError::Snapshot { path: file.path(), source })?;
    let state_machine = StateMachineStore::open(db, file.clone(), restored, table, io)?.with_metrics(metrics);
    let covered = state_machine.replica().last_applied.map(|id| id.index);

    let db_path = dir.join("db");
    let (vote, purged) = log_store.stored_pointers()?;
    let purged = purged.map(|id| id.index);
    if let Some(purged) = purged
        && covered.is_none_or(|covered| covered < purged)
    {
        return Err(Damage::SnapshotBehindPurge { db: db_path, snapshot: file.path(), purged, covered }.into());
    }
    let last_entry = check_log(&log_store, purged).map_err(|e| e.with_db(&db_path))?;
    let holds = last_entry.max(purged).max(covered);

    match mark {
        Some(mark) => check_mark(&mark, vote, holds, &db_path, watermark.path())?,
        None => {
            // A new node, or a directory from before watermarks: start one from what is there.
            if let Some(vote) = vote {
                watermark.record_vote(vote).map_err(|e| Damage::from(watermark_io(&watermark, e)))?;
            }
            if let Some(index) = holds {
                watermark.raise_committed(index).map_err(|e| Damage::from(watermark_io(&watermark, e)))?;
            }
        }
    }
    Ok(Verified { log_store, state_machine })
}

fn watermark_io(watermark: &Watermark, source: std::io::Error) -> WatermarkError {
    WatermarkError::Io { path: watermark.path().to_path_buf(), source }
}

/// A log check failed; the database path is filled in by the caller.
enum LogProblem {
    Unreadable(Box<StorageError>),
    Gap { from: u64, to: u64 },
}

impl LogProblem {
    fn with_db(self, db: &Path) -> Damage {
        let db = db.to_path_buf();
        match self {
            LogProblem::Unreadable(source) => Damage::UnreadableLog { db, source },
            LogProblem::Gap { from, to } => Damage::LogGap { db, from, to },
        }
    }
}

/// Reads every entry: each must decode under its index, and the entries after `purged` must follow it without
/// a gap. Returns the last index.
fn check_log(log_store: &SledLogStore, purged: Option<u64>) -> Result<Option<u64>, LogProblem> {
    let mut last: Option<u64> = None;
    for entry in log_store.stored_entries() {
        let index = entry.map_err(|e| LogProblem::Unreadable(Box::new(e)))?.log_id.index;
        // Leftovers at or below the purge pointer (a crash mid-purge) are ignored, as openraft does.
        if purged.is_some_and(|purged| index <= purged) {
            continue;
        }
        // The first entry follows the purge pointer; without one, the log may start anywhere (openraft's
        // first entry is at index 0, a member added later starts from the leader's snapshot).
        let expected = match (last, purged) {
            (Some(last), _) => Some(last + 1),
            (None, Some(purged)) => Some(purged + 1),
            (None, None) => None,
        };
        if let Some(expected) = expected
            && index != expected
        {
            return Err(LogProblem::Gap { from: expected, to: index - 1 });
        }
        last = Some(index);
    }
    Ok(last)
}

/// Checks the database against the watermark's record of what was durable.
fn check_mark(mark: &Mark, vote: Option<Vote>, holds: Option<u64>, db: &Path, watermark: &Path) -> Result<(), Damage> {
    if let Some(marked) = mark.vote
        && vote.is_none_or(|found| found.partial_cmp(&marked).is_none_or(|order| order.is_lt()))
    {
        let (db, watermark) = (db.to_path_buf(), watermark.to_path_buf());
        return Err(Damage::VoteRolledBack { db, watermark, marked, found: vote });
    }
    if let Some(marked) = mark.committed
        && holds.is_none_or(|holds| holds < marked)
    {
        let (db, watermark) = (db.to_path_buf(), watermark.to_path_buf());
        return Err(Damage::LogRolledBack { db, watermark, marked, found: holds });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
