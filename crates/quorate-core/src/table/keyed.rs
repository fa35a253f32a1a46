//! One policy's keys: a hash index over a slot arena, plus the expiry wheel that drives eviction.
//!
//! Lookups hash the key with a per-process random SipHash key (`RandomState`), which protects the index against
//! hash-flooding with crafted keys. The hash order never reaches anything observable: sweeps and snapshots work in
//! key order, so replicas with different hash seeds stay identical.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};

use compact_str::CompactString;
use hashbrown::HashTable;

use super::arena::Arena;
use crate::algorithm::Algorithm;
use crate::{Decision, Nanos};

/// Width of one expiry slot. Coarse on purpose: eviction only saves memory, it never changes a decision.
pub(super) const SLOT_NANOS: Nanos = 1_000_000_000;

/// The expiry slot in which a key whose state becomes fresh at `fresh_at` is examined: strictly after `fresh_at`.
pub(super) fn slot_after(fresh_at: Nanos) -> u32 {
    u32::try_from(fresh_at / SLOT_NANOS + 1).unwrap_or(u32::MAX)
}

/// The last slot that is due at `now`.
fn due_slot(now: Nanos) -> u32 {
    u32::try_from(now / SLOT_NANOS).unwrap_or(u32::MAX)
}

/// A tracked key and its state.
#[derive(Debug, Clone)]
pub(super) struct Entry<S> {
    pub(super) key: CompactString,
    pub(super) state: S,
}

/// What a charge found.
#[derive(Debug)]
pub(super) enum Lookup {
    /// The key was tracked already, or it was not and the request was denied (so it stays untracked).
    Existing(Decision),
    /// The key was new and is now tracked.
    Inserted(Decision),
}

/// The keys of one policy under algorithm `A`.
#[derive(Debug, Clone)]
pub(super) struct KeyedTable<A: Algorithm> {
    params: A,
    hasher: RandomState,
    /// Ids into `entries`, found by the hash of the entry's key.
    index: HashTable<u32>,
    entries: Arena<Entry<A::State>>,
    /// Ids of vacant `entries`, reused before the arena grows.
    vacant: Vec<u32>,
    /// Expiry slot -> ids waiting in it. Every tracked key is in exactly one slot or in `due`.
    wheel: BTreeMap<u32, Vec<u32>>,
    /// The slot being swept, in descending key order so that `pop` yields ascending keys.
    due: Vec<u32>,
    /// The wheel slot `due` was taken from.
    due_slot: u32,
    len: usize,
}

impl<A: Algorithm> KeyedTable<A> {
    pub(super) fn new(params: A) -> Self {
        KeyedTable {
            params,
            hasher: RandomState::new(),
            index: HashTable::new(),
            entries: Arena::default(),
            vacant: Vec::new(),
            wheel: BTreeMap::new(),
            due: Vec::new(),
            due_slot: 0,
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn params(&self) -> &A {
        &self.params
    }

    /// Adopts the policy's current parameters. Existing state keeps its meaning: counts stay counts, a bucket's
    /// theoretical arrival time stays a time.
    pub(super) fn set_params(&mut self, params: &A) {
        if self.params != *params {
            self.params = params.clone();
        }
    }

    fn find(&self, key: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        let entries = &self.entries;
        self.index.find(hash, |&id| entries.get(id).is_some_and(|e| e.key == key)).copied()
    }

    pub(super) fn contains(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    fn state_mut(&mut self, id: u32) -> Option<&mut A::State> {
        self.entries.get_mut(id).map(|e| &mut e.state)
    }

    /// Evaluates `cost` for `key` without charging or inserting.
    pub(super) fn peek(&mut self, now: Nanos, key: &str, cost: u64, limit: u64) -> Decision {
        let params = self.params.clone();
        match self.find(key).and_then(|id| self.state_mut(id)) {
            Some(state) => params.check(state, now, cost, limit, false),
            None => params.check(&mut A::State::default(), now, cost, limit, false),
        }
    }

    /// Charges `cost` to `key` if allowed, inserting the key if it is new and the charge went through.
    pub(super) fn charge(&mut self, now: Nanos, key: &str, cost: u64, limit: u64) -> Lookup {
        let params = self.params.clone();
        if let Some(state) = self.find(key).and_then(|id| self.state_mut(id)) {
            return Lookup::Existing(params.check(state, now, cost, limit, true));
        }
        let mut state = A::State::default();
        let decision = params.check(&mut state, now, cost, limit, true);
        if !decision.allowed {
            // Denied requests consume nothing, so the key's state is still fresh: keep it untracked.
            return Lookup::Existing(decision);
        }
        let fresh_at = params.fresh_at(&state);
        let id = self.insert(CompactString::from(key), state);
        self.wheel.entry(slot_after(fresh_at)).or_default().push(id);
        Lookup::Inserted(decision)
    }

    /// Gives `amount` back to `key` if it is tracked.
    pub(super) fn refund(&mut self, now: Nanos, key: &str, amount: u64, limit: u64) {
        let params = self.params.clone();
        if let Some(state) = self.find(key).and_then(|id| self.state_mut(id)) {
            params.refund(state, now, amount, limit);
        }
    }

    /// Gives back `amount` units charged to `key` at `charged_at` ([`Algorithm::return_units`]).
    pub(super) fn return_units(&mut self, charged_at: Nanos, now: Nanos, key: &str, amount: u64, limit: u64) {
        let params = self.params.clone();
        if let Some(state) = self.find(key).and_then(|id| self.state_mut(id)) {
            params.return_units(state, charged_at, now, amount, limit);
        }
    }

    /// Puts an entry in the arena and the index (not in the wheel) and returns its id.
    fn insert(&mut self, key: CompactString, state: A::State) -> u32 {
        let hash = self.hasher.hash_one(key.as_str());
        let entry = Entry { key, state };
        let id = match self.vacant.pop() {
            Some(id) if self.entries.get(id).is_none() && (id as usize) < self.entries.len() => {
                self.entries.put(id, entry);
                id
            }
            _ => self.entries.push(entry),
        };
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index.insert_unique(hash, id, |&other| entries.get(other).map_or(0, |e| hasher.hash_one(e.key.as_str())));
        self.len += 1;
        id
    }

    fn remove(&mut self, id: u32) {
        let Some(entry) = self.entries.take(id) else { return };
        let hash = self.hasher.hash_one(entry.key.as_str());
        if let Ok(found) = self.index.find_entry(hash, |&other| other == id) {
            found.remove();
        }
        self.vacant.push(id);
        self.len -= 1;
    }

    /// Examines up to `budget` due keys in key order, evicting those whose state is fresh at `now` and moving the
    /// others to the slot of their new expiry. Returns (examined, evicted).
    ///
    /// A key that is not fresh yet goes back to the wheel after the sweep, so one sweep examines each key at most
    /// once. Before the end of slot time (2106, when [`slot_after`] saturates at `u32::MAX`) its new slot is never
    /// due yet anyway; after it, a key put back into the due slot `u32::MAX` made a sweep with an unbounded budget
    /// (the one that makes room in a full table) loop forever.
    pub(super) fn sweep(&mut self, now: Nanos, budget: usize) -> (usize, usize) {
        let (mut examined, mut evicted) = (0, 0);
        let mut not_fresh = Vec::new();
        while examined < budget {
            if self.due.is_empty() && !self.take_due_slot(now) {
                break;
            }
            let Some(id) = self.due.pop() else { break };
            examined += 1;
            let Some(entry) = self.entries.get(id) else { continue };
            let fresh_at = self.params.fresh_at(&entry.state);
            if fresh_at <= now {
                self.remove(id);
                evicted += 1;
            } else {
                not_fresh.push((slot_after(fresh_at), id));
            }
        }
        for (slot, id) in not_fresh {
            self.wheel.entry(slot).or_default().push(id);
        }
        (examined, evicted)
    }

    /// Moves the earliest due wheel slot into `due`, sorted by key. Returns false if no slot is due.
    fn take_due_slot(&mut self, now: Nanos) -> bool {
        let Some(entry) = self.wheel.first_entry() else { return false };
        if *entry.key() > due_slot(now) {
            return false;
        }
        let (slot, mut ids) = entry.remove_entry();
        let entries = &self.entries;
        let key_of = |id: &u32| entries.get(*id).map(|e| e.key.as_str());
        ids.sort_unstable_by(|a, b| key_of(b).cmp(&key_of(a)));
        self.due = ids;
        self.due_slot = slot;
        true
    }

    /// Every tracked key, sorted.
    pub(super) fn sorted_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.entries.iter().map(|(_, e)| e.key.as_str()).collect();
        keys.sort_unstable();
        keys
    }

    /// Every tracked entry with its expiry slot, sorted by key: the snapshot form.
    pub(super) fn sorted_entries(&self) -> Vec<(&Entry<A::State>, u32)> {
        let mut slot_of = vec![0u32; self.entries.len()];
        for (&slot, ids) in &self.wheel {
            for &id in ids {
                slot_of[id as usize] = slot;
            }
        }
        for &id in &self.due {
            slot_of[id as usize] = self.due_slot;
        }
        let mut out: Vec<(&Entry<A::State>, u32)> =
            self.entries.iter().map(|(id, e)| (e, slot_of.get(id as usize).copied().unwrap_or(0))).collect();
        out.sort_unstable_by(|a, b| a.0.key.cmp(&b.0.key));
        out
    }

    /// Adds a restored entry. Returns false if the key is already present.
    pub(super) fn restore_entry(&mut self, key: CompactString, state: A::State, slot: u32) -> bool {
        if self.contains(&key) {
            return false;
        }
        let id = self.insert(key, state);
        self.wheel.entry(slot).or_default().push(id);
        true
    }
}
