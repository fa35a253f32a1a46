//! The node's current snapshot as one checksummed file beside sled, replaced atomically.
//!
//! Snapshots used to be a sled value. A large value lives in sled's `blobs/` directory, and when a blob was
//! damaged (4 KiB of garbage, a truncation) sled's recovery took it for a torn write and silently rolled the
//! whole database back to an older state, log entries the node had acknowledged included. A file of our own
//! fails loudly instead: it carries the length and a CRC-32 of its contents, and any mismatch is a
//! [`SnapshotFileError`] naming the file.
//!
//! Layout: [`MAGIC`] (4 bytes), the payload's length (`u64` little-endian), its CRC-32 (`u32` little-endian),
//! then the payload: the metadata's length (`u32`), the metadata ([`codec`](super::codec), itself versioned) and
//! the encoded replica. A new snapshot is written to a
//! temporary file, synced, renamed over the old one and the directory synced, so a crash leaves either the old
//! snapshot or the new one, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::codec::{self, CodecError};
use super::typ::{LogId, SnapshotMeta};

/// What every snapshot file starts with.
const MAGIC: [u8; 4] = *b"QRTS";
/// Magic, length and checksum.
const HEADER_LEN: usize = 4 + 8 + 4;
/// The file's name in the data directory.
pub(crate) const FILE_NAME: &str = "snapshot.qrs";
/// How much of a snapshot is written before it is synced: bounds the dirty data a Raft log sync can wait for.
const SYNC_EVERY: usize = 1 << 20;
/// Where a snapshot this node builds is written before it replaces the old one.
const TEMP_NAME: &str = "snapshot.qrs.tmp";
/// Where a snapshot received from the leader is written before it replaces the old one: a build (seconds long at
/// idle priority) and an install can be under way at once, and each needs a temporary file of its own.
const RECEIVED_TEMP_NAME: &str = "snapshot.qrs.received.tmp";
/// A second name the old snapshot keeps while it is shrunk away after being replaced.
const RETIRED_NAME: &str = "snapshot.qrs.retired";
/// How much of a retired snapshot one step of [`Pace::Yielding`] frees.
const SHRINK_STEP: u64 = 16 << 20;

/// How fast a snapshot goes to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// As fast as the disk takes it: something waits for this snapshot (one installed from the leader).
    Full,
    /// Leaving the disk idle after each synced chunk for as long as that chunk took, so the Raft log's syncs
    /// find a short queue, and freeing the replaced snapshot's blocks a step at a time: for snapshots this node
    /// builds, which nothing waits for.
    Yielding,
}

/// A snapshot as stored: its metadata and the encoded [`ReplicaSnapshot`](super::replica::ReplicaSnapshot).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    /// What openraft knows the snapshot by: its last log id, membership and id.
    pub(crate) meta: SnapshotMeta,
    /// The encoded replica.
    pub(crate) data: Vec<u8>,
}

/// The snapshot file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotFileError {
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file is not a snapshot file, or is shorter than its header says.
    #[error("{}: {problem}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The contents do not match the checksum written with them.
    #[error(
        "{}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is damaged",
        path.display()
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The checksum in the header.
        stored: u32,
        /// The checksum of what is on disk.
        computed: u32,
    },
    /// The contents pass the checksum but are not a snapshot this build reads (a newer format, say).
    #[error("{}: {source}", path.display())]
    Codec {
        /// The file.
        path: PathBuf,
        /// What the codec said.
        source: codec::CodecError,
    },
}

/// The snapshot file of one data directory; cheap to clone, clones share the file.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotFile {
    dir: PathBuf,
    /// The last log id of the newest snapshot this process put in place, held while one replaces another (so
    /// that a snapshot built before a newer one was installed never puts the file back to the older one) and
    /// while the file is read (so that a reader never sees the old file shrunk away under it).
    newest: Arc<Mutex<Option<Option<LogId>>>>,
}

impl SnapshotFile {
    /// The snapshot file in `dir` (which need not hold one yet).
    pub(crate) fn new(dir: &Path) -> Self {
        SnapshotFile { dir: dir.to_path_buf(), newest: Arc::default() }
    }

    /// The file's path, for messages.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Reads, verifies and decodes the snapshot; `None` when there is no snapshot file.
    ///
    /// # Errors
    ///
    /// [`SnapshotFileError`] if the file cannot be read, is not a snapshot file, is truncated or extended, fails
    /// its checksum or its metadata does not decode.
    pub(crate) fn read(&self) -> Result<Option<StoredSnapshot>, SnapshotFileError> {
        let Some(mut payload) = self.read_payload()? else { return Ok(None) };
        let malformed = |problem: &str| SnapshotFileError::Malformed { path: self.path(), problem: problem.to_owned() };
        let (len, rest) = payload.split_first_chunk::<4>().ok_or_else(|| malformed("no metadata length"))?;
        let meta_len = u32::from_le_bytes(*len) as usize;
        let meta_bytes = rest.get(..meta_len).ok_or_else(|| malformed("metadata longer than the file"))?;
        let meta =
            codec::decode(meta_bytes).map_err(|source| SnapshotFileError::Codec { path: self.path(), source })?;
        // The data is the rest: shift it down in place rather than copy a snapshot of hundreds of megabytes.
        payload.drain(..4 + meta_len);
        Ok(Some(StoredSnapshot { meta, data: payload }))
    }

    /// Replaces the snapshot with `snapshot`, durably: when this returns, a crash leaves the new snapshot.
    ///
    /// # Errors
    ///
    /// [`SnapshotFileError`] if encoding, writing, syncing or renaming fails; the old snapshot is then still in
    /// place.
    pub(crate) fn write(&self, snapshot: &StoredSnapshot, pace: Pace) -> Result<(), SnapshotFileError> {
        // A newer snapshot already in place (never expected for one received from the leader) stays.
        self.write_encoded(&snapshot.meta, pace, |out| Ok(out.write_all(&snapshot.data)?)).map(|_| ())
    }

    /// Replaces the snapshot with one whose data `encode` writes, durably, and returns the data's length; `None`
    /// when a newer snapshot was put in place meanwhile, which then stays. The data streams to the disk a chunk at
    /// a time ([`SYNC_EVERY`]) as it is encoded, so a snapshot never needs its size in memory (half a gigabyte
    /// for a million sliding-window keys).
    ///
    /// # Errors
    ///
    /// [`SnapshotFileError`] if `encode`, writing, syncing or renaming fails; the old snapshot is then still in
    /// place.
    pub(crate) fn write_encoded<F>(
        &self,
        meta: &SnapshotMeta,
        pace: Pace,
        encode: F,
    ) -> Result<Option<u64>, SnapshotFileError>
    where
        F: FnOnce(&mut PayloadWriter) -> Result<(), CodecError>,
    {
        let position = meta.last_log_id;
        let meta = codec::encode(meta).map_err(|source| SnapshotFileError::Codec { path: self.path(), source })?;
        let meta_len = u32::try_from(meta.len()).map_err(|_| SnapshotFileError::Malformed {
            path: self.path(),
            problem: "metadata over 4 GiB".to_owned(),
        })?;
        let mut data_len = 0;
        let placed = self.write_payload_with(pace, position, |out| {
            out.write_all(&meta_len.to_le_bytes())?;
            out.write_all(&meta)?;
            let before = out.written;
            encode(out)?;
            data_len = out.written - before;
            Ok(())
        })?;
        Ok(placed.then_some(data_len))
    }

    /// Reads and verifies the payload; `None` when there is no snapshot file.
    fn read_payload(&self) -> Result<Option<Vec<u8>>, SnapshotFileError> {
        let path = self.path();
        // Read under the lock a replacement holds: a file opened just before it is renamed over is the one the
        // replacement then shrinks away, and would read back truncated.
        let read = {
            let _replacing = self.newest.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            fs::read(&path)
        };
        let mut bytes = match read {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SnapshotFileError::Io { path, source }),
        };
        let malformed = |problem: String| SnapshotFileError::Malformed { path: path.clone(), problem };
        let Some((header, payload)) = bytes.split_at_checked(HEADER_LEN) else {
            return Err(malformed(format!("{} bytes, shorter than the {HEADER_LEN}-byte header", bytes.len())));
        };
        let (magic, rest) = header.split_at(4);
        let (len, crc) = rest.split_at(8);
        if magic != MAGIC {
            return Err(malformed("not a Quorate snapshot file (bad magic)".to_owned()));
        }
        let len = u64::from_le_bytes(len.try_into().map_err(|_| malformed("bad header".to_owned()))?);
        let stored = u32::from_le_bytes(crc.try_into().map_err(|_| malformed("bad header".to_owned()))?);
        if payload.len() as u64 != len {
            return Err(malformed(format!(
                "the header announces {len} bytes of snapshot, the file holds {}: it was truncated or extended",
                payload.len()
            )));
        }
        let computed = crc32fast::hash(payload);
        if computed != stored {
            return Err(SnapshotFileError::Checksum { path, stored, computed });
        }
        bytes.drain(..HEADER_LEN);
        Ok(Some(bytes))
    }

    /// Replaces the file's payload (the concatenation of `parts`), through a synced temporary file and a rename.
    #[cfg(test)]
    fn write_payload(&self, parts: &[&[u8]], pace: Pace) -> Result<(), SnapshotFileError> {
        self.write_payload_with(pace, None, |out| {
            for part in parts {
                out.write_all(part)?;
            }
            Ok(())
        })
        .map(|_| ())
    }

    /// Replaces the file's payload with what `fill` writes, through a synced temporary file and a rename, unless a
    /// snapshot newer than `position` was put in place meanwhile: returns whether it replaced the file.
    fn write_payload_with<F>(&self, pace: Pace, position: Option<LogId>, fill: F) -> Result<bool, SnapshotFileError>
    where
        F: FnOnce(&mut PayloadWriter) -> Result<(), CodecError>,
    {
        let temp = self.dir.join(match pace {
            Pace::Yielding => TEMP_NAME,
            Pace::Full => RECEIVED_TEMP_NAME,
        });
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotFileError::Io { path, source }
        };
        let mut file = File::create(&temp).map_err(io_err(&temp))?;
        // The header (length, checksum) is known at the end: a placeholder until then.
        file.write_all(&[0u8; HEADER_LEN]).map_err(io_err(&temp))?;
        let mut out = PayloadWriter {
            file,
            buffer: Vec::with_capacity(SYNC_EVERY),
            crc: crc32fast::Hasher::new(),
            written: 0,
            pace,
        };
        let filled = fill(&mut out).and_then(|()| Ok(out.write_chunk()?));
        if let Err(error) = filled {
            return Err(match *error {
                bincode::ErrorKind::Io(source) => SnapshotFileError::Io { path: temp, source },
                other => SnapshotFileError::Codec { path: self.path(), source: Box::new(other) },
            });
        }
        let PayloadWriter { mut file, crc, written, .. } = out;
        file.seek(SeekFrom::Start(0)).map_err(io_err(&temp))?;
        file.write_all(&header_of(written, crc.finalize())).map_err(io_err(&temp))?;
        file.sync_all().map_err(io_err(&temp))?;
        drop(file);
        let path = self.path();
        let mut newest = self.newest.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if newest.is_some_and(|newest| position < newest) {
            fs::remove_file(&temp).map_err(io_err(&temp))?;
            return Ok(false);
        }
        // Renaming over the old snapshot would free its blocks in one go, and on ext4 freeing half a gigabyte
        // holds up the journal commit every Raft log sync waits for (a 90-100 ms stall of checks at the end of
        // each snapshot of a million keys). So the old file keeps a second name and is shrunk in steps after.
        let retired = self.dir.join(RETIRED_NAME);
        if retired.exists() {
            shrink_away(&retired); // left by a crash
        }
        let keep_old = pace == Pace::Yielding && fs::hard_link(&path, &retired).is_ok();
        fs::rename(&temp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        *newest = Some(position);
        if keep_old {
            shrink_away(&retired);
        }
        Ok(true)
    }
}

/// Frees a file's blocks a step at a time, pausing between steps, then removes it; best effort (a leftover is
/// removed at the next snapshot).
fn shrink_away(path: &Path) {
    let shrink = || -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        let mut len = file.metadata()?.len();
        while len > 0 {
            let started = Instant::now();
            len = len.saturating_sub(SHRINK_STEP);
            file.set_len(len)?;
            std::thread::sleep(started.elapsed().max(std::time::Duration::from_millis(1)));
        }
        drop(file);
        fs::remove_file(path)
    };
    if let Err(error) = shrink()
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::debug!(path = %path.display(), %error, "could not remove the replaced snapshot");
    }
}

/// The header of a file whose payload is the concatenation of `parts`.
#[cfg(test)]
pub(super) fn header(parts: &[&[u8]]) -> [u8; HEADER_LEN] {
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    for part in parts {
        crc.update(part);
        len += part.len() as u64;
    }
    header_of(len, crc.finalize())
}

/// The header of a file whose payload is `len` bytes with CRC-32 `crc`.
fn header_of(len: u64, crc: u32) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[4..12].copy_from_slice(&len.to_le_bytes());
    header[12..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Where a snapshot's payload goes while it is written: a chunk at a time to the temporary file, each chunk
/// checksummed, written, synced and, under [`Pace::Yielding`], followed by as long a pause. On ext4 a sync of
/// the Raft log (sled's file) also waits for the dirty data of other files written meanwhile, so half a gigabyte
/// of snapshot written in one go held every commit up for the length of its write-back (p999 of checks 338 ms
/// during snapshots of 1M keys).
#[derive(Debug)]
pub(crate) struct PayloadWriter {
    file: File,
    buffer: Vec<u8>,
    crc: crc32fast::Hasher,
    written: u64,
    pace: Pace,
}

impl PayloadWriter {
    /// Writes out and syncs what is buffered.
    fn write_chunk(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        self.crc.update(&self.buffer);
        self.file.write_all(&self.buffer)?;
        self.file.sync_data()?;
        self.buffer.clear();
        if self.pace == Pace::Yielding {
            std::thread::sleep(started.elapsed());
        }
        Ok(())
    }
}

impl Write for PayloadWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = SYNC_EVERY - self.buffer.len();
        let taken = bytes.len().min(room);
        self.buffer.extend_from_slice(&bytes[..taken]);
        self.written += taken as u64;
        if self.buffer.len() == SYNC_EVERY {
            self.write_chunk()?;
        }
        Ok(taken)
    }

    /// Does nothing: chunks are written when full and at the end, never partly.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    OpenOptions::new().read(true).open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom};

    use tempfile::TempDir;

    use super::*;

    #[test]
    fn what_is_written_reads_back_and_replaces_the_previous_snapshot() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let file = SnapshotFile::new(dir.path());
        assert_eq!(file.read_payload()?, None);
        file.write_payload(&[b"first"], Pace::Full)?;
        file.write_payload(&[b"second ", b"snapshot"], Pace::Full)?;
        assert_eq!(file.read_payload()?.as_deref(), Some(&b"second snapshot"[..]));
        assert!(!dir.path().join(TEMP_NAME).exists());
        Ok(())
    }

    #[test]
    fn an_encoded_snapshot_streams_to_the_file_and_reads_back() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let file = SnapshotFile::new(dir.path());
        let data: Vec<u64> = (0..400_000).collect(); // 3.2 MB encoded: several chunks
        let meta = crate::fuzzing::samples::snapshot_meta();
        let len = file.write_encoded(&meta, Pace::Full, |out| codec::encode_into(out, &data))?.unwrap_or_default();
        let stored = file.read()?.ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
        assert_eq!(stored.data, codec::encode(&data)?);
        assert_eq!(len, stored.data.len() as u64);
        assert_eq!(stored.meta, meta);
        Ok(())
    }

    #[test]
    fn a_snapshot_built_before_a_newer_one_was_installed_never_replaces_it() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let file = SnapshotFile::new(dir.path());
        let newer = crate::fuzzing::samples::snapshot_meta(); // up to 2-1-9
        let mut older = newer.clone();
        older.last_log_id = newer.last_log_id.map(|id| openraft::LogId::new(id.leader_id, id.index - 4));
        // Received from the leader while this node was building `older`, which finishes after it.
        file.write(&StoredSnapshot { meta: newer.clone(), data: b"newer".to_vec() }, Pace::Full)?;
        let dropped = file.write_encoded(&older, Pace::Yielding, |out| Ok(out.write_all(b"older")?))?;
        assert_eq!(dropped, None);
        let stored = file.read()?.ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
        assert_eq!((stored.meta, stored.data), (newer, b"newer".to_vec()));
        assert_eq!(fs::read_dir(dir.path())?.count(), 1, "no temporary file is left");
        Ok(())
    }

    #[test]
    fn a_reader_never_sees_the_replaced_file_shrunk_away_under_it() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let file = SnapshotFile::new(dir.path());
        file.write_payload(&[&vec![1u8; 48 << 20]], Pace::Yielding)?;
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (file, done) = (file.clone(), Arc::clone(&done));
            std::thread::spawn(move || -> Result<usize, SnapshotFileError> {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    file.read_payload()?;
                    reads += 1;
                }
                Ok(reads)
            })
        };
        for fill in 2..6u8 {
            file.write_payload(&[&vec![fill; 48 << 20]], Pace::Yielding)?;
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads = reader.join().map_err(|_| anyhow::anyhow!("the reader panicked"))??;
        assert!(reads > 0);
        Ok(())
    }

    #[test]
    fn a_yielding_write_replaces_the_old_file_and_shrinks_it_away() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let file = SnapshotFile::new(dir.path());
        let big = vec![3u8; 40 << 20]; // more than two shrink steps
        file.write_payload(&[&big], Pace::Yielding)?;
        let old = fs::metadata(file.path())?;
        // A crash once left a retired file behind: it goes too.
        fs::write(dir.path().join(RETIRED_NAME), b"left by a crash")?;
        file.write_payload(&[b"newer"], Pace::Yielding)?;
        assert_eq!(file.read_payload()?.as_deref(), Some(&b"newer"[..]));
        assert!(old.len() > 40 << 20);
        assert!(!dir.path().join(RETIRED_NAME).exists());
        assert!(!dir.path().join(TEMP_NAME).exists());
        assert_eq!(fs::read_dir(dir.path())?.count(), 1, "only snapshot.qrs is left");
        Ok(())
    }

    #[test]
    fn garbage_in_the_payload_fails_the_checksum() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let file = SnapshotFile::new(dir.path());
        file.write_payload(&[&vec![7u8; 64 * 1024]], Pace::Full)?;
        let mut raw = OpenOptions::new().write(true).open(file.path())?;
        raw.seek(SeekFrom::Start(8 * 1024))?;
        raw.write_all(&[0xAB; 4096])?;
        let error = file.read_payload().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("checksum mismatch") && error.contains(FILE_NAME), "{error}");
        Ok(())
    }

    #[test]
    fn a_truncated_or_foreign_file_is_named_as_such() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let file = SnapshotFile::new(dir.path());
        file.write_payload(&[&[1u8; 1000]], Pace::Full)?;
        OpenOptions::new().write(true).open(file.path())?.set_len(600)?;
        let error = file.read_payload().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("truncated"), "{error}");

        fs::write(file.path(), b"QR")?;
        let error = file.read_payload().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("shorter than"), "{error}");

        fs::write(file.path(), [0u8; 100])?;
        let error = file.read_payload().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("bad magic"), "{error}");
        Ok(())
    }
}
