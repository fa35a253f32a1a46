//! The openraft state machine: applies committed entries to the [`Replica`] and builds and installs snapshots.
//!
//! Durability model (as rocksstore-v2): the replica lives in memory; a snapshot is persisted as a checksummed
//! file beside sled ([`SnapshotFile`]) each time one is built or installed. On restart the last snapshot is loaded and openraft re-applies the log
//! from there up to the committed index, so an admitted request is never forgotten ("restart never refunds").
//! Snapshots are built from a clone taken under the lock and encoded off the async threads.

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::replica::{Replica, ReplicaSnapshot};
use super::snapshot_file::{Pace, SnapshotFile, StoredSnapshot};
use super::typ::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership};
use super::{TypeConfig, codec};
use crate::command::EntryResponse;
use crate::io::{IoMode, Priority, background, blocking};
use crate::metrics::NodeMetrics;
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use quorate_core::TableConfig;
use quorate_core::policy::PolicySet;

/// Where builds before snapshot files kept the snapshot (tree `sm`): read when there is no file yet, removed
/// once a file replaces it.
const LEGACY_SNAPSHOT_KEY: &[u8] = b"snapshot";

/// A snapshot built at idle priority that took longer than this was starved (the node had no spare CPU): the
/// next one is built at [`Priority::Low`], which takes its share of a contended core, so the log is purged.
const STARVED_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// The state machine store handed to openraft; cheap to clone, all clones share the replica.
#[derive(Debug, Clone)]
pub(crate) struct StateMachineStore {
    replica: Arc<Mutex<Replica>>,
    /// The replica's policy set, published after each apply: every check reads it, and must not wait for the
    /// replica's lock, which an apply holds for a whole run of entries (milliseconds under batch load).
    policies: Arc<RwLock<Option<Arc<PolicySet>>>>,
    /// The legacy tree (see [`LEGACY_SNAPSHOT_KEY`]).
    tree: sled::Tree,
    file: SnapshotFile,
    table_config: TableConfig,
    io: IoMode,
    metrics: Arc<NodeMetrics>,
    /// Whether the last snapshot took longer than [`STARVED_AFTER`] (shared by the clones).
    starved: Arc<AtomicBool>,
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
        Ok(StateMachineStore {
            policies: Arc::new(RwLock::new(replica.policies.clone())),
            replica: Arc::new(Mutex::new(replica)),
            tree,
            file,
            table_config,
            io,
            metrics,
            starved: Arc::default(),
        })
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

    /// The policy set this node has applied, without taking the replica's lock.
    pub(crate) fn policies(&self) -> Option<Arc<PolicySet>> {
        self.policies.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Publishes `replica`'s policy set to [`StateMachineStore::policies`] if it changed.
    fn publish_policies(&self, replica: &Replica) {
        let current = self.policies.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let same = match (&*current, &replica.policies) {
            (Some(published), Some(applied)) => Arc::ptr_eq(published, applied),
            (None, None) => true,
            _ => false,
        };
        drop(current);
        if !same {
            *self.policies.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = replica.policies.clone();
        }
    }

    fn read_stored(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        match self.file.read().map_err(|e| StorageIOError::read_snapshot(None, &e))? {
            Some(stored) => Ok(Some(stored)),
            None => read_legacy(&self.tree),
        }
    }

    /// How a snapshot this node builds goes to the disk: yielding to the Raft log's syncs, except under
    /// simulation (IO runs inline there, on simulated time).
    fn background_pace(&self) -> Pace {
        match self.io {
            IoMode::Background => Pace::Yielding,
            IoMode::Inline => Pace::Full,
        }
    }

    /// Decodes a snapshot received from the leader into a replica and writes it to the snapshot file, durably
    /// and at full speed (this follower applies nothing until it is installed), off the async threads: both take
    /// seconds for a million keys.
    async fn restore_received(&self, stored: StoredSnapshot) -> Result<Replica, StorageError> {
        let (file, tree, table_config) = (self.file.clone(), self.tree.clone(), self.table_config);
        let signature = Some(stored.meta.signature());
        let sig = signature.clone();
        let restore = move || -> Result<Replica, StorageError> {
            let restored = restore_snapshot(&stored.data, table_config)
                .map_err(|e| StorageIOError::read_snapshot(sig.clone(), &e))?;
            file.write(&stored, Pace::Full).map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
            tree.remove(LEGACY_SNAPSHOT_KEY).map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
            Ok(restored)
        };
        blocking(self.io, restore).await.map_err(|e| StorageIOError::write_snapshot(signature, &e))?
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
        // Clone under the lock — copy-on-write pages, so milliseconds even for a million keys, and checks never
        // wait for a snapshot — then encode from the clone, borrowing its keys, straight into the file a chunk at
        // a time, on a low-priority thread: no copy of the snapshot's size is ever in memory.
        let started = std::time::Instant::now();
        let replica = self.replica().clone();
        let cloned = started.elapsed();
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
        let (file, tree) = (self.file.clone(), self.tree.clone());
        let signature = Some(meta.signature());
        let sig = signature.clone();
        let pace = self.background_pace();
        let write = move || -> Result<(SnapshotMeta, Option<u64>), StorageError> {
            let bytes = file
                .write_encoded(&meta, pace, |out| codec::encode_into(out, &replica.snapshot_view()))
                .map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
            // The file supersedes what an older build kept in sled; not flushed (the file is read first).
            tree.remove(LEGACY_SNAPSHOT_KEY).map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
            Ok((meta, bytes))
        };
        let priority = match self.starved.load(Ordering::Relaxed) {
            true => Priority::Low,
            false => Priority::Idle,
        };
        let (meta, bytes) =
            background(self.io, priority, write).await.map_err(|e| StorageIOError::write_snapshot(signature, &e))??;
        let took = started.elapsed();
        if took > STARVED_AFTER {
            tracing::warn!(
                took_s = took.as_secs_f64(),
                ?priority,
                "a snapshot took over {STARVED_AFTER:?}: the node has little spare CPU; the next one is built at a \
                 higher priority"
            );
        }
        self.starved.store(took > STARVED_AFTER, Ordering::Relaxed);
        let Some(bytes) = bytes else {
            // openraft ignores a built snapshot older than the one it has (engine `update_snapshot`).
            tracing::info!(snapshot = %meta.snapshot_id, "built snapshot dropped: a newer one was installed meanwhile");
            return Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(Vec::new())) });
        };
        tracing::info!(
            snapshot = %meta.snapshot_id,
            bytes,
            clone_ms = cloned.as_secs_f64() * 1e3,
            encode_and_write_ms = (started.elapsed() - cloned).as_secs_f64() * 1e3,
            "built snapshot"
        );
        self.metrics.snapshots_built.fetch_add(1, Ordering::Relaxed);
        self.metrics.snapshot_bytes.observe(bytes as f64);
        // Without its data: openraft 0.9 keeps only the metadata of a snapshot it has built (sm/worker.rs), and
        // reads the file through `get_current_snapshot` when a follower needs it.
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(Vec::new())) })
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
        self.publish_policies(&replica);
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
        let restored =
            self.restore_received(StoredSnapshot { meta: meta.clone(), data: snapshot.into_inner() }).await?;
        let replaced = {
            let mut replica = self.replica();
            let replaced = std::mem::replace(&mut *replica, restored);
            self.publish_policies(&replica);
            replaced
        };
        // Freed outside the lock and off the async threads: a million keys' pages.
        blocking(self.io, move || drop(replaced))
            .await
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        // Off the async threads: reading and checksumming half a gigabyte there would hold up every check the
        // worker serves (a follower that needs a snapshot, or a new member).
        let store = self.clone();
        let stored = blocking(self.io, move || store.read_stored())
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, &e))??;
        Ok(stored.map(|stored| Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) }))
    }
}

#[cfg(test)]
mod fuzz;
