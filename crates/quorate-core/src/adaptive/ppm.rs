//! Fractions as integer parts per million: the only number format the adaptive controller computes with.
//!
//! Loads, multipliers, hysteresis and smoothing weights are all `u32` ppm (`1_000_000` = 1). Config files write them
//! as decimals (`threshold = 0.6`); [`fraction_to_ppm`] converts such a value once, at validation, and nothing
//! downstream of it ever sees a float. That is what lets every replica reach bit-identical state.

use crate::CoreError;

/// One whole in parts per million: a load of `PPM` is 100 %, a multiplier of `PPM` leaves limits untouched.
pub const PPM: u32 = 1_000_000;

/// Converts a config fraction in `0.0..=1.0` to parts per million, rounding to the nearest ppm.
///
/// This is for config parsing only: the float is read once and never reaches replicated state.
///
/// # Errors
///
/// [`CoreError::InvalidParameter`] naming `field` if `fraction` is not a finite number between 0 and 1.
///
/// # Examples
///
/// ```
/// use quorate_core::adaptive::fraction_to_ppm;
///
/// assert_eq!(fraction_to_ppm("adaptive.hysteresis", 0.05).unwrap(), 50_000);
/// assert_eq!(fraction_to_ppm("adaptive.hysteresis", 0.1 + 0.2).unwrap(), 300_000);
/// assert!(fraction_to_ppm("adaptive.hysteresis", 1.5).is_err());
/// ```
pub fn fraction_to_ppm(field: &str, fraction: f64) -> Result<u32, CoreError> {
    if !fraction.is_finite() || !(0.0..=1.0).contains(&fraction) {
        return Err(CoreError::invalid(field, format!("{fraction} is not a number between 0 and 1")));
    }
    // In range 0..=1e6 after the check above, so the cast neither truncates nor saturates.
    Ok((fraction * f64::from(PPM)).round() as u32)
}

/// Converts parts per million back to the fraction a config file would write (for showing a config).
pub fn ppm_to_fraction(ppm: u32) -> f64 {
    f64::from(ppm) / f64::from(PPM)
}

/// Formats parts per million as a decimal without floats (`600_000` -> `"0.6"`), for error messages.
pub(crate) fn display_ppm(ppm: u32) -> String {
    let (whole, frac) = (ppm / PPM, ppm % PPM);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn fractions_round_to_the_nearest_ppm() {
        assert_eq!(fraction_to_ppm("f", 0.6).unwrap(), 600_000);
        assert_eq!(fraction_to_ppm("f", 0.000_000_4).unwrap(), 0);
        assert_eq!(fraction_to_ppm("f", 0.000_000_6).unwrap(), 1);
        assert_eq!(fraction_to_ppm("f", 1.0).unwrap(), PPM);
        for ppm in [0, 1, 49_999, 600_000, 999_999, PPM] {
            assert_eq!(fraction_to_ppm("f", ppm_to_fraction(ppm)).unwrap(), ppm, "round trip of {ppm}");
        }
    }

    #[test]
    fn fractions_outside_zero_to_one_are_rejected_with_the_field() {
        for bad in [-0.1, 1.000_001, f64::NAN, f64::INFINITY] {
            let err = fraction_to_ppm("adaptive.smoothing", bad).unwrap_err();
            assert!(matches!(err, CoreError::InvalidParameter { ref field, .. } if field == "adaptive.smoothing"));
        }
    }

    #[test]
    fn ppm_displays_as_a_short_decimal() {
        assert_eq!(display_ppm(600_000), "0.6");
        assert_eq!(display_ppm(50_000), "0.05");
        assert_eq!(display_ppm(1), "0.000001");
        assert_eq!(display_ppm(PPM), "1");
        assert_eq!(display_ppm(0), "0");
    }
}
