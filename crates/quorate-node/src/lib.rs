//! A Quorate node: limiter state replicated with openraft on sled, decisions served over gRPC.
//!
//! Start one with [`start_node`] from a [`NodeConfig`] and a [`Clock`]; the `quorate` binary (crate
//! `quorate-cli`), the simulations (`sim/`) and the cluster tests (`tests/`) all start nodes this way.
//!
//! # The path of one check
//!
//! A `Check` that reaches the leader passes through five files:
//!
//! 1. `api/rate_limiter.rs` turns the wire request into a validated [`Check`](quorate_core::plan::Check) (a
//!    cost that cannot be zero, typed descriptors) and, at the end, the verdict into the wire response. Envoy's
//!    `ShouldRateLimit` (`api/envoy/`) and `Refund` are adapters of the same kind.
//! 2. `check/pipeline.rs` plans it once against the applied policy set ([`quorate_core::plan::Plan`]), commits
//!    the plan on the leader — here through the batcher, or from a follower in one `Forward` call to the leader —
//!    and, if no quorum answers within the deadline, decides it by the policies' `on_no_quorum` modes.
//! 3. `batcher.rs` queues it with every other command that arrives while the previous batch replicates, and
//!    proposes the lot as one Raft log entry stamped with the leader's clock.
//! 4. `raft/state_machine.rs` hands each committed entry to
//! 5. `raft/replica.rs`, which applies the plan with quorate-core's limiter table at the entry's time, on every
//!    replica alike; the leader's caller gets the outcome.
//!
//! Errors are typed ([`error`]) and become gRPC statuses in one place, `api/status.rs`.
//!
//! # Modules
//!
//! - `api`: the gRPC services (public, Envoy, admin, node-to-node, health, reflection), thin adapters.
//! - `check`: the check pipeline and degraded decisions.
//! - `cluster`: who leads, and the peer calls a follower makes on the leader.
//! - `batcher`, `raft`: group commit, and openraft on sled (log store, state machine, network).
//! - `control`, `load`: admin writes; cluster load sampling and folding.
//! - [`config`], [`clock`], [`transport`], [`error`]: what a node is started with, and what can go wrong.
//!
//! # Example
//!
//! A one-node cluster on a free loopback port, asked for one decision:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//!
//! use quorate_node::clock::SystemClock;
//! use quorate_node::config::LocalAddrs;
//! use quorate_node::{NodeConfig, start_node};
//! use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
//! use quorate_proto::v1::{CheckRequest, Descriptor};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut config = NodeConfig::local(1, LocalAddrs::any_port(), dir.path().join("node1"), BTreeMap::new());
//! config.bootstrap = true;
//! config.sample_system = false;
//! let node = start_node(config, Arc::new(SystemClock::new())).await?;
//! while !node.is_ready() {
//!     tokio::time::sleep(std::time::Duration::from_millis(20)).await;
//! }
//!
//! let mut client = RateLimiterClient::connect(format!("http://{}", node.local_addr())).await?;
//! let descriptor = Descriptor { dimension: "api_key".into(), value: "agent_42".into(), policy: String::new() };
//! let response = client.check(CheckRequest { descriptors: vec![descriptor], cost: 1, peek: false, lease: None }).await?;
//! assert!(response.get_ref().allowed);
//! assert_eq!(response.get_ref().overall.as_ref().map(|o| o.limit), Some(200)); // the sample `agent` tier
//!
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```

// openraft's StorageError and RPCError are large by design; boxing them everywhere would only add noise.
#![allow(clippy::result_large_err)]

mod api;
pub mod auth;
mod batcher;
mod check;
pub mod clock;
mod cluster;
mod command;
pub mod config;
mod control;
pub mod error;
#[cfg(test)]
mod fuzzing;
mod io;
mod leases;
mod listeners;
mod load;
mod metrics;
mod node;
mod raft;
pub mod tls;
pub mod transport;

pub use clock::{Clock, SystemClock};
pub use config::NodeConfig;
pub use error::NodeError;
pub use node::{NodeHandle, start_node};
pub use raft::runtime::seed_raft_rng;
pub use raft::{Node, NodeId};
