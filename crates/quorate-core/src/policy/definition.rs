//! [`Policy`]: a named limiter, its adaptive opt-in and its no-quorum mode, validated from a [`PolicySpec`].
//!
//! Validation maps every constructor error back to the config key that caused it, so a message reads
//! `invalid policies.per_ip.precision: ...` and never names an internal parameter.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::ident::{Quoted, identifier_problem};
use super::{AlgorithmKind, LeaseConfig, PolicySpec};
use crate::adaptive::Multiplier;
use crate::bounds::MAX_DURATION;
use crate::{CoreError, FixedWindow, Limiter, Nanos, SlidingWindow, TokenBucket, WindowCounter, WindowSpan};

/// The default adaptive floor, 0.25 in parts per million: under any load a policy keeps a quarter of its limit,
/// so clients slow down rather than starve.
pub const DEFAULT_ADAPTIVE_FLOOR_PPM: u32 = 250_000;

/// The default number of sliding-window buckets: one per second of a one-minute window, so capacity frees at
/// most a sixtieth of a window late, for 8 * 61 bytes per key.
pub const DEFAULT_PRECISION: u32 = 60;

/// What a node does with a policy's checks while it cannot reach a Raft quorum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoQuorumMode {
    /// Fail closed: every check is denied until the quorum is back, so the limit is never exceeded.
    #[default]
    Deny,
    /// Fail open: every check is allowed and nothing is counted, so availability wins over the limit.
    Allow,
    /// Each node enforces the policy alone with a node-local limiter holding 1/N of the limit (N = cluster
    /// size), so the cluster as a whole stays near the limit while partitioned.
    Local,
}

/// A named rate limit: an algorithm with its parameters, adaptive opt-in and no-quorum mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    name: CompactString,
    limiter: Limiter,
    adaptive: bool,
    adaptive_floor: Multiplier,
    on_no_quorum: NoQuorumMode,
    lease: Option<LeaseConfig>,
}

impl Policy {
    /// The policy's name, an identifier unique in its set.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The algorithm and its parameters.
    pub fn limiter(&self) -> Limiter {
        self.limiter
    }

    /// Whether the cluster may tighten this policy's limit under load.
    pub fn is_adaptive(&self) -> bool {
        self.adaptive
    }

    /// The lowest multiplier applied to an adaptive policy (the configured `adaptive_floor`).
    pub fn adaptive_floor(&self) -> Multiplier {
        self.adaptive_floor
    }

    /// What a node does with this policy's checks while it has no quorum.
    pub fn on_no_quorum(&self) -> NoQuorumMode {
        self.on_no_quorum
    }

    /// How this policy's keys may be leased, if they may.
    pub fn lease(&self) -> Option<LeaseConfig> {
        self.lease
    }

    /// The configured limit, before any adaptive tightening.
    pub fn base_limit(&self) -> u64 {
        self.limiter.base_limit()
    }

    /// Returns the limit in force under `multiplier`: the base limit if the policy is not adaptive, otherwise
    /// the base limit scaled by `multiplier` but never below the floor (and never below 1).
    pub fn effective_limit(&self, multiplier: Multiplier) -> u64 {
        let base = self.base_limit();
        if self.adaptive { multiplier.apply(base, self.adaptive_floor) } else { base }
    }

    /// Validates the spec of policy `name`.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] naming `policies.<name>.<key>` when the name is not an identifier, a key
    /// does not apply to the algorithm, a required key is missing or a value is out of range.
    pub(super) fn from_spec(name: &str, spec: &PolicySpec) -> Result<Policy, CoreError> {
        if let Some(problem) = identifier_problem(name) {
            return Err(CoreError::invalid(format!("policies.{}", Quoted(name)), problem));
        }
        let path = |key: &str| format!("policies.{name}.{key}");
        let kind = spec.algorithm;
        let not_for =
            |key: &str| CoreError::invalid(path(key), format!("does not apply to algorithm `{}`", kind.as_str()));
        // Keys of other algorithms are errors, not ignored: `precision` on a token bucket is surely a mistake.
        if spec.burst.is_some() && kind != AlgorithmKind::TokenBucket {
            return Err(not_for("burst"));
        }
        if spec.precision.is_some() && kind != AlgorithmKind::SlidingWindow {
            return Err(not_for("precision"));
        }
        if spec.calendar.is_some() && kind != AlgorithmKind::FixedWindow {
            return Err(not_for("calendar"));
        }
        let limiter = build_limiter(spec, &path)?;
        let adaptive_floor = match spec.adaptive_floor {
            None => Multiplier::from_ppm(DEFAULT_ADAPTIVE_FLOOR_PPM),
            Some(_) if !spec.adaptive => {
                return Err(CoreError::invalid(path("adaptive_floor"), "only applies with `adaptive = true`"));
            }
            Some(floor) => {
                floor_ppm(floor).map(Multiplier::from_ppm).map_err(|r| CoreError::invalid(path("adaptive_floor"), r))?
            }
        };
        let lease = match &spec.lease {
            Some(lease) => lease.validate(name)?,
            None => None,
        };
        Ok(Policy {
            name: CompactString::from(name),
            limiter,
            adaptive: spec.adaptive,
            adaptive_floor,
            on_no_quorum: spec.on_no_quorum,
            lease,
        })
    }
}

/// Builds the limiter of `spec`, naming config keys (through `path`) in errors.
fn build_limiter(spec: &PolicySpec, path: &dyn Fn(&str) -> String) -> Result<Limiter, CoreError> {
    let limit = spec.limit;
    let built = match spec.algorithm {
        AlgorithmKind::TokenBucket => {
            let period = required_period(spec, path)?;
            TokenBucket::new(spec.burst.unwrap_or(limit), limit, period).map(Limiter::from)
        }
        AlgorithmKind::SlidingWindow => {
            let period = required_period(spec, path)?;
            SlidingWindow::new(limit, period, spec.precision.unwrap_or(DEFAULT_PRECISION)).map(Limiter::from)
        }
        AlgorithmKind::WindowCounter => {
            let period = required_period(spec, path)?;
            WindowCounter::new(limit, period).map(Limiter::from)
        }
        AlgorithmKind::FixedWindow => {
            let span = match (&spec.period, spec.calendar) {
                (Some(_), Some(_)) => {
                    return Err(CoreError::invalid(path("calendar"), "give either `period` or `calendar`, not both"));
                }
                (None, Some(unit)) => WindowSpan::Calendar(unit),
                (Some(_), None) => WindowSpan::Every(required_period(spec, path)?),
                (None, None) => {
                    return Err(CoreError::invalid(
                        path("period"),
                        "algorithm `fixed_window` needs `period` (e.g. \"1h\") or `calendar` (e.g. \"day\")",
                    ));
                }
            };
            FixedWindow::new(limit, span).map(Limiter::from)
        }
    };
    built.map_err(|e| match e {
        CoreError::InvalidParameter { field, reason } => {
            CoreError::invalid(path(config_key(&field, spec.burst.is_some())), reason)
        }
        other => other,
    })
}

/// Translates a constructor's parameter name (named after the algorithm's model) into the config key the user
/// wrote.
fn config_key(parameter: &str, has_burst: bool) -> &str {
    match parameter {
        "capacity" if has_burst => "burst",
        "capacity" | "refill_amount" | "limit" => "limit",
        "refill_period" | "window" => "period",
        other => other,
    }
}

/// Parses the `period` of `spec`, which its algorithm requires.
fn required_period(spec: &PolicySpec, path: &dyn Fn(&str) -> String) -> Result<Nanos, CoreError> {
    let Some(text) = spec.period.as_deref() else {
        return Err(CoreError::invalid(
            path("period"),
            format!("algorithm `{}` needs a `period` (e.g. \"1m\")", spec.algorithm.as_str()),
        ));
    };
    let duration = humantime::parse_duration(text).map_err(|e| {
        CoreError::invalid(
            path("period"),
            format!("{} is not a duration such as \"30s\", \"1m\" or \"1h\": {e}", Quoted(text)),
        )
    })?;
    // Beyond u64 nanoseconds (584 years) is also beyond the bound the constructors enforce; say so here.
    Nanos::try_from(duration.as_nanos()).map_err(|_| {
        CoreError::invalid(path("period"), format!("{} is above the maximum {MAX_DURATION}ns", Quoted(text)))
    })
}

/// Converts an adaptive floor in (0, 1] to parts per million, or says why it is out of range.
fn floor_ppm(floor: f64) -> Result<u32, String> {
    if floor.is_nan() || floor <= 0.0 || floor > 1.0 {
        return Err(format!("{floor} is outside (0, 1]"));
    }
    let ppm = (floor * 1_000_000.0).round();
    if ppm < 1.0 {
        return Err(format!("{floor} is below the smallest floor 0.000001"));
    }
    // In 1..=1_000_000 here, so the cast is exact.
    Ok(ppm as u32)
}
