//! [`SignalScale`]: maps a raw reading (a latency in ms, a pool size) onto a load in ppm.
//!
//! Raw readings and scale bounds are integers in **milli-units** (`i64`, 1/1000 of the reading's own unit):
//! `llm_latency_p95_ms = 1800` is `1_800_000`, and a scale configured as `low = 500.0, high = 3000.0` holds
//! `500_000` and `3_000_000`. Milli-units keep three decimals of a float reading while all mapping arithmetic stays
//! integer. [`milli_from_f64`] converts a float once, where it enters (config parsing, an API report).

use serde::{Deserialize, Serialize};

use super::PPM;
use crate::CoreError;

/// The largest raw magnitude accepted, in milli-units (10^15, i.e. 10^12 units).
///
/// Below 2^53, so every accepted float converts exactly, and `(raw - low) * PPM` fits an `i128` with room to spare.
pub const MAX_RAW_MILLI: i64 = 1_000_000_000_000_000;

/// A linear, clamped map from raw readings to load: `low` and below is 0, `high` and above is 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignalScale {
    low_milli: i64,
    high_milli: i64,
}

/// The config form of a [`SignalScale`]: bounds in the reading's own unit, as written in TOML.
///
/// ```toml
/// [adaptive.scales.llm_latency_p95_ms]
/// low = 500
/// high = 3000
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalScaleSpec {
    /// The reading at which load starts rising above 0.
    pub low: f64,
    /// The reading at which load reaches 1.
    pub high: f64,
}

impl SignalScale {
    /// Creates a scale from `low_milli` (load 0) to `high_milli` (load 1), both in milli-units.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if `low_milli >= high_milli` or a bound is beyond [`MAX_RAW_MILLI`].
    pub fn new(low_milli: i64, high_milli: i64) -> Result<Self, CoreError> {
        SignalScale::checked("scale", low_milli, high_milli)
    }

    /// Validates a config scale; errors name `field.low` or `field.high`, e.g. `adaptive.scales.db_pool.high`.
    ///
    /// # Errors
    ///
    /// [`CoreError::InvalidParameter`] if a bound is not a finite number within [`MAX_RAW_MILLI`], or if `low` is
    /// not below `high`.
    pub fn from_spec(field: &str, spec: &SignalScaleSpec) -> Result<Self, CoreError> {
        let low = milli_from_f64(&format!("{field}.low"), spec.low)?;
        let high = milli_from_f64(&format!("{field}.high"), spec.high)?;
        SignalScale::checked(field, low, high)
    }

    /// The config form of this scale.
    pub fn to_spec(self) -> SignalScaleSpec {
        // Exact: both bounds are below 2^53 in magnitude.
        SignalScaleSpec { low: self.low_milli as f64 / 1000.0, high: self.high_milli as f64 / 1000.0 }
    }

    /// The reading, in milli-units, at and below which the load is 0.
    pub fn low_milli(self) -> i64 {
        self.low_milli
    }

    /// The reading, in milli-units, at and above which the load is 1.
    pub fn high_milli(self) -> i64 {
        self.high_milli
    }

    /// Maps a raw reading in milli-units to a load in ppm: linear between the bounds, rounded down, clamped.
    ///
    /// # Examples
    ///
    /// ```
    /// use quorate_core::adaptive::SignalScale;
    ///
    /// // llm_latency_p95_ms: 500 ms is no load, 3000 ms is full load.
    /// let scale = SignalScale::new(500_000, 3_000_000).unwrap();
    /// assert_eq!(scale.to_ppm(1_800_000), 520_000);
    /// assert_eq!(scale.to_ppm(100_000), 0);
    /// assert_eq!(scale.to_ppm(9_000_000), 1_000_000);
    /// ```
    pub fn to_ppm(self, raw_milli: i64) -> u32 {
        if raw_milli <= self.low_milli {
            return 0;
        }
        if raw_milli >= self.high_milli {
            return PPM;
        }
        // Now low < raw < high, so the quotient is in 0..PPM. i128: a raw value from a client is any i64.
        let above = i128::from(raw_milli) - i128::from(self.low_milli);
        let span = i128::from(self.high_milli) - i128::from(self.low_milli);
        (above * i128::from(PPM) / span) as u32
    }

    fn checked(field: &str, low_milli: i64, high_milli: i64) -> Result<Self, CoreError> {
        for (bound, value) in [("low", low_milli), ("high", high_milli)] {
            if value.unsigned_abs() > MAX_RAW_MILLI.unsigned_abs() {
                return Err(CoreError::invalid(
                    format!("{field}.{bound}"),
                    format!("{value} milli-units is beyond the maximum magnitude {MAX_RAW_MILLI}"),
                ));
            }
        }
        if low_milli >= high_milli {
            return Err(CoreError::invalid(
                format!("{field}.high"),
                format!("must be above low ({} <= {})", display_milli(high_milli), display_milli(low_milli)),
            ));
        }
        Ok(SignalScale { low_milli, high_milli })
    }
}

/// Converts a raw reading to milli-units, rounding to the nearest: `1800.0` -> `1_800_000`.
///
/// Call it once where a float enters (config parsing, an incoming report), so that only integers reach the log.
///
/// # Errors
///
/// [`CoreError::InvalidParameter`] naming `field` if `value` is not finite or beyond [`MAX_RAW_MILLI`].
pub fn milli_from_f64(field: &str, value: f64) -> Result<i64, CoreError> {
    let milli = (value * 1000.0).round();
    // MAX_RAW_MILLI is below 2^53, so it is exact as an f64 and the cast below is exact too.
    if !milli.is_finite() || milli.abs() > MAX_RAW_MILLI as f64 {
        return Err(CoreError::invalid(field, format!("{value} is not a number within ±{}", MAX_RAW_MILLI / 1000)));
    }
    Ok(milli as i64)
}

fn display_milli(milli: i64) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    let (whole, frac) = (milli.unsigned_abs() / 1000, milli.unsigned_abs() % 1000);
    if frac == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{}", format!("{frac:03}").trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn field_of(err: CoreError) -> String {
        match err {
            CoreError::InvalidParameter { field, .. } => field,
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }

    #[test]
    fn raw_scale_maps_linearly_between_low_and_high() {
        let scale = SignalScale::from_spec("s", &SignalScaleSpec { low: 500.0, high: 3000.0 }).unwrap();
        assert_eq!(scale.to_ppm(500_000), 0);
        assert_eq!(scale.to_ppm(500_001), 0); // 0.4 ppm, rounded down
        assert_eq!(scale.to_ppm(1_750_000), 500_000);
        assert_eq!(scale.to_ppm(1_800_000), 520_000);
        assert_eq!(scale.to_ppm(2_999_999), 999_999);
        assert_eq!(scale.to_ppm(3_000_000), PPM);
    }

    #[test]
    fn raw_scale_clamps_outside_its_bounds() {
        let scale = SignalScale::new(-1_000, 1_000).unwrap();
        assert_eq!(scale.to_ppm(i64::MIN), 0);
        assert_eq!(scale.to_ppm(-5_000), 0);
        assert_eq!(scale.to_ppm(0), 500_000);
        assert_eq!(scale.to_ppm(5_000), PPM);
        assert_eq!(scale.to_ppm(i64::MAX), PPM);
    }

    #[test]
    fn floats_convert_to_the_nearest_milli_unit() {
        assert_eq!(milli_from_f64("x", 1800.0).unwrap(), 1_800_000);
        assert_eq!(milli_from_f64("x", 0.0015).unwrap(), 2);
        assert_eq!(milli_from_f64("x", -2.5).unwrap(), -2_500);
        assert_eq!(field_of(milli_from_f64("x", f64::NAN).unwrap_err()), "x");
        assert_eq!(field_of(milli_from_f64("x", 1e13).unwrap_err()), "x");
    }

    #[test]
    fn scales_need_low_below_high_and_name_the_bad_bound() {
        let spec = |low, high| SignalScaleSpec { low, high };
        let err = SignalScale::from_spec("adaptive.scales.db", &spec(10.0, 10.0)).unwrap_err();
        assert_eq!(field_of(err), "adaptive.scales.db.high");
        let err = SignalScale::from_spec("adaptive.scales.db", &spec(f64::NEG_INFINITY, 1.0)).unwrap_err();
        assert_eq!(field_of(err), "adaptive.scales.db.low");
        assert!(SignalScale::new(MAX_RAW_MILLI - 1, MAX_RAW_MILLI).is_ok());
        assert!(SignalScale::new(0, MAX_RAW_MILLI + 1).is_err());
        assert!(SignalScale::new(i64::MIN, 0).is_err());
    }

    #[test]
    fn scale_spec_round_trips_and_rejects_unknown_fields() {
        let scale = SignalScale::new(500_250, 3_000_000).unwrap();
        assert_eq!(SignalScale::from_spec("s", &scale.to_spec()).unwrap(), scale);
        assert!(toml::from_str::<SignalScaleSpec>("low = 1\nhigh = 2\nmid = 1.5").is_err());
        assert_eq!(
            toml::from_str::<SignalScaleSpec>("low = 500\nhigh = 3000").unwrap(),
            SignalScaleSpec { low: 500.0, high: 3000.0 }
        );
    }
}
