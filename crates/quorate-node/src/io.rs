//! [`IoMode`]: where blocking disk work runs, on real threads or inline under deterministic simulation, and
//! [`background`] for heavy work that must not compete with deciding.

/// Where storage runs its blocking IO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum IoMode {
    /// On tokio's blocking threads (and a flusher thread): the async workers never wait on the disk.
    #[default]
    Background,
    /// On the calling task: for deterministic simulation, where no IO may finish on another thread while
    /// simulated time runs (stack-notes §6).
    Inline,
}

/// Runs blocking IO (sled flushes, snapshot encoding) as `mode` says.
///
/// # Errors
///
/// If the blocking task panicked or was cancelled.
pub(crate) async fn blocking<T, F>(mode: IoMode, f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match mode {
        IoMode::Background => tokio::task::spawn_blocking(f).await,
        IoMode::Inline => Ok(f()),
    }
}

/// Runs heavy work that nothing waits on urgently (encoding and writing a snapshot) on a thread of its own at a
/// lower CPU priority, so that Raft, applying and answering checks win the cores while it runs: on a busy node a
/// snapshot of a million keys (about a second of CPU) otherwise delayed commits by up to 170 ms. Inline under
/// deterministic simulation, as [`blocking`].
///
/// The priority is Linux's per-thread nice value (+10: about a tenth of a core's share against normal threads
/// when the cores are contended, all of the idle time otherwise); elsewhere the thread runs at normal priority.
///
/// # Errors
///
/// If the thread cannot be started or panicked.
pub(crate) async fn background<T, F>(mode: IoMode, f: F) -> std::io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if mode == IoMode::Inline {
        return Ok(f());
    }
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("quorate-background".to_owned()).spawn(move || {
        lower_priority();
        let _ = done.send(f());
    })?;
    result.await.map_err(|_| std::io::Error::other("the background thread panicked"))
}

/// Lowers the calling thread's CPU priority (Linux nice values are per thread); best effort.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::nice(10) {
        tracing::debug!(%error, "could not lower the background thread's priority");
    }
}
