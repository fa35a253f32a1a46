//! The gRPC services a node serves on one port: the public APIs, the admin API, node-to-node calls, health and
//! reflection. Each is a thin adapter from its wire messages to the node's typed operations; every error
//! becomes a status in [`status`].
//!
//! - [`RateLimiterService`]: `Check`, `CheckBatch`, `CheckStream`, `Refund` and `ReportLoad` for API servers,
//!   through the check pipeline.
//! - [`EnvoyRateLimitService`]: Envoy's rate limit service v3 ([`envoy`]), the same checks for Envoy proxies.
//! - [`AdminService`]: status, membership and policies for operators.
//! - [`RaftService`]: Raft RPCs and forwarded calls from peers.
//! - [`health`]: `grpc.health.v1`, SERVING once the node has a leader and policies; [`reflection`]: gRPC server
//!   reflection.

mod admin;
mod check_stream;
pub(crate) mod envoy;
pub(crate) mod health;
mod raft;
mod rate_limiter;
pub(crate) mod reflection;
pub(crate) mod status;

pub(crate) use admin::AdminService;
pub(crate) use envoy::EnvoyRateLimitService;
pub(crate) use raft::RaftService;
pub(crate) use rate_limiter::{BulkLimits, RateLimiterService};
