//! [`KeyPicker`]: which key each check of the bench uses — uniform, or Zipf as real API traffic is (a minority
//! of keys carries most requests), drawn from a per-task seeded generator so a run can be repeated.

/// How keys are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Key `i` (1-based) with weight `1 / i^s`, as `../shared/bench/loadgen` draws them.
    Zipf,
}

/// A seeded key picker for one task.
#[derive(Debug, Clone)]
pub(crate) struct KeyPicker {
    rng: XorShift,
    keys: u64,
    /// The cumulative distribution of a Zipf draw; empty for uniform.
    cdf: std::sync::Arc<Vec<f64>>,
}

impl KeyPicker {
    /// The cumulative Zipf distribution over `keys` keys with exponent `s`, shared by every task.
    pub(crate) fn zipf_cdf(keys: u64, s: f64) -> Vec<f64> {
        let weights: Vec<f64> = (1..=keys).map(|i| 1.0 / (i as f64).powf(s)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        cdf
    }

    /// A picker for task `task` of a run seeded `seed`; `cdf` empty means uniform.
    pub(crate) fn new(seed: u64, task: u64, keys: u64, cdf: std::sync::Arc<Vec<f64>>) -> Self {
        KeyPicker { rng: XorShift::new(seed, task), keys: keys.max(1), cdf }
    }

    /// The next key's index in `0..keys`.
    pub(crate) fn next(&mut self) -> u64 {
        if self.cdf.is_empty() {
            return self.rng.below(self.keys);
        }
        // A uniform draw in [0, 1) with 53 bits, then the first key whose cumulative weight exceeds it.
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1) as u64
    }
}

/// A tiny xorshift64 generator: uniform enough to pick keys, no dependency, one per task.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    /// Seeds task `task` from the run seed, mixed by SplitMix64 so that neighbouring tasks differ from the start.
    fn new(seed: u64, task: u64) -> Self {
        let mut z = seed.wrapping_add(task.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z }) // xorshift's state must never be 0
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Returns a value in `0..n` (`n >= 1`) by multiply-shift, which avoids modulo's bias toward small values.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn uniform_picks_stay_in_range_cover_all_keys_and_differ_per_task() {
        let mut picker = KeyPicker::new(1, 0, 10, Arc::default());
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[usize::try_from(picker.next()).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        let firsts: Vec<u64> = (0..4).map(|task| KeyPicker::new(1, task, u64::MAX, Arc::default()).next()).collect();
        assert!(firsts.windows(2).all(|w| w[0] != w[1]));
        let same = |seed| KeyPicker::new(seed, 3, 1000, Arc::default()).next();
        assert_eq!(same(7), same(7));
    }

    #[test]
    fn zipf_picks_favour_the_first_keys_as_their_weights_say() {
        let keys = 10_000;
        let cdf = Arc::new(KeyPicker::zipf_cdf(keys, 1.0));
        let mut picker = KeyPicker::new(1, 0, keys, cdf);
        let draws = 100_000;
        let hot = (0..draws).filter(|_| picker.next() < 100).count() as f64 / draws as f64;
        // With s = 1 over 10,000 keys the first 100 carry H(100)/H(10000) ≈ 5.187/9.788 ≈ 53% of the draws.
        assert!((0.50..0.56).contains(&hot), "{hot}");
        assert!((0..1000).all(|_| picker.next() < keys));
    }
}
