//! Fuzz harnesses of policy sets: policy files (`PolicySet::from_toml`, what an operator or the Admin API hands
//! a node) and encoded sets (inside every Raft snapshot). A file is a validated set or a [`CoreError`]; bytes are
//! a set that works (resolves, plans and charges every policy without a panic) or a decode error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::{Descriptor, PolicySet, SAMPLE_POLICIES_TOML};
use crate::adaptive::Multiplier;
use crate::fuzzing::{TOML_TOKENS, config, mutated_bytes, mutated_text, timed};
use crate::plan::{Check, Cost, Plan};
use crate::{CoreError, LimitRef, LimiterTable, Nanos, TableConfig};

const BENCH_POLICIES_TOML: &str = include_str!("../../../../deploy/bench-policies.toml");

/// Every algorithm, leases, no-quorum modes, adaptive levels and a signal scale.
const FULL_POLICIES_TOML: &str = r#"
unmatched = "ignore"
[policies.bucket]
algorithm = "token_bucket"
limit = 100
period = "1m"
burst = 150
adaptive = true
adaptive_floor = 0.5
lease = { ttl = "1s", max_share = 0.2, reserve = 0.1 }
[policies.window]
algorithm = "sliding_window"
limit = 50
period = "10s"
precision = 10
on_no_quorum = "local"
[policies.counter]
algorithm = "window_counter"
limit = 20
period = "1s"
on_no_quorum = "allow"
[policies.daily]
algorithm = "fixed_window"
limit = 1000
calendar = "day"
[policies.hourly]
algorithm = "fixed_window"
limit = 5
period = "1h"
lease = true
[[rules]]
dimension = "key"
prefix = "b"
policy = "bucket"
[[rules]]
dimension = "ip"
policy = "window"
[[rules]]
dimension = "user"
value = "counted"
policy = "counter"
[[rules]]
dimension = "tenant"
policy = "hourly"
[adaptive]
relax_after = "5s"
smoothing = 0.5
signal_ttl = "30s"
hysteresis = 0.05
aggregation = "mean"
[[adaptive.levels]]
load = 0.6
multiplier = 0.75
[[adaptive.levels]]
load = 0.9
multiplier = 0.25
[adaptive.scales.latency_ms]
low = 100
high = 2000
"#;

/// Keys and values of the policies format, for the mutator.
const POLICY_TOKENS: &[&str] = &[
    "[policies.p]\n",
    "algorithm = \"fixed_window\"\n",
    "algorithm = \"sliding_window\"\n",
    "limit = 0\n",
    "limit = 1099511627777\n",
    "period = \"0s\"\n",
    "period = \"600000y\"\n",
    "burst",
    "precision = 0\n",
    "precision = 3601\n",
    "calendar = \"week\"\n",
    "adaptive = true\n",
    "adaptive_floor = 1e-9\n",
    "on_no_quorum = \"local\"\n",
    "lease = { ttl = \"0s\" }\n",
    "max_share = 2\n",
    "reserve",
    "[[rules]]\n",
    "dimension = \"\"\n",
    "prefix = \"\"\n",
    "value",
    "policy = \"missing\"\n",
    "unmatched = \"ignore\"\n",
    "[adaptive]\n",
    "[[adaptive.levels]]\n",
    "load = 1.5\n",
    "multiplier = 0\n",
    "[adaptive.scales.x]\n",
    "low = 5\n",
    "high = 5\n",
    "smoothing = 0\n",
    "hysteresis = nan\n",
    "relax_after",
    "signal_ttl",
    "=",
    "\"",
    "\n",
    "[",
    "]",
    "nan",
    "inf",
    "-1",
    "18446744073709551615",
    "1e400",
];

const SECOND: Nanos = 1_000_000_000;
const T0: Nanos = 1_800_000_000 * SECOND;

fn seeds() -> Vec<String> {
    [SAMPLE_POLICIES_TOML, BENCH_POLICIES_TOML, FULL_POLICIES_TOML].map(str::to_owned).to_vec()
}

/// A set works: every policy resolves, plans and charges, under every multiplier, without a panic.
fn works(set: &PolicySet) -> Result<(), TestCaseError> {
    let mut table = LimiterTable::new(TableConfig::default());
    for (id, policy) in set.policies() {
        let limiter = policy.limiter();
        prop_assert!(limiter.base_limit() >= 1);
        prop_assert!(limiter.period() >= 1);
        for multiplier in [Multiplier::ONE, Multiplier::from_ppm(1), Multiplier::from_ppm(500_000)] {
            let limit = set.effective_limit(id, multiplier).expect("the policy exists");
            prop_assert!((1..=limiter.base_limit()).contains(&limit));
            for now in [T0, T0 + 61 * SECOND, u64::MAX / 2] {
                let limit = LimitRef::new(id, limiter, "k").with_effective_limit(limit);
                let _ = table.check_each(now, &[limit], &[1]);
                let _ = limiter.charge_horizon(now);
            }
        }
        let descriptor = Descriptor { dimension: "d".into(), value: "v".into(), policy: Some(policy.name().into()) };
        let _ = Plan::check(set, &Check::new(vec![descriptor], Cost::ONE));
    }
    table.sweep(u64::MAX / 2, usize::MAX);
    for rule in set.rules() {
        let _ = set.resolve(&[Descriptor::new(rule.dimension(), "value")]);
    }
    let bytes = bincode::serialize(set).expect("encodes");
    prop_assert_eq!(&bincode::deserialize::<PolicySet>(&bytes).expect("decodes"), set);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Policy files, mutated with policy keys and values.
    #[test]
    fn fuzz_policy_toml(text in mutated_text(seeds(), POLICY_TOKENS)) {
        match timed("parse", || PolicySet::from_toml(&text))? {
            Ok(set) => works(&set)?,
            Err(CoreError::Config(_) | CoreError::InvalidParameter { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }

    /// Policy files, mutated with TOML syntax.
    #[test]
    fn fuzz_policy_toml_syntax(text in mutated_text(seeds(), TOML_TOKENS)) {
        match timed("parse", || PolicySet::from_toml(&text))? {
            Ok(set) => works(&set)?,
            Err(CoreError::Config(_) | CoreError::InvalidParameter { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }

    /// Encoded policy sets (as in a snapshot), damaged: a set that works, or an error.
    #[test]
    fn fuzz_policy_set_bytes(bytes in mutated_bytes(
        seeds().iter().map(|t| bincode::serialize(&PolicySet::from_toml(t).unwrap()).unwrap()).collect()
    )) {
        if let Ok(set) = timed("decode", || bincode::deserialize::<PolicySet>(&bytes))? {
            works(&set)?;
        }
    }
}

#[test]
fn fuzz_seed_policies_work() {
    for seed in seeds() {
        let set = PolicySet::from_toml(&seed).unwrap();
        assert!(!set.is_empty());
    }
}

/// Nesting a mutator cannot reach: arrays and inline tables 100,000 deep are a parse error (toml limits its
/// recursion), not a stack overflow, which would abort every replica applying such a policy change.
#[test]
fn fuzz_deeply_nested_toml_is_an_error() {
    for depth in [100usize, 10_000, 100_000] {
        for (open, close) in [("[", "]"), ("{a=", "}")] {
            let text = format!("unmatched = {}1{}", open.repeat(depth), close.repeat(depth));
            assert!(matches!(PolicySet::from_toml(&text), Err(CoreError::Config(_))), "{depth} {open}");
        }
    }
}
