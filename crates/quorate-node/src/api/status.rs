//! Every error a client can see becomes a `tonic::Status` here, in one place.
//!
//! Bad input is INVALID_ARGUMENT, a full key table RESOURCE_EXHAUSTED, anything a retry (possibly on another node)
//! can fix is UNAVAILABLE. Messages say what is wrong in words a client developer can act on.
//!
//! Envoy's rate limit service knows only two outcomes of an error: bad input, and "the rate limit service is
//! unavailable", which Envoy's `failure_mode_deny` turns into allow or deny. [`for_envoy`] keeps
//! INVALID_ARGUMENT and makes everything else UNAVAILABLE.

use tonic::{Code, Status};

use super::envoy::MappingError;
use crate::batcher::BatchError;
use crate::command::CommandOutcome;

/// The status of a command that produced no decision.
pub fn from_outcome(outcome: &CommandOutcome) -> Status {
    match outcome {
        CommandOutcome::Invalid(message) => Status::invalid_argument(message.clone()),
        CommandOutcome::TableFull(message) => Status::resource_exhausted(message.clone()),
        CommandOutcome::NoPolicies => Status::unavailable("the cluster has no policy set yet"),
        CommandOutcome::Checked(_) | CommandOutcome::Refunded => Status::internal("unexpected outcome for this call"),
    }
}

/// The status of a batch that could not be committed.
pub fn from_batch(error: &BatchError) -> Status {
    match error {
        BatchError::NotLeader { .. } => Status::unavailable("this node is no longer the leader; retry"),
        BatchError::Timeout(after) => Status::unavailable(format!(
            "no quorum committed the request within {after:?}; retry, possibly on another node"
        )),
        BatchError::Raft(message) => Status::unavailable(format!("raft: {message}")),
        BatchError::Stopped => Status::unavailable("the node is shutting down"),
    }
}

/// The status when no leader answered within the deadline.
pub fn no_leader(deadline: std::time::Duration) -> Status {
    Status::unavailable(format!("no leader answered within {deadline:?}: the cluster may be electing or partitioned"))
}

/// Whether a forwarded call failed for want of a connection (the leader crashed or moved), so that retrying,
/// possibly at a new leader, is right: UNAVAILABLE, or a status tonic made from a broken connection (which it
/// reports as UNKNOWN: "transport error").
pub fn is_connection_failure(status: &Status) -> bool {
    use std::error::Error as _;
    status.code() == tonic::Code::Unavailable
        || status.source().is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some())
}

/// The status of an Envoy `RateLimitRequest` that does not map to a check.
pub fn from_mapping(error: &MappingError) -> Status {
    Status::invalid_argument(error.to_string())
}

/// The status Envoy's rate limit service answers instead of `status`: bad input stays INVALID_ARGUMENT, every
/// other failure (no leader, timeouts, no policy set, a full key table) becomes UNAVAILABLE.
pub fn for_envoy(status: Status) -> Status {
    match status.code() {
        Code::InvalidArgument | Code::Unavailable => status,
        _ => Status::unavailable(status.message().to_owned()),
    }
}
