//! The raw policy configuration, exactly as written in TOML: parsed, not yet validated.
//!
//! Every struct denies unknown fields, so a typo (`limt = 60`) is an error with its line and column rather than a
//! silently ignored key. Values are checked only by [`PolicySet::from_spec`](super::PolicySet::from_spec).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{LeaseSpec, NoQuorumMode, Unmatched};
use crate::CalendarUnit;
use crate::adaptive::AdaptiveConfigSpec;

/// The raw form of a [`PolicySet`](super::PolicySet): the top-level keys `unmatched`, `policies`, `rules` and
/// `adaptive`.
///
/// Meant to be nested in a larger config file as a table of its own (its unknown-field check would reject the
/// sibling keys of a `#[serde(flatten)]` embedding).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySetSpec {
    /// What to do with a descriptor no rule matches (default: reject the request).
    #[serde(default)]
    pub unmatched: Unmatched,
    /// Policies by name (`[policies.<name>]`).
    #[serde(default)]
    pub policies: BTreeMap<String, PolicySpec>,
    /// Rules mapping descriptors to policies (`[[rules]]`), in file order; the order does not affect matching.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// How cluster load tightens adaptive policies (`[adaptive]`); the classic table if omitted.
    #[serde(default)]
    pub adaptive: AdaptiveConfigSpec,
}

/// The raw form of one [`Policy`](super::Policy) (`[policies.<name>]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// The rate-limit algorithm.
    pub algorithm: AlgorithmKind,
    /// Units per period: tokens refilled per period (token bucket) or the most units per window.
    pub limit: u64,
    /// The refill period or window length, as a humantime duration (`"30s"`, `"1m"`, `"1h"`). Required except
    /// for a fixed window with `calendar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// Token bucket only: the most tokens held at once (default: `limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// Sliding window only: buckets per window (default [`DEFAULT_PRECISION`](super::DEFAULT_PRECISION)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u32>,
    /// Fixed window only, instead of `period`: windows aligned to this UTC calendar unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarUnit>,
    /// Whether the cluster may tighten this limit under load (default: no).
    #[serde(default)]
    pub adaptive: bool,
    /// Adaptive only: the lowest fraction of the limit, in (0, 1] (default 0.25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_floor: Option<f64>,
    /// What a node does with this policy while it has no quorum (default: deny).
    #[serde(default)]
    pub on_no_quorum: NoQuorumMode,
    /// Whether (and how) keys of this policy may be leased to holders that decide locally (default: no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseSpec>,
}

/// The name of a rate-limit algorithm in a [`PolicySpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmKind {
    /// [`TokenBucket`](crate::TokenBucket): `limit` per `period`, bursts up to `burst`.
    TokenBucket,
    /// [`SlidingWindow`](crate::SlidingWindow): at most `limit` in any `period`, in `precision` buckets.
    SlidingWindow,
    /// [`WindowCounter`](crate::WindowCounter): about `limit` per `period`, O(1) per key; up to `2 * limit - 1` in a
    /// `period` straddling two windows.
    WindowCounter,
    /// [`FixedWindow`](crate::FixedWindow): at most `limit` per `period` or per `calendar` unit.
    FixedWindow,
}

impl AlgorithmKind {
    /// The name as written in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            AlgorithmKind::TokenBucket => "token_bucket",
            AlgorithmKind::SlidingWindow => "sliding_window",
            AlgorithmKind::WindowCounter => "window_counter",
            AlgorithmKind::FixedWindow => "fixed_window",
        }
    }
}

/// The raw form of one [`Rule`](super::Rule) (`[[rules]]`): set `value`, `prefix`, or neither for any value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The descriptor dimension the rule applies to, e.g. `api_key`.
    pub dimension: String,
    /// Matches this exact value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Matches values starting with this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The name of the policy matching descriptors are checked against.
    pub policy: String,
}
