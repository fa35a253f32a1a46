//! [`TableSnapshot`]: the compact, canonical serde form of a [`LimiterTable`].
//!
//! Keys are listed per policy in sorted order with their state and expiry slot, so equal tables give equal bytes
//! under any deterministic serde format, and a restored table sweeps exactly as the original would have.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::keyed::KeyedTable;
use super::{LimiterTable, PolicyId, PolicyTable, TableConfig};
use crate::algorithm::Algorithm;
use crate::{CoreError, FixedWindow, Nanos, SlidingWindow, TokenBucket, WindowCounter};

/// A point-in-time copy of a [`LimiterTable`]'s state, for Raft snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSnapshot {
    now: Nanos,
    policies: Vec<PolicySnapshot>,
}

/// A [`TableSnapshot`] that borrows the table instead of copying it: it serializes to exactly the same bytes
/// under any serde format, without a second copy of every key and state in memory (half a gigabyte for a
/// million sliding-window keys). Take it from a clone of the table (cheap: see `arena`) to encode a snapshot
/// while the original goes on changing.
#[derive(Debug, Serialize)]
pub struct TableSnapshotView<'a> {
    now: Nanos,
    policies: Vec<PolicySnapshotView<'a>>,
}

/// [`PolicySnapshot`], borrowed: the same variants in the same order, so the same tags.
#[derive(Debug, Serialize)]
enum PolicySnapshotView<'a> {
    TokenBucket(KeyedSnapshotView<'a, TokenBucket>),
    SlidingWindow(KeyedSnapshotView<'a, SlidingWindow>),
    WindowCounter(KeyedSnapshotView<'a, WindowCounter>),
    FixedWindow(KeyedSnapshotView<'a, FixedWindow>),
}

/// [`KeyedSnapshot`], borrowed.
#[derive(Debug, Serialize)]
#[serde(bound(serialize = "A: Serialize"))]
struct KeyedSnapshotView<'a, A: Algorithm> {
    policy: PolicyId,
    params: &'a A,
    entries: Vec<(&'a CompactString, u32, &'a A::State)>,
}

/// The keys of one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PolicySnapshot {
    TokenBucket(KeyedSnapshot<TokenBucket>),
    SlidingWindow(KeyedSnapshot<SlidingWindow>),
    WindowCounter(KeyedSnapshot<WindowCounter>),
    FixedWindow(KeyedSnapshot<FixedWindow>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "A: Serialize", deserialize = "A: Deserialize<'de>"))]
struct KeyedSnapshot<A: Algorithm> {
    policy: PolicyId,
    params: A,
    /// (key, expiry slot, state), sorted by key.
    entries: Vec<(CompactString, u32, A::State)>,
}

impl TableSnapshot {
    /// The number of keys in the snapshot.
    pub fn len(&self) -> usize {
        self.policies.iter().map(|p| any_snapshot!(p, |s| s.entries.len())).sum()
    }

    /// Returns true if the snapshot holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

macro_rules! any_snapshot {
    ($snapshot:expr, |$s:ident| $body:expr) => {
        match $snapshot {
            PolicySnapshot::TokenBucket($s) => $body,
            PolicySnapshot::SlidingWindow($s) => $body,
            PolicySnapshot::WindowCounter($s) => $body,
            PolicySnapshot::FixedWindow($s) => $body,
        }
    };
}
use any_snapshot;

fn snapshot_of<A: Algorithm>(policy: PolicyId, table: &KeyedTable<A>) -> KeyedSnapshot<A> {
    KeyedSnapshot {
        policy,
        params: table.params().clone(),
        entries: table
            .sorted_entries()
            .into_iter()
            .map(|(entry, slot)| (entry.key.clone(), slot, entry.state.clone()))
            .collect(),
    }
}

fn view_of<A: Algorithm>(policy: PolicyId, table: &KeyedTable<A>) -> KeyedSnapshotView<'_, A> {
    KeyedSnapshotView {
        policy,
        params: table.params(),
        entries: table.sorted_entries().into_iter().map(|(entry, slot)| (&entry.key, slot, &entry.state)).collect(),
    }
}

fn restore_keyed<A: Algorithm>(snapshot: KeyedSnapshot<A>) -> Result<KeyedTable<A>, CoreError> {
    let mut table = KeyedTable::new(snapshot.params);
    for (key, slot, state) in snapshot.entries {
        if !table.restore_entry(key, state, slot) {
            return Err(CoreError::invalid("snapshot", format!("policy #{} lists a key twice", snapshot.policy)));
        }
    }
    Ok(table)
}

impl LimiterTable {
    /// Copies the table's state into its canonical snapshot form.
    pub fn snapshot(&self) -> TableSnapshot {
        let policies = self
            .policies
            .iter()
            .map(|(&id, table)| match table {
                PolicyTable::TokenBucket(t) => PolicySnapshot::TokenBucket(snapshot_of(id, t)),
                PolicyTable::SlidingWindow(t) => PolicySnapshot::SlidingWindow(snapshot_of(id, t)),
                PolicyTable::WindowCounter(t) => PolicySnapshot::WindowCounter(snapshot_of(id, t)),
                PolicyTable::FixedWindow(t) => PolicySnapshot::FixedWindow(snapshot_of(id, t)),
            })
            .collect();
        TableSnapshot { now: self.now, policies }
    }

    /// The table's snapshot form, borrowed: serializes to the same bytes as [`LimiterTable::snapshot`] without
    /// copying the keys and states.
    pub fn snapshot_view(&self) -> TableSnapshotView<'_> {
        let policies = self
            .policies
            .iter()
            .map(|(&id, table)| match table {
                PolicyTable::TokenBucket(t) => PolicySnapshotView::TokenBucket(view_of(id, t)),
                PolicyTable::SlidingWindow(t) => PolicySnapshotView::SlidingWindow(view_of(id, t)),
                PolicyTable::WindowCounter(t) => PolicySnapshotView::WindowCounter(view_of(id, t)),
                PolicyTable::FixedWindow(t) => PolicySnapshotView::FixedWindow(view_of(id, t)),
            })
            .collect();
        TableSnapshotView { now: self.now, policies }
    }

    /// Rebuilds a table from a snapshot; it then answers every call exactly as the snapshotted table would.
    ///
    /// A snapshot may hold more keys than `config.max_keys` (the cap was lowered): they are kept, and new keys are
    /// refused until enough have been evicted.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if the snapshot names a policy or a key twice (it was not made by
    /// [`LimiterTable::snapshot`]).
    pub fn restore(config: TableConfig, snapshot: TableSnapshot) -> Result<Self, CoreError> {
        let mut table = LimiterTable::new(config);
        table.now = snapshot.now;
        for policy in snapshot.policies {
            let id = any_snapshot!(&policy, |s| s.policy);
            let restored = match policy {
                PolicySnapshot::TokenBucket(s) => PolicyTable::TokenBucket(restore_keyed(s)?),
                PolicySnapshot::SlidingWindow(s) => PolicyTable::SlidingWindow(restore_keyed(s)?),
                PolicySnapshot::WindowCounter(s) => PolicyTable::WindowCounter(restore_keyed(s)?),
                PolicySnapshot::FixedWindow(s) => PolicyTable::FixedWindow(restore_keyed(s)?),
            };
            table.len += restored.len();
            if table.policies.insert(id, restored).is_some() {
                return Err(CoreError::invalid("snapshot", format!("policy #{id} appears twice")));
            }
        }
        Ok(table)
    }
}

#[cfg(test)]
impl TableSnapshot {
    /// Test access to a token-bucket policy's entries, to build malformed snapshots.
    pub(super) fn token_bucket_entries_mut(
        &mut self,
        policy: PolicyId,
    ) -> Option<&mut Vec<(CompactString, u32, crate::TokenBucketState)>> {
        self.policies.iter_mut().find_map(|p| match p {
            PolicySnapshot::TokenBucket(s) if s.policy == policy => Some(&mut s.entries),
            _ => None,
        })
    }
}
