//! Group commit of log appends: one fsync covers every append queued while the previous fsync ran.
//!
//! openraft 0.9 awaits `append` inside its core loop, so an append that waits for its own fsync stalls
//! replication for the length of the fsync. Instead `append` hands its completion callback to this dedicated
//! thread and returns at once; the thread flushes sled (which makes everything written so far durable) and then
//! reports every queued append flushed, in order. Acks still come only after the fsync, so a node never counts
//! towards a commit quorum with entries it could lose in a crash.
//!
//! After a flush it also raises the [watermark](super::watermark) to the committed index that flush covered, at
//! most every [`RAISE_EVERY`].
//!
//! The same thread deletes purged log entries: openraft also awaits `purge` in its core loop, and deleting tens
//! of thousands of keys there stalled every check for up to 0.4 s (measured at 64 callers). Between two flushes it
//! deletes at most [`PURGE_CHUNK`] entries and for at most [`PURGE_BUDGET`], one by one, so that appends queued
//! meanwhile never wait for a whole purge. Deleting 256 entries of a few hundred checks each in one sled batch took
//! 11-20 ms, and a purge after a snapshot under `CheckBatch` load raised the slowest call of the next second to
//! 147-242 ms; deleted this way, 46-66 ms (calls of 100 checks at 16 callers; 23-43 ms without a purge).

use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use openraft::storage::LogFlushed;

use super::TypeConfig;
use super::watermark::{RAISE_EVERY, Watermark};
use crate::metrics::NodeMetrics;

/// Log entries deleted between two flushes, at most.
const PURGE_CHUNK: usize = 256;
/// Time spent deleting entries between two flushes, at most (past the first entry).
const PURGE_BUDGET: Duration = Duration::from_millis(1);

/// The handle `append` queues its callbacks on; cheap to clone.
///
/// When the last handle is dropped the thread finishes the queued flushes and is joined, so that the sled
/// database (and its file lock) is released before anyone reopens it.
#[derive(Debug, Clone)]
pub(crate) struct Flusher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Work for the flusher thread.
enum Job {
    /// Report this append flushed after the next fsync.
    Ack(LogFlushed<TypeConfig>),
    /// Delete every entry of `logs` up to and including key `upto` (not flushed: see `SledLogStore::purge`).
    Purge { logs: sled::Tree, upto: [u8; 8] },
}

impl Flusher {
    /// Starts the flushing thread for `db`.
    pub(crate) fn spawn(db: sled::Db, watermark: Arc<Watermark>, metrics: Arc<NodeMetrics>) -> std::io::Result<Self> {
        let (queue, pending) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("quorate-log-flush".to_owned())
            .spawn(move || run(&db, &pending, &watermark, &metrics))?;
        Ok(Flusher { inner: Arc::new(Inner { queue: Some(queue), thread: Some(thread) }) })
    }

    /// Queues `callback` to be completed after the next fsync; gives it back if the thread is gone.
    pub(crate) fn submit(&self, callback: LogFlushed<TypeConfig>) -> Result<(), LogFlushed<TypeConfig>> {
        let Some(queue) = &self.inner.queue else { return Err(callback) };
        queue.send(Job::Ack(callback)).map_err(|returned| match returned.0 {
            Job::Ack(callback) => callback,
            Job::Purge { .. } => unreachable!("an Ack was sent"),
        })
    }

    /// Queues the deletion of `logs` entries up to key `upto`; returns false if the thread is gone.
    pub(crate) fn purge(&self, logs: sled::Tree, upto: [u8; 8]) -> bool {
        self.inner.queue.as_ref().is_some_and(|queue| queue.send(Job::Purge { logs, upto }).is_ok())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once it has flushed what was queued.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: &sled::Db, pending: &mpsc::Receiver<Job>, watermark: &Watermark, metrics: &NodeMetrics) {
    let mut last_raise = Instant::now();
    // The purge in progress: deleted a chunk at a time between flushes.
    let mut purge: Option<(sled::Tree, [u8; 8])> = None;
    loop {
        let first = match purge {
            // Deletions left: take what is queued, but do not wait for it.
            Some(_) => match pending.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => return,
            },
            None => match pending.recv() {
                Ok(job) => Some(job),
                Err(mpsc::RecvError) => return,
            },
        };
        let mut callbacks = Vec::new();
        for job in first.into_iter().chain(pending.try_iter()) {
            match job {
                Job::Ack(callback) => callbacks.push(callback),
                // A later purge covers every earlier one.
                Job::Purge { logs, upto } => purge = Some((logs, upto)),
            }
        }
        if !callbacks.is_empty() {
            // Read before the flush: what was staged by then is durable once it succeeds.
            let staged = watermark.staged();
            let started = Instant::now();
            let flushed = db.flush();
            metrics.fsync.observe_duration(started.elapsed());
            for callback in callbacks {
                let result = match &flushed {
                    Ok(_) => Ok(()),
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                };
                callback.log_io_completed(result);
            }
            // After the acks, so the extra sync never delays a commit; at most every RAISE_EVERY.
            if let (Ok(_), Some(index)) = (&flushed, staged)
                && last_raise.elapsed() >= RAISE_EVERY
            {
                last_raise = Instant::now();
                if let Err(error) = watermark.raise_committed(index) {
                    // Only detection lags: the next raise tries again.
                    tracing::warn!(%error, path = %watermark.path().display(), "could not raise the watermark");
                }
            }
        }
        if let Some((logs, upto)) = &purge {
            match super::log_store::remove_some(logs, ..=*upto, PURGE_CHUNK, PURGE_BUDGET) {
                Ok((_, true)) => purge = None,
                Ok((_, false)) => {}
                Err(error) => {
                    // Harmless: leftovers sit at or below last_purged and the next purge removes them.
                    tracing::warn!(%error, "could not delete purged log entries");
                    purge = None;
                }
            }
        }
    }
}
