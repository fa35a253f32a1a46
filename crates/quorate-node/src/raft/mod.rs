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

/// Runs blocking IO (sled flushes, snapshot encoding) off the async worker threads.
///
/// # Errors
///
/// If the blocking task panicked or was cancelled.
pub async fn blocking<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await
}
