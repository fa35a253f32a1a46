//! [`LocalJournal`]: every unit a node admitted on its own in `local` mode, on its disk before the answer leaves,
//! so that a restart never hands out the node's share a second time.
//!
//! The `local` degraded mode lets a node without a quorum admit up to 1/N of a limit per window by itself. That
//! share is a promise only if the node remembers what it spent: the node-local table lives in memory, so a node
//! that crashed and restarted during a partition used to start from a fresh share (found by restarting a cut-off
//! follower twice: 100 more admitted per run, no bound at all). Each local charge is therefore appended here and
//! flushed before its decision is answered; at start the node replays the journal into its local table.
//!
//! Records are keyed by sled's persistent id counter, so they replay in the order they were made; a record whose
//! limiter has become fresh again since (its time plus the limiter's [`period`](Limiter::period)) no longer
//! changes any decision and is pruned. Replaying only successful charges from an empty table, at the times they
//! were made, rebuilds at least the state they left: every replayed charge fits again, because no replay has
//! more history before it than the original had.

use compact_str::CompactString;
use quorate_core::{LimitRef, Limiter, LimiterTable, Nanos, PolicyId};
use serde::{Deserialize, Serialize};

use crate::io::{IoMode, blocking};
use crate::raft::codec;

/// The sled tree of the journal.
const TREE: &str = "local_journal";

/// Expired records pruned after each append, oldest first.
const PRUNE_PER_APPEND: usize = 16;

/// One unit count a node admitted alone: enough to charge it again with the same limiter and share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LocalCharge {
    /// The table id the key lives under.
    pub(crate) policy: PolicyId,
    /// The table key.
    pub(crate) key: CompactString,
    /// The limiter it was charged with.
    pub(crate) limiter: Limiter,
    /// The node's share of the limit in force when charged.
    pub(crate) share: u64,
    /// Units charged.
    pub(crate) cost: u64,
    /// The node's clock when charged.
    pub(crate) at: Nanos,
}

impl LocalCharge {
    fn limit(&self) -> LimitRef<'_> {
        LimitRef::new(self.policy, self.limiter, &self.key).with_effective_limit(self.share)
    }

    /// Whether the charge can no longer change a decision at `now`.
    fn expired(&self, now: Nanos) -> bool {
        self.at.saturating_add(self.limiter.period()) < now
    }
}

/// Charges the record `bytes` into `table` if it is still in force at `now`; returns false if it has expired.
///
/// # Errors
///
/// [`JournalError::Damaged`] if the record does not decode.
fn replay_record(table: &mut LimiterTable, bytes: &[u8], now: Nanos) -> Result<bool, JournalError> {
    let charge: LocalCharge = codec::decode(bytes)?;
    if charge.expired(now) {
        return Ok(false);
    }
    // A charge that no longer fits (the table is full) only leaves the node with less to spend.
    let _ = table.check_each(charge.at, &[charge.limit()], &[charge.cost]);
    Ok(true)
}

/// The journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    /// sled failed.
    #[error("the local-mode journal (sled tree `{TREE}`): {0}")]
    Storage(#[from] sled::Error),
    /// A record does not decode: the file was damaged.
    #[error("the local-mode journal (sled tree `{TREE}`) holds a damaged record: {0}")]
    Damaged(#[from] codec::CodecError),
    /// The flush did not run.
    #[error("the local-mode journal's flush did not run: {0}")]
    Flush(#[from] tokio::task::JoinError),
}

/// The `local` mode's charges, in this node's sled database.
#[derive(Debug, Clone)]
pub(crate) struct LocalJournal {
    db: sled::Db,
    tree: sled::Tree,
    io: IoMode,
}

impl LocalJournal {
    /// Opens the journal in `db`; flushes run as `io` says.
    ///
    /// # Errors
    ///
    /// If sled cannot open the tree.
    pub(crate) fn open(db: &sled::Db, io: IoMode) -> Result<Self, JournalError> {
        Ok(LocalJournal { db: db.clone(), tree: db.open_tree(TREE)?, io })
    }

    /// Charges every record still in force at `now` into `table`, in the order they were made, and drops the
    /// expired ones; returns how many were replayed.
    ///
    /// # Errors
    ///
    /// If a record cannot be read or decoded (the node should not start on a journal it cannot trust).
    pub(crate) fn replay(&self, table: &mut LimiterTable, now: Nanos) -> Result<usize, JournalError> {
        let mut replayed = 0;
        for item in self.tree.iter() {
            let (id, bytes) = item?;
            if replay_record(table, &bytes, now)? {
                replayed += 1;
            } else {
                self.tree.remove(id)?;
            }
        }
        Ok(replayed)
    }

    /// Appends `charges` and waits until they are on disk; prunes a few expired records on the way.
    ///
    /// # Errors
    ///
    /// If sled cannot write or flush: the caller must then not admit what it charged.
    pub(crate) async fn append(&self, charges: &[LocalCharge], now: Nanos) -> Result<(), JournalError> {
        let mut batch = sled::Batch::default();
        for charge in charges {
            batch.insert(&self.db.generate_id()?.to_be_bytes(), codec::encode(charge)?);
        }
        for item in self.tree.iter().take(PRUNE_PER_APPEND) {
            let (id, bytes) = item?;
            match codec::decode::<LocalCharge>(&bytes) {
                Ok(charge) if charge.expired(now) => batch.remove(id),
                _ => break,
            }
        }
        self.tree.apply_batch(batch)?;
        let tree = self.tree.clone();
        blocking(self.io, move || tree.flush()).await??;
        Ok(())
    }

    /// Records in the journal (expired ones included until pruned).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tree.len()
    }
}

/// Opens a sled database again once a dropped handle's threads have let go of its file lock (tests reopen
/// databases to prove what is on disk).
#[cfg(test)]
pub(crate) fn reopen(path: &std::path::Path) -> sled::Db {
    for _ in 0..100 {
        if let Ok(db) = sled::open(path) {
            return db;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sled::open(path).expect("the database reopens")
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use quorate_core::{SlidingWindow, TableConfig};

    use super::*;

    const MINUTE: Nanos = 60_000_000_000;
    const T0: Nanos = 1_795_000_000_000_000_000;

    fn charge(at: Nanos) -> LocalCharge {
        let limiter = SlidingWindow::new(30, MINUTE, 60).unwrap().into();
        LocalCharge { policy: 1, key: "api_key=k".into(), limiter, share: 10, cost: 1, at }
    }

    fn remaining(table: &mut LimiterTable, now: Nanos) -> u64 {
        table.peek_each(now, &[charge(now).limit()], &[1]).unwrap().decision.remaining
    }

    #[tokio::test]
    async fn a_reopened_journal_charges_the_share_again_and_forgets_what_expired() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let journal = LocalJournal::open(&db, IoMode::Background).unwrap();
            journal.append(&[charge(T0), charge(T0 + 1)], T0 + 1).await.unwrap();
            journal.append(&[charge(T0 + 2 * MINUTE)], T0 + 2 * MINUTE).await.unwrap();
        }
        let db = reopen(dir.path());
        let journal = LocalJournal::open(&db, IoMode::Background).unwrap();
        let mut table = LimiterTable::new(TableConfig::default());
        let now = T0 + 2 * MINUTE + 1;
        assert_eq!(journal.replay(&mut table, now).unwrap(), 1, "the first two are a window old");
        assert_eq!(remaining(&mut table, now), 9, "one of the share of 10 is spent");
        assert_eq!(journal.len(), 1);
    }

    #[tokio::test]
    async fn a_damaged_record_is_an_error_naming_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        db.open_tree(TREE).unwrap().insert(1u64.to_be_bytes(), &[0xff, 0x00][..]).unwrap();
        let journal = LocalJournal::open(&db, IoMode::Background).unwrap();
        let error = journal.replay(&mut LimiterTable::new(TableConfig::default()), T0).unwrap_err();
        assert!(error.to_string().contains("local_journal"), "{error}");
    }
}
