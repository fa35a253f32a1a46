//! Policies and rules: which limits a request is checked against.
//!
//! A [`Policy`] names a rate-limit algorithm with its parameters, whether the cluster may tighten it under load
//! (adaptive) and what a node does with it while it has no quorum ([`NoQuorumMode`]). [`Rule`]s map request
//! [`Descriptor`]s (`dimension = value`, e.g. `api_key = agent_42`) to policies, so the tier logic lives in the
//! cluster rather than in every API server.
//!
//! # Parse, validate, use
//!
//! [`PolicySetSpec`] is the raw form, as written in TOML (see [`SAMPLE_POLICIES_TOML`]). [`PolicySet::from_spec`]
//! and [`PolicySet::from_toml`] validate it into a [`PolicySet`], or return an error naming the bad field by its
//! path (`policies.per_ip.precision`, `rules[2].policy`). The rest of Quorate only ever sees a `PolicySet`.
//!
//! # Resolving a request
//!
//! [`PolicySet::resolve`] turns a request's descriptors into the [`ResolvedLimit`]s to check: one
//! `(PolicyId, key)` per descriptor, with key `"dimension=value"`. For each descriptor an explicit policy name
//! wins; otherwise an exact-value rule, then the longest matching prefix, then the dimension's any-value rule.
//! [`PolicySet::limit_refs`] turns the result into the table's [`LimitRef`](crate::LimitRef)s with their
//! effective (adaptive) limits.
//!
//! ```
//! use quorate_core::adaptive::Multiplier;
//! use quorate_core::policy::{Descriptor, PolicySet};
//!
//! let set = PolicySet::sample();
//! let limits = set.resolve(&[Descriptor::new("api_key", "agent_42"), Descriptor::new("ip", "10.0.0.1")]).unwrap();
//! assert_eq!(set.policy(limits[0].policy).unwrap().name(), "agent");
//! assert_eq!(limits[0].key, "api_key=agent_42");
//! assert_eq!(set.policy(limits[1].policy).unwrap().name(), "per_ip");
//!
//! // Under load the cluster halves adaptive limits: `agent` (200/min) drops to 100; `per_ip` is not adaptive.
//! let half = Multiplier::from_ppm(500_000);
//! assert_eq!(set.effective_limit(limits[0].policy, half), Some(100));
//! assert_eq!(set.effective_limit(limits[1].policy, half), Some(600));
//! ```
//!
//! # Determinism
//!
//! A `PolicySet` is replicated through Raft and every replica must resolve a request identically: policies are
//! sorted by name and a [`PolicyId`](crate::PolicyId) is the index in that order, rule lookup uses ordered maps,
//! and adaptive floors are stored as integer [`Multiplier`](crate::adaptive::Multiplier)s.

mod definition;
#[cfg(test)]
mod fuzz;
mod ident;
mod lease;
#[cfg(test)]
mod proptests;
mod resolve;
mod rules;
mod set;
mod spec;
#[cfg(test)]
mod tests;

pub use definition::{DEFAULT_ADAPTIVE_FLOOR_PPM, DEFAULT_PRECISION, NoQuorumMode, Policy};
pub use ident::MAX_NAME_LEN;
pub(crate) use ident::Quoted;
pub use lease::{
    DEFAULT_LEASE_MAX_SHARE_PPM, DEFAULT_LEASE_RESERVE_PPM, DEFAULT_LEASE_TTL, LeaseConfig, LeaseSettingsSpec,
    LeaseSpec, MAX_LEASE_TTL,
};
pub use resolve::{Descriptor, MAX_DESCRIPTORS, MAX_VALUE_LEN, ResolvedLimit};
pub use rules::{Matcher, Rule, Unmatched};
pub use set::{PolicySet, SAMPLE_POLICIES_TOML};
pub use spec::{AlgorithmKind, PolicySetSpec, PolicySpec, RuleSpec};
