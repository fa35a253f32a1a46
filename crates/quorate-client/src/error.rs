//! [`ClientError`]: every way a [`Client`](crate::Client) call or its construction can fail.
//!
//! Callers branch on the variant, never on the message: [`ClientError::is_unreachable`] groups the failures that
//! the [`FailureMode`](crate::FailureMode) covers.

use std::time::Duration;

/// Error returned by [`Client`](crate::Client) calls and by [`ClientBuilder::build`](crate::ClientBuilder::build).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Returned when a client is built without any endpoint.
    #[error("no endpoint given")]
    NoEndpoints,

    /// Returned when an endpoint is not `host:port` or `http://host:port`.
    #[error("endpoint {endpoint:?} {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Returned when a builder setting is out of range (e.g. a zero timeout or a local fallback limit of 0).
    #[error("invalid client setting {field}: {reason}")]
    InvalidConfig {
        /// The setting, as its builder method is named.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// Returned when no node produced an answer before the overall deadline and every failure was one a retry may
    /// fix (a node down, refusing connections, not the leader, or without a quorum). With
    /// [`FailureMode::Closed`](crate::FailureMode::Closed) this is what a check returns when the cluster is
    /// unreachable.
    #[error("no quorate node answered within {elapsed:?} ({attempts} attempts); last failure: {last}")]
    Unavailable {
        /// How many calls were made.
        attempts: u32,
        /// Time spent before giving up.
        elapsed: Duration,
        /// The last failure seen, for logs.
        last: String,
    },

    /// Returned when a call timed out after it was sent and was not retried because the cluster may already have
    /// applied it: retrying a charging check could charge twice, retrying a refund could refund twice. See
    /// [`ClientBuilder::retry_timed_out_checks`](crate::ClientBuilder::retry_timed_out_checks).
    #[error("{endpoint} did not answer within {after:?}; the call was not retried because it may have been applied")]
    Timeout {
        /// The endpoint that did not answer.
        endpoint: String,
        /// The timeout that expired.
        after: Duration,
    },

    /// Returned when the cluster refuses the request as invalid (`INVALID_ARGUMENT`): a descriptor matches no
    /// policy, a value is empty or too long, the cost exceeds a limit, or a refund amount is 0.
    #[error("invalid request: {message}")]
    InvalidArgument {
        /// The cluster's explanation.
        message: String,
    },

    /// Returned when the cluster's key table is full (`RESOURCE_EXHAUSTED`) and it cannot track a new key.
    #[error("the cluster is at capacity: {message}")]
    ResourceExhausted {
        /// The cluster's explanation.
        message: String,
    },

    /// Returned when the TLS handshake with a node failed on a certificate (not signed by the configured CA, not
    /// naming the node, expired) or a protocol mismatch: a configuration error, never retried elsewhere and never
    /// turned into a decision by a [`FailureMode`](crate::FailureMode) — a fail-open client must not admit
    /// traffic because its TLS settings are wrong.
    #[error("TLS with {endpoint} failed: {reason}")]
    Tls {
        /// The node.
        endpoint: String,
        /// What the TLS library said.
        reason: String,
    },

    /// Returned when a node answers with a gRPC status not covered above (e.g. `INTERNAL`, `UNIMPLEMENTED`).
    #[error("{code:?}: {message}")]
    Rpc {
        /// The gRPC status code.
        code: tonic::Code,
        /// The node's message.
        message: String,
    },
}

impl ClientError {
    /// Returns true if the error means the cluster could not be reached in time ([`ClientError::Unavailable`]
    /// or [`ClientError::Timeout`]): the failures a [`FailureMode`](crate::FailureMode) turns into a decision.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unavailable { .. } | ClientError::Timeout { .. })
    }

    /// Maps a final (non-retried) gRPC status to its typed error.
    pub(crate) fn from_status(status: &tonic::Status) -> ClientError {
        let message = status.message().to_owned();
        match status.code() {
            tonic::Code::InvalidArgument => ClientError::InvalidArgument { message },
            tonic::Code::ResourceExhausted => ClientError::ResourceExhausted { message },
            code => ClientError::Rpc { code, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_statuses_map_to_typed_variants() {
        let invalid = ClientError::from_status(&tonic::Status::invalid_argument("no rule"));
        assert_eq!(invalid, ClientError::InvalidArgument { message: "no rule".into() });
        let full = ClientError::from_status(&tonic::Status::resource_exhausted("table full"));
        assert_eq!(full, ClientError::ResourceExhausted { message: "table full".into() });
        let other = ClientError::from_status(&tonic::Status::internal("boom"));
        assert_eq!(other, ClientError::Rpc { code: tonic::Code::Internal, message: "boom".into() });
        assert!(!other.is_unreachable());
    }

    #[test]
    fn only_unavailable_and_timeout_count_as_unreachable() {
        let unavailable = ClientError::Unavailable { attempts: 3, elapsed: Duration::from_secs(1), last: "x".into() };
        assert!(unavailable.is_unreachable());
        assert!(ClientError::Timeout { endpoint: "e".into(), after: Duration::from_secs(1) }.is_unreachable());
        assert!(!ClientError::NoEndpoints.is_unreachable());
    }
}
