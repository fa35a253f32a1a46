//! Deterministic simulation of whole Quorate clusters with turmoil: the real node code (Raft, batcher, tonic
//! services, sled) on simulated hosts, clients calling the public gRPC API, and faults in story order.
//!
//! - [`cluster`]: the harness — hosts, the seed, the simulated clock with per-node skew.
//! - [`nemesis`]: faults (partitions, one-way loss, crashes, latency) and the named scenarios.
//! - [`history`]: what the clients saw, and the invariants checked on it.
//!
//! One seed drives turmoil's network, openraft's election timeouts and the clients' workload, so a run is
//! replayed exactly by its seed: `cargo run -p quorate-sim --release -- --scenario <name> --seed <seed>`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod history;
pub mod nemesis;

pub use cluster::{RunResult, run};
pub use nemesis::{Fault, Scenario, Workload};
