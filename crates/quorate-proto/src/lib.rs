//! Quorate's wire types and gRPC stubs, generated at build time from `proto/`.
//!
//! - [`v1::rate_limiter_client`] / [`v1::rate_limiter_server`]: `Check` and `Refund`, for API servers.
//! - [`v1::admin_client`] / [`v1::admin_server`]: status, membership and policies, for operators.
//! - [`v1::raft_client`] / [`v1::raft_server`]: node-to-node Raft RPCs (opaque payloads), not for clients.

/// `quorate.v1`: the public API and the Raft service.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod v1 {
    tonic::include_proto!("quorate.v1");
}
