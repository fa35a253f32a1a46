//! The openraft state machine: applies committed entries to the [`Replica`] and builds and installs snapshots.
//!
//! Durability model (as rocksstore-v2): the replica lives in memory; a snapshot is persisted as a checksummed
//! file beside sled ([`SnapshotFile`]) each time one is built or installed. On restart the last snapshot is loaded and openraft re-applies the log
//! from there up to the committed index, so an admitted request is never forgotten ("restart never refunds").
//! Snapshots are built from a clone taken under the lock and encoded off the async threads.

use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard};

use super::replica::{Replica, ReplicaSnapshot};
use super::snapshot_file::{SnapshotFile, StoredSnapshot};
use super::typ::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership};
use super::{TypeConfig, codec};
use crate::command::EntryResponse;
use crate::io::{IoMode, background, blocking};
use crate::metrics::NodeMetrics;
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use quorate_core::TableConfig;

/// Where builds before snapshot files kept the snapshot (tree `sm`): read when there is no file yet, removed
/// once a file replaces it.
const LEGACY_SNAPSHOT_KEY: &[u8] = b"snapshot";

/// The state machine store handed to openraft; cheap to clone, all clones share the replica.
#[derive(Debug, Clone)]
pub(crate) struct StateMachineStore {
    replica: Arc<Mutex<Replica>>,
    /// The legacy tree (see [`LEGACY_SNAPSHOT_KEY`]).
    tree: sled::Tree,
    file: SnapshotFile,
    table_config: TableConfig,
    io: IoMode,
    metrics: Arc<NodeMetrics>,
}

impl StateMachineStore {
    /// Opens the state machine on `db` with `restored` (the replica of the snapshot in `file`, restored by the
    /// caller) or, without one, the snapshot an older build kept in sled.
    ///
    /// # Errors
    ///
    /// If sled fails or the legacy snapshot cannot be decoded.
    pub(crate) fn open(
        db: &sled::Db,
        file: SnapshotFile,
        restored: Option<Replica>,
        table_config: TableConfig,
        io: IoMode,
    ) -> Result<Self, StorageError> {
        let tree = db.open_tree("sm").map_err(|e| StorageIOError::read_state_machine(&e))?;
        let replica = match restored {
            Some(replica) => replica,
            None => match read_legacy(&tree)? {
                Some(stored) => {
                    restore_snapshot(&stored.data, table_config).map_err(|e| StorageIOError::read_state_machine(&e))?
                }
                None => Replica::new(table_config),
            },
        };
        let metrics = Arc::new(NodeMetrics::default());
        Ok(StateMachineStore { replica: Arc::new(Mutex::new(replica)), tree, file, table_config, io, metrics })
    }

    /// Counts the snapshots it builds in `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Arc<NodeMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Locks the replica for reading or applying. Never held across an `.await`.
    pub(crate) fn replica(&self) -> MutexGuard<'_, Replica> {
        // A panic while holding the lock cannot leave a half-applied entry visible to anyone but a crashing
        // node; recover the guard rather than propagate the poison.
        self.replica.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read_stored(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        match self.file.read().map_err(|e| StorageIOError::read_snapshot(None, &e))? {
            Some(stored) => Ok(Some(stored)),
            None => read_legacy(&self.tree),
        }
    }

    /// Writes `stored` to the snapshot file, durably, and gives it back; on a low-priority thread when `urgent`
    /// is false (a snapshot this node built: nothing waits for it).
    async fn persist(&self, stored: StoredSnapshot, urgent: bool) -> Result<StoredSnapshot, StorageError> {
        let (file, tree) = (self.file.clone(), self.tree.clone());
        let signature = Some(stored.meta.signature());
        let sig = signature.clone();
        let write = move || -> Result<StoredSnapshot, StorageError> {
            file.write(&stored).map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
            // The file supersedes what an older build kept in sled; not flushed (the file is read first).
            tree.remove(LEGACY_SNAPSHOT_KEY).map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
            Ok(stored)
        };
        match urgent {
            true => blocking(self.io, write).await.map_err(|e| StorageIOError::write_snapshot(signature, &e))?,
            false => background(self.io, write).await.map_err(|e| StorageIOError::write_snapshot(signature, &e))?,
        }
    }
}

/// The snapshot an older build kept in sled, if any.
fn read_legacy(tree: &sled::Tree) -> Result<Option<StoredSnapshot>, StorageError> {
    let Some(bytes) = tree.get(LEGACY_SNAPSHOT_KEY).map_err(|e| StorageIOError::read_snapshot(None, &e))? else {
        return Ok(None);
    };
    codec::decode(&bytes).map(Some).map_err(|e| StorageIOError::read_snapshot(None, &e).into())
}

/// A snapshot's data could not become a replica.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RestoreError {
    /// The data is not an encoded [`ReplicaSnapshot`].
    #[error("the snapshot does not decode: {0}")]
    Decode(#[from] codec::CodecError),
    /// It decodes, but its contents are inconsistent.
    #[error("the snapshot is malformed: {0}")]
    Malformed(#[from] quorate_core::CoreError),
}

/// Rebuilds a replica from a snapshot's data: from the disk at restart, or from the leader (InstallSnapshot).
///
/// # Errors
///
/// [`RestoreError`] if the data does not decode or describes no valid replica.
pub(crate) fn restore_snapshot(data: &[u8], table_config: TableConfig) -> Result<Replica, RestoreError> {
    let snapshot: ReplicaSnapshot = codec::decode(data)?;
    Ok(Replica::restore(table_config, snapshot)?)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        // Clone under the lock — copy-on-write pages, so microseconds even for a million keys, and checks never
        // wait for a snapshot — then sort and encode from the clone off the async threads, borrowing its keys.
        let started = std::time::Instant::now();
        let replica = self.replica().clone();
        let cloned = started.elapsed();
        let encode = move || -> Result<(SnapshotMeta, Vec<u8>), StorageError> {
            let data = codec::encode(&replica.snapshot_view()).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
            // Deterministic id: the same log position gives the same snapshot on every replica.
            let snapshot_id = match replica.last_applied {
                Some(id) => format!("{}-{}-{}", id.leader_id.term, id.leader_id.node_id, id.index),
                None => "empty".to_owned(),
            };
            let meta = SnapshotMeta {
                last_log_id: replica.last_applied,
                last_membership: replica.membership.clone(),
                snapshot_id,
            };
            Ok((meta, data))
        };
        let (meta, data) =
            background(self.io, encode).await.map_err(|e| StorageIOError::write_snapshot(None, &e))??;
        let encoded = started.elapsed();
        let StoredSnapshot { meta, data } = self.persist(StoredSnapshot { meta, data }, false).await?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            bytes = data.len(),
            clone_ms = cloned.as_secs_f64() * 1e3,
            encode_ms = (encoded - cloned).as_secs_f64() * 1e3,
            write_ms = (started.elapsed() - encoded).as_secs_f64() * 1e3,
            "built snapshot"
        );
        self.metrics.snapshots_built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics.snapshot_bytes.observe(data.len() as f64);
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let replica = self.replica();
        Ok((replica.last_applied, replica.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<EntryResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut replica = self.replica();
        let mut responses = Vec::new();
        for entry in entries {
            replica.last_applied = Some(entry.log_id);
            let response = match &entry.payload {
                EntryPayload::Blank => EntryResponse::Empty,
                EntryPayload::Normal(entry) => replica.apply(entry),
                EntryPayload::Membership(membership) => {
                    replica.membership = StoredMembership::new(Some(entry.log_id), membership.clone());
                    EntryResponse::Empty
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let restored = restore_snapshot(&data, self.table_config)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        // Urgent: this follower applies nothing until its snapshot is installed.
        self.persist(StoredSnapshot { meta: meta.clone(), data }, true).await?;
        *self.replica() = restored;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self
            .read_stored()?
            .map(|stored| Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) }))
    }
}

#[cfg(test)]
mod fuzz;
