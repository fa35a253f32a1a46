//! Token bucket as GCRA (generic cell rate algorithm): one theoretical arrival time (TAT) per key.
//!
//! A bucket holds `capacity` tokens and refills `refill_amount` tokens every `refill_period`, so fractional rates
//! such as 100 per minute are exact. Time inside the bucket is kept in units of `1 / refill_amount` nanoseconds,
//! which makes one token's emission interval the integer `refill_period`: no rounding, bit-identical on every
//! replica.
//!
//! Under an adaptive limit `L < capacity` both the burst and the rate scale by `L / capacity`: the time horizon
//! (`capacity` tokens' worth of refill) stays the same and each token costs `ceil(period * capacity / L)` units
//! instead. The rounding is upwards, so a tightened bucket never admits more than its exact rational model; a
//! burst of exactly `L` tokens still fits a fresh bucket.
//!
//! # Worst case over a span
//!
//! Between any two admissions `d` nanoseconds apart (both included) the bucket admits at most
//! `capacity + d * refill_amount / refill_period` tokens: each admitted token pushes the TAT one interval later,
//! the TAT is never behind `now` before an admission and never more than `capacity` intervals ahead of it after
//! one. A span of length `W` holds two admissions at most `W - 1` ns apart, so 100 per minute with a burst of 100
//! admits up to 199 in one minute: a full burst, then one token every 600 ms. Under a tightened limit `L`, read
//! `L` for `capacity` and `L * interval` for the refill.

use serde::{Deserialize, Serialize};

use crate::algorithm::{Algorithm, div_ceil_u128, saturate};
use crate::{CoreError, Decision, Nanos, bounds};

/// Token-bucket parameters: burst `capacity`, refilled by `refill_amount` tokens per `refill_period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TokenBucketFields")]
pub struct TokenBucket {
    capacity: u64,
    refill_amount: u64,
    refill_period: Nanos,
}

/// The serialized fields of a [`TokenBucket`], validated by [`TokenBucket::new`] before they become one: parameters
/// decoded from a snapshot or a journal record are as untrusted as a config file.
#[derive(Deserialize)]
struct TokenBucketFields {
    capacity: u64,
    refill_amount: u64,
    refill_period: Nanos,
}

impl TryFrom<TokenBucketFields> for TokenBucket {
    type Error = CoreError;

    fn try_from(fields: TokenBucketFields) -> Result<Self, CoreError> {
        TokenBucket::new(fields.capacity, fields.refill_amount, fields.refill_period)
    }
}

/// Per-key state of a [`TokenBucket`]: the theoretical arrival time in `1 / refill_amount` ns units.
///
/// Stored as two words so that the state keeps 8-byte alignment (a `u128` field would force 16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBucketState {
    tat_hi: u64,
    tat_lo: u64,
}

impl TokenBucketState {
    fn tat(&self) -> u128 {
        (u128::from(self.tat_hi) << 64) | u128::from(self.tat_lo)
    }

    fn set_tat(&mut self, tat: u128) {
        self.tat_hi = (tat >> 64) as u64;
        self.tat_lo = tat as u64;
    }
}

impl TokenBucket {
    /// Creates a token bucket holding up to `capacity` tokens, refilled by `refill_amount` every `refill_period`.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if a value is zero or beyond [`bounds`](crate::bounds).
    pub fn new(capacity: u64, refill_amount: u64, refill_period: Nanos) -> Result<Self, CoreError> {
        bounds::check_count("capacity", capacity)?;
        bounds::check_count("refill_amount", refill_amount)?;
        bounds::check_duration("refill_period", refill_period)?;
        Ok(TokenBucket { capacity, refill_amount, refill_period })
    }

    /// The burst capacity in tokens.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Tokens added per [`TokenBucket::refill_period`].
    pub fn refill_amount(&self) -> u64 {
        self.refill_amount
    }

    /// The period over which [`TokenBucket::refill_amount`] tokens are added.
    pub fn refill_period(&self) -> Nanos {
        self.refill_period
    }

    /// Units one token costs under effective limit `limit`.
    fn interval(&self, limit: u64) -> u128 {
        let limit = limit.clamp(1, self.capacity);
        div_ceil_u128(u128::from(self.refill_period) * u128::from(self.capacity), u128::from(limit))
    }

    fn units_at(&self, now: Nanos) -> u128 {
        u128::from(now) * u128::from(self.refill_amount)
    }

    fn nanos_ceil(&self, units: u128) -> Nanos {
        saturate(div_ceil_u128(units, u128::from(self.refill_amount)))
    }
}

impl Algorithm for TokenBucket {
    type State = TokenBucketState;

    fn base_limit(&self) -> u64 {
        self.capacity
    }

    fn period(&self) -> Nanos {
        self.nanos_ceil(u128::from(self.refill_period) * u128::from(self.capacity))
    }

    fn check(&self, state: &mut TokenBucketState, now: Nanos, cost: u64, limit: u64, commit: bool) -> Decision {
        let limit = limit.clamp(1, self.capacity);
        let interval = self.interval(limit);
        let horizon = interval * u128::from(limit);
        let now_units = self.units_at(now);
        let tat = state.tat().max(now_units);
        let new_tat = tat.saturating_add(interval.saturating_mul(u128::from(cost)));
        let allowed = new_tat - now_units <= horizon;
        let after = if allowed && commit {
            state.set_tat(new_tat);
            new_tat
        } else {
            tat
        };
        let used = after - now_units;
        let remaining = saturate(horizon.saturating_sub(used) / interval).min(limit);
        let retry_after = if allowed {
            0
        } else {
            // Earliest t with tat + cost*interval - t*amount <= horizon; denied means that t is after now.
            self.nanos_ceil(new_tat - horizon) - now
        };
        Decision { allowed, limit, remaining, reset_after: self.nanos_ceil(used), retry_after }
    }

    fn refund(&self, state: &mut TokenBucketState, now: Nanos, amount: u64, limit: u64) {
        let now_units = self.units_at(now);
        let tat = state.tat();
        if tat > now_units {
            let back = self.interval(limit).saturating_mul(u128::from(amount));
            state.set_tat(tat.saturating_sub(back).max(now_units));
        }
    }

    fn fresh_at(&self, state: &TokenBucketState) -> Nanos {
        self.nanos_ceil(state.tat())
    }

    fn return_units(&self, _state: &mut TokenBucketState, _charged_at: Nanos, _now: Nanos, _amount: u64, _limit: u64) {
        // Unused tokens are not put back. A bucket has no window to return them into: pulling the arrival time
        // back later can credit more than taking them ever cost (if the bucket would have refilled in between),
        // and that would over-admit. Left charged, they refill at the bucket's rate like any spent token: at
        // worst a holder's unused share is missing for one refill time.
    }

    fn charge_horizon(&self, _now: Nanos) -> Nanos {
        Nanos::MAX
    }
}

#[cfg(test)]
mod tests;
