#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

const SECOND: Nanos = 1_000_000_000;
const MINUTE: Nanos = 60 * SECOND;
/// A realistic "now": late 2026.
const T0: Nanos = 1_795_000_000 * SECOND;

/// The naive reference: a token count in rationals with denominator `period`, refilled continuously.
#[derive(Debug, Clone)]
struct RationalBucket {
    capacity: u128,
    amount: u128,
    period: u128,
    /// tokens * period: integer because refills add `elapsed * amount`.
    scaled: u128,
    at: u128,
}

impl RationalBucket {
    fn new(capacity: u64, amount: u64, period: Nanos, now: Nanos) -> Self {
        let (capacity, period) = (u128::from(capacity), u128::from(period));
        RationalBucket { capacity, amount: u128::from(amount), period, scaled: capacity * period, at: u128::from(now) }
    }

    fn refill(&mut self, now: Nanos) {
        let now = u128::from(now).max(self.at);
        self.scaled = (self.scaled + (now - self.at) * self.amount).min(self.capacity * self.period);
        self.at = now;
    }

    /// (allowed, remaining, reset_after, retry_after), charging when allowed.
    fn check(&mut self, now: Nanos, cost: u64) -> (bool, u64, Nanos, Nanos) {
        self.refill(now);
        let need = u128::from(cost) * self.period;
        let allowed = self.scaled >= need;
        if allowed {
            self.scaled -= need;
        }
        let retry = if allowed { 0 } else { (need - self.scaled).div_ceil(self.amount) };
        let reset = (self.capacity * self.period - self.scaled).div_ceil(self.amount);
        (allowed, (self.scaled / self.period) as u64, reset as u64, retry as u64)
    }
}

#[test]
fn fresh_bucket_admits_its_burst_then_denies() {
    let tb = TokenBucket::new(5, 5, SECOND).unwrap();
    let mut state = TokenBucketState::default();
    for expected_remaining in (0..5).rev() {
        let d = tb.check(&mut state, T0, 1, 5, true);
        assert!(d.allowed);
        assert_eq!(d.remaining, expected_remaining);
    }
    let denied = tb.check(&mut state, T0, 1, 5, true);
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert_eq!(denied.retry_after, SECOND / 5);
    assert_eq!(denied.reset_after, SECOND);
}

#[test]
fn hundred_per_minute_refills_one_token_every_600_ms() {
    let tb = TokenBucket::new(100, 100, MINUTE).unwrap();
    let mut state = TokenBucketState::default();
    assert!(tb.check(&mut state, T0, 100, 100, true).allowed);
    let denied = tb.check(&mut state, T0, 1, 100, true);
    assert_eq!(denied.retry_after, 600_000_000);
    assert!(!tb.check(&mut state, T0 + 599_999_999, 1, 100, true).allowed);
    assert!(tb.check(&mut state, T0 + 600_000_000, 1, 100, true).allowed);
}

#[test]
fn seven_per_minute_is_exact_despite_the_fraction() {
    // 60 s / 7 = 8.571428571428... s per token: not a whole number of nanoseconds.
    let tb = TokenBucket::new(7, 7, MINUTE).unwrap();
    let mut state = TokenBucketState::default();
    assert!(tb.check(&mut state, T0, 7, 7, true).allowed);
    let denied = tb.check(&mut state, T0, 1, 7, true);
    assert_eq!(denied.retry_after, 8_571_428_572); // ceil(60e9 / 7)
    // After exactly one minute the bucket is full again: 7 more, not 6.
    assert!(tb.check(&mut state, T0 + MINUTE, 7, 7, true).allowed);
}

#[test]
fn denied_check_consumes_nothing() {
    let tb = TokenBucket::new(10, 1, SECOND).unwrap();
    let mut state = TokenBucketState::default();
    assert!(tb.check(&mut state, T0, 8, 10, true).allowed);
    let before = state;
    assert!(!tb.check(&mut state, T0, 3, 10, true).allowed);
    assert_eq!(state, before);
}

#[test]
fn refund_gives_tokens_back_but_never_beyond_full() {
    let tb = TokenBucket::new(10, 10, SECOND).unwrap();
    let mut state = TokenBucketState::default();
    assert!(tb.check(&mut state, T0, 10, 10, true).allowed);
    tb.refund(&mut state, T0, 4, 10);
    assert_eq!(tb.check(&mut state, T0, 1, 10, false).remaining, 4);
    tb.refund(&mut state, T0, 1_000, 10);
    assert_eq!(state, TokenBucketState { tat_hi: 0, tat_lo: 0 }.max_with(T0, &tb));
    assert_eq!(tb.fresh_at(&state), T0);
}

impl TokenBucketState {
    /// The state a fresh bucket normalises to at `now`.
    fn max_with(self, now: Nanos, tb: &TokenBucket) -> Self {
        let mut s = self;
        s.set_tat(self.tat().max(tb.units_at(now)));
        s
    }
}

#[test]
fn tightened_bucket_scales_burst_and_rate() {
    let tb = TokenBucket::new(200, 200, MINUTE).unwrap();
    let mut state = TokenBucketState::default();
    // Multiplier 0.5: a burst of 100, then one token every 600 ms instead of every 300 ms.
    assert!(tb.check(&mut state, T0, 100, 100, true).allowed);
    let denied = tb.check(&mut state, T0, 1, 100, true);
    assert!(!denied.allowed);
    assert_eq!(denied.limit, 100);
    assert_eq!(denied.retry_after, 600_000_000);
}

#[test]
fn full_burst_then_steady_refill_reaches_burst_plus_rate_in_one_minute() {
    let tb = TokenBucket::new(100, 100, MINUTE).unwrap();
    let mut state = TokenBucketState::default();
    assert!(tb.check(&mut state, T0, 100, 100, true).allowed);
    // One token every 600 ms: 99 more before T0 + 60 s, all inside the span [T0, T0 + 60 s).
    let refills = (1..)
        .map(|k| T0 + k * 600_000_000)
        .take_while(|&t| t < T0 + MINUTE)
        .filter(|&t| tb.check(&mut state, t, 1, 100, true).allowed)
        .count();
    assert_eq!(100 + refills, 199);
}

fn params() -> impl Strategy<Value = (u64, u64, Nanos)> {
    (1u64..50, 1u64..20, prop_oneof![1u64..1_000, 1_000u64..10 * SECOND, Just(MINUTE), Just(3_600 * SECOND)])
}

fn ops() -> impl Strategy<Value = Vec<(Nanos, u64)>> {
    prop::collection::vec((prop_oneof![Just(0u64), 0u64..1_000, 0u64..5 * SECOND], 1u64..60), 1..60)
}

proptest! {
    /// GCRA must agree exactly with the naive rational bucket on every field of every decision.
    #[test]
    fn matches_the_rational_reference_exactly((capacity, amount, period) in params(), ops in ops()) {
        let tb = TokenBucket::new(capacity, amount, period).unwrap();
        let mut state = TokenBucketState::default();
        let mut reference = RationalBucket::new(capacity, amount, period, T0);
        let mut now = T0;
        for (dt, cost) in ops {
            now += dt;
            let cost = cost.min(capacity);
            let d = tb.check(&mut state, now, cost, capacity, true);
            let (allowed, remaining, reset, retry) = reference.check(now, cost);
            prop_assert_eq!((d.allowed, d.remaining, d.reset_after, d.retry_after), (allowed, remaining, reset, retry));
        }
    }

    /// A retry at `retry_after` succeeds and one nanosecond earlier fails, whatever the limit in force.
    #[test]
    fn retry_after_is_exact((capacity, amount, period) in params(), ops in ops(), cut in 1u64..=100) {
        let tb = TokenBucket::new(capacity, amount, period).unwrap();
        let limit = (capacity * cut / 100).max(1);
        let mut state = TokenBucketState::default();
        let mut now = T0;
        for (dt, cost) in ops {
            now += dt;
            let cost = cost.min(limit);
            let d = tb.check(&mut state, now, cost, limit, true);
            if !d.allowed {
                prop_assert!(d.retry_after > 0);
                prop_assert!(!tb.check(&mut state.clone(), now + d.retry_after - 1, cost, limit, true).allowed);
                prop_assert!(tb.check(&mut state.clone(), now + d.retry_after, cost, limit, true).allowed);
            }
        }
    }

    /// Under a tightened limit the bucket never admits more than the tightened rational bucket would.
    #[test]
    fn tightened_bucket_never_over_admits((capacity, amount, period) in params(), ops in ops(), cut in 1u64..=100) {
        let tb = TokenBucket::new(capacity, amount, period).unwrap();
        let limit = (capacity * cut / 100).max(1);
        let mut state = TokenBucketState::default();
        // Tightened model: capacity `limit`, refill `amount * limit / capacity` per period (scale the period).
        let mut reference = RationalBucket::new(limit, amount * limit, period * capacity, T0);
        let (mut now, mut admitted, mut model_admitted) = (T0, 0u64, 0u64);
        for (dt, cost) in ops {
            now += dt;
            let cost = cost.min(limit);
            if tb.check(&mut state, now, cost, limit, true).allowed {
                admitted += cost;
            }
            // The model runs the same stream with its own decisions; its total bounds ours.
            if reference.check(now, cost).0 {
                model_admitted += cost;
            }
        }
        let horizon_tokens = u128::from(now - T0) * u128::from(amount) * u128::from(limit)
            / (u128::from(period) * u128::from(capacity));
        prop_assert!(u128::from(admitted) <= u128::from(limit) + horizon_tokens);
        prop_assert!(u128::from(model_admitted) <= u128::from(limit) + horizon_tokens);
    }

    /// Between any two admissions `d` ns apart the bucket admits at most `limit + d / interval` tokens.
    #[test]
    fn admits_at_most_burst_plus_refill_over_any_span(
        (capacity, amount, period) in params(),
        ops in ops(),
        cut in 1u64..=100,
    ) {
        let tb = TokenBucket::new(capacity, amount, period).unwrap();
        let limit = (capacity * cut / 100).max(1);
        let interval = tb.interval(limit);
        let mut state = TokenBucketState::default();
        let mut admitted: Vec<(Nanos, u64)> = Vec::new();
        let mut now = T0;
        for (dt, cost) in ops {
            now += dt;
            let cost = cost.min(limit);
            if tb.check(&mut state, now, cost, limit, true).allowed {
                admitted.push((now, cost));
                // Spans ending at this admission, from every earlier admission: tokens * interval <= refill + burst.
                let mut tokens = 0u128;
                for &(t, c) in admitted.iter().rev() {
                    tokens += u128::from(c);
                    let refill = u128::from(now - t) * u128::from(amount);
                    prop_assert!(tokens * interval <= refill + u128::from(limit) * interval);
                }
            }
        }
    }

    /// A state past `fresh_at` answers exactly like a fresh one.
    #[test]
    fn state_is_fresh_after_fresh_at((capacity, amount, period) in params(), ops in ops(), probe in 1u64..60) {
        let tb = TokenBucket::new(capacity, amount, period).unwrap();
        let mut state = TokenBucketState::default();
        let mut now = T0;
        for (dt, cost) in ops {
            now += dt;
            tb.check(&mut state, now, cost.min(capacity), capacity, true);
        }
        let at = tb.fresh_at(&state).max(now);
        let probe = probe.min(capacity);
        let a = tb.check(&mut state.clone(), at, probe, capacity, true);
        let b = tb.check(&mut TokenBucketState::default(), at, probe, capacity, true);
        prop_assert_eq!(a, b);
        if at > now {
            let c = tb.check(&mut state.clone(), at - 1, capacity, capacity, false);
            prop_assert!(!c.allowed || c.remaining < capacity);
        }
    }
}
