//! The watermark: a small file beside sled recording how far this node's Raft state is known to be durable,
//! so that a start can tell a database that went back in time from one that is merely behind.
//!
//! Raft's safety rests on a node never forgetting a vote it cast or an entry it acknowledged. sled cannot
//! promise that on its own: when its recovery meets a damaged segment or blob it takes it for a torn write and
//! silently truncates everything after it (measured: a node came back without 78 entries it had fsynced and
//! acknowledged). The watermark is written only *after* sled has flushed what it records, so at start the
//! database must hold at least as much; anything less is damage, and the node refuses to start
//! ([`super::integrity`]).
//!
//! What it records, and when:
//! - the last vote, synchronously after sled flushed it (votes change once per term);
//! - a committed log index, raised at most every [`RAISE_EVERY`] by the flusher thread after an fsync that
//!   covered it, and at each purge. Committed entries are never truncated, so the mark only rises. It may lag
//!   the truth (a crash just after a commit), never lead it: detection misses a loss of the last
//!   [`RAISE_EVERY`] of entries, never accuses a healthy directory.
//!
//! Layout: two 40-byte slots written alternately in place (`pwrite` + `fdatasync`), each with a sequence number
//! and a CRC-32, so a write torn by a crash damages only the slot being written and the other still holds the
//! previous mark.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::typ::Vote;

/// The file's name in the data directory.
pub(crate) const FILE_NAME: &str = "raft.watermark";
/// How often the flusher thread raises the committed mark, at most.
pub(crate) const RAISE_EVERY: Duration = Duration::from_millis(50);
/// Sequence, term, node, flags, index, checksum.
const SLOT_LEN: usize = 40;
/// The bytes a slot's checksum covers.
const CHECKED_LEN: usize = 36;
const HAS_VOTE: u8 = 1;
const VOTE_COMMITTED: u8 = 2;
const HAS_INDEX: u8 = 4;

/// What the watermark says is durable in the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    /// The last vote saved and flushed.
    pub(crate) vote: Option<Vote>,
    /// A log index known committed and flushed: the database must hold it (as an entry, purged behind a
    /// snapshot, or inside the snapshot).
    pub(crate) committed: Option<u64>,
}

/// The watermark file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WatermarkError {
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Neither slot holds a valid mark.
    #[error("{}: neither copy of the mark passes its checksum: the file is damaged", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
    },
}

/// The watermark of one data directory; shared by the log store and its flusher thread.
#[derive(Debug)]
pub(crate) struct Watermark {
    path: PathBuf,
    state: Mutex<State>,
    /// The committed index (+1; 0 = none) written to sled and not yet known flushed.
    staged: AtomicU64,
}

#[derive(Debug)]
struct State {
    mark: Mark,
    /// The sequence number of the last slot written.
    seq: u64,
    /// Opened on the first write.
    file: Option<File>,
}

impl Watermark {
    /// Reads the watermark of `dir`; the returned mark is `None` when there is no file yet (a new node, or a
    /// data directory from before watermarks).
    ///
    /// # Errors
    ///
    /// [`WatermarkError`] if the file cannot be read or neither of its slots is valid.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Option<Mark>), WatermarkError> {
        let path = dir.join(FILE_NAME);
        let found = match fs::read(&path) {
            Ok(bytes) => {
                let best = bytes.chunks_exact(SLOT_LEN).filter_map(decode_slot).max_by_key(|(seq, _)| *seq);
                Some(best.ok_or_else(|| WatermarkError::Damaged { path: path.clone() })?)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(WatermarkError::Io { path, source }),
        };
        let (seq, mark) = found.unwrap_or_default();
        let file = match found {
            Some(_) => Some(
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|source| WatermarkError::Io { path: path.clone(), source })?,
            ),
            None => None,
        };
        let watermark = Watermark {
            path,
            state: Mutex::new(State { mark, seq, file }),
            staged: AtomicU64::new(mark.committed.map_or(0, |i| i + 1)),
        };
        Ok((watermark, found.map(|(_, mark)| mark)))
    }

    /// The file's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records `vote`, durably. Call only after sled has flushed it.
    ///
    /// # Errors
    ///
    /// If the file cannot be written or synced.
    pub(crate) fn record_vote(&self, vote: Vote) -> io::Result<()> {
        let mut state = self.lock();
        let mark = Mark { vote: Some(vote), ..state.mark };
        self.write(&mut state, mark)
    }

    /// Notes that sled now holds `index` as committed, not yet flushed.
    pub(crate) fn stage_committed(&self, index: u64) {
        self.staged.fetch_max(index.saturating_add(1), Ordering::Relaxed);
    }

    /// What [`stage_committed`](Self::stage_committed) noted so far; read it *before* a flush, then pass it to
    /// [`raise_committed`](Self::raise_committed) after the flush succeeded.
    pub(crate) fn staged(&self) -> Option<u64> {
        self.staged.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Raises the committed mark to `index`, durably, if it is higher. Call only once sled has flushed it.
    ///
    /// # Errors
    ///
    /// If the file cannot be written or synced.
    pub(crate) fn raise_committed(&self, index: u64) -> io::Result<()> {
        let mut state = self.lock();
        if state.mark.committed.is_some_and(|c| c >= index) {
            return Ok(());
        }
        let mark = Mark { committed: Some(index), ..state.mark };
        self.write(&mut state, mark)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes `mark` into the slot not holding the current one, syncs, and makes it current.
    fn write(&self, state: &mut State, mark: Mark) -> io::Result<()> {
        let seq = state.seq + 1;
        let slot = encode_slot(seq, &mark);
        match &state.file {
            Some(file) => {
                file.write_at(&slot, (seq % 2) * SLOT_LEN as u64)?;
                file.sync_data()?;
            }
            None => {
                // First write: the whole file, both slots, through a rename so it never exists half-written.
                let temp = self.path.with_extension("tmp");
                let mut both = slot.to_vec();
                both.extend_from_slice(&slot);
                fs::write(&temp, &both)?;
                File::open(&temp)?.sync_all()?;
                fs::rename(&temp, &self.path)?;
                if let Some(dir) = self.path.parent() {
                    File::open(dir)?.sync_all()?;
                }
                state.file = Some(OpenOptions::new().write(true).open(&self.path)?);
            }
        }
        state.seq = seq;
        state.mark = mark;
        Ok(())
    }
}

fn encode_slot(seq: u64, mark: &Mark) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    let mut flags = 0;
    let (term, node) = match mark.vote {
        Some(vote) => {
            flags |= HAS_VOTE;
            if vote.committed {
                flags |= VOTE_COMMITTED;
            }
            (vote.leader_id.term, vote.leader_id.node_id)
        }
        None => (0, 0),
    };
    if mark.committed.is_some() {
        flags |= HAS_INDEX;
    }
    slot[0..8].copy_from_slice(&seq.to_le_bytes());
    slot[8..16].copy_from_slice(&term.to_le_bytes());
    slot[16..24].copy_from_slice(&node.to_le_bytes());
    slot[24] = flags;
    slot[28..36].copy_from_slice(&mark.committed.unwrap_or(0).to_le_bytes());
    let crc = crc32fast::hash(&slot[..CHECKED_LEN]);
    slot[CHECKED_LEN..].copy_from_slice(&crc.to_le_bytes());
    slot
}

/// The sequence number and mark of a valid slot; `None` for a torn, zeroed or foreign one.
fn decode_slot(slot: &[u8]) -> Option<(u64, Mark)> {
    let u64_at = |at: usize| slot.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let crc = u32::from_le_bytes(slot.get(CHECKED_LEN..SLOT_LEN)?.try_into().ok()?);
    if crc != crc32fast::hash(slot.get(..CHECKED_LEN)?) {
        return None;
    }
    let (seq, term, node, flags, index) = (u64_at(0)?, u64_at(8)?, u64_at(16)?, *slot.get(24)?, u64_at(28)?);
    let vote = (flags & HAS_VOTE != 0).then(|| match flags & VOTE_COMMITTED != 0 {
        true => Vote::new_committed(term, node),
        false => Vote::new(term, node),
    });
    let committed = (flags & HAS_INDEX != 0).then_some(index);
    Some((seq, Mark { vote, committed }))
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;

    #[test]
    fn marks_survive_reopening_and_only_rise() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let (watermark, found) = Watermark::open(dir.path())?;
        assert_eq!(found, None);
        watermark.record_vote(Vote::new(3, 2))?;
        watermark.raise_committed(40)?;
        watermark.raise_committed(12)?;
        watermark.record_vote(Vote::new_committed(4, 1))?;
        drop(watermark);

        let (watermark, found) = Watermark::open(dir.path())?;
        assert_eq!(found, Some(Mark { vote: Some(Vote::new_committed(4, 1)), committed: Some(40) }));
        assert_eq!(watermark.staged(), Some(40));
        watermark.stage_committed(55);
        watermark.stage_committed(50);
        assert_eq!(watermark.staged(), Some(55));
        Ok(())
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_previous_mark() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let (watermark, _) = Watermark::open(dir.path())?;
        watermark.raise_committed(7)?;
        watermark.raise_committed(9)?;
        drop(watermark);
        // The second write went to slot 0 (sequence 2); tear it.
        let file = OpenOptions::new().write(true).open(dir.path().join(FILE_NAME))?;
        file.write_at(&[0xFF; 10], 4)?;
        let (_, found) = Watermark::open(dir.path())?;
        assert_eq!(found.and_then(|m| m.committed), Some(7));

        file.write_at(&[0xFF; 10], SLOT_LEN as u64 + 4)?;
        let error = Watermark::open(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("damaged") && error.contains(FILE_NAME), "{error}");
        Ok(())
    }
}
