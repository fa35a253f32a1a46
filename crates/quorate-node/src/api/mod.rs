//! The gRPC services a node serves on one port: the public APIs, the admin API, node-to-node Raft, health and
//! reflection.
//!
//! - [`RateLimiterService`]: `Check` and `Refund` for API servers; followers forward to the leader.
//! - [`EnvoyRateLimitService`]: Envoy's rate limit service v3 ([`envoy`]), the same checks for Envoy proxies.
//! - [`AdminService`]: status, membership and policies for operators.
//! - [`RaftService`]: Raft RPCs from peers.
//! - [`health`]: `grpc.health.v1`, SERVING once the node has a leader and policies; [`reflection`]: gRPC server
//!   reflection.
//! - [`Router`]: finds the leader and forwards; [`status`] maps every error to a gRPC status in one place.

mod admin;
pub mod envoy;
pub mod health;
mod raft;
mod rate_limiter;
pub mod reflection;
mod router;
pub mod status;

pub use admin::AdminService;
pub use envoy::EnvoyRateLimitService;
pub use raft::RaftService;
pub use rate_limiter::RateLimiterService;
pub use router::{Outcome, Route, Router, RouterParts, forwarded};
