//! Resolution: a request's [`Descriptor`]s in, the [`ResolvedLimit`]s to check out. On the hot path.
//!
//! Per descriptor, resolution costs one ordered-map lookup for the dimension, one for an exact value and a pass
//! over that dimension's prefixes. The output is one `Vec`; keys up to 24 bytes (`api_key=agent_42`) are stored
//! inline, so most requests allocate nothing else. Error messages, off the hot path, quote request strings
//! escaped and cut short.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::ident::{Quoted, identifier_problem};
use super::{PolicySet, Unmatched};
use crate::adaptive::Multiplier;
use crate::plan::{Cost, Plan, policy_limit};
use crate::{CoreError, LimitRef, PolicyId};

/// The most descriptors one request may carry: each is a limit checked atomically with the others.
pub const MAX_DESCRIPTORS: usize = 16;

/// The longest descriptor value accepted, in bytes: values become keys held in every replica's table.
pub const MAX_VALUE_LEN: usize = 256;

/// One `dimension = value` fact about a request, e.g. `api_key = agent_42`, optionally naming its policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Descriptor {
    /// What the value identifies, e.g. `api_key`, `ip` or `agent_id`: an identifier (`[a-z0-9_.-]+`).
    pub dimension: String,
    /// The value, 1 to [`MAX_VALUE_LEN`] bytes of any text.
    pub value: String,
    /// A policy to check this descriptor against, overriding the rules.
    pub policy: Option<String>,
}

impl Descriptor {
    /// Creates a descriptor whose policy the rules choose.
    pub fn new(dimension: impl Into<String>, value: impl Into<String>) -> Descriptor {
        Descriptor { dimension: dimension.into(), value: value.into(), policy: None }
    }

    /// Returns the descriptor with an explicit policy, which overrides the rules.
    pub fn with_policy(mut self, policy: impl Into<String>) -> Descriptor {
        self.policy = Some(policy.into());
        self
    }

    /// Checks the descriptor's own shape, as descriptor `i` of a request: the dimension is an identifier and the
    /// value is 1 to [`MAX_VALUE_LEN`] bytes. Whether a rule or the named policy exists is not checked here.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidRequest`] naming descriptor `i` and what is wrong with it.
    pub fn validate(&self, i: usize) -> Result<(), CoreError> {
        let Descriptor { dimension, value, .. } = self;
        if let Some(problem) = identifier_problem(dimension) {
            return Err(CoreError::InvalidRequest(format!("descriptor {i}: dimension {problem}")));
        }
        if value.is_empty() {
            return Err(CoreError::InvalidRequest(format!("descriptor {i} ({dimension}): value is empty")));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(CoreError::InvalidRequest(format!(
                "descriptor {i} ({dimension}): value is {} bytes long, above the maximum {MAX_VALUE_LEN}",
                value.len()
            )));
        }
        Ok(())
    }
}

/// One limit a request is checked against: a policy and the key `"dimension=value"` it counts under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResolvedLimit {
    /// The policy's id in the [`PolicySet`] that resolved it.
    pub policy: PolicyId,
    /// `"dimension=value"`; unambiguous because dimensions cannot contain `=`.
    pub key: CompactString,
}

impl PolicySet {
    /// Resolves a request's descriptors into the limits to check, one per limited descriptor, in order.
    ///
    /// Each descriptor goes to its explicit policy if it names one; otherwise to the policy of the rule of its
    /// dimension with exactly its value, else with the longest prefix of its value, else with any value. A
    /// descriptor no rule matches fails the request or is skipped, as [`PolicySet::unmatched`] says.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidRequest`] with a message naming the descriptor when:
    /// - there are no descriptors, or more than [`MAX_DESCRIPTORS`];
    /// - a dimension is not an identifier, or a value is empty or longer than [`MAX_VALUE_LEN`] bytes;
    /// - an explicit policy does not exist;
    /// - no rule matches a descriptor and unmatched descriptors are rejected;
    /// - two descriptors resolve to the same policy and key (the limit would be charged twice);
    /// - no descriptor resolves to a limit at all.
    pub fn resolve(&self, descriptors: &[Descriptor]) -> Result<Vec<ResolvedLimit>, CoreError> {
        let plan = Plan::resolve(self, descriptors, |i, descriptor| policy_limit(self, i, descriptor, Cost::ONE))?;
        let limits = plan.limits.into_iter().map(|limit| ResolvedLimit { policy: limit.table_id(), key: limit.key });
        Ok(limits.collect())
    }

    /// Builds the table's [`LimitRef`]s for `resolved`, with effective limits under `multiplier`.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidRequest`] if a limit names a policy id this set does not have (it was resolved by a
    /// different set).
    pub fn limit_refs<'a>(
        &self,
        resolved: &'a [ResolvedLimit],
        multiplier: Multiplier,
    ) -> Result<Vec<LimitRef<'a>>, CoreError> {
        resolved
            .iter()
            .map(|limit| {
                let policy = self.policy(limit.policy).ok_or_else(|| {
                    CoreError::InvalidRequest(format!(
                        "policy id {} does not exist in policy set version {}",
                        limit.policy,
                        self.version()
                    ))
                })?;
                Ok(LimitRef::new(limit.policy, policy.limiter(), &limit.key)
                    .with_effective_limit(policy.effective_limit(multiplier)))
            })
            .collect()
    }

    /// Validates descriptor `i` of a request and finds its policy: the one it names, else the rules' choice.
    ///
    /// Returns `None` if no rule matches and unmatched descriptors are ignored. [`PolicySet::resolve`] calls it
    /// for each descriptor; callers that resolve some descriptors by other means (the node's Envoy limit
    /// overrides) call it for the others.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidRequest`] naming descriptor `i` if it is invalid ([`Descriptor::validate`]), names an
    /// unknown policy, or matches no rule while unmatched descriptors are rejected.
    pub fn resolve_descriptor(&self, i: usize, descriptor: &Descriptor) -> Result<Option<PolicyId>, CoreError> {
        descriptor.validate(i)?;
        let Descriptor { dimension, value, policy } = descriptor;
        if let Some(name) = policy {
            return match self.id_of(name) {
                Some(id) => Ok(Some(id)),
                None => Err(CoreError::InvalidRequest(format!(
                    "descriptor {i} ({dimension} = {}) names unknown policy {}",
                    Quoted(value),
                    Quoted(name)
                ))),
            };
        }
        match (self.lookup(dimension, value), self.unmatched()) {
            (Some(id), _) => Ok(Some(id)),
            (None, Unmatched::Ignore) => Ok(None),
            (None, Unmatched::Reject) => Err(CoreError::InvalidRequest(format!(
                "descriptor {i} ({dimension} = {}) matches no policy rule",
                Quoted(value)
            ))),
        }
    }
}
