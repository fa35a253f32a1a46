//! `quorate-sim`: runs simulated scenarios over many seeds and prints a replay command for every failing seed.
//!
//! ```text
//! cargo run -p quorate-sim --release -- --seeds 10000                 # every scenario, seeds 0..10000
//! cargo run -p quorate-sim --release -- --scenario nemesis --seeds 500
//! cargo run -p quorate-sim --release -- --scenario leader_isolated --seed 42   # replay one run
//! ```

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use quorate_sim::{Scenario, run};

/// Deterministic simulation of Quorate clusters under faults.
#[derive(Debug, Parser)]
struct Args {
    /// A scenario name, `nemesis`, or `all` (every named scenario and the nemesis).
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Number of seeds to run per scenario, starting at --first-seed.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Run exactly this seed (replay).
    #[arg(long)]
    seed: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let names: Vec<String> = if args.scenario == "all" {
        Scenario::all().into_iter().map(|s| s.name).chain(std::iter::once("nemesis".to_owned())).collect()
    } else {
        vec![args.scenario.clone()]
    };
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.first_seed..args.first_seed + args.seeds).collect(),
    };
    let mut failures = 0;
    for name in &names {
        let started = Instant::now();
        let mut passed = 0;
        for &seed in &seeds {
            let Some(scenario) = Scenario::named(name, seed) else {
                eprintln!("unknown scenario {name}");
                return ExitCode::FAILURE;
            };
            let problems = match run(&scenario, seed) {
                Ok(result) => result.history.violations(&scenario, &result.final_state),
                Err(e) => vec![format!("simulation failed: {e:#}")],
            };
            if problems.is_empty() {
                passed += 1;
            } else {
                failures += 1;
                println!("FAIL {name} seed {seed}:");
                for problem in &problems {
                    println!("  {problem}");
                }
                println!("  replay: cargo run -p quorate-sim --release -- --scenario {name} --seed {seed}");
            }
        }
        println!("{name}: {passed}/{} seeds passed in {:.1?}", seeds.len(), started.elapsed());
    }
    if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
