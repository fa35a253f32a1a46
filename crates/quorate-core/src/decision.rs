//! The answer to one check: everything an API server needs for `429`, `Retry-After` and the rate-limit headers.

use serde::{Deserialize, Serialize};

use crate::Nanos;

/// The outcome of evaluating one limit for one request.
///
/// Durations are in nanoseconds so that every replica computes bit-identical values; the API layer rounds them
/// to whole seconds for HTTP headers (`Retry-After` rounds up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the request is admitted. A denied request consumed nothing.
    pub allowed: bool,
    /// The limit in force for this request (the effective limit, after any adaptive tightening).
    pub limit: u64,
    /// Units still available right after this decision (after the charge, if it was charged).
    pub remaining: u64,
    /// Time until the limiter is back to its fresh state (full bucket, empty window) if nothing else arrives.
    pub reset_after: Nanos,
    /// For a denied request: the earliest time from now at which the same cost would be allowed if nothing else
    /// arrives. A retry exactly then succeeds; one nanosecond earlier it does not. Zero when allowed.
    pub retry_after: Nanos,
}

impl Decision {
    /// Returns true if `self` is more restrictive than `other`, which the overall answer of a multi-limit check uses.
    ///
    /// A denial beats an admission; between denials the later `retry_after` wins; between admissions the smaller
    /// `remaining` wins, then the later `reset_after`.
    pub fn is_more_restrictive_than(&self, other: &Decision) -> bool {
        match (self.allowed, other.allowed) {
            (false, true) => true,
            (true, false) => false,
            (false, false) => self.retry_after > other.retry_after,
            (true, true) => {
                (self.remaining, std::cmp::Reverse(self.reset_after))
                    < (other.remaining, std::cmp::Reverse(other.reset_after))
            }
        }
    }
}
