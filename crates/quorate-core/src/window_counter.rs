//! Sliding-window counter: the well-known two-window approximation, O(1) per key. Opt-in.
//!
//! The estimate at time `now`, `e` nanoseconds into the current fixed window, is
//! `previous * (window - e) / window + current`: it assumes the previous window's requests were spread evenly.
//! That assumption can be wrong (a burst at the end of the previous window is under-counted), so this algorithm
//! may admit somewhat more than `limit` in some window; use [`SlidingWindow`](crate::SlidingWindow) for a hard
//! bound. All arithmetic is on integers scaled by the window length, so the estimate is exact.

use serde::{Deserialize, Serialize};

use crate::algorithm::{Algorithm, saturate};
use crate::{CoreError, Decision, Nanos, bounds};

/// Sliding-window-counter parameters: about `limit` units per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCounter {
    limit: u64,
    window: Nanos,
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
mod tests {
    use super::*;

    const SECOND: Nanos = 1_000_000_000;

    #[test]
    fn previous_window_weighs_in_proportionally() {
        let wc = WindowCounter::new(10, 10 * SECOND).unwrap();
        let mut state = WindowCounterState::default();
        assert!(wc.check(&mut state, 0, 10, 10, true).allowed);
        // Half-way through the next window the previous 10 count as 5.
        let d = wc.check(&mut state, 15 * SECOND, 1, 10, false);
        assert_eq!(d.remaining, 5);
        assert!(wc.check(&mut state, 15 * SECOND, 5, 10, true).allowed);
        let denied = wc.check(&mut state, 15 * SECOND, 1, 10, true);
        assert!(!denied.allowed);
        let at = 15 * SECOND + denied.retry_after;
        assert!(!wc.check(&mut state.clone(), at - 1, 1, 10, true).allowed);
        assert!(wc.check(&mut state, at, 1, 10, true).allowed);
    }

    #[test]
    fn retry_moves_into_the_next_window_when_the_current_is_full() {
        let wc = WindowCounter::new(4, SECOND).unwrap();
        let mut state = WindowCounterState::default();
        assert!(wc.check(&mut state, 0, 4, 4, true).allowed);
        let denied = wc.check(&mut state, 10, 4, 4, true);
        // A cost equal to the limit fits only once both windows are empty.
        assert_eq!(10 + denied.retry_after, 2 * SECOND);
        assert!(!wc.check(&mut state.clone(), 2 * SECOND - 1, 4, 4, true).allowed);
        assert!(wc.check(&mut state, 2 * SECOND, 4, 4, true).allowed);
    }
}
