//! One seed drives everything: the same seed gives the same client-side history, different seeds differ.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use quorate_sim::{Scenario, run};

#[test]
fn same_seed_gives_the_same_history_and_different_seeds_differ() {
    let scenario = Scenario::named("leader_isolated", 7).expect("a known scenario");
    let first = run(&scenario, 7).expect("run").history;
    let again = run(&scenario, 7).expect("run").history;
    assert_eq!(first.digest(), again.digest(), "same seed, different histories");
    let other = run(&scenario, 8).expect("run").history;
    assert_ne!(first.digest(), other.digest(), "different seeds gave the same history");
}
