//! Golden files of the storage format: a log and a snapshot written by format 1, committed under
//! `tests/fixtures/format-1/`, must decode to the same state in every later version.
//!
//! The log holds every kind of entry a cluster writes (policies, batches of checks with and without leases, a
//! lease return, load signals); the snapshot is the state after it. The test decodes both with today's code and
//! compares what a client would see — the policy set, and for fixed keys the decision a peek gets — with
//! `state.txt`. `QUORATE_WRITE_GOLDEN=1 cargo test -p quorate-node golden` writes the fixtures of the current
//! [`codec::FORMAT`] (only when that format has none: old formats are never rewritten).

use std::fmt::Write as _;
use std::path::PathBuf;

use openraft::{CommittedLeaderId, EntryPayload, LogId};
use quorate_core::TableConfig;
use quorate_core::plan::{Check, Cost, Plan};
use quorate_core::policy::Descriptor;

use super::codec;
use super::replica::{Replica, ReplicaSnapshot};
use super::typ::Entry;
use crate::command::{Command, LeaseAsk, LeaseReturn, LogEntry, ReportedSignal};

const POLICIES: &str = r#"
[policies.per_key]
algorithm = "token_bucket"
limit = 100
period = "1m"
lease = { ttl = "1s", max_share = 0.5, reserve = 0.1 }

[policies.per_user]
algorithm = "sliding_window"
limit = 10
period = "1h"
precision = 60

[policies.per_ip]
algorithm = "window_counter"
limit = 5
period = "1s"

[[rules]]
dimension = "api_key"
policy = "per_key"

[[rules]]
dimension = "user"
policy = "per_user"

[[rules]]
dimension = "ip"
policy = "per_ip"
"#;

/// 2026-12-01T00:00:00Z in ns since the epoch: the fixtures' cluster time starts there.
const T0: u64 = 1_796_083_200_000_000_000;
const SECOND: u64 = 1_000_000_000;

fn dir(format: u8) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/format-{format}"))
}

fn check(policies: &quorate_core::policy::PolicySet, pairs: &[(&str, &str)], cost: u64) -> Plan {
    let descriptors = pairs.iter().map(|(d, v)| Descriptor::new(*d, *v)).collect();
    let check = Check { descriptors, cost: Cost::at_least_one(cost), peek: false, overrides: Vec::new() };
    Plan::check(policies, &check).expect("a valid check")
}

/// The entries of the golden log, at indexes 1.. of term 1.
fn entries() -> Vec<LogEntry> {
    let mut replica = Replica::new(TableConfig::default());
    let set = LogEntry::SetPolicies { toml: POLICIES.to_owned(), expected_version: 0 };
    let applied = replica.apply(&set);
    assert!(matches!(applied, crate::command::EntryResponse::Policies(Ok(_))), "{applied:?}");
    let policies = replica.policies.clone().expect("policies applied");
    let plan = |pairs: &[(&str, &str)], cost| check(&policies, pairs, cost);
    let holder = 1 << 63 | 7;
    vec![
        set,
        LogEntry::Batch {
            time: T0,
            commands: (0..12)
                .map(|_| Command::Check { plan: plan(&[("user", "alice")], 1), peek: false, lease: None })
                .chain([Command::Check {
                    plan: plan(&[("api_key", "k1"), ("ip", "10.0.0.1")], 3),
                    peek: false,
                    lease: None,
                }])
                .collect(),
        },
        LogEntry::Load {
            time: T0 + SECOND,
            signals: vec![ReportedSignal {
                name: "llm_latency@api".into(),
                value_ppm: 700_000,
                expires_at: T0 + 60 * SECOND,
            }],
        },
        LogEntry::Batch {
            time: T0 + 2 * SECOND,
            commands: vec![Command::Check {
                plan: plan(&[("api_key", "k2")], 1),
                peek: false,
                lease: Some(LeaseAsk { holder, want: vec![20], returns: Vec::new() }),
            }],
        },
        LogEntry::Batch {
            time: T0 + 3 * SECOND,
            commands: vec![
                Command::ReturnLeases { holder, returns: vec![LeaseReturn { lease: 1, unused: 5 }] },
                Command::Check { plan: plan(&[("ip", "10.0.0.1")], 1), peek: false, lease: None },
            ],
        },
    ]
}

/// What a client would see of `replica`: the policy set, and a peek's answer for fixed keys.
fn describe(replica: &Replica) -> String {
    let mut text = String::new();
    let policies = replica.policies.as_ref().expect("a policy set");
    let _ = writeln!(text, "policy_version = {}", policies.version());
    let _ = writeln!(text, "tracked_keys = {}", replica.table.len());
    let _ = writeln!(text, "cluster_load_ppm = {}", replica.cluster_load());
    let _ = writeln!(text, "leases_outstanding = {}", replica.leases.len());
    let now = replica.now();
    for (dimension, value) in
        [("user", "alice"), ("api_key", "k1"), ("api_key", "k2"), ("ip", "10.0.0.1"), ("user", "bob")]
    {
        let plan = check(policies, &[(dimension, value)], 1);
        let limits = plan.limit_refs(policies, replica.multiplier()).expect("limits");
        let mut table = replica.table.clone();
        let outcome = table.peek(now, &limits, 1).expect("a peek");
        let d = outcome.decision;
        let _ = writeln!(
            text,
            "{dimension}={value}: allowed={} limit={} remaining={} reset_after_ns={} retry_after_ns={}",
            outcome.allowed, d.limit, d.remaining, d.reset_after, d.retry_after
        );
    }
    text
}

fn log_entries() -> Vec<Entry> {
    entries()
        .into_iter()
        .enumerate()
        .map(|(i, entry)| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), i as u64 + 1),
            payload: EntryPayload::Normal(entry),
        })
        .collect()
}

fn replay(log: &[Entry]) -> Replica {
    let mut replica = Replica::new(TableConfig::default());
    for entry in log {
        if let EntryPayload::Normal(entry) = &entry.payload {
            replica.apply(entry);
        }
    }
    replica
}

#[test]
fn golden_fixtures_of_every_format_decode_to_the_same_state() {
    if std::env::var_os("QUORATE_WRITE_GOLDEN").is_some() && !dir(codec::FORMAT).exists() {
        let log = log_entries();
        let replica = replay(&log);
        std::fs::create_dir_all(dir(codec::FORMAT)).expect("fixture dir");
        std::fs::write(dir(codec::FORMAT).join("log.bin"), codec::encode(&log).expect("log")).expect("write");
        let snapshot = codec::encode(&replica.snapshot()).expect("snapshot");
        std::fs::write(dir(codec::FORMAT).join("snapshot.bin"), snapshot).expect("write");
        std::fs::write(dir(codec::FORMAT).join("state.txt"), describe(&replica)).expect("write");
    }
    for format in 1..=codec::FORMAT {
        let dir = dir(format);
        let expected = std::fs::read_to_string(dir.join("state.txt")).expect("state.txt of every format");
        let log: Vec<Entry> =
            codec::decode(&std::fs::read(dir.join("log.bin")).expect("log.bin")).expect("log decodes");
        assert_eq!(describe(&replay(&log)), expected, "format {format}: the log replays to another state");
        let bytes = std::fs::read(dir.join("snapshot.bin")).expect("snapshot.bin");
        let snapshot: ReplicaSnapshot = codec::decode(&bytes).expect("snapshot decodes");
        let restored = Replica::restore(TableConfig::default(), snapshot).expect("snapshot restores");
        assert_eq!(describe(&restored), expected, "format {format}: the snapshot restores another state");
    }
    // Today's code writes the same state as the newest fixture, and the same snapshot bytes: copied or borrowed.
    let newest = std::fs::read_to_string(dir(codec::FORMAT).join("state.txt")).expect("state.txt");
    let replica = replay(&log_entries());
    assert_eq!(describe(&replica), newest);
    let fixture = std::fs::read(dir(codec::FORMAT).join("snapshot.bin")).expect("snapshot.bin");
    assert_eq!(codec::encode(&replica.snapshot()).expect("encodes"), fixture);
    assert_eq!(codec::encode(&replica.snapshot_view()).expect("encodes"), fixture);
}
