//! The gRPC services a node serves on one port: the public API, the admin API and node-to-node Raft.
//!
//! - [`RateLimiterService`]: `Check` and `Refund` for API servers; followers forward to the leader.
//! - [`AdminService`]: status, membership and policies for operators.
//! - [`RaftService`]: Raft RPCs from peers.
//! - [`Router`]: finds the leader and forwards; [`status`] maps every error to a gRPC status in one place.

mod admin;
mod raft;
mod rate_limiter;
mod router;
pub mod status;

pub use admin::AdminService;
pub use raft::RaftService;
pub use rate_limiter::RateLimiterService;
pub use router::{Route, Router, RouterParts, forwarded};
