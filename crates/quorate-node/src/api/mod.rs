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
pub(crate) mod wire_errors;

/// The most bytes one encoded check can take within the validation limits (16 descriptors of a 64-byte dimension,
/// a 256-byte value and a 64-byte policy name, plus framing): a request bigger than its checks can be is refused
/// before it is decoded.
pub(crate) const MAX_CHECK_BYTES: usize = 8 * 1024;

/// Decoded-size limit of the RateLimiter service: a batch of `max_batch_items` checks, and at least 64 KiB.
pub(crate) fn rate_limiter_max_bytes(max_batch_items: usize) -> usize {
    max_batch_items.saturating_mul(MAX_CHECK_BYTES).max(64 * 1024)
}

/// Decoded-size limit of Envoy's rate limit service: one request of descriptors.
pub(crate) const ENVOY_MAX_BYTES: usize = 64 * 1024;

/// Decoded-size limit of the Admin service: a policies TOML file fits many times over.
pub(crate) const ADMIN_MAX_BYTES: usize = 1024 * 1024;

/// Decoded-size limit of the Raft service: whole batches of log entries and snapshot chunks, from peers that
/// mutual TLS has authenticated.
pub(crate) const RAFT_MAX_BYTES: usize = 64 * 1024 * 1024;

pub(crate) use admin::AdminService;
pub(crate) use envoy::EnvoyRateLimitService;
pub(crate) use raft::RaftService;
pub(crate) use rate_limiter::{BulkLimits, RateLimiterService};
