//! Raft: type configuration, sled log store, state machine and the tonic network.

pub mod codec;
mod flusher;
pub mod limits;
pub mod log_store;
pub mod network;
pub mod replica;
pub mod runtime;
pub mod state_machine;
pub mod types;

pub use types::{Node, NodeId, Raft, TypeConfig, typ};

/// Where storage runs its blocking IO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IoMode {
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
pub async fn blocking<T, F>(mode: IoMode, f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match mode {
        IoMode::Background => tokio::task::spawn_blocking(f).await,
        IoMode::Inline => Ok(f()),
    }
}
