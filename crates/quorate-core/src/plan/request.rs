//! [`Check`] and [`Refund`]: a request as validated at the API boundary, before it is resolved into a plan.

use serde::{Deserialize, Serialize};

use super::{Cost, LimitOverride};
use crate::policy::Descriptor;

/// A check: charge `cost` to every limit the descriptors resolve to, all of them or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The request's descriptors, in order.
    pub descriptors: Vec<Descriptor>,
    /// Units the request costs.
    pub cost: Cost,
    /// Evaluate only: charge nothing.
    pub peek: bool,
    /// Per-descriptor cost and limit overrides (Envoy's `hits_addend` and `limit`): empty when no descriptor has
    /// any, else one entry per descriptor, in order.
    pub overrides: Vec<DescriptorOverride>,
}

impl Check {
    /// A check of `cost` against the limits the rules choose for `descriptors`.
    pub fn new(descriptors: Vec<Descriptor>, cost: Cost) -> Check {
        Check { descriptors, cost, peek: false, overrides: Vec::new() }
    }

    /// The same check, evaluated without charging anything.
    pub fn peek(mut self) -> Check {
        self.peek = true;
        self
    }
}

/// What one descriptor of a check sets for itself instead of the request's cost and the rules' limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DescriptorOverride {
    /// Units this descriptor's limit is charged instead of the request's cost.
    pub cost: Option<Cost>,
    /// A limit enforced for this descriptor instead of the policy the rules choose.
    pub limit: Option<LimitOverride>,
}

/// A refund: give `amount` units back to every limit the descriptors resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The request's descriptors, in order.
    pub descriptors: Vec<Descriptor>,
    /// Units to give back.
    pub amount: Cost,
}
