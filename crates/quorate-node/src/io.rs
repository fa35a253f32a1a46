//! [`IoMode`]: where blocking disk work runs, on real threads or inline under deterministic simulation.

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
