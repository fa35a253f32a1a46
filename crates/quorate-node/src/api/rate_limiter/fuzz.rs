//! Fuzz harnesses of the public API's requests: protobuf bytes through `prost` decoding, and arbitrary
//! `CheckRequest`, `CheckBatchRequest`, `RefundRequest` and `ReportLoadRequest` values through the wire-to-plan
//! conversion the node runs before anything is replicated. A request becomes a plan (which then applies without
//! a panic) or a typed invalid-request error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use prost::Message;
use quorate_core::CoreError;
use quorate_core::plan::{Cost, Plan, Refund};
use quorate_core::policy::PolicySet;
use quorate_proto::v1::{
    self as pb, CheckBatchRequest, CheckRequest, CheckStreamRequest, RefundRequest, ReportLoadRequest,
    ReturnLeasesRequest,
};

use super::{check_from_wire, descriptors, scale_report};
use crate::command::{Command, LeaseAsk, LogEntry};
use crate::error::CheckError;
use crate::fuzzing::samples::{self, SECOND, T0};
use crate::fuzzing::{config, mutated_bytes, timed};
use crate::raft::replica::Replica;

/// The policy sets requests are planned against: the sample, and the [`replica`]'s (every algorithm, a signal
/// scale), under which plans are also applied.
fn policy_sets() -> &'static [Arc<PolicySet>] {
    static SETS: OnceLock<Vec<Arc<PolicySet>>> = OnceLock::new();
    SETS.get_or_init(|| vec![Arc::new(PolicySet::sample()), replica().policies.expect("the replica has policies")])
}

fn replica() -> Replica {
    static REPLICA: OnceLock<Replica> = OnceLock::new();
    REPLICA.get_or_init(samples::busy_replica).clone()
}

/// Text: the dimensions and values the policies know, empty, huge, and arbitrary unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["api_key", "ip", "agent_id", "key", "user", "tenant", "agent_1", "b9", "counted"])
            .prop_map(str::to_owned),
        Just(String::new()),
        "[a-z_]{1,10}",
        "(agent|admin|b)_[0-9a-z]{0,6}",
        "\\PC{0,40}",
        ".{0,20}",
        Just("x".repeat(257)),
        Just("é".repeat(200)),
        (1usize..20_000).prop_map(|n| "k".repeat(n)),
    ]
}

fn descriptor() -> impl Strategy<Value = pb::Descriptor> {
    let policy = prop_oneof![
        4 => Just(String::new()),
        1 => prop::sample::select(vec!["agent", "per_ip", "bucket", "daily", "missing"]).prop_map(str::to_owned),
        1 => text(),
    ];
    (text(), text(), policy).prop_map(|(dimension, value, policy)| pb::Descriptor { dimension, value, policy })
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(1), 2u64..1_000, Just(1 << 40), Just((1 << 40) + 1), Just(u64::MAX), any::<u64>()]
}

fn lease_returns() -> impl Strategy<Value = Vec<pb::LeaseReturn>> {
    prop::collection::vec((count(), count()).prop_map(|(lease_id, unused)| pb::LeaseReturn { lease_id, unused }), 0..12)
}

fn check_request() -> impl Strategy<Value = CheckRequest> {
    let holder = prop_oneof![Just(0u64), Just(1 << 63), any::<u64>()];
    let lease =
        prop::option::of((holder, count(), lease_returns()).prop_map(|(holder, units, returns)| pb::LeaseRequest {
            holder,
            units,
            returns,
        }));
    (prop::collection::vec(descriptor(), 0..12), count(), any::<bool>(), lease)
        .prop_map(|(descriptors, cost, peek, lease)| CheckRequest { descriptors, cost, peek, lease })
}

/// Converts and plans one wire check as the node does, and applies the plan if there is one.
fn plans_or_is_invalid(wire: CheckRequest, policies: &Arc<PolicySet>) -> Result<(), TestCaseError> {
    let call = match check_from_wire(wire) {
        Ok(call) => call,
        Err(CheckError::Invalid(CoreError::InvalidRequest(message))) => {
            prop_assert!(!message.is_empty());
            return Ok(());
        }
        Err(other) => return Err(TestCaseError::fail(format!("unexpected error {other:?}"))),
    };
    match timed("plan", || Plan::check(policies, &call.check))? {
        Ok(plan) => {
            prop_assert!(!plan.limits.is_empty());
            prop_assert_eq!(plan.policy_version, policies.version());
            let lease = call.client_lease.map(|lease| LeaseAsk {
                holder: lease.holder,
                want: vec![lease.want; plan.limits.len()],
                returns: lease.returns,
            });
            applies(Command::Check { plan, peek: call.check.peek, lease }, policies)
        }
        Err(CoreError::InvalidRequest(message)) => {
            prop_assert!(!message.is_empty());
            Ok(())
        }
        Err(CoreError::CostExceedsLimit { cost, limit, .. }) => {
            prop_assert!(cost > limit);
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!("unexpected error {other:?}"))),
    }
}

/// Applies `command` to a replica whose policy set is `policies` (the replica's own if it is the same version).
fn applies(command: Command, policies: &Arc<PolicySet>) -> Result<(), TestCaseError> {
    let mut replica = replica();
    if replica.policies.as_ref().is_some_and(|p| Arc::ptr_eq(p, policies) || **p == **policies) {
        timed("apply", || replica.apply(&LogEntry::Batch { time: T0 + 10 * SECOND, commands: vec![command] }))?;
    }
    Ok(())
}

fn seeds<M: Message>(messages: &[M]) -> Vec<Vec<u8>> {
    messages.iter().map(Message::encode_to_vec).collect()
}

fn sample_checks() -> Vec<CheckRequest> {
    let d = |dimension: &str, value: &str| pb::Descriptor {
        dimension: dimension.to_owned(),
        value: value.to_owned(),
        policy: String::new(),
    };
    vec![
        CheckRequest {
            descriptors: vec![d("api_key", "agent_42"), d("ip", "10.0.0.1")],
            cost: 1,
            peek: false,
            lease: None,
        },
        CheckRequest {
            descriptors: vec![d("key", "b1")],
            cost: 3,
            peek: true,
            lease: Some(pb::LeaseRequest {
                holder: 1 << 63,
                units: 10,
                returns: vec![pb::LeaseReturn { lease_id: 4, unused: 2 }],
            }),
        },
    ]
}

/// Decodes `bytes` as `M`: an error, or a message that encodes to bytes decoding to the same message.
fn prost_decodes<M: Message + Default>(bytes: &[u8]) -> Result<Option<M>, TestCaseError> {
    let Ok(message) = timed("decode", || M::decode(bytes))? else { return Ok(None) };
    let encoded = message.encode_to_vec();
    let again = M::decode(encoded.as_slice());
    // Compared as encodings: a double field may be NaN.
    prop_assert!(again.as_ref().is_ok_and(|m| m.encode_to_vec() == encoded), "re-decoded {:?}", again.err());
    Ok(Some(message))
}

proptest! {
    #![proptest_config(config())]

    /// Any check request becomes a plan under the policy set or a typed invalid-request error.
    #[test]
    fn fuzz_check_request(wire in check_request(), set in 0usize..2) {
        plans_or_is_invalid(wire, &policy_sets()[set])?;
    }

    /// Every item of a batch is converted on its own, as `decide_all` does.
    #[test]
    fn fuzz_check_batch_request(batch in prop::collection::vec(check_request(), 0..8)) {
        let batch = CheckBatchRequest { checks: batch };
        for wire in batch.checks {
            plans_or_is_invalid(wire, &policy_sets()[1])?;
        }
    }

    /// A refund: an amount of 0 is invalid, anything else is planned or refused as invalid.
    #[test]
    fn fuzz_refund_request(descriptors_in in prop::collection::vec(descriptor(), 0..12), amount in count(), set in 0usize..2) {
        let wire = RefundRequest { descriptors: descriptors_in, amount };
        let policies = &policy_sets()[set];
        let Some(amount) = Cost::new(wire.amount) else {
            prop_assert_eq!(wire.amount, 0);
            return Ok(());
        };
        let refund = Refund { descriptors: descriptors(wire.descriptors), amount };
        match timed("plan", || Plan::refund(policies, &refund))? {
            Ok(plan) => applies(Command::Refund { plan }, policies)?,
            Err(CoreError::InvalidRequest(message)) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }

    /// A load report: any name and any double, scaled or refused as invalid.
    #[test]
    fn fuzz_report_load_request(
        name in prop_oneof![Just("latency_ms".to_owned()), Just("cpu@node1".to_owned()), text()],
        value in prop_oneof![any::<f64>(), -2.0f64..3.0, 0.0f64..=1.0, Just(f64::NAN), Just(f64::INFINITY), Just(1e300), Just(-0.0)],
        ttl_ms in count(),
        set in 0usize..2,
    ) {
        let wire = ReportLoadRequest { name, value, ttl_ms };
        match timed("scale", || scale_report(&wire, &policy_sets()[set]))? {
            Ok((ppm, ttl)) => {
                prop_assert!(ppm <= 1_000_000);
                prop_assert!(ttl > 0 && ttl <= 3_600 * SECOND);
            }
            Err(CheckError::Invalid(_)) => {}
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }

    /// Protobuf bytes of every request message, mutated, through prost and on into the conversion.
    #[test]
    fn fuzz_request_protobuf_bytes(bytes in mutated_bytes({
        let mut all = seeds(&sample_checks());
        all.extend(seeds(&[CheckBatchRequest { checks: sample_checks() }]));
        all.extend(seeds(&[CheckStreamRequest { id: 7, checks: sample_checks() }]));
        all.extend(seeds(&[RefundRequest { descriptors: sample_checks()[0].descriptors.clone(), amount: 2 }]));
        all.extend(seeds(&[ReportLoadRequest { name: "latency_ms".to_owned(), value: 250.0, ttl_ms: 5_000 }]));
        all.extend(seeds(&[ReturnLeasesRequest { holder: 1 << 63, returns: vec![pb::LeaseReturn { lease_id: 1, unused: 3 }] }]));
        all
    })) {
        if let Some(wire) = prost_decodes::<CheckRequest>(&bytes)? {
            plans_or_is_invalid(wire, &policy_sets()[0])?;
        }
        if let Some(batch) = prost_decodes::<CheckBatchRequest>(&bytes)? {
            for wire in batch.checks {
                plans_or_is_invalid(wire, &policy_sets()[1])?;
            }
        }
        prost_decodes::<CheckStreamRequest>(&bytes)?;
        if let Some(refund) = prost_decodes::<RefundRequest>(&bytes)? {
            if let Some(amount) = Cost::new(refund.amount) {
                let refund = Refund { descriptors: descriptors(refund.descriptors), amount };
                let _ = Plan::refund(&policy_sets()[0], &refund);
            }
        }
        if let Some(report) = prost_decodes::<ReportLoadRequest>(&bytes)? {
            let _ = scale_report(&report, &policy_sets()[1]);
        }
        prost_decodes::<ReturnLeasesRequest>(&bytes)?;
    }
}

#[test]
fn fuzz_sample_checks_plan() {
    for wire in sample_checks() {
        let call = check_from_wire(wire).unwrap();
        let policies = &policy_sets()[if call.client_lease.is_some() { 1 } else { 0 }];
        Plan::check(policies, &call.check).unwrap();
    }
}
