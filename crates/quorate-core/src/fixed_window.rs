//! Fixed window: at most `limit` units per window, windows either a fixed length or a UTC calendar unit.
//!
//! The simplest and cheapest algorithm, and the right one for budgets that users think of in calendar terms
//! ("10,000 LLM calls per day", "$50 per month"). Its known weakness is the boundary: a span no longer than the
//! shortest window touches at most two windows, so up to `2 * limit` may pass within one window length straddling
//! two windows (`limit` in the last nanosecond of one, `limit` in the first of the next); the bound is tight. A
//! span of 31 days can touch three calendar months (all of February). Use a sliding window where that matters.

use serde::{Deserialize, Serialize};

use crate::algorithm::Algorithm;
use crate::{CalendarUnit, CoreError, Decision, Nanos, bounds};

/// How a fixed window's boundaries are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowSpan {
    /// Windows of this many nanoseconds, aligned to the Unix epoch.
    Every(Nanos),
    /// Windows aligned to a UTC calendar unit (minute, hour, day, week or month).
    Calendar(CalendarUnit),
}

impl WindowSpan {
    /// Returns the `[start, end)` bounds of the window containing `now`.
    pub fn bounds(self, now: Nanos) -> (Nanos, Nanos) {
        match self {
            WindowSpan::Every(length) => {
                let start = now / length * length;
                (start, start.saturating_add(length))
            }
            WindowSpan::Calendar(unit) => unit.bounds(now),
        }
    }
}

/// Fixed-window parameters: at most `limit` units per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FixedWindowFields")]
pub struct FixedWindow {
    limit: u64,
    span: WindowSpan,
}

/// The serialized fields of a [`FixedWindow`], validated by [`FixedWindow::new`] before they become one: parameters
/// decoded from a snapshot or a journal record are as untrusted as a config file.
#[derive(Deserialize)]
struct FixedWindowFields {
    limit: u64,
    span: WindowSpan,
}

impl TryFrom<FixedWindowFields> for FixedWindow {
    type Error = CoreError;

    fn try_from(fields: FixedWindowFields) -> Result<Self, CoreError> {
        FixedWindow::new(fields.limit, fields.span)
    }
}

/// Per-key state of a [`FixedWindow`]: the start of the window counted and the units admitted in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedWindowState {
    start: Nanos,
    count: u64,
}

impl FixedWindow {
    /// Creates a fixed window admitting at most `limit` units per window of `span`.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if `limit` or a fixed length is zero or beyond [`bounds`](crate::bounds).
    pub fn new(limit: u64, span: WindowSpan) -> Result<Self, CoreError> {
        bounds::check_count("limit", limit)?;
        if let WindowSpan::Every(length) = span {
            bounds::check_duration("window", length)?;
        }
        Ok(FixedWindow { limit, span })
    }

    /// The most units admitted per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// How windows are placed.
    pub fn span(&self) -> WindowSpan {
        self.span
    }

    /// Drops the count of a window that has ended.
    fn roll(&self, state: &mut FixedWindowState, start: Nanos) {
        if state.start < start {
            *state = FixedWindowState { start, count: 0 };
        }
    }
}

impl Algorithm for FixedWindow {
    type State = FixedWindowState;

    fn base_limit(&self) -> u64 {
        self.limit
    }

    fn period(&self) -> Nanos {
        match self.span {
            WindowSpan::Every(length) => length,
            WindowSpan::Calendar(unit) => unit.max_length(),
        }
    }

    fn check(&self, state: &mut FixedWindowState, now: Nanos, cost: u64, limit: u64, commit: bool) -> Decision {
        let (start, end) = self.span.bounds(now);
        self.roll(state, start);
        let allowed = state.count.saturating_add(cost) <= limit;
        if allowed && commit {
            state.count += cost;
        }
        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(state.count),
            reset_after: if state.count > 0 { end - now } else { 0 },
            // The window's end frees everything, and a cost never exceeds the limit.
            retry_after: if allowed { 0 } else { end - now },
        }
    }

    fn refund(&self, state: &mut FixedWindowState, now: Nanos, amount: u64, _limit: u64) {
        let (start, _) = self.span.bounds(now);
        self.roll(state, start);
        state.count = state.count.saturating_sub(amount);
    }

    fn fresh_at(&self, state: &FixedWindowState) -> Nanos {
        if state.count == 0 { 0 } else { self.span.bounds(state.start).1 }
    }

    fn return_units(&self, state: &mut FixedWindowState, charged_at: Nanos, now: Nanos, amount: u64, _limit: u64) {
        let (start, _) = self.span.bounds(now);
        self.roll(state, start);
        // Only into the window the units were charged to; a later window never counted them.
        if self.span.bounds(charged_at).0 == state.start {
            state.count = state.count.saturating_sub(amount);
        }
    }

    fn charge_horizon(&self, now: Nanos) -> Nanos {
        self.span.bounds(now).1
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    const SECOND: Nanos = 1_000_000_000;

    #[test]
    fn counts_reset_at_the_window_boundary() {
        let fw = FixedWindow::new(3, WindowSpan::Every(10 * SECOND)).unwrap();
        let mut state = FixedWindowState::default();
        let t = 1_000 * SECOND + 4 * SECOND;
        for _ in 0..3 {
            assert!(fw.check(&mut state, t, 1, 3, true).allowed);
        }
        let denied = fw.check(&mut state, t, 1, 3, true);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, 6 * SECOND);
        assert!(!fw.check(&mut state, t + denied.retry_after - 1, 1, 3, true).allowed);
        assert!(fw.check(&mut state, t + denied.retry_after, 1, 3, true).allowed);
    }

    #[test]
    fn daily_budget_resets_at_utc_midnight() {
        let fw = FixedWindow::new(100, WindowSpan::Calendar(CalendarUnit::Day)).unwrap();
        let mut state = FixedWindowState::default();
        let day = 86_400 * SECOND;
        let noon = 20_000 * day + day / 2;
        let d = fw.check(&mut state, noon, 100, 100, true);
        assert!(d.allowed);
        assert_eq!(d.reset_after, day / 2);
        let denied = fw.check(&mut state, noon + 1, 1, 100, true);
        assert_eq!(denied.retry_after, day / 2 - 1);
        assert_eq!(fw.fresh_at(&state), 20_001 * day);
    }

    #[test]
    fn admits_twice_the_limit_across_a_boundary() {
        let fw = FixedWindow::new(100, WindowSpan::Every(60 * SECOND)).unwrap();
        let mut state = FixedWindowState::default();
        let boundary = 30_000_000 * 60 * SECOND;
        assert!(fw.check(&mut state, boundary - 1, 100, 100, true).allowed);
        assert!(!fw.check(&mut state, boundary - 1, 1, 100, true).allowed);
        // Two nanoseconds hold 200.
        assert!(fw.check(&mut state, boundary, 100, 100, true).allowed);
    }

    proptest! {
        /// Every window holds at most `limit`, and every span of one window length at most `2 * limit`.
        #[test]
        fn never_admits_more_than_twice_the_limit_in_any_span(
            limit in 1u64..30,
            length in prop_oneof![1u64..40, Just(SECOND)],
            ops in prop::collection::vec((0u64..3 * SECOND, 1u64..30), 1..100),
        ) {
            let fw = FixedWindow::new(limit, WindowSpan::Every(length)).unwrap();
            let mut state = FixedWindowState::default();
            let mut admitted: Vec<(Nanos, u64)> = Vec::new();
            let mut now = SECOND;
            for (dt, cost) in ops {
                now += dt % (3 * length);
                let cost = cost.min(limit);
                if fw.check(&mut state, now, cost, limit, true).allowed {
                    admitted.push((now, cost));
                    let sum = |keep: &dyn Fn(Nanos) -> bool| -> u64 {
                        admitted.iter().filter(|&&(t, _)| keep(t)).map(|&(_, c)| c).sum()
                    };
                    prop_assert!(sum(&|t| t / length == now / length) <= limit);
                    prop_assert!(sum(&|t| t + length > now) <= 2 * limit);
                }
            }
        }
    }

    #[test]
    fn refund_applies_only_to_the_current_window() {
        let fw = FixedWindow::new(5, WindowSpan::Every(SECOND)).unwrap();
        let mut state = FixedWindowState::default();
        assert!(fw.check(&mut state, 0, 5, 5, true).allowed);
        fw.refund(&mut state, 10, 2, 5);
        assert_eq!(fw.check(&mut state, 10, 1, 5, false).remaining, 2);
        fw.refund(&mut state, SECOND, 5, 5);
        assert_eq!(state.count, 0);
    }
}
