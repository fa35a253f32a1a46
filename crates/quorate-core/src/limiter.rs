//! [`Limiter`]: one of the algorithms, chosen by a policy, behind a single type.

use serde::{Deserialize, Serialize};

use crate::algorithm::Algorithm;
use crate::{FixedWindow, Nanos, SlidingWindow, TokenBucket, WindowCounter};

/// The validated parameters of one rate-limit algorithm.
///
/// Callers hold a `Limiter` and never need to know which algorithm is inside; the keyed
/// [`LimiterTable`](crate::LimiterTable) dispatches to the right state type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limiter {
    /// Token bucket as GCRA: burst capacity plus a refill rate.
    TokenBucket(TokenBucket),
    /// Exact sliding window over sub-window buckets.
    SlidingWindow(SlidingWindow),
    /// Approximate two-window sliding counter (O(1) per key).
    WindowCounter(WindowCounter),
    /// Fixed window, optionally aligned to a UTC calendar unit.
    FixedWindow(FixedWindow),
}

impl Limiter {
    /// The configured (base) limit, before any adaptive tightening.
    pub fn base_limit(&self) -> u64 {
        match self {
            Limiter::TokenBucket(a) => a.base_limit(),
            Limiter::SlidingWindow(a) => a.base_limit(),
            Limiter::WindowCounter(a) => a.base_limit(),
            Limiter::FixedWindow(a) => a.base_limit(),
        }
    }

    /// The time a completely drained limiter needs to become fresh again.
    pub fn period(&self) -> Nanos {
        match self {
            Limiter::TokenBucket(a) => a.period(),
            Limiter::SlidingWindow(a) => a.period(),
            Limiter::WindowCounter(a) => a.period(),
            Limiter::FixedWindow(a) => a.period(),
        }
    }

    /// The window the limit is stated over, for `RateLimit-Policy: w=`: the window of window algorithms, the
    /// time a token bucket takes to refill its whole capacity, the longest span of a calendar window.
    pub fn window(&self) -> Nanos {
        match self {
            Limiter::TokenBucket(a) => a.period(),
            Limiter::SlidingWindow(a) => a.window(),
            Limiter::WindowCounter(a) => a.window(),
            Limiter::FixedWindow(a) => a.period(),
        }
    }

    /// The end of the bucket or window that units charged at `now` count in (`Nanos::MAX` for a token bucket):
    /// the latest a lease charged at `now` may be spent ([`Algorithm::charge_horizon`]).
    pub fn charge_horizon(&self, now: Nanos) -> Nanos {
        match self {
            Limiter::TokenBucket(a) => a.charge_horizon(now),
            Limiter::SlidingWindow(a) => a.charge_horizon(now),
            Limiter::WindowCounter(a) => a.charge_horizon(now),
            Limiter::FixedWindow(a) => a.charge_horizon(now),
        }
    }

    /// A short name of the algorithm, as used in config files and status output.
    pub fn algorithm_name(&self) -> &'static str {
        match self {
            Limiter::TokenBucket(_) => "token_bucket",
            Limiter::SlidingWindow(_) => "sliding_window",
            Limiter::WindowCounter(_) => "window_counter",
            Limiter::FixedWindow(_) => "fixed_window",
        }
    }
}

impl From<TokenBucket> for Limiter {
    fn from(a: TokenBucket) -> Self {
        Limiter::TokenBucket(a)
    }
}

impl From<SlidingWindow> for Limiter {
    fn from(a: SlidingWindow) -> Self {
        Limiter::SlidingWindow(a)
    }
}

impl From<WindowCounter> for Limiter {
    fn from(a: WindowCounter) -> Self {
        Limiter::WindowCounter(a)
    }
}

impl From<FixedWindow> for Limiter {
    fn from(a: FixedWindow) -> Self {
        Limiter::FixedWindow(a)
    }
}
