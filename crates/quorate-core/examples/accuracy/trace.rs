//! The seeded synthetic trace: each source asks for `limit × lognormal(0, σ)` requests per minute, arriving as a
//! Poisson process from a uniformly random instant of the first window on.
//!
//! The random start matters: real clients do not start on window boundaries, and a busy source that starts late
//! in a fixed window is exactly what lets a fixed window or the window counter admit close to twice the limit
//! within one window length. A trace where every source starts on a boundary hides that.
//!
//! The generator is SplitMix64, and every source draws from its own stream derived from (seed, source), so a
//! source's arrivals depend only on the seed, its index, σ and the duration. Floating point appears only here,
//! to draw the trace; the limiters under test see integer nanoseconds.

use quorate_core::Nanos;

const NANOS_PER_MINUTE: f64 = 60e9;

/// SplitMix64's increment (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A SplitMix64 pseudo-random generator: a few lines, good enough statistics for a workload.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// The generator of one source of the trace seeded with `seed`.
    pub(crate) fn for_source(seed: u64, source: u64) -> Self {
        Rng { state: mix(seed ^ mix(source.wrapping_add(GAMMA))) }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// A uniform draw from the open interval (0, 1): never 0, so its logarithm is finite.
    fn open_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box-Muller; the second value of the pair is not needed).
    fn normal(&mut self) -> f64 {
        let radius = (-2.0 * self.open_unit().ln()).sqrt();
        radius * (std::f64::consts::TAU * self.open_unit()).cos()
    }

    /// An exponential draw with the given mean.
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.open_unit().ln()
    }
}

/// SplitMix64's output function: a bijective 64-bit mixer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The shape of the trace, shared by all sources.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TraceSpec {
    pub(crate) seed: u64,
    /// The median demand, in requests per minute (the limit).
    pub(crate) median_per_minute: f64,
    /// The σ of the demand's lognormal factor.
    pub(crate) sigma: f64,
    /// The earliest start of a source.
    pub(crate) start: Nanos,
    /// Each source starts at a uniformly random instant of `[start, start + phases)`.
    pub(crate) phases: Nanos,
    /// How long every source sends, from its own start.
    pub(crate) duration: Nanos,
}

impl TraceSpec {
    /// Fills `arrivals` with the arrival times of `source`, in order, and returns its demand per minute.
    pub(crate) fn source(&self, source: u64, arrivals: &mut Vec<Nanos>) -> f64 {
        arrivals.clear();
        let mut rng = Rng::for_source(self.seed, source);
        let demand = self.median_per_minute * (self.sigma * rng.normal()).exp();
        let start = self.start + (rng.open_unit() * self.phases as f64) as Nanos;
        let mean_gap = NANOS_PER_MINUTE / demand;
        let end = self.duration as f64;
        let mut offset = rng.exponential(mean_gap);
        while offset < end {
            // Whole nanoseconds, as cluster time is; `offset < end` keeps the sum below `start + duration`.
            arrivals.push(start + offset as Nanos);
            offset += rng.exponential(mean_gap);
        }
        demand
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Nanos = 60_000_000_000;

    fn spec(sigma: f64) -> TraceSpec {
        TraceSpec {
            seed: 7,
            median_per_minute: 100.0,
            sigma,
            start: 1_000 * MINUTE,
            phases: MINUTE,
            duration: 10 * MINUTE,
        }
    }

    #[test]
    fn a_source_depends_only_on_the_seed_and_its_index() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        spec(1.0).source(3, &mut a);
        spec(1.0).source(3, &mut b);
        assert_eq!(a, b);
        spec(1.0).source(4, &mut b);
        assert_ne!(a, b);
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(a.iter().all(|&t| (1_000 * MINUTE..1_011 * MINUTE).contains(&t)));
    }

    #[test]
    fn arrivals_follow_the_demand() {
        // With σ = 0 every source asks for exactly 100 per minute: about 1,000 arrivals in 10 minutes.
        let mut arrivals = Vec::new();
        let total: usize = (0..50).map(|s| (spec(0.0).source(s, &mut arrivals), arrivals.len()).1).sum();
        let mean = total as f64 / 50.0;
        assert!((950.0..1_050.0).contains(&mean), "{mean}");
        // With σ = 1 the median demand is still the limit.
        let mut demands: Vec<f64> = (0..2_001).map(|s| spec(1.0).source(s, &mut arrivals)).collect();
        demands.sort_by(f64::total_cmp);
        assert!((90.0..110.0).contains(&demands[1_000]), "{}", demands[1_000]);
    }
}
