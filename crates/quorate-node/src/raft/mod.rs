//! Raft: type configuration, sled log store, state machine, snapshot file, integrity checks and the tonic
//! network.

pub(crate) mod codec;
mod flusher;
#[cfg(test)]
mod golden;
pub(crate) mod integrity;
pub(crate) mod leases;
pub(crate) mod log_store;
pub(crate) mod network;
pub(crate) mod replica;
pub(crate) mod runtime;
pub(crate) mod snapshot_file;
pub(crate) mod state_machine;
mod types;
pub(crate) mod watermark;

pub use types::{Node, NodeId};
pub(crate) use types::{Raft, TypeConfig, typ};
