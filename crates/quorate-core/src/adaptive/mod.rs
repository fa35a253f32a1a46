//! Adaptive limits: cluster load in, a limit multiplier in (0, 1] out, identical on every replica.
//!
//! # Where it runs
//!
//! Nodes sample their own load (CPU, memory) and API servers report signals such as LLM latency or DB pool use.
//! The leader folds these into the Raft log periodically (about once a second). The node's state machine applies
//! each such entry at the entry's time: it records the readings in [`LoadSignals`], combines them into one load and
//! feeds it to [`AdaptiveController::update`]. Policies that opt in multiply their limits by the resulting
//! [`Multiplier`], never below their own floor ([`Multiplier::apply`]); responses carry the effective limit.
//!
//! # Why integers only
//!
//! Every replica runs this controller on the same log and must reach the same state bit for bit, or followers
//! would enforce different limits than the leader after a failover. So loads, multipliers, hysteresis and weights
//! are `u32` parts per million ([`PPM`] = 1), raw readings are `i64` milli-units ([`SignalScale`]) and times are
//! [`Nanos`](crate::Nanos) passed in by the caller. Floats appear only in the TOML form
//! ([`AdaptiveConfigSpec`]), converted once at validation; no clock, randomness or IO is involved.
//!
//! # Why smoothing and hysteresis
//!
//! A load reading is noisy. Without damping, a single slow LLM call or a GC pause would halve every opted-in limit
//! for a moment, and a load hovering at 60 % would toggle limits on every sample: clients would see limits and
//! `Retry-After` hints jump around, and the toggling itself would cause bursts. So the controller
//!
//! - averages samples ([`AdaptiveConfig::smoothing_ppm`]), damping one-sample spikes;
//! - tightens immediately once the average crosses a threshold, possibly by several levels, because being late
//!   overloads the backends;
//! - relaxes only once the average is below the threshold *minus the hysteresis* and has stayed there for
//!   [`AdaptiveConfig::relax_after`], one level at a time, so that recovery is gradual and a threshold is not
//!   crossed back and forth.
//!
//! # Example
//!
//! ```
//! use quorate_core::adaptive::{AdaptiveController, LoadSignals, Multiplier, SignalScale};
//!
//! const SECOND: u64 = 1_000_000_000;
//! let mut controller = AdaptiveController::default(); // the classic table: > 0.6 -> 0.75, > 0.75 -> 0.5, > 0.9 -> 0.25
//! let mut signals = LoadSignals::new();
//! let ttl = controller.config().signal_ttl;
//! let latency = SignalScale::new(500_000, 3_000_000).unwrap(); // 500 ms .. 3000 ms, in milli-units
//!
//! let mut now = 1_800_000_000 * SECOND;
//! for _ in 0..5 {
//!     signals.report("cpu", 400_000, now, ttl).unwrap();
//!     signals.report("llm_latency_p95_ms", latency.to_ppm(2_800_000), now, ttl).unwrap(); // 2.8 s
//!     controller.update_from(now, &signals);
//!     now += SECOND;
//! }
//! assert_eq!(signals.drivers(now)[0].name, "llm_latency_p95_ms");
//! assert_eq!(controller.multiplier(), Multiplier::from_ppm(500_000));
//! // A policy with base limit 100 and floor 0.6 allows 60 now.
//! assert_eq!(controller.multiplier().apply(100, Multiplier::from_ppm(600_000)), 60);
//! ```

mod config;
mod controller;
mod multiplier;
mod ppm;
mod scale;
mod signals;
mod spec;
#[cfg(test)]
mod tests;

pub use config::{
    AdaptiveConfig, CLASSIC_LEVELS, DEFAULT_HYSTERESIS_PPM, DEFAULT_RELAX_AFTER, DEFAULT_SIGNAL_TTL,
    DEFAULT_SMOOTHING_PPM, Level, MAX_LEVELS,
};
pub use controller::{AdaptiveController, AdaptiveState};
pub use multiplier::Multiplier;
pub use ppm::{PPM, fraction_to_ppm, ppm_to_fraction};
pub use scale::{MAX_RAW_MILLI, SignalScale, SignalScaleSpec, milli_from_f64};
pub use signals::{Aggregation, Driver, LoadSignals, MAX_SIGNAL_NAME_LEN, MAX_SIGNALS, Signal};
pub use spec::{AdaptiveConfigSpec, LevelSpec};
