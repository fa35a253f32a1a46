//! [`Plan`]: the limits a check or refund charges, resolved once against one policy set. On the hot path.

use std::borrow::Cow;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::{Check, Cost, LimitOverride, Refund};
use crate::adaptive::Multiplier;
use crate::policy::{Descriptor, MAX_DESCRIPTORS, PolicySet, Quoted};
use crate::{CoreError, LimitRef, Limiter, Nanos, PolicyId};

/// Where a planned limit's parameters come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LimitSource {
    /// A policy of the set the plan was made with.
    Policy(PolicyId),
    /// An Envoy limit override carried by the request.
    Override(LimitOverride),
}

/// One limit a plan charges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlannedLimit {
    /// The index of the request descriptor it comes from.
    pub descriptor: u8,
    /// The policy or override whose limit applies.
    pub source: LimitSource,
    /// The table key: `dimension=value`, prefixed with an override's parameters for overrides.
    pub key: CompactString,
    /// Units charged to (or refunded to) this limit.
    pub cost: Cost,
}

impl PlannedLimit {
    /// The index of the request descriptor this limit belongs to.
    pub fn descriptor(&self) -> usize {
        usize::from(self.descriptor)
    }

    /// The id the limit's state lives under in the table: the policy's, or the override's synthetic id.
    pub fn table_id(&self) -> PolicyId {
        match self.source {
            LimitSource::Policy(id) => id,
            LimitSource::Override(limit_override) => limit_override.policy_id(),
        }
    }

    /// The algorithm and parameters, from `policies` (the set the plan was made with) or the override.
    pub fn limiter(&self, policies: &PolicySet) -> Option<Limiter> {
        match self.source {
            LimitSource::Policy(id) => policies.policy(id).map(|p| p.limiter()),
            LimitSource::Override(limit_override) => limit_override.limiter().ok(),
        }
    }

    /// The name the API reports: the policy's, or the override's (`override 10/minute`).
    pub fn name<'a>(&self, policies: &'a PolicySet) -> Cow<'a, str> {
        match self.source {
            LimitSource::Policy(id) => Cow::Borrowed(policies.policy(id).map_or("", |p| p.name())),
            LimitSource::Override(limit_override) => Cow::Owned(limit_override.name()),
        }
    }

    /// The window the limit is stated over (`RateLimit-Policy: w=`).
    pub fn window(&self, policies: &PolicySet) -> Nanos {
        match self.source {
            LimitSource::Policy(id) => policies.policy(id).map_or(0, |p| p.limiter().window()),
            LimitSource::Override(limit_override) => limit_override.unit.length(),
        }
    }

    /// The configured limit, before adaptive tightening.
    pub fn base_limit(&self, policies: &PolicySet) -> u64 {
        self.limiter(policies).map_or(0, |l| l.base_limit())
    }
}

/// The limits one check or refund charges, in descriptor order, resolved against policy set `policy_version`.
///
/// See the [module docs](super) for why the plan is what gets replicated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Plan {
    /// The version of the policy set the plan was resolved against; it may only be applied under that version.
    pub policy_version: u64,
    /// The limits, at least one, each (table id, key) at most once.
    pub limits: Vec<PlannedLimit>,
}

impl Plan {
    /// Resolves a check: each descriptor by its limit override if it has one, else by the rules (and may be
    /// skipped if no rule matches and the set ignores unmatched descriptors); each limit's cost is the
    /// descriptor's own or the request's.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidRequest`] saying what is wrong with the request: no or too many descriptors, a
    /// malformed one, an unknown policy or unmatched descriptor, an invalid override, one limit named twice, or no
    /// limit at all; [`CoreError::CostExceedsLimit`] for a cost no limit could ever allow.
    pub fn check(policies: &PolicySet, check: &Check) -> Result<Plan, CoreError> {
        let Check { descriptors, cost, overrides, .. } = check;
        if !overrides.is_empty() && overrides.len() != descriptors.len() {
            return Err(CoreError::InvalidRequest(format!(
                "{} descriptors came with {} overrides",
                descriptors.len(),
                overrides.len()
            )));
        }
        Plan::resolve(policies, descriptors, |i, descriptor| {
            let own = overrides.get(i);
            let cost = own.and_then(|o| o.cost).unwrap_or(*cost);
            let planned = match own.and_then(|o| o.limit) {
                Some(limit_override) => Some(override_limit(i, descriptor, limit_override, cost)?),
                None => policy_limit(policies, i, descriptor, cost)?,
            };
            if let Some(limit) = &planned {
                let base = limit.base_limit(policies);
                if cost.get() > base {
                    let policy = limit.name(policies).into_owned();
                    return Err(CoreError::CostExceedsLimit { policy, cost: cost.get(), limit: base });
                }
            }
            Ok(planned)
        })
    }

    /// Resolves a refund of `amount` to every limit the rules choose. A refund larger than a limit is harmless
    /// (a limit never goes below fresh), so unlike a check its amount is not bounded by the limits.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidRequest`] as for [`Plan::check`].
    pub fn refund(policies: &PolicySet, refund: &Refund) -> Result<Plan, CoreError> {
        Plan::resolve(policies, &refund.descriptors, |i, descriptor| {
            policy_limit(policies, i, descriptor, refund.amount)
        })
    }

    /// Resolves each descriptor with `plan_one` (which may skip one), checking the shared rules: 1 to
    /// [`MAX_DESCRIPTORS`] descriptors, no limit named twice, at least one limit.
    pub(crate) fn resolve(
        policies: &PolicySet,
        descriptors: &[Descriptor],
        mut plan_one: impl FnMut(usize, &Descriptor) -> Result<Option<PlannedLimit>, CoreError>,
    ) -> Result<Plan, CoreError> {
        if descriptors.is_empty() {
            return Err(CoreError::InvalidRequest("a request needs at least one descriptor".to_owned()));
        }
        if descriptors.len() > MAX_DESCRIPTORS {
            return Err(CoreError::InvalidRequest(format!(
                "a request carries at most {MAX_DESCRIPTORS} descriptors, this one has {}",
                descriptors.len()
            )));
        }
        let mut limits: Vec<PlannedLimit> = Vec::with_capacity(descriptors.len());
        for (i, descriptor) in descriptors.iter().enumerate() {
            let Some(limit) = plan_one(i, descriptor)? else { continue };
            // At most 16 limits: a linear scan beats hashing. The table would charge a repeated limit twice.
            if limits.iter().any(|l| l.table_id() == limit.table_id() && l.key == limit.key) {
                return Err(CoreError::InvalidRequest(format!(
                    "descriptor {i} ({} = {}) resolves to `{}` under the same key as an earlier descriptor; the \
                     limit would be charged twice",
                    descriptor.dimension,
                    Quoted(&descriptor.value),
                    limit.name(policies)
                )));
            }
            limits.push(limit);
        }
        if limits.is_empty() {
            return Err(CoreError::InvalidRequest(
                "no descriptor of the request matches a rule (`unmatched = \"ignore\"`), so it has no limit to check"
                    .to_owned(),
            ));
        }
        Ok(Plan { policy_version: policies.version(), limits })
    }

    /// The table's view of the plan's limits, with adaptive policies' limits under `multiplier`.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidRequest`] if `policies` is not the version the plan was made with, or a limit names a
    /// policy it does not have (a plan from a corrupt or foreign log).
    pub fn limit_refs<'a>(
        &'a self,
        policies: &PolicySet,
        multiplier: Multiplier,
    ) -> Result<Vec<LimitRef<'a>>, CoreError> {
        if policies.version() != self.policy_version {
            return Err(CoreError::InvalidRequest(format!(
                "the plan was made with policy set version {}, not {}",
                self.policy_version,
                policies.version()
            )));
        }
        self.limits
            .iter()
            .map(|limit| match limit.source {
                LimitSource::Policy(id) => {
                    let policy = policies.policy(id).ok_or_else(|| {
                        CoreError::InvalidRequest(format!(
                            "policy id {id} does not exist in policy set version {}",
                            policies.version()
                        ))
                    })?;
                    Ok(LimitRef::new(id, policy.limiter(), &limit.key)
                        .with_effective_limit(policy.effective_limit(multiplier)))
                }
                LimitSource::Override(limit_override) => {
                    Ok(LimitRef::new(limit_override.policy_id(), limit_override.limiter()?, &limit.key))
                }
            })
            .collect()
    }

    /// The cost of each limit, in order.
    pub fn costs(&self) -> Vec<u64> {
        self.limits.iter().map(|l| l.cost.get()).collect()
    }

    /// The cost every limit is charged, if they are all charged the same (the table's cheaper path).
    pub fn uniform_cost(&self) -> Option<Cost> {
        let first = self.limits.first()?.cost;
        self.limits.iter().all(|l| l.cost == first).then_some(first)
    }
}

fn descriptor_index(i: usize) -> u8 {
    // Plans are made from at most MAX_DESCRIPTORS (16) descriptors.
    u8::try_from(i).unwrap_or(u8::MAX)
}

/// Plans descriptor `i` by the rules (or the policy it names), charged `cost`; `None` if no rule limits it.
pub(crate) fn policy_limit(
    policies: &PolicySet,
    i: usize,
    descriptor: &Descriptor,
    cost: Cost,
) -> Result<Option<PlannedLimit>, CoreError> {
    let Some(id) = policies.resolve_descriptor(i, descriptor)? else { return Ok(None) };
    let (dimension, value) = (descriptor.dimension.as_str(), descriptor.value.as_str());
    let mut key = CompactString::with_capacity(dimension.len() + 1 + value.len());
    key.push_str(dimension);
    key.push('=');
    key.push_str(value);
    Ok(Some(PlannedLimit { descriptor: descriptor_index(i), source: LimitSource::Policy(id), key, cost }))
}

fn override_limit(
    i: usize,
    descriptor: &Descriptor,
    limit_override: LimitOverride,
    cost: Cost,
) -> Result<PlannedLimit, CoreError> {
    descriptor.validate(i)?;
    limit_override.limiter().map_err(|e| CoreError::InvalidRequest(format!("descriptor {i}: {e}")))?;
    Ok(PlannedLimit {
        descriptor: descriptor_index(i),
        source: LimitSource::Override(limit_override),
        key: limit_override.key(&descriptor.dimension, &descriptor.value).into(),
        cost,
    })
}
