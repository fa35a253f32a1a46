//! Every error a client can see becomes a `tonic::Status` here, in one place, by exhaustive matches.
//!
//! Bad input is INVALID_ARGUMENT, a full key table RESOURCE_EXHAUSTED, anything a retry (possibly on another
//! node) can fix UNAVAILABLE. Messages say what is wrong in words a client developer can act on.
//!
//! Envoy's rate limit service knows only two outcomes of an error: bad input, and "the rate limit service is
//! unavailable", which Envoy's `failure_mode_deny` turns into allow or deny. [`for_envoy`] keeps
//! INVALID_ARGUMENT and makes everything else UNAVAILABLE.

use quorate_proto::v1::ItemError;
use tonic::{Code, Status};

use super::envoy::MappingError;
use crate::error::{AdminError, CheckError, PolicyError};

/// The status of a check, refund or load report that got no answer.
pub(crate) fn from_check(error: &CheckError) -> Status {
    Status::new(code_of(error), error.to_string())
}

/// The gRPC code a [`CheckError`] is answered with (no message built: the metrics count errors by it).
pub(crate) fn code_of(error: &CheckError) -> Code {
    match error {
        CheckError::Invalid(_) => Code::InvalidArgument,
        CheckError::TableFull { .. } => Code::ResourceExhausted,
        CheckError::NoPolicies
        | CheckError::PolicyChanged { .. }
        | CheckError::NoLeader { .. }
        | CheckError::NotCommitted(_)
        | CheckError::NotLeader { .. }
        | CheckError::LeaderUnreachable { .. }
        | CheckError::Fatal(_)
        | CheckError::LocalJournal(_)
        | CheckError::Stopped => Code::Unavailable,
        CheckError::PeerRefused { .. } | CheckError::Internal(_) => Code::Internal,
    }
}

/// The per-check error of a batch or stream answer: the code and message a lone `Check` would have failed with.
pub(crate) fn item_error(error: &CheckError) -> ItemError {
    let status = from_check(error);
    ItemError { code: status.code() as i32, message: status.message().to_owned() }
}

/// The status of a failed admin write.
pub(crate) fn from_admin(error: &AdminError) -> Status {
    let message = error.to_string();
    match error {
        AdminError::Invalid(_) | AdminError::Policy(PolicyError::Invalid(_)) => Status::invalid_argument(message),
        AdminError::Policy(PolicyError::VersionMismatch { .. }) | AdminError::Raft(_) => {
            Status::failed_precondition(message)
        }
        AdminError::Cluster(error) => from_check(error),
        AdminError::Timeout { .. } => Status::deadline_exceeded(message),
    }
}

/// The status of an Envoy `RateLimitRequest` that does not map to a check.
pub(crate) fn from_mapping(error: &MappingError) -> Status {
    Status::invalid_argument(error.to_string())
}

/// The status of a peer call whose payload could not be decoded or encoded.
pub(crate) fn malformed_peer_payload(error: &dyn std::fmt::Display) -> Status {
    Status::invalid_argument(format!("malformed peer payload: {error}"))
}

/// The status of a reply that could not be encoded (a defect, never the caller's fault).
pub(crate) fn encoding_failed(error: &dyn std::fmt::Display) -> Status {
    Status::internal(format!("encoding the reply: {error}"))
}

/// The status Envoy's rate limit service answers instead of `status`: bad input stays INVALID_ARGUMENT, every
/// other failure (no leader, timeouts, no policy set, a full key table) becomes UNAVAILABLE.
pub(crate) fn for_envoy(status: Status) -> Status {
    match status.code() {
        Code::InvalidArgument | Code::Unavailable => status,
        _ => Status::unavailable(status.message().to_owned()),
    }
}
