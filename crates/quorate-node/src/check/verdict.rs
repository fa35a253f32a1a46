//! [`Verdict`]: a check's decision together with what an API needs to present it.

use std::sync::Arc;

use quorate_core::plan::{Plan, PlannedLimit};
use quorate_core::policy::PolicySet;
use quorate_core::{CheckOutcome, LimitDecision};

/// The decision on one check: the outcome of every limit, the plan that names them, and whether it was degraded.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    /// What the limiter table (or the degraded mode) decided.
    pub(crate) outcome: CheckOutcome,
    /// The limits checked, in the outcome's order.
    pub(crate) plan: Plan,
    /// The policy set the plan was made with, to name its limits.
    pub(crate) policies: Arc<PolicySet>,
    /// True if the decision was made without a quorum.
    pub(crate) degraded: bool,
}

impl Verdict {
    /// Whether every limit allowed the request (and it was charged, unless it was a peek).
    pub(crate) fn allowed(&self) -> bool {
        self.outcome.allowed
    }

    /// Each limit with its decision, in plan (descriptor) order.
    pub(crate) fn limits(&self) -> impl Iterator<Item = (&PlannedLimit, &LimitDecision)> {
        self.plan.limits.iter().zip(&self.outcome.limits)
    }

    /// The index of the most restrictive limit: the one to put in response headers.
    pub(crate) fn overall(&self) -> Option<usize> {
        self.outcome.limits.iter().position(|l| l.decision == self.outcome.decision)
    }
}
