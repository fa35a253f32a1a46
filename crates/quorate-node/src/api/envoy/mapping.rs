//! How an Envoy `RateLimitRequest` becomes a Quorate check: one Quorate descriptor per Envoy descriptor.
//!
//! # The mapping
//!
//! - **Dimension**: the entry keys joined with `.`: `[(remote_address, …)]` becomes `remote_address`,
//!   `[(method, …), (path, …)]` becomes `method.path`. Keys must be 1 or more of `[a-z0-9_-]` (a dimension's
//!   characters without `.`), so the number of entries can be read back from the dimension.
//! - **Value**: the entry values, each escaped, joined with `|`. Escaping writes `%` as `%25` and `|` as `%7C`
//!   and leaves everything else alone (`10.0.0.1`, `agent_42`, `/v1/chat` are unchanged); an empty value (a
//!   key-only entry) is written as a lone `%`, which no escaped non-empty value can be. So `[(method, GET),
//!   (path, /a|b)]` becomes `method.path = GET|/a%7Cb`. Distinct Envoy descriptors always map to distinct
//!   Quorate descriptors, and rules match the mapped form like any other descriptor: exact values, prefixes
//!   (`GET|/v1/` for every GET under `/v1/`) or any value of the dimension.
//! - **Domain**: ignored. The cluster's policy set is the one namespace; give domains distinct descriptor keys
//!   (or separate clusters) if their limits must not meet.
//! - **Cost**: the descriptor's own `hits_addend` if set, else the request's; 0 counts as 1.
//! - **Limit override**: the descriptor's `limit`, if set, replaces the policy the rules would choose
//!   ([`LimitOverride`]); such a descriptor needs no rule.
//!
//! The mapped value must fit Quorate's 256-byte limit and the dimension its 64-byte one; anything else is
//! INVALID_ARGUMENT with a message naming the descriptor. All descriptors of a request are then checked
//! atomically like any Quorate check.

use quorate_core::plan::{Check, Cost, DescriptorOverride, LimitOverride, OverrideUnit};
use quorate_core::policy::{Descriptor, MAX_NAME_LEN};
use quorate_proto::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use quorate_proto::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::RateLimitOverride;
use quorate_proto::envoy::service::ratelimit::v3::RateLimitRequest;
use quorate_proto::envoy::r#type::v3::RateLimitUnit;
use thiserror::Error;

/// Error returned by [`map_request`] when a `RateLimitRequest` cannot become a Quorate check.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub(crate) enum MappingError {
    /// Returned when the request has no descriptors.
    #[error("a RateLimitRequest needs at least one descriptor")]
    NoDescriptors,
    /// Returned when a descriptor has no entries.
    #[error("descriptor {descriptor} has no entries")]
    NoEntries {
        /// The descriptor's index.
        descriptor: usize,
    },
    /// Returned when an entry key is not 1 to 64 bytes of `[a-z0-9_-]`.
    #[error(
        "descriptor {descriptor} entry {entry}: key {key:?} must be 1 to {MAX_NAME_LEN} bytes of lowercase letters, \
         digits, `_` and `-` (`.` joins the keys of a descriptor)"
    )]
    BadKey {
        /// The descriptor's index.
        descriptor: usize,
        /// The entry's index.
        entry: usize,
        /// The key as sent (cut to 64 bytes).
        key: String,
    },
    /// Returned when a limit override's unit is not one of SECOND, MINUTE, HOUR, DAY, MONTH or YEAR.
    #[error("descriptor {descriptor}: limit override unit {unit} is not SECOND, MINUTE, HOUR, DAY, MONTH or YEAR")]
    BadUnit {
        /// The descriptor's index.
        descriptor: usize,
        /// The unit's number as sent.
        unit: i32,
    },
    /// Returned when a limit override allows 0 requests per unit.
    #[error("descriptor {descriptor}: limit override requests_per_unit must be at least 1")]
    ZeroLimit {
        /// The descriptor's index.
        descriptor: usize,
    },
}

/// Maps a `RateLimitRequest` to the check it asks for (see the [module docs](self)).
///
/// # Errors
///
/// [`MappingError`] saying which descriptor or entry is malformed. Whether the mapped descriptors match rules
/// and fit the limits is decided later, against the policy set.
pub(crate) fn map_request(request: &RateLimitRequest) -> Result<Check, MappingError> {
    if request.descriptors.is_empty() {
        return Err(MappingError::NoDescriptors);
    }
    let cost = Cost::at_least_one(u64::from(request.hits_addend));
    let mut descriptors = Vec::with_capacity(request.descriptors.len());
    let mut overrides = Vec::with_capacity(request.descriptors.len());
    for (i, wire) in request.descriptors.iter().enumerate() {
        descriptors.push(map_descriptor(i, wire)?);
        let limit = wire.limit.as_ref().map(|limit| map_override(i, limit)).transpose()?;
        overrides.push(DescriptorOverride { cost: wire.hits_addend.map(Cost::at_least_one), limit });
    }
    // Most requests set neither: an empty list keeps the log entry small and the table on its uniform path.
    if overrides.iter().all(|o| *o == DescriptorOverride::default()) {
        overrides.clear();
    }
    Ok(Check { descriptors, cost, peek: false, overrides })
}

/// Maps descriptor `i`'s entries to one Quorate descriptor whose policy the rules choose.
///
/// # Errors
///
/// [`MappingError::NoEntries`] or [`MappingError::BadKey`].
pub(crate) fn map_descriptor(i: usize, descriptor: &RateLimitDescriptor) -> Result<Descriptor, MappingError> {
    if descriptor.entries.is_empty() {
        return Err(MappingError::NoEntries { descriptor: i });
    }
    let mut dimension = String::new();
    let mut value = String::new();
    for (j, entry) in descriptor.entries.iter().enumerate() {
        if !is_key(&entry.key) {
            return Err(MappingError::BadKey { descriptor: i, entry: j, key: cut(&entry.key, MAX_NAME_LEN) });
        }
        if j > 0 {
            dimension.push('.');
            value.push('|');
        }
        dimension.push_str(&entry.key);
        escape_into(&entry.value, &mut value);
    }
    Ok(Descriptor::new(dimension, value))
}

fn map_override(i: usize, limit: &RateLimitOverride) -> Result<LimitOverride, MappingError> {
    let unit = match RateLimitUnit::try_from(limit.unit) {
        Ok(RateLimitUnit::Second) => OverrideUnit::Second,
        Ok(RateLimitUnit::Minute) => OverrideUnit::Minute,
        Ok(RateLimitUnit::Hour) => OverrideUnit::Hour,
        Ok(RateLimitUnit::Day) => OverrideUnit::Day,
        Ok(RateLimitUnit::Month) => OverrideUnit::Month,
        Ok(RateLimitUnit::Year) => OverrideUnit::Year,
        Ok(RateLimitUnit::Unknown) | Err(_) => return Err(MappingError::BadUnit { descriptor: i, unit: limit.unit }),
    };
    if limit.requests_per_unit == 0 {
        return Err(MappingError::ZeroLimit { descriptor: i });
    }
    Ok(LimitOverride { requests_per_unit: limit.requests_per_unit, unit })
}

/// Whether `key` can be one component of a dimension: `[a-z0-9_-]`, 1 to [`MAX_NAME_LEN`] bytes.
fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_NAME_LEN
        && key.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

/// The first `max` bytes of `text` at most, cut at a character boundary, for error messages.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Appends `value` escaped: `%` as `%25`, `|` as `%7C`, the empty value as a lone `%`.
fn escape_into(value: &str, out: &mut String) {
    if value.is_empty() {
        out.push('%');
        return;
    }
    for c in value.chars() {
        match c {
            '%' => out.push_str("%25"),
            '|' => out.push_str("%7C"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
