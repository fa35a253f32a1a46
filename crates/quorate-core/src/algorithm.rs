//! The contract every limiter algorithm fulfils, so that the keyed table and callers do not care which one runs.
//!
//! An algorithm is a value of validated parameters; its per-key state is a separate plain value. All methods are
//! pure functions of (parameters, state, `now`, arguments): no clock, no randomness, integer arithmetic only, so
//! that every replica applying the same log reaches bit-identical state.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Decision, Nanos};

/// A rate-limit algorithm: validated parameters plus the logic over its per-key [`Algorithm::State`].
///
/// `limit` arguments are the *effective* limit (the base limit after adaptive tightening, `1..=base_limit`);
/// callers guarantee `1 <= cost <= limit` for [`Algorithm::check`].
pub trait Algorithm: Debug + Clone + PartialEq {
    /// Per-key state. `Default` is the state of a key never seen, and any state for which
    /// [`Algorithm::fresh_at`] has passed behaves exactly like it.
    type State: Debug + Clone + Default + PartialEq + Serialize + DeserializeOwned;

    /// The configured (base) limit: the most units one window or one full bucket holds.
    fn base_limit(&self) -> u64;

    /// The time a completely drained limiter needs to become fresh again: one window, or one full refill.
    ///
    /// Used as the retry hint when a request's cost exceeds a temporarily tightened limit.
    fn period(&self) -> Nanos;

    /// Evaluates a request of `cost` at `now`; charges it to `state` only when it is allowed and `commit` is set.
    ///
    /// `state` may be normalised (old buckets dropped) even when nothing is charged: that never changes what any
    /// later call answers.
    fn check(&self, state: &mut Self::State, now: Nanos, cost: u64, limit: u64, commit: bool) -> Decision;

    /// Gives `amount` units back to `state` at `now` (reserve-then-settle); never below a fresh state.
    fn refund(&self, state: &mut Self::State, now: Nanos, amount: u64, limit: u64);

    /// The earliest time at which `state` is indistinguishable from [`Default`] if nothing else arrives.
    fn fresh_at(&self, state: &Self::State) -> Nanos;

    /// Gives back, at `now`, `amount` units that were charged at `charged_at` and never used (a returned lease):
    /// they come out of the bucket or window they were charged to, or out of nothing if that has already left
    /// the state. Unlike [`Algorithm::refund`], which takes units from the newest buckets, this never frees
    /// capacity in a bucket the units were not counted in, so a return can never over-admit.
    fn return_units(&self, state: &mut Self::State, charged_at: Nanos, now: Nanos, amount: u64, limit: u64);

    /// The end of the bucket or window that units charged at `now` are counted in: a lease charged at `now` may
    /// be spent until then, no later, so that every unit it admits is counted where a strict check at that
    /// moment would have counted it. `Nanos::MAX` where time does not bucket the units (a token bucket).
    fn charge_horizon(&self, now: Nanos) -> Nanos;
}

/// Rounds `num / den` up; `den` must not be zero.
pub(crate) fn div_ceil_u128(num: u128, den: u128) -> u128 {
    num.div_ceil(den)
}

/// Saturates a `u128` into a `u64`.
pub(crate) fn saturate(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}
