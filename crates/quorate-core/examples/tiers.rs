//! The seed tiers at work, in-process: three API keys (default, agent, admin) each fire 10 requests per second
//! for two simulated minutes, first at normal load, then with the cluster at 80% load (adaptive limits halve).
//!
//! Run it with `cargo run -p quorate-core --example tiers`. It uses exactly what every replica runs: the sample
//! policies (`deploy/policies.toml`), rule resolution, the keyed table and the adaptive controller, with time
//! passed in (no clock is read), so its output is the same on every machine.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use quorate_core::adaptive::{AdaptiveController, Multiplier};
use quorate_core::policy::{Descriptor, PolicySet};
use quorate_core::{Decision, LimiterTable, TableConfig};

const SECOND: u64 = 1_000_000_000;
const T0: u64 = 1_795_000_000 * SECOND;

fn main() -> Result<(), quorate_core::CoreError> {
    let policies = PolicySet::sample();
    let mut table = LimiterTable::new(TableConfig::default());
    let mut controller = AdaptiveController::default();
    let callers = [("api_key", "user_7f3a"), ("api_key", "agent_42"), ("api_key", "admin_ops")];

    for (phase, load_ppm) in [("normal load", 100_000), ("cluster at 80% load", 800_000)] {
        let start = T0 + if load_ppm > 500_000 { 600 * SECOND } else { 0 };
        // The leader folds load into the log about once a second; feed the controller a few samples.
        let mut multiplier = Multiplier::ONE;
        for s in 0..5 {
            multiplier = controller.update(start - (5 - s) * SECOND, load_ppm);
        }
        println!("{phase}: multiplier {:.2}", f64::from(multiplier.ppm()) / 1e6);
        println!("  {:<20} {:>8} {:>8} {:>8}", "caller", "allowed", "denied", "limit");
        let mut resolved = Vec::new();
        for (dimension, value) in callers {
            resolved.push(policies.resolve(&[Descriptor::new(dimension, value)])?);
        }
        let mut stats = vec![(0u32, 0u32, None::<Decision>); callers.len()];
        // The callers take turns, so every check runs at its own time (the table never goes back in time).
        for i in 0..1_200 {
            for (c, limits) in resolved.iter().enumerate() {
                let limits = policies.limit_refs(limits, multiplier)?;
                let outcome = table.check(start + i * SECOND / 10, &limits, 1)?;
                if outcome.allowed {
                    stats[c].0 += 1
                } else {
                    stats[c].1 += 1
                }
                stats[c].2 = Some(outcome.decision);
            }
        }
        for ((dimension, value), (allowed, denied, last)) in callers.iter().zip(stats) {
            let last = last.expect("1200 checks ran");
            println!("  {:<20} {allowed:>8} {denied:>8} {:>8}", format!("{dimension}={value}"), last.limit);
            if !last.allowed && value.starts_with("user") {
                print_headers(&last);
            }
        }
        println!();
    }
    Ok(())
}

/// The HTTP headers an API server derives from a denied decision.
fn print_headers(d: &Decision) {
    let ceil_seconds = |ns: u64| ns.div_ceil(SECOND);
    println!("    -> HTTP 429; Retry-After: {}", ceil_seconds(d.retry_after));
    println!(
        "       X-RateLimit-Limit: {}; X-RateLimit-Remaining: {}; X-RateLimit-Reset: {}",
        d.limit,
        d.remaining,
        ceil_seconds(d.reset_after)
    );
    println!("       RateLimit: \"default\";r={};t={}", d.remaining, ceil_seconds(d.reset_after));
}
