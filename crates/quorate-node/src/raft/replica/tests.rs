//! Replica apply: plans under their policy version, Envoy overrides and per-descriptor costs, adaptive limits,
//! policy changes and determinism.

use quorate_core::plan::{Check, Cost, DescriptorOverride, LimitOverride, OverrideUnit, Plan};
use quorate_core::policy::{Descriptor, SAMPLE_POLICIES_TOML};
use quorate_core::{CheckOutcome, Nanos, TableConfig};

use super::Replica;
use crate::command::{Applied, Command, CommandOutcome, EntryResponse, LogEntry, ReportedSignal};
use crate::error::{CheckError, PolicyError};
use crate::raft::codec;

const SECOND: Nanos = 1_000_000_000;
const T0: Nanos = 1_800_000_000 * SECOND;

fn replica(toml: &str) -> Replica {
    let mut replica = Replica::new(TableConfig::default());
    let installed = replica.apply(&LogEntry::SetPolicies { toml: toml.to_owned(), expected_version: 0 });
    assert!(matches!(installed, EntryResponse::Policies(Ok(_))), "{installed:?}");
    replica
}

fn apply(replica: &mut Replica, time: Nanos, command: Command) -> CommandOutcome {
    match replica.apply(&LogEntry::Batch { time, commands: vec![command] }) {
        EntryResponse::Batch(mut outcomes) if outcomes.len() == 1 => outcomes.remove(0),
        other => panic!("unexpected response {other:?}"),
    }
}

fn checked(outcome: CommandOutcome) -> CheckOutcome {
    match outcome {
        Ok(Applied::Checked { outcome, .. }) => outcome,
        other => panic!("expected a decision, got {other:?}"),
    }
}

fn request(descriptors: Vec<Descriptor>, cost: u64, overrides: Vec<DescriptorOverride>) -> Check {
    Check { descriptors, cost: Cost::new(cost).unwrap(), peek: false, overrides }
}

/// Plans a check against the replica's policy set, as the node that received it would.
fn check(r: &Replica, descriptors: Vec<Descriptor>, cost: u64, overrides: Vec<DescriptorOverride>) -> Command {
    let policies = r.policies.clone().unwrap();
    let plan = Plan::check(&policies, &request(descriptors, cost, overrides)).unwrap();
    Command::Check { plan, peek: false, lease: None }
}

fn per_minute(requests_per_unit: u32) -> DescriptorOverride {
    DescriptorOverride { cost: None, limit: Some(LimitOverride { requests_per_unit, unit: OverrideUnit::Minute }) }
}

fn cost(cost: u64) -> DescriptorOverride {
    DescriptorOverride { cost: Cost::new(cost), limit: None }
}

#[test]
fn override_limit_is_enforced_instead_of_the_policy() {
    let mut r = replica(SAMPLE_POLICIES_TOML);
    let agent = || vec![Descriptor::new("api_key", "agent_1")];
    for _ in 0..3 {
        let command = check(&r, agent(), 1, vec![per_minute(3)]);
        assert!(checked(apply(&mut r, T0, command)).allowed);
    }
    let command = check(&r, agent(), 1, vec![per_minute(3)]);
    let denied = checked(apply(&mut r, T0, command));
    assert!(!denied.allowed);
    assert_eq!((denied.limits[0].decision.limit, denied.limits[0].decision.remaining), (3, 0));
    // The configured `agent` policy (200/min) was never charged for this key.
    let command = check(&r, agent(), 1, Vec::new());
    assert_eq!(checked(apply(&mut r, T0, command)).limits[0].decision.remaining, 199);
    // The window ends on the minute: then the override admits again.
    let next_minute = (T0 / (60 * SECOND) + 1) * 60 * SECOND;
    let command = check(&r, agent(), 1, vec![per_minute(3)]);
    assert!(checked(apply(&mut r, next_minute, command)).allowed);
}

#[test]
fn override_needs_no_rule_for_its_descriptor() {
    // The sample rejects unmatched descriptors; an override brings its own limit.
    let mut r = replica(SAMPLE_POLICIES_TOML);
    let path = vec![Descriptor::new("path", "/v1/chat")];
    let policies = r.policies.clone().unwrap();
    assert!(Plan::check(&policies, &request(path.clone(), 1, Vec::new())).is_err());
    let command = check(&r, path, 1, vec![per_minute(1)]);
    assert!(checked(apply(&mut r, T0, command)).allowed);
}

#[test]
fn per_descriptor_costs_are_charged_atomically() {
    // Invariant 3: a check with per-descriptor costs charges every limit its own cost, or none.
    let mut r = replica(SAMPLE_POLICIES_TOML);
    let two = || vec![Descriptor::new("api_key", "k1"), Descriptor::new("ip", "10.0.0.1")];
    let command = check(&r, two(), 1, vec![cost(50), DescriptorOverride::default()]);
    let reply = checked(apply(&mut r, T0, command));
    assert!(reply.allowed);
    assert_eq!((reply.limits[0].decision.remaining, reply.limits[1].decision.remaining), (10, 599));
    let command = check(&r, two(), 1, vec![cost(11), DescriptorOverride::default()]);
    let denied = checked(apply(&mut r, T0, command));
    assert!(!denied.allowed);
    assert!(!denied.limits[0].decision.allowed && denied.limits[1].decision.allowed);
    let command = check(&r, two(), 1, Vec::new());
    let after = checked(apply(&mut r, T0, command));
    assert_eq!((after.limits[0].decision.remaining, after.limits[1].decision.remaining), (9, 598));
}

#[test]
fn invalid_overrides_are_refused_when_planned() {
    // Invariant 6: bad input never costs state; it never even reaches the log.
    let r = replica(SAMPLE_POLICIES_TOML);
    let policies = r.policies.clone().unwrap();
    let one = || vec![Descriptor::new("api_key", "k1")];
    let cases = [
        (request(one(), 1, vec![per_minute(0)]), "requests_per_unit"),
        (request(one(), 1, vec![per_minute(2), per_minute(2)]), "1 descriptors came with 2 overrides"),
        (request(one(), 1, vec![DescriptorOverride { cost: Cost::new(3), ..per_minute(2) }]), "exceeds the limit 2"),
        (request(one(), 1, vec![cost(61)]), "exceeds the limit 60 of policy `default`"),
        (request(vec![Descriptor::new("Path", "/")], 1, vec![per_minute(2)]), "not an identifier"),
    ];
    for (request, expected) in cases {
        let message = Plan::check(&policies, &request).unwrap_err().to_string();
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

#[test]
fn a_plan_made_under_another_policy_version_charges_nothing() {
    let mut r = replica(SAMPLE_POLICIES_TOML);
    let stale = check(&r, vec![Descriptor::new("api_key", "k1")], 1, Vec::new());
    let changed = SAMPLE_POLICIES_TOML.replace("limit = 60\n", "limit = 61\n");
    r.apply(&LogEntry::SetPolicies { toml: changed, expected_version: 1 });
    assert_eq!(apply(&mut r, T0, stale), Err(CheckError::PolicyChanged { planned: 1, current: 2 }));
    assert!(r.table.is_empty());
}

#[test]
fn override_state_survives_a_policy_change() {
    let mut r = replica(SAMPLE_POLICIES_TOML);
    let key = || vec![Descriptor::new("api_key", "k1")];
    let command = check(&r, key(), 2, vec![per_minute(2)]);
    assert!(checked(apply(&mut r, T0, command)).allowed);
    let changed = SAMPLE_POLICIES_TOML.replace("limit = 60\n", "limit = 61\n");
    let installed = r.apply(&LogEntry::SetPolicies { toml: changed, expected_version: 0 });
    assert!(matches!(installed, EntryResponse::Policies(Ok(2))), "{installed:?}");
    let command = check(&r, key(), 1, vec![per_minute(2)]);
    assert!(!checked(apply(&mut r, T0, command)).allowed, "quota was refunded");
}

#[test]
fn descriptors_no_rule_limits_are_left_out_of_the_plan() {
    let toml = SAMPLE_POLICIES_TOML.replace("unmatched = \"reject\"", "unmatched = \"ignore\"");
    let mut r = replica(&toml);
    let descriptors = vec![Descriptor::new("region", "eu"), Descriptor::new("ip", "::1"), Descriptor::new("x", "y")];
    let command = check(&r, descriptors, 1, vec![DescriptorOverride::default(), cost(2), per_minute(5)]);
    let indexes: Vec<usize> = command.plan().unwrap().limits.iter().map(|l| l.descriptor()).collect();
    assert_eq!(indexes, [1, 2]);
    assert_eq!(checked(apply(&mut r, T0, command)).limits[0].decision.remaining, 598);
}

#[test]
fn replicas_applying_the_same_overrides_reach_identical_state() {
    // Invariant 1: apply is a pure function of the log, snapshots included.
    let planner = replica(SAMPLE_POLICIES_TOML);
    let log: Vec<(Nanos, Command)> = (0..40u64)
        .map(|i| {
            let descriptors =
                vec![Descriptor::new("api_key", format!("agent_{}", i % 3)), Descriptor::new("ip", "::1")];
            let overrides = vec![per_minute(1 + (i % 4) as u32), cost(1 + i % 2)];
            let command = check(&planner, descriptors, 1, if i % 5 == 0 { Vec::new() } else { overrides });
            (T0 + i * 7 * SECOND, command)
        })
        .collect();
    let run = |log: &[(Nanos, Command)]| {
        let mut r = replica(SAMPLE_POLICIES_TOML);
        let outcomes: Vec<_> = log.iter().map(|(t, c)| apply(&mut r, *t, c.clone())).collect();
        (r, outcomes)
    };
    let (a, outcomes_a) = run(&log);
    let (b, outcomes_b) = run(&log);
    assert_eq!(outcomes_a, outcomes_b);
    let bytes = |r: &Replica| codec::encode(&r.snapshot()).unwrap();
    assert_eq!(bytes(&a), bytes(&b));
    let (first, rest) = log.split_at(20);
    let (half, _) = run(first);
    let mut restored = Replica::restore(TableConfig::default(), half.snapshot()).unwrap();
    let outcomes_rest: Vec<_> = rest.iter().map(|(t, c)| apply(&mut restored, *t, c.clone())).collect();
    assert_eq!(outcomes_rest, outcomes_a[20..]);
    assert_eq!(bytes(&restored), bytes(&a));
}

fn adaptive_replica() -> Replica {
    replica(&format!("{SAMPLE_POLICIES_TOML}\n[adaptive]\nsmoothing = 1.0\n"))
}

fn load(time: Nanos, value_ppm: u32) -> LogEntry {
    let signals = vec![ReportedSignal { name: "llm".into(), value_ppm, expires_at: time + 30 * SECOND }];
    LogEntry::Load { time, signals }
}

/// The (limit in force, base limit) a check of `descriptor` is decided with at `time`.
fn limits_at(r: &mut Replica, time: Nanos, descriptor: Descriptor) -> (u64, u64) {
    let command = check(r, vec![descriptor], 1, Vec::new());
    let outcome = checked(apply(r, time, command));
    (outcome.limits[0].decision.limit, outcome.limits[0].base_limit)
}

#[test]
fn load_entries_tighten_adaptive_policies_at_their_log_position() {
    let mut r = adaptive_replica();
    assert_eq!(limits_at(&mut r, T0, Descriptor::new("api_key", "agent_1")), (200, 200));
    r.apply(&load(T0 + SECOND, 800_000));
    assert_eq!(r.multiplier().ppm(), 500_000);
    assert_eq!(limits_at(&mut r, T0 + SECOND, Descriptor::new("api_key", "agent_1")), (100, 200));
    // per_ip is not adaptive.
    assert_eq!(limits_at(&mut r, T0 + SECOND, Descriptor::new("ip", "10.0.0.1")), (600, 600));
}

#[test]
fn expired_signals_stop_counting() {
    let mut r = adaptive_replica();
    r.apply(&load(T0, 950_000));
    assert_eq!(r.cluster_load(), 950_000);
    // The next load entry comes after the signal's expiry and carries it no more.
    r.apply(&LogEntry::Load { time: T0 + 31 * SECOND, signals: vec![] });
    assert_eq!(r.cluster_load(), 0);
}

#[test]
fn cluster_time_never_runs_backwards() {
    let mut r = adaptive_replica();
    r.apply(&load(T0 + 10 * SECOND, 0));
    r.apply(&LogEntry::Batch { time: T0, commands: Vec::new() });
    assert_eq!(r.now(), T0 + 10 * SECOND);
}

#[test]
fn same_log_gives_the_same_snapshot_bytes() {
    let planner = adaptive_replica();
    let batch = |time: Nanos, key: &str| LogEntry::Batch {
        time,
        commands: vec![check(&planner, vec![Descriptor::new("api_key", key)], 1, Vec::new())],
    };
    let log = [batch(T0, "agent_1"), load(T0 + SECOND, 900_000), batch(T0 + 2 * SECOND, "user_2")];
    let (mut a, mut b) = (adaptive_replica(), adaptive_replica());
    for entry in &log {
        assert_eq!(a.apply(entry), b.apply(entry));
    }
    let bytes = |r: &Replica| codec::encode(&r.snapshot()).unwrap();
    assert_eq!(bytes(&a), bytes(&b));
    let restored = Replica::restore(TableConfig::default(), codec::decode(&bytes(&a)).unwrap()).unwrap();
    assert_eq!(bytes(&restored), bytes(&a));
    assert_eq!(restored.multiplier(), a.multiplier());
}

#[test]
fn policy_change_keeps_spent_quota_under_the_new_ids() {
    let mut r = adaptive_replica();
    for _ in 0..60 {
        let command = check(&r, vec![Descriptor::new("api_key", "user_1")], 1, Vec::new());
        checked(apply(&mut r, T0, command));
    }
    // Adding a policy that sorts first shifts every id by one.
    let toml =
        format!("{SAMPLE_POLICIES_TOML}\n[policies.aaa]\nalgorithm = \"token_bucket\"\nlimit = 5\nperiod = \"1m\"\n");
    assert_eq!(r.apply(&LogEntry::SetPolicies { toml, expected_version: 1 }), EntryResponse::Policies(Ok(2)));
    let command = check(&r, vec![Descriptor::new("api_key", "user_1")], 1, Vec::new());
    assert!(!checked(apply(&mut r, T0, command)).allowed, "the spent bucket must survive");
    let stale = LogEntry::SetPolicies { toml: SAMPLE_POLICIES_TOML.into(), expected_version: 1 };
    assert_eq!(r.apply(&stale), EntryResponse::Policies(Err(PolicyError::VersionMismatch { current: 2, expected: 1 })));
}

#[test]
fn a_refused_policy_set_changes_nothing() {
    let mut r = adaptive_replica();
    let bad = LogEntry::SetPolicies { toml: "[policies]".into(), expected_version: 0 };
    assert!(matches!(r.apply(&bad), EntryResponse::Policies(Err(PolicyError::Invalid(_)))));
    assert_eq!(r.policies.as_ref().map(|p| p.version()), Some(1));
}

/// Found by quorate-core's table-snapshot fuzz harness: after a policy change raised a sliding window's
/// precision, the sweep after the next batch asked an old key's ring (of the old shape) when it is fresh and
/// indexed past it, so every replica panicked applying the same entry.
#[test]
fn fuzz_regression_raising_a_sliding_window_precision_keeps_applying() {
    let mut r = replica(SAMPLE_POLICIES_TOML);
    for i in 0..20 {
        let command = check(&r, vec![Descriptor::new("ip", format!("10.0.0.{i}"))], 1, Vec::new());
        assert!(checked(apply(&mut r, T0, command)).allowed);
    }
    let finer = SAMPLE_POLICIES_TOML.replace("precision = 60", "precision = 600");
    assert_ne!(finer, SAMPLE_POLICIES_TOML);
    let changed = r.apply(&LogEntry::SetPolicies { toml: finer, expected_version: 0 });
    assert!(matches!(changed, EntryResponse::Policies(Ok(2))), "{changed:?}");
    for (i, time) in [T0 + SECOND, T0 + 61 * SECOND, T0 + 70 * SECOND, T0 + 200 * SECOND].into_iter().enumerate() {
        let command = check(&r, vec![Descriptor::new("ip", format!("10.1.0.{i}"))], 1, Vec::new());
        assert!(checked(apply(&mut r, time, command)).allowed);
    }
}
