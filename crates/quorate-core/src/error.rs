//! Errors returned by quorate-core: bad parameters, impossible requests and a full key table.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Error returned by limiter operations and by policy validation.
///
/// Every variant names the value that is wrong, so that the node can turn it into a gRPC status whose message
/// tells the caller what to fix. Serializable, so that a node can hand it to the peer that asked.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CoreError {
    /// Returned when a request's cost is zero: every request must count for at least one unit.
    #[error("cost must be at least 1")]
    ZeroCost,

    /// Returned when a request asks for more than the limit allows at once, so it could never succeed.
    #[error("cost {cost} exceeds the limit {limit} of policy `{policy}`: it can never be allowed")]
    CostExceedsLimit {
        /// The policy whose limit is too small.
        policy: String,
        /// The cost asked for.
        cost: u64,
        /// The policy's (base) limit.
        limit: u64,
    },

    /// Returned when a check would start tracking a new key while the table already tracks its maximum.
    #[error("the limiter table is full ({max_keys} keys tracked): new keys are refused until idle keys expire")]
    TableFull {
        /// The configured maximum number of tracked keys.
        max_keys: usize,
    },

    /// Returned when a check names no limit at all.
    #[error("a check needs at least one limit")]
    NoLimits,

    /// Returned when a check names the same (policy, key) twice, which would charge it twice.
    #[error("limit `{policy}` key `{key}` is named twice in one check")]
    DuplicateLimit {
        /// The policy named twice.
        policy: String,
        /// The key named twice.
        key: String,
    },

    /// Returned when limiter parameters are invalid; `field` says which one.
    #[error("invalid {field}: {reason}")]
    InvalidParameter {
        /// Where the bad value is, e.g. `policies.agent.precision`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Returned when a request descriptor or rule is malformed, or when no policy matches a request.
    #[error("{0}")]
    InvalidRequest(String),

    /// Returned when a policy configuration cannot be parsed.
    #[error("invalid policy config: {0}")]
    Config(String),
}

impl CoreError {
    /// Builds an [`CoreError::InvalidParameter`] for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::InvalidParameter { field: field.into(), reason: reason.into() }
    }
}
