//! Fuzz harnesses of everything peers send each other: Raft RPCs and their replies, forwarded calls and their
//! answers, and the log entries they carry (applied to a replica, as every node applies them). See
//! [`crate::fuzzing`] for the long run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use openraft::error::{Fatal, Infallible, InstallSnapshotError, SnapshotMismatch};
use proptest::prelude::*;
use quorate_core::plan::{Cost, LimitOverride, LimitSource, OverrideUnit, Plan, PlannedLimit};
use quorate_core::{CoreError, Nanos};
use serde::Serialize;

use super::{CodecError, decode, encode};
use crate::cluster::PeerCall;
use crate::command::{Applied, Command, CommandOutcome, LeaseAsk, LeaseReturn, LogEntry, ReportedSignal};
use crate::control::MembershipChange;
use crate::error::{AdminError, CheckError, PolicyError};
use crate::fuzzing::samples::{self, SECOND, T0};
use crate::fuzzing::{config, decodes_or_fails, mutated_bytes, timed};
use crate::raft::replica::Replica;
use crate::raft::typ::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, RaftError,
    VoteRequest, VoteResponse,
};
use crate::raft::{Node, NodeId};

fn seeds<T: Serialize>(values: &[T]) -> Vec<Vec<u8>> {
    values.iter().map(|v| encode(v).expect("a sample encodes")).collect()
}

fn append_entries() -> Vec<AppendEntriesRequest> {
    let entries = samples::entries();
    vec![
        AppendEntriesRequest {
            vote: samples::vote(),
            prev_log_id: Some(samples::log_id(1, 2)),
            leader_commit: Some(samples::log_id(1, 2)),
            entries: entries.clone(),
        },
        AppendEntriesRequest { vote: samples::vote(), prev_log_id: None, leader_commit: None, entries: Vec::new() },
        AppendEntriesRequest {
            vote: samples::vote(),
            prev_log_id: Some(samples::log_id(2, 4)),
            leader_commit: None,
            entries: entries[4..].to_vec(),
        },
    ]
}

fn install_snapshot() -> Vec<InstallSnapshotRequest> {
    let data = encode(&samples::busy_replica().snapshot()).expect("a snapshot encodes");
    vec![
        InstallSnapshotRequest {
            vote: samples::vote(),
            meta: samples::snapshot_meta(),
            offset: 0,
            data: data[..data.len() / 2].to_vec(),
            done: false,
        },
        InstallSnapshotRequest {
            vote: samples::vote(),
            meta: samples::snapshot_meta(),
            offset: (data.len() / 2) as u64,
            data: data[data.len() / 2..].to_vec(),
            done: true,
        },
    ]
}

fn peer_calls() -> Vec<PeerCall> {
    vec![
        PeerCall::Commit(samples::commands()),
        PeerCall::ReportLoad { name: "latency_ms".to_owned(), value_ppm: 500_000, ttl: 30 * SECOND },
        PeerCall::SetPolicies { toml: samples::POLICIES_TOML.to_owned(), expected_version: 3 },
        PeerCall::AddLearner {
            id: 4,
            node: Node { peer_addr: "n4:7201".to_owned(), public_addr: "n4:7101".to_owned() },
        },
        PeerCall::ChangeMembership { voters: [1, 2, 4].into() },
    ]
}

/// The replica log entries are applied to: built once, cloned per case.
fn replica() -> Replica {
    static REPLICA: OnceLock<Replica> = OnceLock::new();
    REPLICA.get_or_init(samples::busy_replica).clone()
}

/// Applies `entry` to a busy replica and snapshots it: whatever a peer replicates, applying it never panics
/// and the result snapshots and restores.
fn applies(entry: &LogEntry) -> Result<(), TestCaseError> {
    let mut replica = replica();
    timed("apply", || replica.apply(entry))?;
    // Then what follows in a cluster: commands planned under the (maybe new) policy set for new keys (which
    // apply changed parameters to a policy whose old keys are left as they were, until the sweep looks at them)
    // and for the old keys.
    timed("apply after", || {
        replica.apply(&LogEntry::Batch { time: T0 + 100 * SECOND, commands: samples::new_key_checks(&replica) });
        replica.apply(&LogEntry::Batch { time: T0 + 101 * SECOND, commands: samples::commands_for(&replica) });
        replica.apply(&LogEntry::Batch { time: T0 + 200_000 * SECOND, commands: samples::new_key_checks(&replica) });
    })?;
    let bytes = encode(&replica.snapshot()).expect("a snapshot encodes");
    let restored = Replica::restore(quorate_core::TableConfig::default(), decode(&bytes).expect("decodes"));
    prop_assert!(restored.is_ok(), "{:?}", restored.err());
    Ok(())
}

fn cost() -> impl Strategy<Value = Cost> {
    prop_oneof![Just(1u64), 1u64..1000, Just(1 << 40), Just((1 << 40) + 1), Just(u64::MAX), any::<u64>()]
        .prop_map(|c| Cost::new(c).unwrap_or(Cost::ONE))
}

fn unit() -> impl Strategy<Value = OverrideUnit> {
    prop::sample::select(vec![
        OverrideUnit::Second,
        OverrideUnit::Minute,
        OverrideUnit::Hour,
        OverrideUnit::Day,
        OverrideUnit::Month,
        OverrideUnit::Year,
    ])
}

fn planned_limit() -> impl Strategy<Value = PlannedLimit> {
    let source = prop_oneof![
        (0u32..6).prop_map(LimitSource::Policy),
        any::<u32>().prop_map(LimitSource::Policy),
        (prop_oneof![Just(0u32), Just(1), 1u32..100, Just(u32::MAX)], unit())
            .prop_map(|(requests_per_unit, unit)| { LimitSource::Override(LimitOverride { requests_per_unit, unit }) }),
    ];
    let key = prop_oneof![Just("key=b1".to_owned()), "[a-z]{1,3}=[a-z0-9]{0,4}", "\\PC{0,40}"];
    (any::<u8>(), source, key, cost()).prop_map(|(descriptor, source, key, cost)| PlannedLimit {
        descriptor,
        source,
        key: key.into(),
        cost,
    })
}

fn plan() -> impl Strategy<Value = Plan> {
    (prop_oneof![Just(1u64), Just(2), any::<u64>()], prop::collection::vec(planned_limit(), 0..6))
        .prop_map(|(policy_version, limits)| Plan { policy_version, limits })
}

fn lease_returns() -> impl Strategy<Value = Vec<LeaseReturn>> {
    prop::collection::vec((0u64..8, any::<u64>()).prop_map(|(lease, unused)| LeaseReturn { lease, unused }), 0..4)
}

fn command() -> impl Strategy<Value = Command> {
    let holder = prop_oneof![Just(1u64), Just(crate::command::CLIENT_HOLDERS + 1), any::<u64>()];
    let lease = prop::option::of(
        (holder.clone(), prop::collection::vec(any::<u64>(), 0..8), lease_returns())
            .prop_map(|(holder, want, returns)| LeaseAsk { holder, want, returns }),
    );
    prop_oneof![
        3 => prop::sample::select(samples::commands()),
        3 => (plan(), any::<bool>(), lease).prop_map(|(plan, peek, lease)| Command::Check { plan, peek, lease }),
        1 => plan().prop_map(|plan| Command::Refund { plan }),
        1 => (holder, lease_returns()).prop_map(|(holder, returns)| Command::ReturnLeases { holder, returns }),
    ]
}

fn time() -> impl Strategy<Value = Nanos> {
    prop_oneof![Just(0), T0..T0 + 3_600 * SECOND, Just(u64::MAX), any::<u64>()]
}

/// [`samples::POLICIES_TOML`] with other parameters: what an operator's policy change does to the policies
/// whose keys the replica already tracks (finer or coarser windows, other limits, bursts and periods).
fn policy_change() -> impl Strategy<Value = String> {
    let count = || prop_oneof![1u64..10, 10u64..1_000, Just(1 << 40)];
    let period = || prop::sample::select(vec!["1s", "2s", "10s", "1m", "7m", "1h", "1d"]);
    let precision = prop::sample::select(vec![1u32, 2, 5, 10, 20, 50, 100, 1_000, 3_600]);
    (count(), count(), period(), count(), period(), precision, count(), period(), period()).prop_map(
        |(limit, burst, bucket_period, window, window_period, precision, counter, counter_period, hourly)| {
            samples::POLICIES_TOML
                .replace(
                    "limit = 100\nperiod = \"1m\"\nburst = 150",
                    &format!("limit = {limit}\nperiod = \"{bucket_period}\"\nburst = {burst}"),
                )
                .replace(
                    "limit = 50\nperiod = \"10s\"\nprecision = 10",
                    &format!("limit = {window}\nperiod = \"{window_period}\"\nprecision = {precision}"),
                )
                .replace("limit = 20\nperiod = \"1s\"", &format!("limit = {counter}\nperiod = \"{counter_period}\""))
                .replace("period = \"1h\"", &format!("period = \"{hourly}\""))
        },
    )
}

fn log_entry() -> impl Strategy<Value = LogEntry> {
    let signal = ("\\PC{0,20}", any::<u32>(), time()).prop_map(|(name, value_ppm, expires_at)| ReportedSignal {
        name,
        value_ppm,
        expires_at,
    });
    let toml = crate::fuzzing::mutated_text(
        vec![samples::POLICIES_TOML.to_owned(), quorate_core::policy::SAMPLE_POLICIES_TOML.to_owned()],
        crate::fuzzing::TOML_TOKENS,
    );
    prop_oneof![
        4 => (time(), prop::collection::vec(command(), 0..6))
            .prop_map(|(time, commands)| LogEntry::Batch { time, commands }),
        1 => (time(), prop::collection::vec(signal, 0..4)).prop_map(|(time, signals)| LogEntry::Load { time, signals }),
        1 => (toml, prop_oneof![Just(0u64), any::<u64>()])
            .prop_map(|(toml, expected_version)| LogEntry::SetPolicies { toml, expected_version }),
        1 => policy_change().prop_map(|toml| LogEntry::SetPolicies { toml, expected_version: 0 }),
    ]
}

fn outcomes() -> Vec<Result<Vec<CommandOutcome>, CheckError>> {
    let mut replica = samples::busy_replica();
    let answered = match replica.apply(&LogEntry::Batch { time: T0 + 5 * SECOND, commands: samples::commands() }) {
        crate::command::EntryResponse::Batch(outcomes) => outcomes,
        _ => Vec::new(),
    };
    vec![
        Ok(answered),
        Ok(vec![
            Ok(Applied::Refunded),
            Ok(Applied::Returned),
            Err(CheckError::PolicyChanged { planned: 1, current: 2 }),
        ]),
        Err(CheckError::NoLeader { waited: Duration::from_millis(1500) }),
        Err(CheckError::Invalid(CoreError::InvalidRequest("no descriptors".to_owned()))),
        Err(CheckError::Fatal(Box::new(Fatal::Stopped))),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// AppendEntries as a peer sends it: entries of every payload, mutated.
    #[test]
    fn fuzz_append_entries_request(bytes in mutated_bytes(seeds(&append_entries()))) {
        if let Some(request) = decodes_or_fails::<AppendEntriesRequest>(&bytes)? {
            for entry in &request.entries {
                if let openraft::EntryPayload::Normal(entry) = &entry.payload {
                    applies(entry)?;
                }
            }
        }
    }

    /// Vote requests.
    #[test]
    fn fuzz_vote_request(bytes in mutated_bytes(seeds(&[
        VoteRequest { vote: samples::vote(), last_log_id: Some(samples::log_id(2, 9)) },
        VoteRequest { vote: openraft::Vote::new(3, 2), last_log_id: None },
    ]))) {
        decodes_or_fails::<VoteRequest>(&bytes)?;
    }

    /// InstallSnapshot chunks (the chunk's data is checked when the snapshot is installed: `state_machine`).
    #[test]
    fn fuzz_install_snapshot_request(bytes in mutated_bytes(seeds(&install_snapshot()))) {
        decodes_or_fails::<InstallSnapshotRequest>(&bytes)?;
    }

    /// Forwarded calls of every kind; commits are applied as the leader would.
    #[test]
    fn fuzz_peer_call(bytes in mutated_bytes(seeds(&peer_calls()))) {
        if let Some(PeerCall::Commit(commands)) = decodes_or_fails::<PeerCall>(&bytes)? {
            applies(&LogEntry::Batch { time: T0 + 10 * SECOND, commands })?;
        }
    }

    /// The replies a node decodes from its peers: RPC results, their errors, forwarded answers.
    #[test]
    fn fuzz_peer_replies(bytes in mutated_bytes({
        let mut all = seeds(&[
            AppendEntriesResponse::Success,
            AppendEntriesResponse::PartialSuccess(Some(samples::log_id(2, 7))),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(samples::vote()),
        ]);
        all.extend(seeds_of(&VoteResponse { vote: samples::vote(), vote_granted: true, last_log_id: None }));
        all.extend(seeds_of(&InstallSnapshotResponse { vote: samples::vote() }));
        all.extend(seeds_of(&RaftError::<Infallible>::Fatal(Fatal::Panicked)));
        all.extend(seeds_of(&RaftError::<InstallSnapshotError>::APIError(InstallSnapshotError::SnapshotMismatch(
            SnapshotMismatch { expect: openraft::SnapshotSegmentId { id: "a".into(), offset: 0 }, got: openraft::SnapshotSegmentId { id: "b".into(), offset: 9 } },
        ))));
        all.extend(seeds(&outcomes()));
        all.extend(seeds_of(&Ok::<u64, AdminError>(4)));
        all.extend(seeds_of(&Err::<u64, AdminError>(AdminError::Policy(PolicyError::VersionMismatch { current: 2, expected: 1 }))));
        all.extend(seeds_of(&Ok::<MembershipChange, AdminError>(MembershipChange {
            log_index: 12,
            members: vec![(1, Node::default(), true), (4, Node { peer_addr: "n4:1".into(), public_addr: "n4:2".into() }, false)],
        })));
        all
    })) {
        decodes_or_fails::<AppendEntriesResponse>(&bytes)?;
        decodes_or_fails::<VoteResponse>(&bytes)?;
        decodes_or_fails::<InstallSnapshotResponse>(&bytes)?;
        decodes_or_fails::<RaftError<Infallible>>(&bytes)?;
        decodes_or_fails::<RaftError<InstallSnapshotError>>(&bytes)?;
        decodes_or_fails::<Result<Vec<CommandOutcome>, CheckError>>(&bytes)?;
        decodes_or_fails::<Result<(), CheckError>>(&bytes)?;
        decodes_or_fails::<Result<u64, AdminError>>(&bytes)?;
        decodes_or_fails::<Result<MembershipChange, AdminError>>(&bytes)?;
    }

    /// Log entries as bytes, mutated: decoded ones are applied.
    #[test]
    fn fuzz_log_entry_bytes(bytes in mutated_bytes(seeds(&samples::log_entries()))) {
        if let Some(entry) = decodes_or_fails::<LogEntry>(&bytes)? {
            applies(&entry)?;
        }
    }

    /// Arbitrary log entries (random plans, leases, times, mutated policy files) round-trip exactly and apply
    /// without a panic.
    #[test]
    fn fuzz_log_entry_values(entry in log_entry()) {
        let bytes = encode(&entry).expect("encodes");
        prop_assert_eq!(decode::<LogEntry>(&bytes).expect("decodes"), entry.clone());
        applies(&entry)?;
    }
}

fn seeds_of<T: Serialize>(value: &T) -> Vec<Vec<u8>> {
    vec![encode(value).expect("a sample encodes")]
}

/// Every 8 bytes of an encoded batch of log entries replaced by a hostile length: each decode fails (or decodes
/// something else) at once. Sequences claiming `u64::MAX` elements are preallocated at most serde's 1 MiB, so
/// this runs in a few MiB; a decoder that believed the prefixes would abort on the first one.
#[test]
fn fuzz_hostile_length_prefixes_fail_fast() {
    let bytes = encode(&samples::log_entries()).expect("encodes");
    let started = Instant::now();
    let mut failed = 0;
    for at in 0..bytes.len().saturating_sub(8) {
        for hostile in [u64::MAX, 1 << 62, 1 << 40, u64::from(u32::MAX), (bytes.len() as u64) * 2] {
            let mut mutated = bytes.clone();
            mutated[at..at + 8].copy_from_slice(&hostile.to_le_bytes());
            if decode::<Vec<LogEntry>>(&mutated).is_err() {
                failed += 1;
            }
        }
    }
    assert!(failed > bytes.len(), "only {failed} hostile lengths were refused");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());

    // The outer length of a string, a byte string and sequences, alone: an end-of-input error at once.
    for bytes in [u64::MAX.to_le_bytes().to_vec(), [(1u64 << 40).to_le_bytes(), 0u64.to_le_bytes()].concat()] {
        let started = Instant::now();
        let eof = |e: CodecError| matches!(*e, bincode::ErrorKind::Io(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof);
        assert!(eof(decode::<String>(&bytes).unwrap_err()));
        assert!(eof(decode::<Vec<u8>>(&bytes).unwrap_err()));
        assert!(eof(decode::<Vec<Vec<LogEntry>>>(&bytes).unwrap_err()));
        assert!(decode::<Vec<Command>>(&bytes).is_err());
        assert!(decode::<AppendEntriesRequest>(&bytes).is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

/// The seeds round-trip, with trailing bytes allowed (as on disk since the first release).
#[test]
fn fuzz_seed_payloads_round_trip() {
    for entry in samples::log_entries() {
        let bytes = bincode::serialize(&entry).unwrap();
        // The format header, then plain bincode; the headerless bytes decode too (format 0).
        assert_eq!(encode(&entry).unwrap(), [&super::MAGIC[..], &[super::FORMAT], &bytes].concat());
        assert_eq!(decode::<LogEntry>(&bytes).unwrap(), entry);
        // Trailing bytes are allowed, as `bincode::deserialize` allows them.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0xff; 3]);
        assert_eq!(decode::<LogEntry>(&longer).unwrap(), entry);
    }
    let snapshot = encode(&samples::busy_replica().snapshot()).unwrap();
    let decoded: crate::raft::replica::ReplicaSnapshot = decode(&snapshot).unwrap();
    assert_eq!(encode(&decoded).unwrap(), snapshot);
    let _: NodeId = decode(&7u64.to_le_bytes()).unwrap();
}

/// The harnesses' replica applies the sample commands (rather than refusing them as planned under another policy
/// set version), so mutated commands reach the limiter table.
#[test]
fn fuzz_seed_commands_apply() {
    let mut replica = samples::busy_replica();
    let commands = samples::commands();
    assert!(commands.len() >= 6);
    match replica.apply(&LogEntry::Batch { time: T0 + 5 * SECOND, commands }) {
        crate::command::EntryResponse::Batch(outcomes) => {
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            assert!(outcomes.iter().any(|o| matches!(o, Ok(Applied::Checked { outcome, .. }) if outcome.allowed)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(replica.table.len() >= 5, "{} keys", replica.table.len());
}
