//! Replica apply with Envoy extensions: limit overrides and per-descriptor costs.

use quorate_core::policy::{Descriptor, SAMPLE_POLICIES_TOML};
use quorate_core::{Nanos, TableConfig};

use super::Replica;
use crate::command::{CheckReply, Command, CommandOutcome, DescriptorOverride, Request, Response};
use crate::limit_override::{LimitOverride, OverrideUnit};
use crate::raft::codec;

const SECOND: Nanos = 1_000_000_000;
const T0: Nanos = 1_800_000_000 * SECOND;

fn replica(toml: &str) -> Replica {
    let mut replica = Replica::new(TableConfig::default());
    let installed = replica.apply_request(&Request::SetPolicies { toml: toml.to_owned(), expected_version: 0 });
    assert!(matches!(installed, Response::Policies(Ok(_))), "{installed:?}");
    replica
}

fn apply(replica: &mut Replica, time: Nanos, command: Command) -> CommandOutcome {
    match replica.apply_request(&Request::Batch { time, commands: vec![command] }) {
        Response::Batch(mut outcomes) if outcomes.len() == 1 => outcomes.remove(0),
        other => panic!("unexpected response {other:?}"),
    }
}

fn checked(outcome: CommandOutcome) -> CheckReply {
    match outcome {
        CommandOutcome::Checked(reply) => reply,
        other => panic!("expected a decision, got {other:?}"),
    }
}

fn check(descriptors: Vec<Descriptor>, cost: u64, overrides: Vec<DescriptorOverride>) -> Command {
    Command::Check { descriptors, cost, peek: false, overrides }
}

fn per_minute(requests_per_unit: u32) -> DescriptorOverride {
    DescriptorOverride { cost: None, limit: Some(LimitOverride { requests_per_unit, unit: OverrideUnit::Minute }) }
}

fn cost(cost: u64) -> DescriptorOverride {
    DescriptorOverride { cost: Some(cost), limit: None }
}

#[test]
fn override_limit_is_enforced_instead_of_the_policy() {
    let mut r = replica(SAMPLE_POLICIES_TOML);
    let agent = || vec![Descriptor::new("api_key", "agent_1")];
    for _ in 0..3 {
        let reply = checked(apply(&mut r, T0, check(agent(), 1, vec![per_minute(3)])));
        assert!(reply.allowed);
        assert_eq!(reply.limits[0].policy, "override 3/minute");
    }
    let denied = checked(apply(&mut r, T0, check(agent(), 1, vec![per_minute(3)])));
    assert!(!denied.allowed);
    assert_eq!((denied.limits[0].decision.limit, denied.limits[0].decision.remaining), (3, 0));
    assert_eq!(denied.limits[0].window, 60 * SECOND);
    // The configured `agent` policy (200/min) was never charged for this key.
    let plain = checked(apply(&mut r, T0, check(agent(), 1, Vec::new())));
    assert_eq!((plain.limits[0].policy.as_str(), plain.limits[0].decision.remaining), ("agent", 199));
    // The window ends on the minute: then the override admits again.
    let next_minute = (T0 / (60 * SECOND) + 1) * 60 * SECOND;
    assert!(checked(apply(&mut r, next_minute, check(agent(), 1, vec![per_minute(3)]))).allowed);
}

#[test]
fn override_needs_no_rule_for_its_descriptor() {
    // The sample rejects unmatched descriptors; an override brings its own limit.
    let mut r = replica(SAMPLE_POLICIES_TOML);
    let path = vec![Descriptor::new("path", "/v1/chat")];
    assert!(matches!(apply(&mut r, T0, check(path.clone(), 1, Vec::new())), CommandOutcome::Invalid(_)));
    assert!(checked(apply(&mut r, T0, check(path, 1, vec![per_minute(1)]))).allowed);
}

#[test]
fn per_descriptor_costs_are_charged_atomically() {
    // Invariant 3: a check with per-descriptor costs charges every limit its own cost, or none.
    let mut r = replica(SAMPLE_POLICIES_TOML);
    let two = || vec![Descriptor::new("api_key", "k1"), Descriptor::new("ip", "10.0.0.1")];
    let reply = checked(apply(&mut r, T0, check(two(), 1, vec![cost(50), DescriptorOverride::default()])));
    assert!(reply.allowed);
    assert_eq!((reply.limits[0].decision.remaining, reply.limits[1].decision.remaining), (10, 599));
    let denied = checked(apply(&mut r, T0, check(two(), 1, vec![cost(11), DescriptorOverride::default()])));
    assert!(!denied.allowed);
    assert!(!denied.limits[0].decision.allowed && denied.limits[1].decision.allowed);
    let after = checked(apply(&mut r, T0, check(two(), 1, Vec::new())));
    assert_eq!((after.limits[0].decision.remaining, after.limits[1].decision.remaining), (9, 598));
}

#[test]
fn invalid_overrides_are_refused_and_charge_nothing() {
    // Invariant 6: bad input never costs state.
    let mut r = replica(SAMPLE_POLICIES_TOML);
    let one = || vec![Descriptor::new("api_key", "k1")];
    let cases = [
        (check(one(), 1, vec![per_minute(0)]), "requests_per_unit"),
        (check(one(), 1, vec![per_minute(2), per_minute(2)]), "1 descriptors came with 2 overrides"),
        (check(one(), 1, vec![DescriptorOverride { cost: Some(3), ..per_minute(2) }]), "exceeds the limit 2"),
        (check(one(), 1, vec![cost(61)]), "exceeds the limit 60 of policy `default`"),
        (check(vec![Descriptor::new("Path", "/")], 1, vec![per_minute(2)]), "not an identifier"),
    ];
    for (command, expected) in cases {
        match apply(&mut r, T0, command) {
            CommandOutcome::Invalid(message) => assert!(message.contains(expected), "{expected}: {message}"),
            other => panic!("{expected}: expected Invalid, got {other:?}"),
        }
    }
    assert!(r.table.is_empty());
}

#[test]
fn override_state_survives_a_policy_change() {
    let mut r = replica(SAMPLE_POLICIES_TOML);
    let key = || vec![Descriptor::new("api_key", "k1")];
    assert!(checked(apply(&mut r, T0, check(key(), 2, vec![per_minute(2)]))).allowed);
    let changed = SAMPLE_POLICIES_TOML.replace("limit = 60\n", "limit = 61\n");
    let installed = r.apply_request(&Request::SetPolicies { toml: changed, expected_version: 0 });
    assert!(matches!(installed, Response::Policies(Ok(2))), "{installed:?}");
    assert!(!checked(apply(&mut r, T0, check(key(), 1, vec![per_minute(2)]))).allowed, "quota was refunded");
}

#[test]
fn descriptors_no_rule_limits_keep_their_index_out_of_the_reply() {
    let toml = SAMPLE_POLICIES_TOML.replace("unmatched = \"reject\"", "unmatched = \"ignore\"");
    let mut r = replica(&toml);
    let descriptors = vec![Descriptor::new("region", "eu"), Descriptor::new("ip", "::1"), Descriptor::new("x", "y")];
    let reply =
        checked(apply(&mut r, T0, check(descriptors, 1, vec![DescriptorOverride::default(), cost(2), per_minute(5)])));
    let indexes: Vec<usize> = reply.limits.iter().map(|l| l.descriptor).collect();
    assert_eq!(indexes, [1, 2]);
    assert_eq!(reply.limits[0].decision.remaining, 598);
}

#[test]
fn replicas_applying_the_same_overrides_reach_identical_state() {
    // Invariant 1: apply is a pure function of the log, snapshots included.
    let log: Vec<(Nanos, Command)> = (0..40u64)
        .map(|i| {
            let descriptors =
                vec![Descriptor::new("api_key", format!("agent_{}", i % 3)), Descriptor::new("ip", "::1")];
            let overrides = vec![per_minute(1 + (i % 4) as u32), cost(1 + i % 2)];
            (T0 + i * 7 * SECOND, check(descriptors, 1, if i % 5 == 0 { Vec::new() } else { overrides }))
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
