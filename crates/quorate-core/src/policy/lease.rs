//! [`LeaseConfig`]: a policy's opt-in to leases, and how much of a key's quota one holder may take at once.
//!
//! A lease is a slice of one key's quota granted to a holder (a node, or a client inside an API server) by a
//! committed log entry; the holder then decides locally from it until it runs out or expires. Three numbers bound
//! it: how long it lives (`ttl`, and never past the bucket or window its units were charged to), how much of the
//! limit one holder may hold (`max_share`), and how much of the limit is never leased (`reserve`): a key with
//! fewer free units than the reserve is decided strictly, so a key at its limit behaves exactly as without leases.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::adaptive::PPM;
use crate::{CoreError, Nanos};

/// Default lease lifetime: long enough to serve many decisions of a hot key, short enough that a crashed
/// holder's units come back (as expired) within a quarter second.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_millis(250);
/// Default largest share of a key's limit one holder may hold at once: 10%.
pub const DEFAULT_LEASE_MAX_SHARE_PPM: u32 = 100_000;
/// Default share of a key's limit that is never leased: 10% (at least one unit).
pub const DEFAULT_LEASE_RESERVE_PPM: u32 = 100_000;
/// The longest lease lifetime accepted: a holder that vanishes keeps its units charged this long at most.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(60);

/// How a policy's keys may be leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseConfig {
    /// How long a lease lives at most, in cluster time (it also ends with the bucket or window it was charged to).
    pub ttl: Nanos,
    /// The most one holder may hold of one key at once, in ppm of the key's effective limit.
    pub max_share_ppm: u32,
    /// What is never leased, in ppm of the key's effective limit.
    pub reserve_ppm: u32,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl: DEFAULT_LEASE_TTL.as_nanos() as Nanos,
            max_share_ppm: DEFAULT_LEASE_MAX_SHARE_PPM,
            reserve_ppm: DEFAULT_LEASE_RESERVE_PPM,
        }
    }
}

impl LeaseConfig {
    /// The most units one holder may hold of a key whose limit in force is `limit` (0: leasing is pointless).
    pub fn share_cap(&self, limit: u64) -> u64 {
        (u128::from(limit) * u128::from(self.max_share_ppm) / u128::from(PPM)) as u64
    }

    /// The units of a key whose limit in force is `limit` that are never leased: at least one.
    pub fn reserve(&self, limit: u64) -> u64 {
        ((u128::from(limit) * u128::from(self.reserve_ppm)).div_ceil(u128::from(PPM)) as u64).max(1)
    }
}

/// The raw `lease` key of a policy: `lease = true` for the defaults, or a table of settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LeaseSpec {
    /// `lease = true` (the defaults) or `lease = false` (no leases, as if absent).
    Enabled(bool),
    /// `lease = { ttl = "250ms", max_share = 0.1, reserve = 0.1 }`, every key optional.
    Settings(LeaseSettingsSpec),
}

/// The settings of a `lease = { ... }` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseSettingsSpec {
    /// Lease lifetime, a humantime duration (default `"250ms"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Largest share of a key's limit one holder may hold, in (0, 1] (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_share: Option<f64>,
    /// Share of a key's limit never leased, in [0, 1) (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve: Option<f64>,
}

impl LeaseSpec {
    /// Validates the spec of policy `name`'s `lease` key.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] naming `policies.<name>.lease.<key>` for a value out of range.
    pub(super) fn validate(&self, name: &str) -> Result<Option<LeaseConfig>, CoreError> {
        let settings = match self {
            LeaseSpec::Enabled(false) => return Ok(None),
            LeaseSpec::Enabled(true) => return Ok(Some(LeaseConfig::default())),
            LeaseSpec::Settings(settings) => settings,
        };
        let path = |key: &str| format!("policies.{name}.lease.{key}");
        let mut config = LeaseConfig::default();
        if let Some(text) = &settings.ttl {
            let ttl = humantime::parse_duration(text)
                .map_err(|e| CoreError::invalid(path("ttl"), format!("{text:?} is not a duration: {e}")))?;
            if ttl.is_zero() || ttl > MAX_LEASE_TTL {
                return Err(CoreError::invalid(path("ttl"), format!("must be in (0, {MAX_LEASE_TTL:?}]")));
            }
            config.ttl = ttl.as_nanos() as Nanos;
        }
        if let Some(share) = settings.max_share {
            if !(share > 0.0 && share <= 1.0) {
                return Err(CoreError::invalid(path("max_share"), format!("{share} is outside (0, 1]")));
            }
            config.max_share_ppm = (share * f64::from(PPM)).round() as u32;
        }
        if let Some(reserve) = settings.reserve {
            if !(0.0..1.0).contains(&reserve) {
                return Err(CoreError::invalid(path("reserve"), format!("{reserve} is outside [0, 1)")));
            }
            config.reserve_ppm = (reserve * f64::from(PPM)).round() as u32;
        }
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_reserves_scale_with_the_limit_and_the_reserve_is_at_least_one() {
        let config = LeaseConfig::default();
        assert_eq!((config.share_cap(1_000), config.reserve(1_000)), (100, 100));
        assert_eq!((config.share_cap(60), config.reserve(60)), (6, 6));
        assert_eq!((config.share_cap(5), config.reserve(5)), (0, 1));
    }

    #[test]
    fn bad_settings_name_their_key() {
        let bad = |settings: LeaseSettingsSpec| LeaseSpec::Settings(settings).validate("p").unwrap_err().to_string();
        assert!(bad(LeaseSettingsSpec { ttl: Some("0s".into()), ..Default::default() }).contains("lease.ttl"));
        assert!(bad(LeaseSettingsSpec { ttl: Some("2m".into()), ..Default::default() }).contains("lease.ttl"));
        assert!(bad(LeaseSettingsSpec { max_share: Some(0.0), ..Default::default() }).contains("lease.max_share"));
        assert!(bad(LeaseSettingsSpec { reserve: Some(1.0), ..Default::default() }).contains("lease.reserve"));
        assert_eq!(LeaseSpec::Enabled(false).validate("p").unwrap(), None);
        let custom = LeaseSettingsSpec { ttl: Some("100ms".into()), max_share: Some(0.5), reserve: Some(0.0) };
        let config = LeaseSpec::Settings(custom).validate("p").unwrap().unwrap();
        assert_eq!((config.ttl, config.max_share_ppm, config.reserve_ppm), (100_000_000, 500_000, 0));
    }
}
