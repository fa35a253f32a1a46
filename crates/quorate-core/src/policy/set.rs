//! [`PolicySet`]: the validated policies and rules a cluster enforces, and how it is built from a config.
//!
//! A `PolicySet` is replicated through Raft, so everything a decision depends on is deterministic: policies are
//! sorted by name and a [`PolicyId`] is the index in that order. Deserializing one (from a log entry or a
//! snapshot) validates it again and rebuilds the rule index, so an invalid set cannot enter through the wire.

use serde::{Deserialize, Serialize};

use super::ident::{Quoted, identifier_problem};
use super::rules::RuleIndex;
use super::{Policy, PolicySetSpec, Rule, Unmatched};
use crate::adaptive::{AdaptiveConfig, Multiplier};
use crate::{CoreError, PolicyId};

/// The sample configuration shipped as `deploy/policies.toml`: the seed tiers, commented for users to copy.
///
/// Tiers: API keys starting `agent_` get `agent` (200/min), `admin_` get `admin` (1000/min), any other key
/// `default` (60/min), all adaptive token buckets; every `ip` gets `per_ip` (sliding window, 600/min) and every
/// `agent_id` `per_agent` (sliding window, 200/min).
pub const SAMPLE_POLICIES_TOML: &str = include_str!("../../../../deploy/policies.toml");

/// The validated policies and rules of a cluster, with a version.
///
/// Build one with [`PolicySet::from_toml`] or [`PolicySet::from_spec`]; resolve requests with
/// [`PolicySet::resolve`]. See the [module docs](super) for an example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicySetWire")]
pub struct PolicySet {
    version: u64,
    unmatched: Unmatched,
    /// Sorted by name, names unique; a policy's id is its index.
    policies: Vec<Policy>,
    /// As configured (file order), for display and export; matching uses `index`.
    rules: Vec<Rule>,
    /// How cluster load tightens the adaptive policies.
    adaptive: AdaptiveConfig,
    /// Derived from `rules`, rebuilt on deserialization.
    #[serde(skip)]
    index: RuleIndex,
}

/// The serialized fields of a [`PolicySet`], validated before they become one.
#[derive(Deserialize)]
struct PolicySetWire {
    version: u64,
    unmatched: Unmatched,
    policies: Vec<Policy>,
    rules: Vec<Rule>,
    adaptive: AdaptiveConfig,
}

impl PolicySet {
    /// The version of a set built from a config; the node bumps it each time the set is replaced.
    pub const FIRST_VERSION: u64 = 1;

    /// Parses and validates a TOML policy config (see [`SAMPLE_POLICIES_TOML`] for the format).
    ///
    /// # Errors
    ///
    /// [`CoreError::Config`] if the text is not valid TOML or has an unknown or mistyped key (with its line
    /// and column), otherwise any error of [`PolicySet::from_spec`].
    pub fn from_toml(text: &str) -> Result<PolicySet, CoreError> {
        let spec: PolicySetSpec = toml::from_str(text).map_err(|e| CoreError::Config(e.to_string()))?;
        PolicySet::from_spec(spec)
    }

    /// Validates a raw policy config into a set of version [`PolicySet::FIRST_VERSION`].
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] naming the path of the first bad field: `policies` if there are none,
    /// `policies.<name>.<key>` for a bad policy, `rules[<i>].<key>` for a bad rule, an unknown policy or a
    /// duplicate rule. Policies are checked in name order, then rules in file order.
    pub fn from_spec(spec: PolicySetSpec) -> Result<PolicySet, CoreError> {
        if spec.policies.is_empty() {
            return Err(CoreError::invalid("policies", "at least one policy is required"));
        }
        // BTreeMap iteration is in name order, which is exactly the id order.
        let policies = spec
            .policies
            .iter()
            .map(|(name, policy)| Policy::from_spec(name, policy))
            .collect::<Result<Vec<_>, _>>()?;
        let rules =
            spec.rules.iter().enumerate().map(|(i, rule)| Rule::from_spec(i, rule)).collect::<Result<Vec<_>, _>>()?;
        let adaptive = AdaptiveConfig::from_spec(&spec.adaptive)?;
        PolicySet::assemble(PolicySet::FIRST_VERSION, spec.unmatched, policies, rules, adaptive)
    }

    /// The sample configuration ([`SAMPLE_POLICIES_TOML`]), validated: the seed tiers for `dev` mode and tests.
    ///
    /// # Panics
    ///
    /// Never in a tested build: the sample is compiled in and a unit test parses it.
    pub fn sample() -> PolicySet {
        #[allow(clippy::expect_used)] // A compile-time constant, parsed by the `sample_parses` test.
        PolicySet::from_toml(SAMPLE_POLICIES_TOML).expect("the sample policies are valid")
    }

    /// Checks the invariants shared by configs and the wire, and indexes the rules.
    fn assemble(
        version: u64,
        unmatched: Unmatched,
        policies: Vec<Policy>,
        rules: Vec<Rule>,
        adaptive: AdaptiveConfig,
    ) -> Result<PolicySet, CoreError> {
        adaptive.validate()?;
        if PolicyId::try_from(policies.len()).is_err() {
            return Err(CoreError::invalid(
                "policies",
                format!("{} policies is more than ids can number", policies.len()),
            ));
        }
        for (i, policy) in policies.iter().enumerate() {
            if let Some(problem) = identifier_problem(policy.name()) {
                return Err(CoreError::invalid(format!("policies.{}", Quoted(policy.name())), problem));
            }
            // Ids are indexes in name order: the order must be strict so that every replica numbers alike.
            if i > 0 && policies[i - 1].name() >= policy.name() {
                return Err(CoreError::invalid(
                    format!("policies.{}", policy.name()),
                    "policies must be unique and sorted by name",
                ));
            }
        }
        for (i, rule) in rules.iter().enumerate() {
            rule.check(i)?;
        }
        let index = RuleIndex::build(&rules, |name| id_in(&policies, name))?;
        Ok(PolicySet { version, unmatched, policies, rules, adaptive, index })
    }

    /// How cluster load tightens the adaptive policies (`[adaptive]` in the config).
    pub fn adaptive(&self) -> &AdaptiveConfig {
        &self.adaptive
    }

    /// The set's version: [`PolicySet::FIRST_VERSION`] when built from a config.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Returns the same set with version `version`; the node calls it when this set replaces an older one.
    pub fn with_version(mut self, version: u64) -> PolicySet {
        self.version = version;
        self
    }

    /// What resolution does with a descriptor no rule matches.
    pub fn unmatched(&self) -> Unmatched {
        self.unmatched
    }

    /// The number of policies; ids are `0..len()`.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether the set has no policies (never true for a validated set).
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Returns the policy with id `id`, if there is one.
    pub fn policy(&self, id: PolicyId) -> Option<&Policy> {
        self.policies.get(usize::try_from(id).ok()?)
    }

    /// Returns the id of the policy named `name`, if there is one.
    pub fn id_of(&self, name: &str) -> Option<PolicyId> {
        id_in(&self.policies, name)
    }

    /// Iterates over the policies with their ids, in id (= name) order.
    pub fn policies(&self) -> impl ExactSizeIterator<Item = (PolicyId, &Policy)> + '_ {
        // `assemble` checked that every index fits a PolicyId, so the cast never truncates.
        self.policies.iter().enumerate().map(|(i, policy)| (i as PolicyId, policy))
    }

    /// The rules, in the order they were configured (which does not affect matching).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Returns the limit policy `id` enforces under `multiplier`: its base limit if it is not adaptive,
    /// otherwise `multiplier` applied to it, never below the policy's floor. `None` if there is no such policy.
    pub fn effective_limit(&self, id: PolicyId, multiplier: Multiplier) -> Option<u64> {
        self.policy(id).map(|policy| policy.effective_limit(multiplier))
    }

    /// Returns the id of the policy of the rule that wins for `dimension = value`, if any rule matches.
    pub(super) fn lookup(&self, dimension: &str, value: &str) -> Option<PolicyId> {
        self.index.lookup(dimension, value)
    }
}

impl TryFrom<PolicySetWire> for PolicySet {
    type Error = CoreError;

    fn try_from(wire: PolicySetWire) -> Result<PolicySet, CoreError> {
        PolicySet::assemble(wire.version, wire.unmatched, wire.policies, wire.rules, wire.adaptive)
    }
}

/// Finds `name` in policies sorted by name.
fn id_in(policies: &[Policy], name: &str) -> Option<PolicyId> {
    let index = policies.binary_search_by(|policy| policy.name().cmp(name)).ok()?;
    PolicyId::try_from(index).ok()
}
