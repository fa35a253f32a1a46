//! Plans: a validated check or refund, resolved against the policy set in force into the exact limits it charges.
//!
//! A request is validated once, at the API boundary, into a [`Check`] or a [`Refund`] (a [`Cost`] cannot be
//! zero). [`Plan::check`] and [`Plan::refund`] resolve it once, against one [`PolicySet`], into a [`Plan`]: one
//! [`PlannedLimit`] per limited descriptor, each with its policy (or Envoy [`LimitOverride`]), key and cost.
//!
//! The plan, not the request, is what a node replicates. A replica applies it only while its policy set has the
//! version the plan was made with ([`Plan::policy_version`]); after a policy change the request is planned
//! again. So no replica resolves descriptors itself, and every replica charges exactly the same limits.
//!
//! ```
//! use quorate_core::adaptive::Multiplier;
//! use quorate_core::plan::{Check, Cost, Plan};
//! use quorate_core::policy::{Descriptor, PolicySet};
//!
//! let policies = PolicySet::sample();
//! let check = Check::new(vec![Descriptor::new("api_key", "agent_42")], Cost::ONE);
//! let plan = Plan::check(&policies, &check).unwrap();
//! assert_eq!(plan.limits.len(), 1);
//! assert_eq!(plan.limits[0].name(&policies), "agent");
//! assert_eq!(plan.limits[0].key, "api_key=agent_42");
//! let refs = plan.limit_refs(&policies, Multiplier::ONE).unwrap();
//! assert_eq!(refs[0].effective_limit, 200);
//! ```
//!
//! [`PolicySet`]: crate::policy::PolicySet

mod cost;
mod limit_override;
mod request;
mod resolve;
#[cfg(test)]
mod tests;

pub use cost::Cost;
pub use limit_override::{LimitOverride, OVERRIDE_POLICY_BASE, OverrideUnit};
pub use request::{Check, DescriptorOverride, Refund};
pub(crate) use resolve::policy_limit;
pub use resolve::{LimitSource, Plan, PlannedLimit};
