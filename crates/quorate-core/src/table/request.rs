//! What a check names ([`LimitRef`]) and what it answers ([`LimitDecision`] per limit, [`CheckOutcome`] overall),
//! and what a lease grant answers ([`Grant`]).

use serde::{Deserialize, Serialize};

use super::PolicyId;
use crate::{Decision, Limiter};

/// One limit a request is checked against: a policy, its parameters, the limit in force and the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRef<'a> {
    /// The policy the key belongs to.
    pub policy: PolicyId,
    /// The policy's algorithm and parameters.
    pub limiter: Limiter,
    /// The limit in force, `1..=limiter.base_limit()`: lower than the base limit while adaptive limits are tight.
    pub effective_limit: u64,
    /// The key within the policy, e.g. `api_key=agent_42`.
    pub key: &'a str,
}

impl<'a> LimitRef<'a> {
    /// Creates a limit on `key` under `policy`, enforcing the limiter's base limit.
    pub fn new(policy: PolicyId, limiter: Limiter, key: &'a str) -> Self {
        LimitRef { policy, limiter, effective_limit: limiter.base_limit(), key }
    }

    /// Returns the same limit with `limit` in force instead (clamped to `1..=base_limit`).
    pub fn with_effective_limit(self, limit: u64) -> Self {
        LimitRef { effective_limit: limit.clamp(1, self.limiter.base_limit()), ..self }
    }
}

/// The decision of one limit within a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitDecision {
    /// The policy of this limit.
    pub policy: PolicyId,
    /// The configured limit, before adaptive tightening ([`Decision::limit`] is the one in force).
    pub base_limit: u64,
    /// What this limit answered.
    pub decision: Decision,
}

/// The outcome of a check over one or more limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// Whether the request was admitted: true only if every limit allowed it.
    pub allowed: bool,
    /// The most restrictive limit's decision, the one to put in response headers.
    pub decision: Decision,
    /// One decision per limit, in the order the limits were given.
    pub limits: Vec<LimitDecision>,
}

/// The quota a lease was granted by [`LimiterTable::grant`](super::LimiterTable::grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Units granted and charged; 0 when too little was free.
    pub units: u64,
    /// The limit's decision after the charge (with nothing granted: before it).
    pub decision: Decision,
    /// The end of the bucket or window the units were charged to: the lease must be spent before it.
    pub horizon: crate::Nanos,
}
