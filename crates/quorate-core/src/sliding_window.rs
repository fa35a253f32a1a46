//! Exact sliding window over sub-window buckets: never more than `limit` in any window, O(precision) memory.
//!
//! The window of length `window` is cut into `precision` buckets of `window / precision` each. Admitted units are
//! added to the bucket of their arrival time. A check counts every bucket that overlaps the last `window` —
//! the current one, the `precision - 1` before it and the partly expired oldest one, counted whole. Counting that
//! oldest bucket whole is what makes the window conservative: for any interval of length `window`, the units
//! admitted in it never exceed `limit`. The price is that capacity frees at bucket boundaries, up to one bucket
//! later than an exact timestamp log would free it: a check counts a span between `window` and
//! `window + window / precision` long, so it denies only when the units admitted in the last
//! `window + window / precision` leave no room for the cost. Both sides are property-tested against a timestamp
//! log.
//!
//! Memory per key is `precision + 1` counters, whatever the limit or the request rate (the Redis sorted-set
//! recipe this replaces stores every request).

use serde::{Deserialize, Serialize};

use crate::algorithm::Algorithm;
use crate::{CoreError, Decision, Nanos, bounds};

/// Sliding-window parameters: at most `limit` units in any `window`, tracked in `precision` buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SlidingWindowFields")]
pub struct SlidingWindow {
    limit: u64,
    window: Nanos,
    precision: u32,
}

/// The serialized fields of a [`SlidingWindow`], validated by [`SlidingWindow::new`] before they become one: parameters
/// decoded from a snapshot or a journal record are as untrusted as a config file.
#[derive(Deserialize)]
struct SlidingWindowFields {
    limit: u64,
    window: Nanos,
    precision: u32,
}

impl TryFrom<SlidingWindowFields> for SlidingWindow {
    type Error = CoreError;

    fn try_from(fields: SlidingWindowFields) -> Result<Self, CoreError> {
        SlidingWindow::new(fields.limit, fields.window, fields.precision)
    }
}

/// Per-key state of a [`SlidingWindow`]: a ring of `precision + 1` bucket counters.
///
/// The ring is allocated on the first charge; a key that was only peeked at holds no heap memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SlidingWindowStateFields")]
pub struct SlidingWindowState {
    /// Absolute index (`time / bucket width`) of the newest bucket in the ring.
    newest: u64,
    /// Sum of all counters in the ring.
    total: u64,
    /// Counter of absolute bucket `k` lives at `k % counts.len()`.
    counts: Box<[u64]>,
}

/// The serialized fields of a [`SlidingWindowState`], checked before they become one: `total` must be the sum of
/// the counters (the window subtracts a bucket's count from it when the bucket leaves) and the ring no longer
/// than the longest a window uses.
#[derive(Deserialize)]
struct SlidingWindowStateFields {
    newest: u64,
    total: u64,
    counts: Box<[u64]>,
}

impl TryFrom<SlidingWindowStateFields> for SlidingWindowState {
    type Error = CoreError;

    fn try_from(fields: SlidingWindowStateFields) -> Result<Self, CoreError> {
        let SlidingWindowStateFields { newest, total, counts } = fields;
        if counts.len() > bounds::MAX_PRECISION as usize + 1 {
            return Err(CoreError::invalid(
                "sliding window state",
                format!("{} buckets is more than a window has", counts.len()),
            ));
        }
        if counts.iter().try_fold(0u64, |sum, &count| sum.checked_add(count)) != Some(total) {
            return Err(CoreError::invalid("sliding window state", "the total is not the sum of the buckets"));
        }
        Ok(SlidingWindowState { newest, total, counts })
    }
}

impl SlidingWindow {
    /// Creates a sliding window admitting at most `limit` units in any `window`, using `precision` buckets.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if a value is zero, beyond [`bounds`](crate::bounds), or if `window` is not
    /// a whole multiple of `precision` nanoseconds.
    pub fn new(limit: u64, window: Nanos, precision: u32) -> Result<Self, CoreError> {
        bounds::check_count("limit", limit)?;
        bounds::check_duration("window", window)?;
        if precision == 0 || precision > bounds::MAX_PRECISION {
            return Err(CoreError::invalid(
                "precision",
                format!("{precision} is outside 1..={}", bounds::MAX_PRECISION),
            ));
        }
        if window % u64::from(precision) != 0 {
            return Err(CoreError::invalid(
                "precision",
                format!("window of {window}ns does not divide into {precision} equal buckets"),
            ));
        }
        Ok(SlidingWindow { limit, window, precision })
    }

    /// The most units admitted in any window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length.
    pub fn window(&self) -> Nanos {
        self.window
    }

    /// The number of buckets the window is divided into.
    pub fn precision(&self) -> u32 {
        self.precision
    }

    fn width(&self) -> Nanos {
        self.window / u64::from(self.precision)
    }

    fn slots(&self) -> u64 {
        u64::from(self.precision) + 1
    }

    fn slot(&self, bucket: u64) -> usize {
        // The ring length is precision + 1 <= MAX_PRECISION + 1, so the remainder fits any usize.
        (bucket % self.slots()) as usize
    }

    /// The time at which bucket `bucket` stops being counted.
    fn expiry(&self, bucket: u64) -> Nanos {
        bucket.saturating_add(self.slots()).saturating_mul(self.width())
    }

    /// Moves the ring forward to `current`, dropping buckets that left the window.
    fn advance(&self, state: &mut SlidingWindowState, current: u64) {
        if state.counts.len() as u64 != self.slots() {
            // A ring of another shape (the policy's precision changed): keep the whole total in the newest
            // bucket, which only ever delays when units free up.
            let total = state.total;
            let newest = state.newest;
            state.counts = vec![0; self.slots() as usize].into_boxed_slice();
            let slot = self.slot(newest);
            state.counts[slot] = total;
        }
        if current <= state.newest {
            return;
        }
        let steps = (current - state.newest).min(self.slots());
        for step in 1..=steps {
            let slot = self.slot(state.newest.saturating_add(step));
            state.total -= state.counts[slot];
            state.counts[slot] = 0;
        }
        state.newest = current;
    }

    /// Iterates the ring's (absolute bucket, count) pairs from the oldest counted bucket to the newest.
    fn buckets<'a>(&'a self, state: &'a SlidingWindowState) -> impl DoubleEndedIterator<Item = (u64, u64)> + 'a {
        let oldest = state.newest.saturating_sub(u64::from(self.precision));
        (oldest..=state.newest).map(move |bucket| (bucket, state.counts[self.slot(bucket)]))
    }
}

impl Algorithm for SlidingWindow {
    type State = SlidingWindowState;

    fn base_limit(&self) -> u64 {
        self.limit
    }

    fn period(&self) -> Nanos {
        self.window + self.width()
    }

    fn check(&self, state: &mut SlidingWindowState, now: Nanos, cost: u64, limit: u64, commit: bool) -> Decision {
        let current = now / self.width();
        if state.counts.is_empty() {
            if !commit {
                return fresh_decision(limit, cost);
            }
            state.counts = vec![0; self.slots() as usize].into_boxed_slice();
            state.newest = current;
        }
        self.advance(state, current);
        let allowed = state.total.saturating_add(cost) <= limit;
        if allowed && commit {
            let slot = self.slot(current);
            state.counts[slot] += cost;
            state.total += cost;
        }
        let retry_after = if allowed {
            0
        } else {
            // Free the oldest buckets first until the cost fits; the bucket that makes it fit sets the time.
            let need = state.total + cost - limit;
            let mut freed = 0;
            let mut at = self.expiry(state.newest);
            for (bucket, count) in self.buckets(state) {
                freed += count;
                if freed >= need {
                    at = self.expiry(bucket);
                    break;
                }
            }
            at - now
        };
        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(state.total),
            reset_after: self.fresh_at(state).saturating_sub(now),
            retry_after,
        }
    }

    fn refund(&self, state: &mut SlidingWindowState, now: Nanos, amount: u64, _limit: u64) {
        if state.counts.is_empty() {
            return;
        }
        self.advance(state, now / self.width());
        // Take units back from the newest buckets first: a reservation is settled soon after it was made.
        let mut left = amount;
        let oldest = state.newest.saturating_sub(u64::from(self.precision));
        let mut bucket = state.newest;
        while left > 0 {
            let slot = self.slot(bucket);
            let take = state.counts[slot].min(left);
            state.counts[slot] -= take;
            state.total -= take;
            left -= take;
            if bucket == oldest {
                break;
            }
            bucket -= 1;
        }
    }

    fn fresh_at(&self, state: &SlidingWindowState) -> Nanos {
        if state.total == 0 {
            return 0;
        }
        if state.counts.len() as u64 != self.slots() {
            // A ring of another shape (the policy's precision changed since the key was charged): the next
            // `advance` keeps the whole total in the newest bucket, so that bucket decides.
            return self.expiry(state.newest);
        }
        self.buckets(state).rev().find(|&(_, count)| count > 0).map_or(0, |(bucket, _)| self.expiry(bucket))
    }

    fn return_units(&self, state: &mut SlidingWindowState, charged_at: Nanos, now: Nanos, amount: u64, _limit: u64) {
        if state.counts.is_empty() {
            return;
        }
        self.advance(state, now / self.width());
        let bucket = charged_at / self.width();
        let oldest = state.newest.saturating_sub(u64::from(self.precision));
        if !(oldest..=state.newest).contains(&bucket) {
            return; // The bucket has left the window: its units no longer count anyway.
        }
        let slot = self.slot(bucket);
        let take = state.counts[slot].min(amount);
        state.counts[slot] -= take;
        state.total -= take;
    }

    fn charge_horizon(&self, now: Nanos) -> Nanos {
        (now / self.width()).saturating_add(1).saturating_mul(self.width())
    }
}

/// The decision for a key with no state: everything is available.
pub(crate) fn fresh_decision(limit: u64, cost: u64) -> Decision {
    Decision { allowed: cost <= limit, limit, remaining: limit, reset_after: 0, retry_after: 0 }
}

#[cfg(test)]
mod tests;
