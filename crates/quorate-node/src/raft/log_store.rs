//! The Raft log on sled: entries, vote, committed and last-purged pointers, for openraft's storage v2.
//!
//! Durability model (as rocksstore-v2). One [`sled::Db`] per node holds the trees `logs` (entries keyed by
//! big-endian index), `meta` (vote, committed, last purged) and the state machine's `sm`, so a single
//! `db.flush()` (an fsync) makes every tree durable. sled never flushes on its own ([`open_db`] turns its
//! background flusher off), so what is durable is decided only here:
//!
//! - `append` writes its entries in one batch and hands openraft's callback to the [flusher](super::flusher)
//!   thread, which reports them flushed only after its next fsync (one fsync for all appends queued meanwhile).
//! - `save_vote` and `truncate` flush before they return.
//! - `save_committed` is written but not flushed: a lost value only slows a restart (see the method).
//! - `purge` persists `last_purged` first, flushed, then deletes the entries; openraft ignores entries at or
//!   below `last_purged`, so a crash between the two steps is harmless.
//!
//! The [watermark](super::watermark) records, after each flush that made them durable, the vote and (every
//! 50 ms) the committed index, so that a start can detect a database that lost them ([`super::integrity`]).
//!
//! Flushes and bulk deletions run through [`blocking`](crate::io) so openraft's async threads never wait on the disk; reads
//! and single in-memory writes stay inline. Every sled or codec failure becomes a [`StorageIOError`] naming the
//! subject and verb; a corrupt disk gives an error, never a panic.

use std::error::Error;
use std::fmt;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader, StorageIOError};

use super::flusher::Flusher;
use super::typ::{Entry, LogId, StorageError, Vote};
use super::watermark::Watermark;
use super::{NodeId, TypeConfig, codec};
use crate::io::{IoMode, blocking};
use crate::metrics::NodeMetrics;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

/// The tree holding the entries: key = index as big-endian `u64` (so keys sort by index), value = encoded entry.
const LOGS_TREE: &str = "logs";
/// The tree holding the typed pointers of [`meta`].
const META_TREE: &str = "meta";

/// Opens (or creates) the node's sled database in `dir`, shared by the log store and the state machine.
///
/// `cache_bytes` caps sled's page cache (its 1 GiB default would dominate the node's memory). The background
/// flusher is off: data becomes durable only at the explicit flushes of this module, which keeps durability
/// deterministic.
///
/// # Errors
///
/// If the directory cannot be created or opened, or another process holds the database.
pub(crate) fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, sled::Error> {
    let config = sled::Config::new().path(dir).cache_capacity(cache_bytes).flush_every_ms(None);
    // sled releases its directory lock only when its IO threads let go of the file, a moment after the last
    // handle is dropped: a database reopened in the same process (a node restarted in a test or the simulation)
    // can find it still locked. Another process holding it still fails, after LOCK_WAIT.
    let started = std::time::Instant::now();
    loop {
        match config.open() {
            // sled 0.34 (pinned) reports it as ErrorKind::Other with this message.
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock") && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// How long [`open_db`] waits for a lock that this process's dropped handles may still hold.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The typed keys of the `meta` tree: each names its sled key, the type stored there and the error subject.
mod meta {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{ErrorSubject, LogId, NodeId};

    /// A pointer stored in the `meta` tree.
    pub(super) trait StoreMeta {
        /// The sled key.
        const KEY: &'static str;
        /// What openraft reports when reading or writing this pointer fails.
        const SUBJECT: ErrorSubject<NodeId>;
        /// The value stored under the key.
        type Value: Serialize + DeserializeOwned;
    }

    /// The last vote granted or cast.
    pub(super) struct Vote;
    /// The last log id known committed.
    pub(super) struct Committed;
    /// The last log id purged: entries at or below it are gone or ignored.
    pub(super) struct LastPurged;

    impl StoreMeta for Vote {
        const KEY: &'static str = "vote";
        const SUBJECT: ErrorSubject<NodeId> = ErrorSubject::Vote;
        type Value = super::Vote;
    }

    impl StoreMeta for Committed {
        const KEY: &'static str = "committed";
        const SUBJECT: ErrorSubject<NodeId> = ErrorSubject::Store;
        type Value = LogId;
    }

    impl StoreMeta for LastPurged {
        const KEY: &'static str = "last_purged";
        const SUBJECT: ErrorSubject<NodeId> = ErrorSubject::Logs;
        type Value = LogId;
    }
}

use meta::StoreMeta;

/// Returns a mapper from any error (sled, codec, a failed blocking task) to the storage error for `verb` on
/// `subject`.
fn io_err<E: Error + 'static>(subject: ErrorSubject<NodeId>, verb: ErrorVerb) -> impl FnOnce(E) -> StorageError {
    move |e| StorageIOError::new(subject, verb, &e).into()
}

/// Maps a failure to read the `logs` tree.
fn read_logs<E: Error + 'static>(e: E) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

/// Maps a failure to write the `logs` tree.
fn write_logs<E: Error + 'static>(e: E) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

/// The `logs` key of the entry at `index`.
fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Decodes the entry stored under `key`, checking that it is the entry of that index.
fn decode_entry(key: &[u8], value: &[u8]) -> Result<Entry, StorageError> {
    let index = u64::from_be_bytes(<[u8; 8]>::try_from(key).map_err(read_logs)?);
    let entry: Entry = codec::decode(value).map_err(|e| StorageIOError::read_log_at_index(index, &e))?;
    if entry.log_id.index != index {
        let found = AnyError::error(format!("entry {} stored under index {index}", entry.log_id));
        return Err(StorageIOError::read_log_at_index(index, found).into());
    }
    Ok(entry)
}

/// Deletes the entries whose keys are in `range`, in one atomic batch: a truncation must never leave a gap.
pub(super) fn remove_range(logs: &sled::Tree, range: impl RangeBounds<[u8; 8]>) -> sled::Result<()> {
    let mut batch = sled::Batch::default();
    for k in logs.range(range).keys() {
        batch.remove(k?);
    }
    logs.apply_batch(batch)
}

/// Deletes entries whose keys are in `range`, first to last, one by one: at most `most`, and no more once `budget`
/// has passed, but always one when there is one. Returns how many, and whether the range is now empty.
///
/// Not one batch: a sled batch takes a lock that every other write to the tree waits for (appends included), and a
/// batch of 256 large entries took 11-20 ms. For purges only: deleting from the front, a crash midway leaves the
/// rest of the range, never a gap (a truncation, which deletes a suffix, uses [`remove_range`]).
pub(super) fn remove_some(
    logs: &sled::Tree,
    range: impl RangeBounds<[u8; 8]>,
    most: usize,
    budget: Duration,
) -> sled::Result<(usize, bool)> {
    let started = Instant::now();
    let mut removed = 0;
    let mut keys = logs.range(range).keys();
    let finished = loop {
        // At least one per call, however slow the clock says it was: a purge always progresses.
        if removed == most || (removed > 0 && started.elapsed() >= budget) {
            break false;
        }
        match keys.next() {
            Some(k) => {
                logs.remove(k?)?;
                removed += 1;
            }
            None => break true,
        }
    };
    Ok((removed, finished))
}

/// The Raft log store on sled, handed to openraft as both its log storage and its log reader.
///
/// Cheap to clone: clones share the database (sled's handles are reference-counted).
#[derive(Clone)]
pub(crate) struct SledLogStore {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
    /// Group-commits appends on its own thread; `None` flushes inside `append` (deterministic simulation).
    flusher: Option<Flusher>,
    /// Where flushes and deletions run.
    io: IoMode,
    /// What this store has made durable, for the integrity check at the next start.
    watermark: Arc<Watermark>,
}

impl Debug for SledLogStore {
    // sled's own Debug dumps whole trees; name them instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledLogStore").field("logs", &LOGS_TREE).field("meta", &META_TREE).finish_non_exhaustive()
    }
}

impl SledLogStore {
    /// Opens the log store on `db`, creating its trees if they don't exist yet.
    ///
    /// # Errors
    ///
    /// If sled fails to open the trees.
    pub(crate) fn open(
        db: &sled::Db,
        watermark: Arc<Watermark>,
        metrics: Arc<NodeMetrics>,
    ) -> Result<Self, StorageError> {
        let mut store = SledLogStore::open_inline(db, watermark.clone())?;
        store.flusher = Some(Flusher::spawn(db.clone(), watermark, metrics).map_err(write_logs)?);
        store.io = IoMode::Background;
        Ok(store)
    }

    /// Opens the log store without the flusher thread: every append flushes before it returns. For
    /// deterministic simulation, where no IO may finish on another thread.
    ///
    /// # Errors
    ///
    /// As [`SledLogStore::open`].
    pub(crate) fn open_inline(db: &sled::Db, watermark: Arc<Watermark>) -> Result<Self, StorageError> {
        let logs = db.open_tree(LOGS_TREE).map_err(read_logs)?;
        let meta = db.open_tree(META_TREE).map_err(io_err(ErrorSubject::Store, ErrorVerb::Read))?;
        Ok(SledLogStore { db: db.clone(), logs, meta, flusher: None, io: IoMode::Inline, watermark })
    }

    /// Every stored entry in index order, decoded, with entries at or below `last_purged` included (a crash
    /// can leave some): for the integrity check at start.
    pub(super) fn stored_entries(&self) -> impl Iterator<Item = Result<Entry, StorageError>> + '_ {
        self.logs.iter().map(|item| {
            let (k, v) = item.map_err(read_logs)?;
            decode_entry(&k, &v)
        })
    }

    /// The vote and last-purged pointer as stored, for the integrity check at start.
    pub(super) fn stored_pointers(&self) -> Result<(Option<Vote>, Option<LogId>), StorageError> {
        Ok((self.get_meta::<meta::Vote>()?, self.get_meta::<meta::LastPurged>()?))
    }

    fn get_meta<M: StoreMeta>(&self) -> Result<Option<M::Value>, StorageError> {
        let Some(bytes) = self.meta.get(M::KEY).map_err(io_err(M::SUBJECT, ErrorVerb::Read))? else {
            return Ok(None);
        };
        codec::decode(&bytes).map(Some).map_err(io_err(M::SUBJECT, ErrorVerb::Read))
    }

    /// Writes a pointer, not yet durable: the caller decides whether to flush.
    fn put_meta<M: StoreMeta>(&self, value: &M::Value) -> Result<(), StorageError> {
        let bytes = codec::encode(value).map_err(io_err(M::SUBJECT, ErrorVerb::Write))?;
        self.meta.insert(M::KEY, bytes).map_err(io_err(M::SUBJECT, ErrorVerb::Write))?;
        Ok(())
    }

    /// Makes every write so far (all trees) durable, off the async threads.
    async fn flush(&self, subject: ErrorSubject<NodeId>) -> Result<(), StorageError> {
        let db = self.db.clone();
        blocking(self.io, move || db.flush())
            .await
            .map_err(io_err(subject.clone(), ErrorVerb::Write))?
            .map_err(io_err(subject, ErrorVerb::Write))?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for SledLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let keys: (Bound<[u8; 8]>, Bound<[u8; 8]>) =
            (range.start_bound().map(|&i| key(i)), range.end_bound().map(|&i| key(i)));
        self.logs
            .range(keys)
            .map(|item| {
                let (k, v) = item.map_err(read_logs)?;
                decode_entry(&k, &v)
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for SledLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = self.get_meta::<meta::LastPurged>()?;
        let last_entry = match self.logs.last().map_err(read_logs)? {
            Some((k, v)) => Some(decode_entry(&k, &v)?.log_id),
            None => None,
        };
        // With every entry purged (or after a crash that lost a purge's deletion, leaving entries at or below the
        // pointer) the last log id is last_purged; `None < Some` keeps it too when nothing was purged.
        let last_log_id = last_entry.max(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta::<meta::Vote>(vote)?;
        // Durable before returning: a node that forgot its vote after a crash could vote twice in one term.
        self.flush(meta::Vote::SUBJECT).await?;
        let (watermark, vote) = (self.watermark.clone(), *vote);
        blocking(self.io, move || watermark.record_vote(vote))
            .await
            .map_err(io_err(meta::Vote::SUBJECT, ErrorVerb::Write))?
            .map_err(io_err(meta::Vote::SUBJECT, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta::<meta::Vote>()
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: committed only lets a restart re-apply the log before hearing from the leader. If a crash
        // loses the write, the stored value is older (never newer) than the truth, openraft applies less at start
        // and learns the rest from the leader; commitment itself lives on a quorum's logs. The next flush of an
        // append or vote makes it durable anyway, as one flush covers the whole database.
        match committed {
            Some(log_id) => {
                self.put_meta::<meta::Committed>(&log_id)?;
                // The flusher raises the watermark to it once a flush has covered it.
                self.watermark.stage_committed(log_id.index);
                Ok(())
            }
            None => {
                self.meta.remove(meta::Committed::KEY).map_err(io_err(meta::Committed::SUBJECT, ErrorVerb::Write))?;
                Ok(())
            }
        }
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.get_meta::<meta::Committed>()
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = codec::encode(&entry).map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            batch.insert(&key(entry.log_id.index), bytes);
        }
        // Applied before flushing: openraft requires the entries readable when `append` returns.
        self.logs.apply_batch(batch).map_err(write_logs)?;
        // Ack only once durable: openraft counts this node towards a commit quorum on the callback, so an ack
        // before the fsync could lose a committed entry on a crash. The flusher thread acks after its next fsync;
        // without one (or if it is gone) flush here.
        let callback = match &self.flusher {
            Some(flusher) => match flusher.submit(callback) {
                Ok(()) => return Ok(()),
                Err(callback) => callback,
            },
            None => callback,
        };
        match self.flush(ErrorSubject::Logs).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.clone())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let (db, logs) = (self.db.clone(), self.logs.clone());
        // Flushed before returning: conflicting entries that came back after a crash would be appended to again
        // and could leave a hole or a mixed-term log.
        let delete_and_flush = move || -> Result<(), StorageError> {
            remove_range(&logs, key(log_id.index)..).map_err(io_err(ErrorSubject::Logs, ErrorVerb::Delete))?;
            db.flush().map_err(write_logs)?;
            Ok(())
        };
        blocking(self.io, delete_and_flush).await.map_err(write_logs)?
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The pointer first, durable: from here on openraft reads nothing at or below it, so the deletion below
        // needs no transaction with it.
        self.put_meta::<meta::LastPurged>(&log_id)?;
        self.flush(meta::LastPurged::SUBJECT).await?;
        // Purged entries are applied, so committed: the database must hold them (in the snapshot) from now on.
        let watermark = self.watermark.clone();
        blocking(self.io, move || watermark.raise_committed(log_id.index))
            .await
            .map_err(io_err(meta::LastPurged::SUBJECT, ErrorVerb::Write))?
            .map_err(io_err(meta::LastPurged::SUBJECT, ErrorVerb::Write))?;

        // Thousands of keys: delete them on the flusher thread, without making openraft wait (it awaits purge in
        // its core loop). Not flushed, and a crash midway (or before sled writes it out) is harmless: the leftovers
        // are at or below last_purged, which openraft ignores and `get_log_state` reports past, and the next purge
        // removes them as it starts from the first key.
        let logs = self.logs.clone();
        if let Some(flusher) = &self.flusher
            && flusher.purge(logs.clone(), key(log_id.index))
        {
            return Ok(());
        }
        blocking(self.io, move || remove_range(&logs, ..=key(log_id.index)))
            .await
            .map_err(io_err(ErrorSubject::Logs, ErrorVerb::Delete))?
            .map_err(io_err(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}
