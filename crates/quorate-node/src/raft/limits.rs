//! Which limits a check charges: each descriptor resolved by the policy rules, or by its Envoy limit override.
//!
//! The leader runs [`resolve_check`] before proposing (so that bad requests never reach the log) and every replica
//! runs it again when it applies the entry, against the policy set at that log position. It is a pure function of
//! the command and the policy set: same inputs, same limits, in descriptor order.

use quorate_core::adaptive::Multiplier;
use quorate_core::policy::{Descriptor, MAX_DESCRIPTORS, PolicySet};
use quorate_core::{CoreError, LimitRef, Limiter, PolicyId};

use crate::command::DescriptorOverride;
use crate::limit_override::LimitOverride;

/// One limit a check charges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLimit {
    /// The index of the descriptor it comes from.
    pub descriptor: usize,
    /// The table policy id: a configured policy's, or an override's synthetic one.
    pub policy: PolicyId,
    /// The table key.
    pub key: String,
    /// The algorithm and its parameters.
    pub limiter: Limiter,
    /// The limit in force (adaptive policies may be below their base limit).
    pub effective_limit: u64,
    /// Units this limit is charged.
    pub cost: u64,
    /// The override that set this limit, if one did.
    pub limit_override: Option<LimitOverride>,
}

impl CheckLimit {
    /// The table's view of this limit.
    pub fn limit_ref(&self) -> LimitRef<'_> {
        LimitRef::new(self.policy, self.limiter, &self.key).with_effective_limit(self.effective_limit)
    }
}

/// Resolves a check's descriptors into the limits to charge, with adaptive policies' limits under `multiplier`,
/// refusing costs that no limit could ever allow.
///
/// A descriptor with a limit override is validated ([`Descriptor::validate`]) and limited by the override alone;
/// any other goes through the rules ([`PolicySet::resolve_descriptor`]) and may be skipped if no rule matches
/// and the set ignores unmatched descriptors. `overrides` is empty or has one entry per descriptor.
///
/// # Errors
///
/// A message for the client saying what is wrong with the request: no or too many descriptors, a malformed
/// one, an unknown policy or unmatched descriptor, one limit named twice, no limit at all, an invalid override,
/// or a cost above its limit.
pub fn resolve_check(
    policies: &PolicySet,
    multiplier: Multiplier,
    descriptors: &[Descriptor],
    cost: u64,
    overrides: &[DescriptorOverride],
) -> Result<Vec<CheckLimit>, String> {
    if descriptors.is_empty() {
        return Err("a request needs at least one descriptor".to_owned());
    }
    if descriptors.len() > MAX_DESCRIPTORS {
        return Err(format!(
            "a request carries at most {MAX_DESCRIPTORS} descriptors, this one has {}",
            descriptors.len()
        ));
    }
    if !overrides.is_empty() && overrides.len() != descriptors.len() {
        return Err(format!("{} descriptors came with {} overrides", descriptors.len(), overrides.len()));
    }
    let mut limits: Vec<CheckLimit> = Vec::with_capacity(descriptors.len());
    for (i, descriptor) in descriptors.iter().enumerate() {
        let own = overrides.get(i);
        let cost = own.and_then(|o| o.cost).unwrap_or(cost).max(1);
        let limit = match own.and_then(|o| o.limit) {
            Some(limit_override) => override_limit(i, descriptor, limit_override, cost)?,
            None => match policies.resolve_descriptor(i, descriptor).map_err(|e| e.to_string())? {
                Some(policy) => policy_limit(policies, multiplier, i, descriptor, policy, cost)?,
                None => continue,
            },
        };
        // At most 16 limits: a linear scan beats hashing. The table would refuse a limit named twice.
        if limits.iter().any(|l| l.policy == limit.policy && l.key == limit.key) {
            return Err(format!(
                "descriptor {i} ({} = {:?}) resolves to the same limit and key as an earlier descriptor; the \
                 limit would be charged twice",
                descriptor.dimension, descriptor.value
            ));
        }
        limits.push(limit);
    }
    if limits.is_empty() {
        return Err(
            "no descriptor of the request matches a rule (`unmatched = \"ignore\"`), so it has no limit to check"
                .to_owned(),
        );
    }
    Ok(limits)
}

fn policy_limit(
    policies: &PolicySet,
    multiplier: Multiplier,
    i: usize,
    descriptor: &Descriptor,
    id: PolicyId,
    cost: u64,
) -> Result<CheckLimit, String> {
    let policy = policies.policy(id).ok_or_else(|| format!("descriptor {i}: policy id {id} does not exist"))?;
    if cost > policy.base_limit() {
        let error = CoreError::CostExceedsLimit { policy: policy.name().to_owned(), cost, limit: policy.base_limit() };
        return Err(error.to_string());
    }
    Ok(CheckLimit {
        descriptor: i,
        policy: id,
        key: format!("{}={}", descriptor.dimension, descriptor.value),
        limiter: policy.limiter(),
        effective_limit: policy.effective_limit(multiplier),
        cost,
        limit_override: None,
    })
}

fn override_limit(
    i: usize,
    descriptor: &Descriptor,
    limit_override: LimitOverride,
    cost: u64,
) -> Result<CheckLimit, String> {
    descriptor.validate(i).map_err(|e| e.to_string())?;
    let limiter = limit_override.limiter().map_err(|e| format!("descriptor {i}: {e}"))?;
    if cost > limiter.base_limit() {
        let error = CoreError::CostExceedsLimit { policy: limit_override.name(), cost, limit: limiter.base_limit() };
        return Err(format!("descriptor {i}: {error}"));
    }
    Ok(CheckLimit {
        descriptor: i,
        policy: limit_override.policy_id(),
        key: limit_override.key(&descriptor.dimension, &descriptor.value),
        limiter,
        effective_limit: limiter.base_limit(),
        cost,
        limit_override: Some(limit_override),
    })
}
