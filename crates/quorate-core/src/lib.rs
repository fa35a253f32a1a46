//! Quorate's limiter core: pure, deterministic rate-limit algorithms, the keyed table that runs them on every
//! replica, the policy model that maps requests to limits, and the adaptive multiplier.
//!
//! Nothing here reads a clock, draws a random number or does IO: `now` (nanoseconds since the Unix epoch) is an
//! argument of every call, and all quota arithmetic is on integers. Replicas that apply the same Raft log with
//! this crate therefore reach bit-identical state.
//!
//! - [`TokenBucket`] (GCRA), [`SlidingWindow`] (exact, bucketed), [`WindowCounter`] (approximate, O(1): up to
//!   `2 * limit - 1` in one window length) and [`FixedWindow`] (optionally calendar-aligned) implement
//!   [`Algorithm`]; [`Limiter`] holds any of them. Each module states its worst case over any span.
//! - [`Decision`] is what one limit answers: allowed, limit, remaining, reset_after, retry_after.
//! - [`LimiterTable`] keeps state per (policy, key): atomic multi-limit checks, peek, refund, eviction of idle
//!   keys, a key cap, and snapshots.
//! - [`policy`] names policies and the rules that map request descriptors to them; [`plan`] resolves a
//!   validated request against them, once, into the limits it charges.
//! - [`adaptive`] turns cluster load into a limit multiplier with hysteresis.
//!
//! # Example
//!
//! ```
//! use quorate_core::{LimitRef, Limiter, LimiterTable, TableConfig, TokenBucket};
//!
//! const SECOND: u64 = 1_000_000_000;
//! // 60 requests per minute, bursts of up to 60.
//! let per_minute: Limiter = TokenBucket::new(60, 60, 60 * SECOND).unwrap().into();
//! let mut table = LimiterTable::new(TableConfig::default());
//! let now = 1_800_000_000 * SECOND;
//! let limit = LimitRef::new(0, per_minute, "api_key:agent_42");
//!
//! let outcome = table.check(now, &[limit], 60).unwrap();
//! assert!(outcome.allowed);
//! let outcome = table.check(now, &[limit], 1).unwrap();
//! assert!(!outcome.allowed);
//! // One token comes back every second; retrying exactly then succeeds.
//! assert_eq!(outcome.decision.retry_after, SECOND);
//! assert!(table.check(now + SECOND, &[limit], 1).unwrap().allowed);
//! ```

pub mod adaptive;
mod algorithm;
pub mod bounds;
mod calendar;
mod decision;
mod error;
mod fixed_window;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod gcra;
mod limiter;
pub mod plan;
pub mod policy;
mod sliding_window;
mod table;
mod window_counter;

pub use algorithm::Algorithm;
pub use calendar::CalendarUnit;
pub use decision::Decision;
pub use error::CoreError;
pub use fixed_window::{FixedWindow, FixedWindowState, WindowSpan};
pub use gcra::{TokenBucket, TokenBucketState};
pub use limiter::Limiter;
pub use sliding_window::{SlidingWindow, SlidingWindowState};
pub use table::{
    CheckOutcome, DEFAULT_MAX_KEYS, DEFAULT_SWEEP_PER_OP, Grant, LimitDecision, LimitRef, LimiterTable, PolicyId,
    TableConfig, TableSnapshot, TableSnapshotView,
};
pub use window_counter::{WindowCounter, WindowCounterState};

/// Nanoseconds: instants since the Unix epoch (UTC) and durations alike.
pub type Nanos = u64;
