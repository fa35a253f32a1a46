//! [`Multiplier`]: the factor in (0, 1] that adaptive tightening applies to opted-in limits.

use serde::{Deserialize, Serialize};

use super::PPM;

/// A limit multiplier in parts per million, in `1..=1_000_000`: integer so that every replica agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Multiplier(u32);

impl Multiplier {
    /// No tightening: limits apply as configured.
    pub const ONE: Multiplier = Multiplier(PPM);

    /// Creates a multiplier of `ppm` parts per million, clamped into `1..=1_000_000`.
    pub const fn from_ppm(ppm: u32) -> Self {
        // `Ord::clamp` is not const; this is the same clamp, usable in the default level table.
        Multiplier(if ppm < 1 {
            1
        } else if ppm > PPM {
            PPM
        } else {
            ppm
        })
    }

    /// The multiplier in parts per million.
    pub const fn ppm(self) -> u32 {
        self.0
    }

    /// Applies the multiplier (but never below `floor`) to `base`, rounding down, never below 1.
    pub fn apply(self, base: u64, floor: Multiplier) -> u64 {
        let ppm = u128::from(self.0.max(floor.0));
        let scaled = u128::from(base) * ppm / 1_000_000;
        u64::try_from(scaled).unwrap_or(u64::MAX).clamp(1, base.max(1))
    }
}

impl Default for Multiplier {
    fn default() -> Self {
        Multiplier::ONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_ppm_clamps_into_one_ppm_to_one() {
        assert_eq!(Multiplier::from_ppm(0).ppm(), 1);
        assert_eq!(Multiplier::from_ppm(2_000_000), Multiplier::ONE);
        assert_eq!(Multiplier::from_ppm(250_000).ppm(), 250_000);
        assert_eq!(Multiplier::default(), Multiplier::ONE);
    }

    #[test]
    fn apply_rounds_down_and_never_goes_below_one() {
        assert_eq!(Multiplier::from_ppm(750_000).apply(10, Multiplier::from_ppm(1)), 7);
        assert_eq!(Multiplier::from_ppm(1).apply(10, Multiplier::from_ppm(1)), 1);
        assert_eq!(Multiplier::ONE.apply(u64::MAX, Multiplier::ONE), u64::MAX);
    }
}
