//! Upper bounds on limiter parameters, chosen so that every intermediate product fits in a `u128`.
//!
//! With counts below 2^40 and durations below 2^59 ns (about 18 years) the largest product the algorithms form,
//! `period * capacity * refill_amount`-sized, stays below 2^128. Real policies are many orders of magnitude inside
//! these bounds; a config beyond them is rejected with a message rather than risking a silent overflow.

use crate::{CoreError, Nanos};

/// The largest limit, capacity, refill amount or cost accepted: about 1.1 × 10^12 units.
pub const MAX_COUNT: u64 = 1 << 40;

/// The longest window or refill period accepted: 2^59 ns, about 18 years.
pub const MAX_DURATION: Nanos = 1 << 59;

/// The most sub-window buckets a sliding window may use: memory per key is `8 * (precision + 1)` bytes.
pub const MAX_PRECISION: u32 = 3_600;

/// Checks that a count is in `1..=MAX_COUNT`.
pub(crate) fn check_count(field: &str, value: u64) -> Result<(), CoreError> {
    if value == 0 {
        return Err(CoreError::invalid(field, "must be at least 1"));
    }
    if value > MAX_COUNT {
        return Err(CoreError::invalid(field, format!("{value} is above the maximum {MAX_COUNT}")));
    }
    Ok(())
}

/// Checks that a duration is in `1ns..=MAX_DURATION`.
pub(crate) fn check_duration(field: &str, value: Nanos) -> Result<(), CoreError> {
    if value == 0 {
        return Err(CoreError::invalid(field, "must be longer than zero"));
    }
    if value > MAX_DURATION {
        return Err(CoreError::invalid(field, format!("{value}ns is above the maximum {MAX_DURATION}ns")));
    }
    Ok(())
}
