//! A Quorate node: limiter state replicated with openraft on sled, decisions served over gRPC.
//!
//! The path of one check, through this crate's files:
//!
//! 1. [`api::RateLimiterService`] receives `Check`, validates it against the applied policy set, and asks the
//!    [`api::Router`] where the leader is; a follower forwards the call to the leader once.
//! 2. On the leader, [`batcher::Batcher`] queues it; while one batch is replicating the next fills, then goes out
//!    as one log entry stamped with the leader's [`clock`].
//! 3. When the entry commits, [`raft::state_machine`] applies it on every replica with quorate-core
//!    ([`raft::replica`]), at the entry's time, and the leader answers the caller.
//!
//! [`node::start_node`] wires it together from a [`config::NodeConfig`]; [`cli`] is the `quorate` binary.

// openraft's StorageError and RPCError are large by design; boxing them everywhere would only add noise.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod batcher;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod degraded;
pub mod error;
pub mod limit_override;
pub mod load;
pub mod node;
pub mod raft;
pub mod transport;

pub use config::NodeConfig;
pub use error::NodeError;
pub use node::{NodeHandle, start_node};
