//! Fuzz harness of the node's config file: any text is a [`NodeConfig`] or a [`ConfigError`], never a panic.
//! Seeds are the deploy configs (with real certificates and the sample policies beside them, so that they
//! validate) and configs whose every value is drawn at random, huge durations and counts included.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tempfile::TempDir;

use super::NodeConfig;
use crate::fuzzing::{TOML_TOKENS, config, mutated_text, timed};
use crate::tls::test_pki::TestCa;

const DEPLOY: [&str; 3] = [
    include_str!("../../../../deploy/node1.toml"),
    include_str!("../../../../deploy/node2.toml"),
    include_str!("../../../../deploy/node3.toml"),
];

/// A minimal plaintext config on loopback.
const MINIMAL: &str = "id = 1\ndata_dir = \"d\"\n[public]\nlisten = \"127.0.0.1:7101\"\n[peer]\n\
                       listen = \"127.0.0.1:7201\"\n[admin]\ninsecure = true\n";

/// Keys and values of the config format, for the mutator.
const CONFIG_TOKENS: &[&str] = &[
    "id = 2\n",
    "data_dir",
    "bootstrap = true\n",
    "policies = \"policies.toml\"\n",
    "[public]\n",
    "[peer]\n",
    "[admin]\n",
    "listen = \"[::1]:7101\"\n",
    "advertise",
    "tls = {}",
    "insecure = true\n",
    "[[peers]]\n",
    "[raft]\n",
    "heartbeat = \"18446744073709551615s\"\n",
    "election_timeout_min",
    "election_timeout_max",
    "snapshot_every = 0\n",
    "[limits]\n",
    "max_keys = 0\n",
    "check_deadline",
    "max_batch",
    "max_inflight",
    "cache_bytes",
    "max_batch_items",
    "max_stream_checks",
    "[load]\n",
    "[[tokens]]\n",
    "roles = [\"admin\"]\n",
    "hash",
    "[envoy]\n",
    "response_headers",
    "=",
    "\"",
    "[",
    "]",
    "\n",
    "0",
    "-1",
    "18446744073709551615",
    "\"1ns\"",
    "\"99999999999years\"",
    "\"584542046090years\"",
    "0.0.0.0:0",
    "host:",
    ":65536",
];

/// A folder to read configs from: the sample policies and a cluster CA with node certificates, removed when
/// the test ends.
fn base() -> TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("policies.toml"), quorate_core::policy::SAMPLE_POLICIES_TOML).unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let ca = TestCa::new("quorate-fuzz");
    ca.write(&certs);
    for i in 1..=3 {
        ca.issue(&certs, &format!("node{i}"), &[&format!("quorate-{i}.internal")]);
    }
    dir
}

/// Runs `property` on `cases` with a fresh [`base`] folder (a `proptest!` test could not remove it).
fn run<S: Strategy>(cases: S, property: impl Fn(S::Value, &Path) -> Result<(), TestCaseError>) {
    let base = base();
    let mut runner = TestRunner::new(config());
    if let Err(failure) = runner.run(&cases, |value| property(value, base.path())) {
        panic!("{failure}");
    }
}

fn seeds() -> Vec<String> {
    let mut seeds: Vec<String> = DEPLOY.iter().map(|s| (*s).to_owned()).collect();
    seeds.push(MINIMAL.to_owned());
    seeds.push(format!(
        "{MINIMAL}[raft]\nheartbeat = \"50ms\"\nelection_timeout_min = \"200ms\"\nelection_timeout_max = \"1s\"\n\
         [limits]\nmax_keys = 10\ncheck_deadline = \"1s\"\nmax_inflight = 4\n"
    ));
    seeds
}

/// A duration as the config spells one: usual, zero, unparsable, or a huge number of any unit.
fn duration() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec!["ns", "us", "ms", "s", "m", "h", "d", "w", "months", "y", "years", ""]);
    prop_oneof![
        Just("100ms".to_owned()),
        Just("0s".to_owned()),
        (0u64..10_000, unit.clone()).prop_map(|(n, unit)| format!("{n}{unit}")),
        (any::<u64>(), unit).prop_map(|(n, unit)| format!("{n}{unit}")),
        "\\PC{0,12}",
    ]
}

fn count() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_owned()),
        (1u64..100_000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string())
    ]
}

/// A config whose [raft] and [limits] values are drawn at random.
fn drawn_config() -> impl Strategy<Value = String> {
    let timings = (duration(), duration(), duration(), duration());
    let limits = (count(), count(), count(), count(), count(), count(), count());
    (timings, limits, prop::option::of(any::<bool>())).prop_map(
        |((heartbeat, min, max, deadline), (keys, every, batch, inflight, cache, items, stream), headers)| {
            let mut text = format!(
                "{MINIMAL}[raft]\nheartbeat = {heartbeat:?}\nelection_timeout_min = {min:?}\n\
                 election_timeout_max = {max:?}\nsnapshot_every = {every}\n[limits]\nmax_keys = {keys}\n\
                 check_deadline = {deadline:?}\nmax_batch = {batch}\nmax_inflight = {inflight}\n\
                 cache_bytes = {cache}\nmax_batch_items = {items}\nmax_stream_checks = {stream}\n"
            );
            if let Some(headers) = headers {
                text += &format!("[envoy]\nresponse_headers = {headers}\n");
            }
            text
        },
    )
}

/// Deploy and test configs, mutated, and random text.
#[test]
fn fuzz_node_config_text() {
    run(mutated_text(seeds(), CONFIG_TOKENS), |text, base| {
        let _ = timed("parse", || NodeConfig::parse(&text, base))?;
        Ok(())
    });
}

/// Configs with random values, and the TOML tokens of any file mutated in.
#[test]
fn fuzz_node_config_values() {
    run(prop_oneof![drawn_config(), mutated_text(seeds(), TOML_TOKENS)], |text, base| {
        if let Ok(config) = timed("parse", || NodeConfig::parse(&text, base))? {
            prop_assert!(config.id > 0);
            prop_assert!(config.election_timeout.0 > config.heartbeat);
            prop_assert!(config.election_timeout.1 > config.election_timeout.0);
        }
        Ok(())
    });
}

#[test]
fn fuzz_seed_configs_parse() {
    let base = base();
    for seed in seeds() {
        NodeConfig::parse(&seed, base.path()).unwrap_or_else(|e| panic!("{e}\n{seed}"));
    }
}

/// Nesting a mutator cannot reach: 100,000 levels are a parse error (toml limits its recursion), not a stack
/// overflow.
#[test]
fn fuzz_deeply_nested_config_is_an_error() {
    for (open, close) in [("[", "]"), ("{a=", "}")] {
        let text = format!("{MINIMAL}[load]\nsample_system = {}1{}\n", open.repeat(100_000), close.repeat(100_000));
        assert!(NodeConfig::parse(&text, base().path()).is_err());
    }
}
