//! Every named scenario over a fixed set of seeds (CI), plus the random nemesis. Each run checks the invariants
//! of `quorate_sim::history` on the client-side history; a failure names the seed and the replay command.
//! Soak with more seeds: `cargo run -p quorate-sim --release -- --seeds 10000`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use quorate_sim::{Scenario, run};

/// Seeds per scenario in the default test run.
const SEEDS: [u64; 2] = [1, 2];

fn check(name: &str, seeds: &[u64]) {
    for &seed in seeds {
        let scenario = Scenario::named(name, seed).expect("a known scenario");
        let result = run(&scenario, seed).expect("the simulation runs");
        let problems = result.history.violations(&scenario, &result.final_state);
        assert!(
            problems.is_empty(),
            "{name} seed {seed}: {problems:#?}\n{}\nreplay: cargo run -p quorate-sim --release -- --scenario {name} --seed {seed}",
            result.history.summary()
        );
    }
}

#[test]
fn leader_isolated() {
    check("leader_isolated", &SEEDS);
}

#[test]
fn follower_isolated() {
    check("follower_isolated", &SEEDS);
}

#[test]
fn split_2_1_clients_on_both_sides() {
    check("split_2_1_clients_on_both_sides", &SEEDS);
}

#[test]
fn one_way_loss() {
    check("one_way_loss", &SEEDS);
}

#[test]
fn held_messages() {
    check("held_messages", &SEEDS);
}

#[test]
fn flapping_partitions() {
    check("flapping_partitions", &SEEDS);
}

#[test]
fn crash_and_restart_one() {
    check("crash_and_restart_one", &SEEDS);
}

#[test]
fn crash_and_restart_leader() {
    check("crash_and_restart_leader", &SEEDS);
}

#[test]
fn crash_leader_during_batches() {
    check("crash_leader_during_batches", &SEEDS);
}

#[test]
fn crash_leader_during_streams() {
    check("crash_leader_during_streams", &SEEDS);
}

#[test]
fn crash_and_restart_all() {
    check("crash_and_restart_all", &SEEDS);
}

#[test]
fn local_nodes_cut_off_in_turn() {
    check("local_nodes_cut_off_in_turn", &SEEDS);
}

#[test]
fn local_all_split() {
    check("local_all_split", &SEEDS);
}

#[test]
fn local_follower_cut_off_and_restarted() {
    check("local_follower_cut_off_and_restarted", &SEEDS);
}

#[test]
fn lease_holder_crashes() {
    check("lease_holder_crashes", &SEEDS);
}

#[test]
fn lease_holder_partitioned() {
    check("lease_holder_partitioned", &SEEDS);
}

#[test]
fn leader_changes_mid_lease() {
    check("leader_changes_mid_lease", &SEEDS);
}

#[test]
fn lease_clock_drift() {
    check("lease_clock_drift", &SEEDS);
}

#[test]
fn latency_spike() {
    check("latency_spike", &SEEDS);
}

#[test]
fn clock_skew() {
    check("clock_skew", &SEEDS);
}

#[test]
fn random_nemesis() {
    check("nemesis", &[1, 2, 3]);
}
