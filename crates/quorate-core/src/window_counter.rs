//! Sliding-window counter: the well-known two-window approximation, O(1) per key. Opt-in.
//!
//! Windows are fixed, `[k * W, (k + 1) * W)` for window length `W`. At time `now`, `e` nanoseconds into window
//! `k`, the estimate is `previous * (W - e) / W + current`, where `previous` is window `k - 1`'s final count, and a
//! request of `cost` is admitted iff `estimate + cost <= limit`. The comparison is made on integers scaled by `W`,
//! so it is exact: nothing is rounded. A `now` exactly on a boundary (`e = 0`) belongs to the new window, where the
//! previous window still counts in full.
//!
//! # Worst case: up to `2 * limit - 1` in one window length
//!
//! The estimate assumes the previous window's units were spread evenly over it. A burst at the very end of the
//! previous window is under-counted as soon as the window turns, so over a span of `W` straddling a boundary this
//! counter admits up to [`WindowCounter::max_per_window`]:
//!
//! ```text
//! 2 * limit - ceil(2 * limit / W)        (W >= 2 ns; just `limit` when W = 1 ns)
//! ```
//!
//! which is `2 * limit - 1` whenever `W >= 2 * limit` nanoseconds, i.e. for every real policy (199 for 100 per
//! minute). The bound is tight.
//!
//! *Proof.* A span `[s, s + W)` aligned to a window is that window, where `current` never exceeds `limit`. Any
//! other span covers the last `a` ns of window `k - 1` and the first `b = W - a` ns of window `k`, with
//! `1 <= a, b <= W - 1`. Let `N <= limit` be window `k - 1`'s final count, which is window `k`'s `previous`. The
//! span holds at most `N` units of window `k - 1`. Its last admission in window `k` is at some `e <= b - 1`, so
//! `W - e >= a + 1 >= 2`, and that admission leaves `current <= limit - N * (W - e) / W <= limit - 2N / W`; as
//! `current` is an integer, the span holds at most `limit - ceil(2N / W)` units of window `k`. The total,
//! `N + limit - ceil(2N / W) = limit + floor(N * (W - 2) / W)`, grows with `N` and is largest at `N = limit`.
//!
//! It is reached by `limit` units in the last nanosecond of a window, then `limit - ceil(2 * limit / W)` units
//! 2 ns before the next window ends, `W - 1` ns later (test `adversarial_burst_reaches_the_bound`).
//!
//! The same weight works the other way after a busy window: `previous * (W - e) / W` stays positive up to the
//! boundary, so a window that follows a non-empty one admits at most `limit - 1`. Under sustained overload the
//! counter therefore settles at `limit - 1` per window, a key's own count one unit under the limit.
//!
//! The bound assumes `now` never decreases (the keyed table guarantees it) and counts units net of refunds. If the
//! effective limit changes (adaptive tightening, a policy edit), read `limit` as the highest limit in force over
//! the two windows. Use [`SlidingWindow`](crate::SlidingWindow) where `limit` itself must be a hard bound.

use serde::{Deserialize, Serialize};

use crate::algorithm::{Algorithm, saturate};
use crate::{CoreError, Decision, Nanos, bounds};

/// Sliding-window-counter parameters: about `limit` units per `window`, at most
/// [`max_per_window`](WindowCounter::max_per_window) (just under `2 * limit`) in any span of `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WindowCounterFields")]
pub struct WindowCounter {
    limit: u64,
    window: Nanos,
}

/// The serialized fields of a [`WindowCounter`], validated by [`WindowCounter::new`] before they become one: parameters
/// decoded from a snapshot or a journal record are as untrusted as a config file.
#[derive(Deserialize)]
struct WindowCounterFields {
    limit: u64,
    window: Nanos,
}

impl TryFrom<WindowCounterFields> for WindowCounter {
    type Error = CoreError;

    fn try_from(fields: WindowCounterFields) -> Result<Self, CoreError> {
        WindowCounter::new(fields.limit, fields.window)
    }
}

/// Per-key state of a [`WindowCounter`]: the current window's index and the two windows' counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCounterState {
    index: u64,
    previous: u64,
    current: u64,
}

impl WindowCounter {
    /// Creates a window counter admitting about `limit` units per `window`.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if a value is zero or beyond [`bounds`](crate::bounds).
    pub fn new(limit: u64, window: Nanos) -> Result<Self, CoreError> {
        bounds::check_count("limit", limit)?;
        bounds::check_duration("window", window)?;
        Ok(WindowCounter { limit, window })
    }

    /// The approximate number of units admitted per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length.
    pub fn window(&self) -> Nanos {
        self.window
    }

    /// The most units this counter can admit in any span of [`WindowCounter::window`] at its base limit:
    /// `2 * limit - ceil(2 * limit / window)`, or `limit` for a 1 ns window. The bound is tight: `limit` units in
    /// the last nanosecond of a window, then as many as fit 2 ns before the next one ends, reach it. The proof is
    /// in the header of `window_counter.rs` and in the README's "Accuracy of the algorithms".
    ///
    /// # Examples
    ///
    /// ```
    /// use quorate_core::WindowCounter;
    ///
    /// let per_minute = WindowCounter::new(100, 60_000_000_000).unwrap();
    /// assert_eq!(per_minute.max_per_window(), 199);
    /// ```
    pub fn max_per_window(&self) -> u64 {
        if self.window < 2 {
            return self.limit;
        }
        // Both values are within `bounds`, so `2 * limit` cannot overflow.
        2 * self.limit - (2 * self.limit).div_ceil(self.window)
    }

    fn roll(&self, state: &mut WindowCounterState, index: u64) {
        if index == state.index.saturating_add(1) && index != state.index {
            *state = WindowCounterState { index, previous: state.current, current: 0 };
        } else if index > state.index {
            *state = WindowCounterState { index, previous: 0, current: 0 };
        }
    }

    /// `limit * window - estimate * window`: the free capacity scaled by the window length.
    fn free_scaled(&self, state: &WindowCounterState, elapsed: Nanos, limit: u64) -> i128 {
        let window = i128::from(self.window);
        i128::from(limit) * window
            - i128::from(state.previous) * (window - i128::from(elapsed))
            - i128::from(state.current) * window
    }
}

impl Algorithm for WindowCounter {
    type State = WindowCounterState;

    fn base_limit(&self) -> u64 {
        self.limit
    }

    fn period(&self) -> Nanos {
        2 * self.window
    }

    fn check(&self, state: &mut WindowCounterState, now: Nanos, cost: u64, limit: u64, commit: bool) -> Decision {
        let index = now / self.window;
        self.roll(state, index);
        let start = index * self.window;
        let elapsed = now - start;
        let window = i128::from(self.window);
        let allowed = self.free_scaled(state, elapsed, limit) >= i128::from(cost) * window;
        if allowed && commit {
            state.current += cost;
        }
        let free = self.free_scaled(state, elapsed, limit).max(0) / window;
        let retry_after = if allowed { 0 } else { self.retry_at(state, start, cost, limit) - now };
        Decision {
            allowed,
            limit,
            remaining: saturate(free as u128).min(limit),
            reset_after: self.fresh_at(state).saturating_sub(now),
            retry_after,
        }
    }

    fn refund(&self, state: &mut WindowCounterState, now: Nanos, amount: u64, _limit: u64) {
        self.roll(state, now / self.window);
        let from_current = state.current.min(amount);
        state.current -= from_current;
        state.previous = state.previous.saturating_sub(amount - from_current);
    }

    fn fresh_at(&self, state: &WindowCounterState) -> Nanos {
        let start = state.index.saturating_mul(self.window);
        if state.current > 0 {
            start.saturating_add(2 * self.window)
        } else if state.previous > 0 {
            start.saturating_add(self.window)
        } else {
            0
        }
    }

    fn return_units(&self, state: &mut WindowCounterState, charged_at: Nanos, now: Nanos, amount: u64, _limit: u64) {
        self.roll(state, now / self.window);
        let charged = charged_at / self.window;
        if charged == state.index {
            state.current = state.current.saturating_sub(amount);
        } else if charged.saturating_add(1) == state.index {
            state.previous = state.previous.saturating_sub(amount);
        }
    }

    fn charge_horizon(&self, now: Nanos) -> Nanos {
        (now / self.window).saturating_add(1).saturating_mul(self.window)
    }
}

impl WindowCounter {
    /// The earliest time the estimate leaves room for `cost`, given that nothing else arrives.
    fn retry_at(&self, state: &WindowCounterState, start: Nanos, cost: u64, limit: u64) -> Nanos {
        let window = u128::from(self.window);
        // Still in this window: previous * (window - e) <= room * window.
        if let Some(room) = limit.checked_sub(state.current).and_then(|r| r.checked_sub(cost)) {
            let shrink = u128::from(room) * window / u128::from(state.previous.max(1));
            return start.saturating_add(self.window) - saturate(shrink.min(window));
        }
        // In the next window, where today's current becomes the previous count.
        let next = start.saturating_add(self.window);
        let room = limit - cost;
        if state.current == 0 {
            return next;
        }
        let shrink = u128::from(room) * window / u128::from(state.current);
        next.saturating_add(self.window) - saturate(shrink.min(window))
    }
}

#[cfg(test)]
mod tests;
