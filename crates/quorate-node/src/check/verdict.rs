//! [`Verdict`]: a check's decision together with what an API needs to present it.

use std::sync::Arc;

use quorate_core::plan::{Plan, PlannedLimit};
use quorate_core::policy::PolicySet;
use quorate_core::{CheckOutcome, LimitDecision};

use crate::command::LeaseGrant;

/// The decision on one check: the outcome of every limit, the plan that names them, and how it was made.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    /// What the limiter table (or this node's leases, or the degraded mode) decided.
    pub(crate) outcome: CheckOutcome,
    /// The limits checked, in the outcome's order.
    pub(crate) plan: Plan,
    /// The policy set the plan was made with, to name its limits.
    pub(crate) policies: Arc<PolicySet>,
    /// True if the decision was made without a quorum.
    pub(crate) degraded: bool,
    /// True if this node decided it from its leases, with no log entry.
    pub(crate) leased: bool,
    /// Leases granted with it to the client that asked.
    pub(crate) grants: Vec<LeaseGrant>,
}

impl Verdict {
    /// A decision committed on a quorum, with the leases granted to the client that asked.
    pub(crate) fn strict(outcome: CheckOutcome, plan: Plan, policies: Arc<PolicySet>, grants: Vec<LeaseGrant>) -> Self {
        Verdict { outcome, plan, policies, degraded: false, leased: false, grants }
    }

    /// A decision this node made from its leases.
    pub(crate) fn leased(outcome: CheckOutcome, plan: Plan, policies: Arc<PolicySet>) -> Self {
        Verdict { outcome, plan, policies, degraded: false, leased: true, grants: Vec::new() }
    }

    /// A decision made without a quorum, by the policies' `on_no_quorum` modes.
    pub(crate) fn degraded(outcome: CheckOutcome, plan: Plan, policies: Arc<PolicySet>) -> Self {
        Verdict { outcome, plan, policies, degraded: true, leased: false, grants: Vec::new() }
    }

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
