//! The in-process fallback limiter behind [`FailureMode::Local`](crate::FailureMode::Local).
//!
//! One token bucket per descriptor key, held in this client only: while the cluster is unreachable, each API
//! server process admits at most `limit` per `period` per key (plus a full burst when it starts), so a fleet of N
//! processes admits up to N times the limit. Buckets are GCRA (one theoretical arrival time per key, integer
//! nanoseconds), checked atomically across a request's descriptors like the cluster does: all charged or none.
//! Fresh buckets are evicted when the table is full; if it is still full, new keys are denied (never unbounded).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::decision::{Decision, LimitDecision, Source};
use crate::descriptors::Descriptors;

/// The policy name reported by fallback decisions.
pub const LOCAL_POLICY: &str = "local";

/// How many keys the fallback tracks by default: about 100 bytes each, so ~10 MB at most.
pub const DEFAULT_LOCAL_MAX_KEYS: usize = 100_000;

/// The limit the local fallback applies to every key: `limit` units per `period`, in bursts of at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalLimit {
    /// Units per period per key; at least 1.
    pub limit: u64,
    /// The refill period; more than zero.
    pub period: Duration,
    /// The most keys tracked at once.
    pub max_keys: usize,
}

impl LocalLimit {
    /// Creates a limit of `limit` units per `period` for every key, tracking at most
    /// [`DEFAULT_LOCAL_MAX_KEYS`] keys. Values are validated by [`ClientBuilder::build`](crate::ClientBuilder::build).
    pub const fn new(limit: u64, period: Duration) -> LocalLimit {
        LocalLimit { limit, period, max_keys: DEFAULT_LOCAL_MAX_KEYS }
    }

    /// Returns the limit with a different key capacity.
    pub const fn max_keys(mut self, max_keys: usize) -> LocalLimit {
        self.max_keys = max_keys;
        self
    }
}

/// Token buckets keyed by `"dimension=value"`.
#[derive(Debug)]
pub(crate) struct LocalLimiter {
    limit: LocalLimit,
    period_ns: u128,
    origin: Instant,
    /// Theoretical arrival time per key, in nanoseconds since `origin`.
    buckets: Mutex<HashMap<String, u128>>,
}

/// One key's evaluation before anything is charged.
struct Evaluation {
    key: String,
    allowed: bool,
    new_tat: u128,
    decision: LimitDecision,
}

impl LocalLimiter {
    pub(crate) fn new(limit: LocalLimit) -> LocalLimiter {
        LocalLimiter { limit, period_ns: limit.period.as_nanos(), origin: Instant::now(), buckets: Mutex::default() }
    }

    /// Checks (and unless `peek`, charges) `cost` against every descriptor's bucket at `now`.
    pub(crate) fn check(&self, descriptors: &Descriptors, cost: u64, peek: bool, now: Instant) -> Decision {
        let now_ns = now.saturating_duration_since(self.origin).as_nanos();
        let cost = u128::from(cost.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let new_keys = descriptors.iter().filter(|d| !buckets.contains_key(&d.key())).count();
        if buckets.len() + new_keys > self.limit.max_keys {
            buckets.retain(|_, tat| *tat > now_ns);
        }
        let room = buckets.len() + new_keys <= self.limit.max_keys;
        let evaluations: Vec<Evaluation> = descriptors
            .iter()
            .map(|d| self.evaluate(d.key(), buckets.get(&d.key()).copied(), room, cost, now_ns))
            .collect();
        let allowed = !evaluations.is_empty() && evaluations.iter().all(|e| e.allowed);
        if allowed && !peek {
            for evaluation in &evaluations {
                buckets.insert(evaluation.key.clone(), evaluation.new_tat);
            }
        }
        Decision::local(Source::Fallback, allowed, evaluations.into_iter().map(|e| e.decision).collect())
    }

    /// GCRA for one key: the request fits if its new arrival time is at most one period ahead of `now`.
    fn evaluate(&self, key: String, tat: Option<u128>, room: bool, cost: u128, now: u128) -> Evaluation {
        let limit = u128::from(self.limit.limit);
        // A new key that cannot be tracked is denied: admitting it uncounted would make the fallback unbounded.
        let trackable = tat.is_some() || room;
        let tat = tat.unwrap_or(now).max(now);
        let new_tat = tat + (cost * self.period_ns).div_ceil(limit);
        let allowed = trackable && new_tat - now <= self.period_ns;
        let (ahead, retry_after) = if allowed {
            (new_tat - now, 0)
        } else if trackable {
            (tat - now, (new_tat - now).saturating_sub(self.period_ns))
        } else {
            (self.period_ns, self.period_ns)
        };
        let remaining = (self.period_ns - ahead.min(self.period_ns)) * limit / self.period_ns;
        let decision = LimitDecision {
            policy: LOCAL_POLICY.into(),
            key: key.as_str().into(),
            allowed,
            limit: self.limit.limit,
            base_limit: self.limit.limit,
            remaining: u64::try_from(remaining).unwrap_or(u64::MAX),
            reset_after: nanos(ahead),
            retry_after: nanos(retry_after),
            window: self.limit.period,
        };
        Evaluation { key, allowed, new_tat, decision }
    }
}

fn nanos(ns: u128) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limit: u64, period_secs: u64, max_keys: usize) -> LocalLimiter {
        LocalLimiter::new(LocalLimit::new(limit, Duration::from_secs(period_secs)).max_keys(max_keys))
    }

    #[test]
    fn bucket_admits_a_full_burst_then_denies_with_the_time_until_one_unit_refills() {
        let limiter = limiter(3, 3, 10);
        let key = Descriptors::new().api_key("k");
        let start = Instant::now();
        let remaining: Vec<u64> =
            (0..3).map(|_| limiter.check(&key, 1, false, start).remaining().unwrap_or(99)).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let denied = limiter.check(&key, 1, false, start);
        assert!(!denied.allowed);
        assert_eq!(denied.source, Source::Fallback);
        assert!(denied.degraded);
        assert_eq!(denied.retry_after(), Duration::from_secs(1));
        assert_eq!(denied.reset_after(), Some(Duration::from_secs(3)));
        assert!(limiter.check(&key, 1, false, start + Duration::from_secs(1)).allowed);
    }

    #[test]
    fn a_denied_multi_descriptor_check_charges_no_bucket() {
        let limiter = limiter(1, 60, 10);
        let now = Instant::now();
        assert!(limiter.check(&Descriptors::new().api_key("a"), 1, false, now).allowed);
        let both = Descriptors::new().api_key("a").ip(std::net::Ipv4Addr::LOCALHOST);
        assert!(!limiter.check(&both, 1, false, now).allowed);
        // The ip bucket was not charged by the denied check.
        assert!(limiter.check(&Descriptors::new().ip(std::net::Ipv4Addr::LOCALHOST), 1, false, now).allowed);
    }

    #[test]
    fn peek_evaluates_without_charging() {
        let limiter = limiter(1, 60, 10);
        let key = Descriptors::new().api_key("k");
        let now = Instant::now();
        assert!(limiter.check(&key, 1, true, now).allowed);
        assert!(limiter.check(&key, 1, true, now).allowed);
        assert!(limiter.check(&key, 1, false, now).allowed);
        assert!(!limiter.check(&key, 1, true, now).allowed);
    }

    #[test]
    fn a_full_table_evicts_fresh_buckets_and_denies_new_keys_when_none_is_fresh() {
        let limiter = limiter(10, 10, 2);
        let now = Instant::now();
        assert!(limiter.check(&Descriptors::new().api_key("a"), 1, false, now).allowed);
        assert!(limiter.check(&Descriptors::new().api_key("b"), 1, false, now).allowed);
        let third = limiter.check(&Descriptors::new().api_key("c"), 1, false, now);
        assert!(!third.allowed);
        assert_eq!(third.retry_after(), Duration::from_secs(10));
        // One second later both buckets are fresh again and can be evicted.
        assert!(limiter.check(&Descriptors::new().api_key("c"), 1, false, now + Duration::from_secs(1)).allowed);
    }
}
