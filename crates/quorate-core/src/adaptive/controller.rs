//! [`AdaptiveController`]: smoothed cluster load in, a [`Multiplier`] out, tightening at once and relaxing slowly.

use serde::{Deserialize, Serialize};

use super::{AdaptiveConfig, LoadSignals, Multiplier, PPM};
use crate::{CoreError, Nanos};

/// The controller's replicated state: part of every snapshot, equal on every replica at the same log position.
///
/// `Default` is the state of a cluster that has seen no load yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdaptiveState {
    /// The moving average of the load, in ppm.
    pub smoothed_ppm: u32,
    /// The active level: 0 is no tightening, `n` is `config.levels[n - 1]`.
    pub level: usize,
    /// Since when the smoothed load has been under the active level's threshold minus hysteresis, if it is.
    pub below_since: Option<Nanos>,
}

/// Turns a stream of cluster-load samples into the multiplier opted-in policies apply to their limits.
///
/// Each [`AdaptiveController::update`] folds one sample into a moving average, then:
///
/// - **tightens at once** to the highest level whose threshold the average is above, jumping several levels if need
///   be: overload must be shed now;
/// - **relaxes one level** only after the average has stayed under that level's threshold minus the hysteresis for
///   `relax_after`, then waits `relax_after` again for the next level: recovery is gradual and a load hovering
///   around a threshold does not flap the limits.
///
/// # Examples
///
/// ```
/// use quorate_core::adaptive::{AdaptiveConfig, AdaptiveController, Multiplier};
///
/// const SECOND: u64 = 1_000_000_000;
/// let config = AdaptiveConfig { smoothing_ppm: 1_000_000, ..AdaptiveConfig::default() };
/// let mut controller = AdaptiveController::new(config).unwrap();
///
/// // 95 % load: straight to the tightest classic level.
/// assert_eq!(controller.update(0, 950_000), Multiplier::from_ppm(250_000));
/// // Load is gone, but limits come back one level per 10 s of quiet.
/// assert_eq!(controller.update(SECOND, 100_000), Multiplier::from_ppm(250_000));
/// assert_eq!(controller.update(11 * SECOND, 100_000), Multiplier::from_ppm(500_000));
/// assert_eq!(controller.update(21 * SECOND, 100_000), Multiplier::from_ppm(750_000));
/// assert_eq!(controller.update(31 * SECOND, 100_000), Multiplier::ONE);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdaptiveController {
    config: AdaptiveConfig,
    state: AdaptiveState,
}

impl AdaptiveController {
    /// Creates a controller with no load seen yet.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if `config` fails [`AdaptiveConfig::validate`].
    pub fn new(config: AdaptiveConfig) -> Result<Self, CoreError> {
        AdaptiveController::with_state(config, AdaptiveState::default())
    }

    /// Restores a controller from a snapshot's state.
    ///
    /// A state from a config with more levels is brought within this one (its level capped at the tightest, its
    /// average at 1), so that a snapshot can never make the controller misbehave.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if `config` fails [`AdaptiveConfig::validate`].
    pub fn with_state(config: AdaptiveConfig, state: AdaptiveState) -> Result<Self, CoreError> {
        config.validate()?;
        let mut controller = AdaptiveController { config, state };
        controller.fit_state();
        Ok(controller)
    }

    /// Replaces the config (a runtime change through the Admin API), keeping the average and the relax timer.
    ///
    /// The level is capped at the new table's tightest; the next update tightens further if the load calls for it.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if `config` fails [`AdaptiveConfig::validate`]; the controller is unchanged.
    pub fn set_config(&mut self, config: AdaptiveConfig) -> Result<(), CoreError> {
        config.validate()?;
        self.config = config;
        self.fit_state();
        Ok(())
    }

    /// Folds the load sample `load_ppm` (clamped to `1_000_000`) taken at `now` into the controller and returns
    /// the multiplier from now on.
    ///
    /// Called by the state machine at each load entry of the log, with the entry's time. A `now` earlier than a
    /// previous one is treated as no time passing.
    pub fn update(&mut self, now: Nanos, load_ppm: u32) -> Multiplier {
        let config = &self.config;
        let state = &mut self.state;
        state.smoothed_ppm = smooth(state.smoothed_ppm, load_ppm.min(PPM), config.smoothing_ppm);

        let wanted = config.level_for(state.smoothed_ppm);
        if wanted > state.level {
            // Tightening is immediate and may skip levels: being late here is what overloads the backends.
            state.level = wanted;
            state.below_since = None;
        } else if state.level > 0 && state.smoothed_ppm < config.relax_below(state.level) {
            let since = *state.below_since.get_or_insert(now);
            if now.saturating_sub(since) >= config.relax_after {
                state.level -= 1;
                // One level at a time: the next level down needs its own quiet period, counted from now.
                let still_below = state.level > 0 && state.smoothed_ppm < config.relax_below(state.level);
                state.below_since = still_below.then_some(now);
            }
        } else {
            // Inside the hysteresis band (or untightened): hold the level and forget any quiet period.
            state.below_since = None;
        }
        self.multiplier()
    }

    /// Updates the controller with the combination of `signals` unexpired at `now`, per the config's aggregation.
    pub fn update_from(&mut self, now: Nanos, signals: &LoadSignals) -> Multiplier {
        let load = signals.combined(now, self.config.aggregation);
        self.update(now, load)
    }

    /// The current multiplier: [`Multiplier::ONE`] untightened, else the active level's.
    pub fn multiplier(&self) -> Multiplier {
        self.config.multiplier_at(self.state.level)
    }

    /// The config in use.
    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// The replicated state, for snapshots and status.
    pub fn state(&self) -> &AdaptiveState {
        &self.state
    }

    fn fit_state(&mut self) {
        self.state.level = self.state.level.min(self.config.levels.len());
        self.state.smoothed_ppm = self.state.smoothed_ppm.min(PPM);
        if self.state.level == 0 {
            self.state.below_since = None;
        }
    }
}

/// Moves `average` toward `sample` by `weight_ppm` of the gap, rounding the step up.
///
/// Rounding toward the sample (never past it, as `weight_ppm <= PPM`) means a steady load is reached exactly rather
/// than approached forever from one side, which matters when it sits right at a threshold.
fn smooth(average: u32, sample: u32, weight_ppm: u32) -> u32 {
    let gap = average.abs_diff(sample);
    let step = (u64::from(gap) * u64::from(weight_ppm)).div_ceil(u64::from(PPM));
    // step <= gap, so it fits a u32 and the move below cannot overshoot or overflow.
    let step = u32::try_from(step).unwrap_or(gap).min(gap);
    if sample >= average { average + step } else { average - step }
}
