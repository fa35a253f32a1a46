//! Valid values of everything the node encodes, the seeds the harnesses mutate.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{CommittedLeaderId, EntryPayload, Membership, SnapshotMeta, StoredMembership};
use quorate_core::plan::{Check, Cost, DescriptorOverride, LimitOverride, OverrideUnit, Plan, Refund};
use quorate_core::policy::Descriptor;
use quorate_core::{Nanos, TableConfig};

use crate::command::{Command, LeaseAsk, LeaseReturn, LogEntry, ReportedSignal};
use crate::raft::Node;
use crate::raft::replica::Replica;
use crate::raft::typ::{Entry, LogId, Vote};

/// One second in nanoseconds.
pub(crate) const SECOND: Nanos = 1_000_000_000;

/// A cluster time in 2027.
pub(crate) const T0: Nanos = 1_800_000_000 * SECOND;

/// A policy set with every algorithm, leases, no-quorum modes, adaptive levels and a signal scale: what the
/// harnesses plan checks against and mutate.
pub(crate) const POLICIES_TOML: &str = r#"
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
dimension = "user"
policy = "daily"

[[rules]]
dimension = "tenant"
policy = "hourly"

[adaptive]
relax_after = "5s"
smoothing = 0.5
signal_ttl = "30s"

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

/// A replica with [`POLICIES_TOML`] installed: the state every harness applies to.
pub(crate) fn empty_replica() -> Replica {
    let mut replica = Replica::new(TableConfig::default());
    replica.apply(&LogEntry::SetPolicies { toml: POLICIES_TOML.to_owned(), expected_version: 0 });
    replica
}

/// Descriptors that reach every policy of [`POLICIES_TOML`].
pub(crate) fn descriptors() -> Vec<Descriptor> {
    vec![
        Descriptor::new("key", "b1"),
        Descriptor::new("ip", "10.0.0.1"),
        Descriptor::new("user", "counted"),
        Descriptor::new("user", "alice"),
        Descriptor::new("tenant", "t1"),
    ]
}

/// One check per descriptor of [`descriptors`] with a new value, planned against `replica`'s policies: after a
/// policy change they apply the new parameters while the old keys keep their state, as in a real cluster.
pub(crate) fn new_key_checks(replica: &Replica) -> Vec<Command> {
    let Some(policies) = replica.policies.clone() else { return Vec::new() };
    descriptors()
        .into_iter()
        .filter_map(|d| {
            let check = Check::new(vec![Descriptor::new(d.dimension, format!("{}~new", d.value))], Cost::ONE);
            Plan::check(&policies, &check).ok()
        })
        .map(|plan| Command::Check { plan, peek: false, lease: None })
        .collect()
}

/// Commands of every kind, planned against [`empty_replica`]'s policies (and so applied by [`busy_replica`]).
pub(crate) fn commands() -> Vec<Command> {
    commands_for(&empty_replica())
}

/// Commands of every kind, planned against `replica`'s policies: what it applies rather than refuses as planned
/// under another policy set version.
pub(crate) fn commands_for(replica: &Replica) -> Vec<Command> {
    let Some(policies) = replica.policies.clone() else { return Vec::new() };
    let mut commands = Vec::new();
    let check = Check { descriptors: descriptors(), cost: Cost::ONE, peek: false, overrides: Vec::new() };
    if let Ok(plan) = Plan::check(&policies, &check) {
        let want = vec![3; plan.limits.len()];
        let returns = vec![LeaseReturn { lease: 1, unused: 2 }];
        commands.push(Command::Check { plan: plan.clone(), peek: false, lease: None });
        commands.push(Command::Check {
            plan: plan.clone(),
            peek: false,
            lease: Some(LeaseAsk { holder: crate::command::CLIENT_HOLDERS + 7, want, returns }),
        });
        commands.push(Command::Check { plan, peek: true, lease: None });
    }
    let overridden = Check {
        descriptors: vec![Descriptor::new("anything", "x"), Descriptor::new("key", "b2")],
        cost: Cost::ONE,
        peek: false,
        overrides: vec![
            DescriptorOverride {
                cost: Cost::new(2),
                limit: Some(LimitOverride { requests_per_unit: 10, unit: OverrideUnit::Minute }),
            },
            DescriptorOverride {
                cost: None,
                limit: Some(LimitOverride { requests_per_unit: 3, unit: OverrideUnit::Year }),
            },
        ],
    };
    if let Ok(plan) = Plan::check(&policies, &overridden) {
        commands.push(Command::Check { plan, peek: false, lease: None });
    }
    let refund = Refund { descriptors: descriptors(), amount: Cost::ONE };
    if let Ok(plan) = Plan::refund(&policies, &refund) {
        commands.push(Command::Refund { plan });
    }
    commands.push(Command::ReturnLeases { holder: 1, returns: vec![LeaseReturn { lease: 0, unused: 1 }] });
    commands
}

/// Log entries of every kind.
pub(crate) fn log_entries() -> Vec<LogEntry> {
    vec![
        LogEntry::Batch { time: T0, commands: commands() },
        LogEntry::Load {
            time: T0 + SECOND,
            signals: vec![
                ReportedSignal { name: "cpu@node1".to_owned(), value_ppm: 700_000, expires_at: T0 + 30 * SECOND },
                ReportedSignal { name: "latency_ms".to_owned(), value_ppm: 200_000, expires_at: T0 + 30 * SECOND },
            ],
        },
        LogEntry::SetPolicies { toml: POLICIES_TOML.to_owned(), expected_version: 1 },
    ]
}

/// A log id of `term` (leader 1) at `index`.
pub(crate) fn log_id(term: u64, index: u64) -> LogId {
    LogId { leader_id: CommittedLeaderId::new(term, 1), index }
}

/// A three-node membership.
pub(crate) fn membership() -> Membership<u64, Node> {
    let node = |i: u64| Node { peer_addr: format!("node{i}:7201"), public_addr: format!("node{i}:7101") };
    let nodes: BTreeMap<u64, Node> = (1..=3).map(|i| (i, node(i))).collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

/// Raft entries of every payload.
pub(crate) fn entries() -> Vec<Entry> {
    let mut entries = vec![
        Entry { log_id: log_id(1, 1), payload: EntryPayload::Blank },
        Entry { log_id: log_id(1, 2), payload: EntryPayload::Membership(membership()) },
    ];
    for (i, entry) in log_entries().into_iter().enumerate() {
        entries.push(Entry { log_id: log_id(2, 3 + i as u64), payload: EntryPayload::Normal(entry) });
    }
    entries
}

/// A replica that has applied the batches and the load entry of [`log_entries`] and a few more batches: state in
/// every algorithm, leases, signals. Its policy set is still [`empty_replica`]'s, so it applies [`commands`].
pub(crate) fn busy_replica() -> Replica {
    let mut replica = empty_replica();
    for entry in log_entries() {
        if !matches!(entry, LogEntry::SetPolicies { .. }) {
            replica.apply(&entry);
        }
    }
    for step in 1..4 {
        replica.apply(&LogEntry::Batch { time: T0 + step * SECOND, commands: commands() });
    }
    replica.last_applied = Some(log_id(2, 9));
    replica.membership = StoredMembership::new(Some(log_id(1, 2)), membership());
    replica
}

/// A vote of term 2 for node 1, committed.
pub(crate) fn vote() -> Vote {
    Vote::new_committed(2, 1)
}

/// Metadata of a snapshot of [`busy_replica`].
pub(crate) fn snapshot_meta() -> SnapshotMeta<u64, Node> {
    SnapshotMeta {
        last_log_id: Some(log_id(2, 9)),
        last_membership: StoredMembership::new(Some(log_id(1, 2)), membership()),
        snapshot_id: "2-1-9".to_owned(),
    }
}
