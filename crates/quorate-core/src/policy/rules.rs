//! [`Rule`]s map request descriptors to policies; [`RuleIndex`] finds the rule for a descriptor without scanning.
//!
//! For a descriptor `dimension = value` the winner is, in order: the rule of that dimension whose exact value is
//! `value`, then the one with the longest prefix of `value`, then the dimension's any-value rule. No two rules
//! share a dimension and matcher, and two different prefixes of the same length cannot both match one value, so
//! the winner is unique and independent of the order rules were written in.

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::ident::{Quoted, identifier_problem};
use super::{MAX_VALUE_LEN, RuleSpec};
use crate::{CoreError, PolicyId};

/// What resolution does with a descriptor that no rule matches (top-level `unmatched` key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// The request is refused with [`CoreError::InvalidRequest`] naming the descriptor: every request must be
    /// covered by the configured tiers.
    #[default]
    Reject,
    /// The descriptor is not limited; the request's other descriptors still are.
    Ignore,
}

/// How a [`Rule`] matches a descriptor's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Matcher {
    /// Matches exactly this value; wins over any prefix.
    Exact(CompactString),
    /// Matches values starting with this prefix; the longest matching prefix wins.
    Prefix(CompactString),
    /// Matches any value of the dimension; used when no exact or prefix rule matches.
    Any,
}

impl Matcher {
    /// Whether this matcher accepts `value` (regardless of precedence among rules).
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(exact) => value == exact.as_str(),
            Matcher::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Matcher::Any => true,
        }
    }
}

/// A validated rule: descriptors of `dimension` whose value the matcher accepts are checked against `policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    dimension: CompactString,
    matcher: Matcher,
    policy: CompactString,
}

impl Rule {
    /// The dimension the rule applies to, e.g. `api_key`.
    pub fn dimension(&self) -> &str {
        &self.dimension
    }

    /// How the rule matches values.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// The name of the policy the rule maps to.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// Validates `rules[index]` except for its policy reference, which [`RuleIndex::build`] checks.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] naming `rules[index].<key>` when both `value` and `prefix` are set, or
    /// when a field could never match a valid descriptor.
    pub(super) fn from_spec(index: usize, spec: &RuleSpec) -> Result<Rule, CoreError> {
        let matcher = match (&spec.value, &spec.prefix) {
            (Some(_), Some(_)) => {
                return Err(CoreError::invalid(
                    format!("rules[{index}].prefix"),
                    "cannot be combined with `value`: a rule matches one exact value, a prefix, or (with neither) any value",
                ));
            }
            (Some(value), None) => Matcher::Exact(CompactString::from(value.as_str())),
            (None, Some(prefix)) => Matcher::Prefix(CompactString::from(prefix.as_str())),
            (None, None) => Matcher::Any,
        };
        let rule = Rule {
            dimension: CompactString::from(spec.dimension.as_str()),
            matcher,
            policy: CompactString::from(spec.policy.as_str()),
        };
        rule.check(index)?;
        Ok(rule)
    }

    /// Checks that `rules[index]` could match a valid descriptor: an identifier dimension, and a value or prefix
    /// that is neither empty (an empty prefix would be an any-value rule in disguise) nor longer than any
    /// request value.
    pub(super) fn check(&self, index: usize) -> Result<(), CoreError> {
        if let Some(problem) = identifier_problem(&self.dimension) {
            return Err(CoreError::invalid(format!("rules[{index}].dimension"), problem));
        }
        let (key, text) = match &self.matcher {
            Matcher::Exact(value) => ("value", value),
            Matcher::Prefix(prefix) => ("prefix", prefix),
            Matcher::Any => return Ok(()),
        };
        if text.is_empty() {
            let reason = "must not be empty (leave out both `value` and `prefix` to match any value)";
            return Err(CoreError::invalid(format!("rules[{index}].{key}"), reason));
        }
        if text.len() > MAX_VALUE_LEN {
            return Err(CoreError::invalid(
                format!("rules[{index}].{key}"),
                format!(
                    "is {} bytes long; request values are at most {MAX_VALUE_LEN}, so it never matches",
                    text.len()
                ),
            ));
        }
        Ok(())
    }
}

/// Rules indexed by dimension, for lookups in O(log rules) plus one pass over the dimension's prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RuleIndex {
    dimensions: BTreeMap<CompactString, DimensionRules>,
}

/// The rules of one dimension, by kind of matcher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct DimensionRules {
    exact: BTreeMap<CompactString, PolicyId>,
    /// Longest first, so the first prefix that matches is the longest one.
    prefixes: Vec<(CompactString, PolicyId)>,
    any: Option<PolicyId>,
}

impl RuleIndex {
    /// Indexes `rules`, resolving policy names with `id_of`.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] naming `rules[i].policy` for an unknown policy, or `rules[i]` for a rule
    /// with the same dimension and matcher as an earlier one.
    pub(super) fn build(rules: &[Rule], id_of: impl Fn(&str) -> Option<PolicyId>) -> Result<RuleIndex, CoreError> {
        let mut dimensions: BTreeMap<CompactString, DimensionRules> = BTreeMap::new();
        let mut first_of: BTreeMap<(&str, &Matcher), usize> = BTreeMap::new();
        for (index, rule) in rules.iter().enumerate() {
            let Some(id) = id_of(&rule.policy) else {
                return Err(CoreError::invalid(
                    format!("rules[{index}].policy"),
                    format!("unknown policy {}", Quoted(&rule.policy)),
                ));
            };
            // A duplicate would make the winner depend on file order; refuse it instead of picking one.
            if let Some(first) = first_of.insert((&rule.dimension, &rule.matcher), index) {
                return Err(CoreError::invalid(
                    format!("rules[{index}]"),
                    format!("has the same dimension and matcher as rules[{first}]"),
                ));
            }
            let entry = dimensions.entry(rule.dimension.clone()).or_default();
            match &rule.matcher {
                Matcher::Exact(value) => {
                    entry.exact.insert(value.clone(), id);
                }
                Matcher::Prefix(prefix) => entry.prefixes.push((prefix.clone(), id)),
                Matcher::Any => entry.any = Some(id),
            }
        }
        for rules in dimensions.values_mut() {
            rules.prefixes.sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        }
        Ok(RuleIndex { dimensions })
    }

    /// Returns the policy of the rule that wins for `dimension = value`, if any rule matches.
    pub(super) fn lookup(&self, dimension: &str, value: &str) -> Option<PolicyId> {
        let rules = self.dimensions.get(dimension)?;
        if let Some(&id) = rules.exact.get(value) {
            return Some(id);
        }
        let longest_prefix = rules.prefixes.iter().find(|(prefix, _)| value.starts_with(prefix.as_str()));
        longest_prefix.map(|&(_, id)| id).or(rules.any)
    }
}
