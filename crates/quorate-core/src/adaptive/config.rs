//! [`AdaptiveConfig`]: the validated controller parameters, all integers (loads and weights in ppm, times in ns).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ppm::display_ppm;
use super::signals::check_signal_name;
use super::{Aggregation, Multiplier, PPM, SignalScale};
use crate::bounds::MAX_DURATION;
use crate::{CoreError, Nanos};

const SECOND: Nanos = 1_000_000_000;

/// The classic tightening table: above 60 % load limits drop to 75 %, above 75 % to 50 %, above 90 % to 25 %.
///
/// Three coarse steps: enough to shed load progressively, few enough that each change is visible and explainable.
pub const CLASSIC_LEVELS: [Level; 3] = [
    Level { load_ppm: 600_000, multiplier: Multiplier::from_ppm(750_000) },
    Level { load_ppm: 750_000, multiplier: Multiplier::from_ppm(500_000) },
    Level { load_ppm: 900_000, multiplier: Multiplier::from_ppm(250_000) },
];

/// Default hysteresis, 0.05: limits relax only once load is 5 points under the threshold that tightened them.
///
/// Wider than the ripple of a steady load around a threshold after smoothing, narrower than the 0.15 gaps between
/// the classic levels.
pub const DEFAULT_HYSTERESIS_PPM: u32 = 50_000;

/// Default time the smoothed load must stay low before limits relax one level: 10 s, about ten samples.
pub const DEFAULT_RELAX_AFTER: Nanos = 10 * SECOND;

/// Default weight of a new sample in the moving average: 0.5.
///
/// Samples arrive about once a second, so a one-sample spike counts half and a sustained rise is followed within
/// two or three seconds.
pub const DEFAULT_SMOOTHING_PPM: u32 = 500_000;

/// Default lifetime of a reported signal: 30 s, several report intervals, so one lost report does not drop it.
pub const DEFAULT_SIGNAL_TTL: Nanos = 30 * SECOND;

/// The most tightening levels a config may have.
pub const MAX_LEVELS: usize = 16;

/// One step of the tightening table: above `load_ppm`, limits are multiplied by `multiplier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Level {
    /// The load threshold in ppm, in `1..1_000_000`: the level applies when the smoothed load is strictly above it.
    pub load_ppm: u32,
    /// The multiplier opted-in limits get at this level.
    pub multiplier: Multiplier,
}

/// Adaptive controller parameters: the tightening table, hysteresis, relax delay, smoothing and signal handling.
///
/// Build it from TOML with [`AdaptiveConfig::from_spec`], or fill the fields and let
/// [`AdaptiveController::new`](super::AdaptiveController::new) validate them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdaptiveConfig {
    /// Tightening levels, strictly increasing in load and strictly decreasing in multiplier.
    pub levels: Vec<Level>,
    /// How far (ppm) the smoothed load must fall under a level's threshold before that level may relax.
    pub hysteresis_ppm: u32,
    /// How long the smoothed load must stay under threshold minus hysteresis before one level relaxes.
    pub relax_after: Nanos,
    /// Weight (ppm) of each new sample in the moving average; `1_000_000` disables smoothing.
    pub smoothing_ppm: u32,
    /// How signals combine into the cluster load.
    pub aggregation: Aggregation,
    /// How long a reported signal counts unless it is reported again.
    pub signal_ttl: Nanos,
    /// Scales that map raw readings (e.g. `llm_latency_p95_ms`) to load, by signal name.
    pub scales: BTreeMap<String, SignalScale>,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            levels: CLASSIC_LEVELS.to_vec(),
            hysteresis_ppm: DEFAULT_HYSTERESIS_PPM,
            relax_after: DEFAULT_RELAX_AFTER,
            smoothing_ppm: DEFAULT_SMOOTHING_PPM,
            aggregation: Aggregation::default(),
            signal_ttl: DEFAULT_SIGNAL_TTL,
            scales: BTreeMap::new(),
        }
    }
}

impl AdaptiveConfig {
    /// Checks every parameter; errors name the config path of the first bad one, e.g. `adaptive.levels[1].load`.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if there are no levels or more than [`MAX_LEVELS`]; a level's load is not in
    /// (0, 1); loads do not strictly increase or multipliers do not strictly decrease; the hysteresis is not below
    /// the smallest gap between thresholds (counting the gap from 0 to the first one, or that level could never
    /// relax); smoothing is 0; a duration is beyond [`MAX_DURATION`] or the signal TTL is 0; or a scale name is
    /// empty or too long.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.levels.is_empty() || self.levels.len() > MAX_LEVELS {
            return Err(CoreError::invalid(
                "adaptive.levels",
                format!("needs 1 to {MAX_LEVELS} levels, found {}", self.levels.len()),
            ));
        }
        let mut previous: Option<&Level> = None;
        let mut smallest_gap = u32::MAX;
        for (i, level) in self.levels.iter().enumerate() {
            let load = level.load_ppm;
            if load == 0 || load >= PPM {
                return Err(CoreError::invalid(
                    format!("adaptive.levels[{i}].load"),
                    format!("{} is not strictly between 0 and 1", display_ppm(load)),
                ));
            }
            let previous_load = previous.map_or(0, |p| p.load_ppm);
            if let Some(previous) = previous {
                if load <= previous.load_ppm {
                    return Err(CoreError::invalid(
                        format!("adaptive.levels[{i}].load"),
                        format!(
                            "{} must be above the previous level's load {}",
                            display_ppm(load),
                            display_ppm(previous.load_ppm)
                        ),
                    ));
                }
                if level.multiplier >= previous.multiplier {
                    return Err(CoreError::invalid(
                        format!("adaptive.levels[{i}].multiplier"),
                        format!(
                            "{} must be below the previous level's multiplier {}: a higher load must tighten more",
                            display_ppm(level.multiplier.ppm()),
                            display_ppm(previous.multiplier.ppm())
                        ),
                    ));
                }
            }
            smallest_gap = smallest_gap.min(load - previous_load);
            previous = Some(level);
        }
        if self.hysteresis_ppm >= smallest_gap {
            return Err(CoreError::invalid(
                "adaptive.hysteresis",
                format!(
                    "{} must be below the smallest gap between level loads (and from 0 to the first), {}",
                    display_ppm(self.hysteresis_ppm),
                    display_ppm(smallest_gap)
                ),
            ));
        }
        if self.smoothing_ppm == 0 || self.smoothing_ppm > PPM {
            return Err(CoreError::invalid(
                "adaptive.smoothing",
                format!(
                    "{} must be in (0, 1]: 1 disables smoothing, 0 would freeze the load",
                    display_ppm(self.smoothing_ppm)
                ),
            ));
        }
        if self.relax_after > MAX_DURATION {
            return Err(CoreError::invalid(
                "adaptive.relax_after",
                format!("{}ns is above the maximum {MAX_DURATION}ns", self.relax_after),
            ));
        }
        if self.signal_ttl == 0 || self.signal_ttl > MAX_DURATION {
            return Err(CoreError::invalid(
                "adaptive.signal_ttl",
                format!("{}ns must be in 1ns..={MAX_DURATION}ns", self.signal_ttl),
            ));
        }
        for name in self.scales.keys() {
            check_signal_name("adaptive.scales", name)?;
        }
        Ok(())
    }

    /// The level a smoothed load calls for: how many thresholds it is strictly above (0 = no tightening).
    pub fn level_for(&self, load_ppm: u32) -> usize {
        // Thresholds strictly increase, so the exceeded ones form a prefix.
        self.levels.iter().take_while(|level| load_ppm > level.load_ppm).count()
    }

    /// The multiplier at `level`: [`Multiplier::ONE`] at level 0, else that level's multiplier.
    ///
    /// A level beyond the table counts as the tightest level.
    pub fn multiplier_at(&self, level: usize) -> Multiplier {
        match level.checked_sub(1) {
            None => Multiplier::ONE,
            Some(index) => self.levels.get(index).or(self.levels.last()).map_or(Multiplier::ONE, |l| l.multiplier),
        }
    }

    /// The smoothed load (ppm) that `level` (1-based) must stay strictly under before it relaxes.
    pub(crate) fn relax_below(&self, level: usize) -> u32 {
        let threshold = level.checked_sub(1).and_then(|i| self.levels.get(i)).map_or(0, |l| l.load_ppm);
        threshold.saturating_sub(self.hysteresis_ppm)
    }
}
