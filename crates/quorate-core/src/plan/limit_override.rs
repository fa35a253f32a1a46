//! [`LimitOverride`]: a limit that one descriptor of a check carries instead of the one the policy rules choose
//! (Envoy's `RateLimitDescriptor.limit`).
//!
//! An override is enforced as a fixed window of its unit's length aligned to the Unix epoch, the way Envoy's
//! reference rate limit service counts: a second, a minute, an hour, a day, 30 days (MONTH) or 365 days (YEAR).
//!
//! Its state lives in the replicated [`LimiterTable`](crate::LimiterTable) beside the configured policies,
//! under a synthetic policy id per unit, `OVERRIDE_POLICY_BASE + unit`. Configured policies are numbered from 0 up
//! to their count (at most a few thousand), so the two ranges never meet, and a policy set change leaves override
//! state alone. The key is `<requests_per_unit>/<unit>:<dimension>=<value>`: two different overrides on one
//! descriptor never share a counter. Everything here is computed from the integers in the command, so every
//! replica builds the same limiter.

use serde::{Deserialize, Serialize};

use crate::{CoreError, FixedWindow, Limiter, Nanos, PolicyId, WindowSpan};

/// The first table policy id used by overrides; configured policy ids stay below it.
pub const OVERRIDE_POLICY_BASE: PolicyId = 1 << 31;

const SECOND: Nanos = 1_000_000_000;
const DAY: Nanos = 86_400 * SECOND;

/// The time unit of a [`LimitOverride`]: Envoy's `envoy.type.v3.RateLimitUnit` without `UNKNOWN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OverrideUnit {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC, from midnight).
    Day,
    /// 30 days from the epoch, as Envoy's reference service counts a month.
    Month,
    /// 365 days from the epoch, as Envoy's reference service counts a year.
    Year,
}

impl OverrideUnit {
    /// The length of one window of this unit.
    pub fn length(self) -> Nanos {
        match self {
            OverrideUnit::Second => SECOND,
            OverrideUnit::Minute => 60 * SECOND,
            OverrideUnit::Hour => 3_600 * SECOND,
            OverrideUnit::Day => DAY,
            OverrideUnit::Month => 30 * DAY,
            OverrideUnit::Year => 365 * DAY,
        }
    }

    /// The unit's lowercase name, as used in keys and policy names.
    pub fn name(self) -> &'static str {
        match self {
            OverrideUnit::Second => "second",
            OverrideUnit::Minute => "minute",
            OverrideUnit::Hour => "hour",
            OverrideUnit::Day => "day",
            OverrideUnit::Month => "month",
            OverrideUnit::Year => "year",
        }
    }

    fn index(self) -> PolicyId {
        match self {
            OverrideUnit::Second => 0,
            OverrideUnit::Minute => 1,
            OverrideUnit::Hour => 2,
            OverrideUnit::Day => 3,
            OverrideUnit::Month => 4,
            OverrideUnit::Year => 5,
        }
    }
}

/// A limit of `requests_per_unit` per `unit` for one descriptor, replacing its policy's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LimitOverride {
    /// Units admitted per window; at least 1.
    pub requests_per_unit: u32,
    /// The window.
    pub unit: OverrideUnit,
}

impl LimitOverride {
    /// Returns true if `policy` is a synthetic override id rather than a configured policy's.
    pub fn is_override_id(policy: PolicyId) -> bool {
        policy >= OVERRIDE_POLICY_BASE
    }

    /// The table policy id the override's state lives under: one per unit, so that every key of one id has the
    /// same window length. That is what eviction reads: a fixed window's key is fresh once its window has ended,
    /// whatever its limit, so keys with different limits can share the id safely.
    pub fn policy_id(&self) -> PolicyId {
        OVERRIDE_POLICY_BASE + self.unit.index()
    }

    /// The table key of `dimension = value` under this override: `<requests_per_unit>/<unit>:<dimension>=<value>`.
    pub fn key(&self, dimension: &str, value: &str) -> String {
        format!("{}/{}:{dimension}={value}", self.requests_per_unit, self.unit.name())
    }

    /// The name the API reports for the limit, e.g. `override 10/minute`.
    pub fn name(&self) -> String {
        format!("override {}/{}", self.requests_per_unit, self.unit.name())
    }

    /// Builds the fixed-window limiter that enforces the override.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if `requests_per_unit` is 0.
    pub fn limiter(&self) -> Result<Limiter, CoreError> {
        if self.requests_per_unit == 0 {
            return Err(CoreError::invalid("limit.requests_per_unit", "must be at least 1"));
        }
        FixedWindow::new(u64::from(self.requests_per_unit), WindowSpan::Every(self.unit.length())).map(Limiter::from)
    }
}

#[cfg(test)]
mod tests {
    use crate::{LimitRef, LimiterTable, TableConfig};

    use super::*;

    const T0: Nanos = 1_800_000_000 * SECOND;

    #[test]
    fn override_limiter_is_a_fixed_window_of_the_unit() {
        let units = [
            (OverrideUnit::Second, SECOND),
            (OverrideUnit::Minute, 60 * SECOND),
            (OverrideUnit::Hour, 3_600 * SECOND),
            (OverrideUnit::Day, DAY),
            (OverrideUnit::Month, 30 * DAY),
            (OverrideUnit::Year, 365 * DAY),
        ];
        for (unit, length) in units {
            let limiter = LimitOverride { requests_per_unit: 7, unit }.limiter().unwrap();
            assert_eq!(limiter, Limiter::from(FixedWindow::new(7, WindowSpan::Every(length)).unwrap()), "{unit:?}");
            assert_eq!((limiter.base_limit(), limiter.period()), (7, length));
        }
    }

    #[test]
    fn zero_requests_per_unit_is_refused() {
        let error = LimitOverride { requests_per_unit: 0, unit: OverrideUnit::Minute }.limiter().unwrap_err();
        assert!(error.to_string().contains("requests_per_unit"), "{error}");
    }

    #[test]
    fn override_ids_and_keys_never_collide_with_policies_or_each_other() {
        let a = LimitOverride { requests_per_unit: 10, unit: OverrideUnit::Minute };
        let b = LimitOverride { requests_per_unit: 11, unit: OverrideUnit::Minute };
        let c = LimitOverride { requests_per_unit: 10, unit: OverrideUnit::Hour };
        assert!(LimitOverride::is_override_id(a.policy_id()));
        assert!(!LimitOverride::is_override_id(OVERRIDE_POLICY_BASE - 1));
        assert_eq!(a.policy_id(), b.policy_id());
        assert_ne!(a.policy_id(), c.policy_id());
        assert_ne!(a.key("ip", "1.2.3.4"), b.key("ip", "1.2.3.4"));
        assert_eq!(a.key("ip", "1.2.3.4"), "10/minute:ip=1.2.3.4");
    }

    #[test]
    fn keys_with_different_limits_under_one_id_keep_their_own_windows() {
        // Two overrides of one unit share a table id; each key must still count against its own limit.
        let mut table = LimiterTable::new(TableConfig::default());
        let (two, five) = (
            LimitOverride { requests_per_unit: 2, unit: OverrideUnit::Minute },
            LimitOverride { requests_per_unit: 5, unit: OverrideUnit::Minute },
        );
        let (two_key, five_key) = (two.key("k", "v"), five.key("k", "v"));
        let small = LimitRef::new(two.policy_id(), two.limiter().unwrap(), &two_key);
        let large = LimitRef::new(five.policy_id(), five.limiter().unwrap(), &five_key);
        let admitted = |table: &mut LimiterTable, limit: LimitRef<'_>| {
            (0..10).filter(|_| table.check(T0, &[limit], 1).unwrap().allowed).count()
        };
        assert_eq!(admitted(&mut table, small), 2);
        assert_eq!(admitted(&mut table, large), 5);
        // Interleaving the two does not let the small one borrow the large one's limit.
        assert!(!table.check(T0, &[small], 1).unwrap().allowed);
    }
}
