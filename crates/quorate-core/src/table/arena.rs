//! [`Arena`]: the slots a policy's keys live in, in shared pages, so that a copy of a whole table costs one
//! reference count per page instead of a copy of every key.
//!
//! A snapshot needs the table as of one log position while entries keep being applied. Copying a million
//! sliding-window keys under the replica's lock (half a gigabyte) stalled every check for the length of the copy.
//! Pages are copy-on-write instead: [`Clone`] shares them, and the first write to a shared page after a clone
//! copies that page alone ([`Arc::make_mut`]), so a copy taken for a snapshot costs microseconds, and the memory
//! it holds is bounded by the pages written while the snapshot is encoded.

use std::sync::Arc;

/// Slots per page: small enough that the first write to a shared page copies little, large enough that a clone
/// touches few reference counts (16,000 for a million keys).
const PAGE: usize = 64;

/// A page of slots, stored inline in its `Arc`'s allocation: reaching a slot costs one pointer more than a flat
/// vector (the cold-key lookup measured 190 ns slower with a `Vec` inside the `Arc`, two pointers more).
type Page<T> = [Option<T>; PAGE];

/// Slots indexed by `u32` ids; each holds a `T` or is vacant.
#[derive(Debug)]
pub(super) struct Arena<T> {
    pages: Vec<Arc<Page<T>>>,
    /// Slots in use or vacant: ids below it are valid.
    len: usize,
}

impl<T> Clone for Arena<T> {
    fn clone(&self) -> Self {
        Arena { pages: self.pages.clone(), len: self.len }
    }
}

impl<T> Default for Arena<T> {
    fn default() -> Self {
        Arena { pages: Vec::new(), len: 0 }
    }
}

impl<T: Clone> Arena<T> {
    /// The number of slots, vacant ones included.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The value in slot `id`, if it holds one.
    pub(super) fn get(&self, id: u32) -> Option<&T> {
        let id = id as usize;
        self.pages.get(id / PAGE)?.get(id % PAGE)?.as_ref()
    }

    /// The value in slot `id` for writing, if it holds one; copies the slot's page first if a clone shares it.
    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.slot_mut(id)?.as_mut()
    }

    /// Empties slot `id`, returning what it held.
    pub(super) fn take(&mut self, id: u32) -> Option<T> {
        self.slot_mut(id)?.take()
    }

    /// Puts `value` in the existing slot `id`; returns false if there is no such slot.
    pub(super) fn put(&mut self, id: u32, value: T) -> bool {
        match self.slot_mut(id) {
            Some(slot) => {
                *slot = Some(value);
                true
            }
            None => false,
        }
    }

    /// Appends a slot holding `value` and returns its id.
    pub(super) fn push(&mut self, value: T) -> u32 {
        if self.len % PAGE == 0 {
            self.pages.push(Arc::new(std::array::from_fn(|_| None)));
        }
        let slot = self.len % PAGE;
        if let Some(page) = self.pages.last_mut() {
            Arc::make_mut(page)[slot] = Some(value);
        }
        self.len += 1;
        // The table's key cap keeps the arena far below u32::MAX slots.
        u32::try_from(self.len - 1).unwrap_or(u32::MAX)
    }

    /// Every held value with its id, in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.pages.iter().flat_map(|page| page.iter()).take(self.len).enumerate().filter_map(|(id, slot)| {
            let id = u32::try_from(id).ok()?;
            slot.as_ref().map(|value| (id, value))
        })
    }

    fn slot_mut(&mut self, id: u32) -> Option<&mut Option<T>> {
        let id = id as usize;
        if id >= self.len {
            return None;
        }
        Arc::make_mut(self.pages.get_mut(id / PAGE)?).get_mut(id % PAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_iterated_in_id_order() {
        let mut arena = Arena::default();
        let ids: Vec<u32> = (0..150).map(|i| arena.push(i)).collect();
        assert_eq!(ids, (0..150).collect::<Vec<_>>());
        assert_eq!(arena.take(70), Some(70));
        assert_eq!(arena.get(70), None);
        assert!(arena.put(70, 700));
        assert!(!arena.put(150, 1));
        *arena.get_mut(149).unwrap_or(&mut 0) += 1;
        let held: Vec<(u32, i32)> = arena.iter().map(|(id, v)| (id, *v)).collect();
        assert_eq!(held.len(), 150);
        assert_eq!(held[70], (70, 700));
        assert_eq!(held[149], (149, 150));
        assert_eq!(arena.len(), 150);
    }

    #[test]
    fn a_clone_keeps_what_it_saw_while_the_original_changes() {
        let mut arena = Arena::default();
        for i in 0..200 {
            arena.push(i);
        }
        let frozen = arena.clone();
        for id in 0..200 {
            if let Some(value) = arena.get_mut(id) {
                *value += 1000;
            }
        }
        arena.take(5);
        arena.push(-1);
        assert!(frozen.iter().all(|(id, v)| *v == id as i32));
        assert_eq!(frozen.len(), 200);
        assert_eq!(arena.get(0), Some(&1000));
        assert_eq!(arena.get(5), None);
        assert_eq!(arena.get(200), Some(&-1));
    }
}
