//! Group commit of log appends: one fsync covers every append queued while the previous fsync ran.
//!
//! openraft 0.9 awaits `append` inside its core loop, so an append that waits for its own fsync stalls
//! replication for the length of the fsync. Instead `append` hands its completion callback to this dedicated
//! thread and returns at once; the thread flushes sled (which makes everything written so far durable) and then
//! reports every queued append flushed, in order. Acks still come only after the fsync, so a node never counts
//! towards a commit quorum with entries it could lose in a crash.

use std::sync::{Arc, mpsc};
use std::thread;

use openraft::storage::LogFlushed;

use super::TypeConfig;

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
    queue: Option<mpsc::Sender<LogFlushed<TypeConfig>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Flusher {
    /// Starts the flushing thread for `db`.
    pub(crate) fn spawn(db: sled::Db) -> std::io::Result<Self> {
        let (queue, pending) = mpsc::channel();
        let thread = thread::Builder::new().name("quorate-log-flush".to_owned()).spawn(move || run(&db, &pending))?;
        Ok(Flusher { inner: Arc::new(Inner { queue: Some(queue), thread: Some(thread) }) })
    }

    /// Queues `callback` to be completed after the next fsync; gives it back if the thread is gone.
    pub(crate) fn submit(&self, callback: LogFlushed<TypeConfig>) -> Result<(), LogFlushed<TypeConfig>> {
        match &self.inner.queue {
            Some(queue) => queue.send(callback).map_err(|returned| returned.0),
            None => Err(callback),
        }
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

fn run(db: &sled::Db, pending: &mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = pending.recv() {
        let mut callbacks = vec![first];
        callbacks.extend(pending.try_iter());
        let flushed = db.flush();
        for callback in callbacks {
            let result = match &flushed {
                Ok(_) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            callback.log_io_completed(result);
        }
    }
}
