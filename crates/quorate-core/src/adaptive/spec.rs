//! [`AdaptiveConfigSpec`]: the `[adaptive]` section as written in TOML, and its conversion to [`AdaptiveConfig`].
//!
//! This is the only place floats exist: fractions are converted to ppm (rounding to the nearest) and durations
//! (`"10s"`, humantime syntax) to nanoseconds, once, before validation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ppm::{fraction_to_ppm, ppm_to_fraction};
use super::{AdaptiveConfig, Aggregation, Level, Multiplier, SignalScale, SignalScaleSpec};
use crate::{CoreError, Nanos};

/// The `[adaptive]` config section. Every field is optional and defaults to [`AdaptiveConfig::default`].
///
/// ```toml
/// [adaptive]
/// hysteresis = 0.05
/// relax_after = "10s"
/// smoothing = 0.5
/// aggregation = "max"
/// signal_ttl = "30s"
///
/// [[adaptive.levels]]
/// load = 0.6
/// multiplier = 0.75
///
/// [adaptive.scales.llm_latency_p95_ms]
/// low = 500
/// high = 3000
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveConfigSpec {
    /// Tightening levels; a config that lists any replaces the whole classic table.
    pub levels: Vec<LevelSpec>,
    /// Hysteresis as a fraction of load, e.g. `0.05`.
    pub hysteresis: f64,
    /// How long load must stay low before one level relaxes, e.g. `"10s"`.
    pub relax_after: String,
    /// Weight of each new sample in the moving average, in (0, 1]; `1` disables smoothing.
    pub smoothing: f64,
    /// How signals combine: `"max"` or `"mean"`.
    pub aggregation: Aggregation,
    /// How long a reported signal counts, e.g. `"30s"`.
    pub signal_ttl: String,
    /// Raw-reading scales by signal name.
    pub scales: BTreeMap<String, SignalScaleSpec>,
}

/// One `[[adaptive.levels]]` entry: above `load`, limits are multiplied by `multiplier`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelSpec {
    /// The load threshold, strictly between 0 and 1.
    pub load: f64,
    /// The multiplier, in (0, 1].
    pub multiplier: f64,
}

impl Default for AdaptiveConfigSpec {
    fn default() -> Self {
        AdaptiveConfig::default().to_spec()
    }
}

impl AdaptiveConfig {
    /// Converts and validates the TOML form; errors name the field, e.g. `adaptive.levels[1].load`.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if a fraction is not a number in its range, a duration does not parse, or
    /// the result fails [`AdaptiveConfig::validate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use quorate_core::adaptive::{AdaptiveConfig, AdaptiveConfigSpec};
    ///
    /// let spec: AdaptiveConfigSpec = toml::from_str("relax_after = \"30s\"\nsmoothing = 1.0").unwrap();
    /// let config = AdaptiveConfig::from_spec(&spec).unwrap();
    /// assert_eq!(config.relax_after, 30_000_000_000);
    /// assert_eq!(config.levels, AdaptiveConfig::default().levels);
    /// ```
    pub fn from_spec(spec: &AdaptiveConfigSpec) -> Result<Self, CoreError> {
        let levels = spec
            .levels
            .iter()
            .enumerate()
            .map(|(i, level)| {
                let load_ppm = fraction_to_ppm(&format!("adaptive.levels[{i}].load"), level.load)?;
                let field = format!("adaptive.levels[{i}].multiplier");
                let multiplier_ppm = fraction_to_ppm(&field, level.multiplier)?;
                // Checked here because `Multiplier::from_ppm` would quietly turn 0 into 1 ppm.
                if multiplier_ppm == 0 {
                    return Err(CoreError::invalid(field, "must be above 0"));
                }
                Ok(Level { load_ppm, multiplier: Multiplier::from_ppm(multiplier_ppm) })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let scales = spec
            .scales
            .iter()
            .map(|(name, scale)| Ok((name.clone(), SignalScale::from_spec(&format!("adaptive.scales.{name}"), scale)?)))
            .collect::<Result<BTreeMap<_, _>, CoreError>>()?;
        let config = AdaptiveConfig {
            levels,
            hysteresis_ppm: fraction_to_ppm("adaptive.hysteresis", spec.hysteresis)?,
            relax_after: parse_duration("adaptive.relax_after", &spec.relax_after)?,
            smoothing_ppm: fraction_to_ppm("adaptive.smoothing", spec.smoothing)?,
            aggregation: spec.aggregation,
            signal_ttl: parse_duration("adaptive.signal_ttl", &spec.signal_ttl)?,
            scales,
        };
        config.validate()?;
        Ok(config)
    }

    /// The TOML form of this config, e.g. for showing the running config; [`AdaptiveConfig::from_spec`] of it
    /// gives back an equal config.
    pub fn to_spec(&self) -> AdaptiveConfigSpec {
        AdaptiveConfigSpec {
            levels: self
                .levels
                .iter()
                .map(|l| LevelSpec {
                    load: ppm_to_fraction(l.load_ppm),
                    multiplier: ppm_to_fraction(l.multiplier.ppm()),
                })
                .collect(),
            hysteresis: ppm_to_fraction(self.hysteresis_ppm),
            relax_after: format_duration(self.relax_after),
            smoothing: ppm_to_fraction(self.smoothing_ppm),
            aggregation: self.aggregation,
            signal_ttl: format_duration(self.signal_ttl),
            scales: self.scales.iter().map(|(name, scale)| (name.clone(), scale.to_spec())).collect(),
        }
    }
}

fn parse_duration(field: &str, text: &str) -> Result<Nanos, CoreError> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| CoreError::invalid(field, format!("`{text}` is not a duration such as \"10s\": {e}")))?;
    // Anything beyond u64 nanoseconds (584 years) is far beyond MAX_DURATION; validation reports it.
    Ok(Nanos::try_from(duration.as_nanos()).unwrap_or(Nanos::MAX))
}

fn format_duration(nanos: Nanos) -> String {
    humantime::format_duration(Duration::from_nanos(nanos)).to_string()
}
