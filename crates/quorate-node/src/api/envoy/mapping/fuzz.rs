//! Fuzz harness of Envoy's `RateLimitRequest`: protobuf bytes and arbitrary values through [`map_request`],
//! then planned against a policy set and applied as the node would. A request becomes a check or a
//! [`MappingError`], the check a plan or a typed invalid-request error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use prost::Message;
use quorate_core::CoreError;
use quorate_core::plan::Plan;
use quorate_core::policy::{MAX_NAME_LEN, MAX_VALUE_LEN};
use quorate_proto::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use quorate_proto::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{Entry, RateLimitOverride};
use quorate_proto::envoy::service::ratelimit::v3::RateLimitRequest;

use super::{MappingError, map_request};
use crate::command::{Command, LogEntry};
use crate::fuzzing::samples::{self, SECOND, T0};
use crate::fuzzing::{config, mutated_bytes, timed};
use crate::raft::replica::Replica;

fn replica() -> Replica {
    static REPLICA: OnceLock<Replica> = OnceLock::new();
    REPLICA.get_or_init(samples::busy_replica).clone()
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["remote_address", "key", "ip", "user", "tenant", "b1", "10.0.0.1", "GET", "/a|b"])
            .prop_map(str::to_owned),
        Just(String::new()),
        "[a-z0-9_-]{1,12}",
        "[a-z0-9_.-]{1,70}",
        "\\PC{0,40}",
        Just("%|%7C|%25".to_owned()),
        Just("v".repeat(MAX_VALUE_LEN + 1)),
        (1usize..5_000).prop_map(|n| "é".repeat(n)),
    ]
}

fn descriptor() -> impl Strategy<Value = RateLimitDescriptor> {
    let entry = (text(), text()).prop_map(|(key, value)| Entry { key, value });
    let limit = prop::option::weighted(
        0.3,
        (prop_oneof![Just(0u32), 1u32..100, any::<u32>()], prop_oneof![0i32..8, any::<i32>()])
            .prop_map(|(requests_per_unit, unit)| RateLimitOverride { requests_per_unit, unit }),
    );
    let hits = prop::option::of(prop_oneof![Just(0u64), 1u64..10, any::<u64>()]);
    (prop::collection::vec(entry, 0..5), limit, hits).prop_map(|(entries, limit, hits_addend)| RateLimitDescriptor {
        entries,
        limit,
        hits_addend,
    })
}

fn request() -> impl Strategy<Value = RateLimitRequest> {
    (text(), prop::collection::vec(descriptor(), 0..10), prop_oneof![Just(0u32), 1u32..10, any::<u32>()])
        .prop_map(|(domain, descriptors, hits_addend)| RateLimitRequest { domain, descriptors, hits_addend })
}

/// Maps, plans and applies `request`, checking each step's error is the typed one.
fn maps_plans_applies(request: &RateLimitRequest) -> Result<(), TestCaseError> {
    let check = match timed("map", || map_request(request))? {
        Ok(check) => check,
        Err(error) => {
            let expected = match &error {
                MappingError::NoDescriptors => request.descriptors.is_empty(),
                MappingError::NoEntries { descriptor } => request.descriptors[*descriptor].entries.is_empty(),
                MappingError::BadKey { descriptor, entry, key } => {
                    key.len() <= MAX_NAME_LEN
                        && request.descriptors[*descriptor].entries[*entry].key.starts_with(key.as_str())
                }
                MappingError::BadUnit { descriptor, unit } => {
                    request.descriptors[*descriptor].limit.as_ref().is_some_and(|l| l.unit == *unit)
                }
                MappingError::ZeroLimit { descriptor } => {
                    request.descriptors[*descriptor].limit.as_ref().is_some_and(|l| l.requests_per_unit == 0)
                }
            };
            prop_assert!(expected, "{} for {:?}", error, request);
            return Ok(());
        }
    };
    prop_assert_eq!(check.descriptors.len(), request.descriptors.len());
    let mut replica = replica();
    let policies = replica.policies.clone().expect("the replica has policies");
    match timed("plan", || Plan::check(&policies, &check))? {
        Ok(plan) => {
            let entry = LogEntry::Batch {
                time: T0 + 10 * SECOND,
                commands: vec![Command::Check { plan, peek: false, lease: None }],
            };
            timed("apply", || replica.apply(&entry))?;
        }
        Err(CoreError::InvalidRequest(message)) => prop_assert!(!message.is_empty()),
        Err(CoreError::CostExceedsLimit { cost, limit, .. }) => prop_assert!(cost > limit),
        Err(other) => prop_assert!(false, "unexpected error {:?}", other),
    }
    Ok(())
}

fn sample_requests() -> Vec<RateLimitRequest> {
    let entry = |key: &str, value: &str| Entry { key: key.to_owned(), value: value.to_owned() };
    vec![
        RateLimitRequest {
            domain: "edge".to_owned(),
            descriptors: vec![
                RateLimitDescriptor { entries: vec![entry("key", "b1")], limit: None, hits_addend: None },
                RateLimitDescriptor {
                    entries: vec![entry("method", "GET"), entry("path", "/v1/a|b")],
                    limit: Some(RateLimitOverride { requests_per_unit: 10, unit: 2 }),
                    hits_addend: Some(2),
                },
            ],
            hits_addend: 1,
        },
        RateLimitRequest {
            domain: String::new(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![entry("ip", "10.0.0.1")],
                limit: None,
                hits_addend: None,
            }],
            hits_addend: 0,
        },
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary requests.
    #[test]
    fn fuzz_envoy_request_values(request in request()) {
        maps_plans_applies(&request)?;
    }

    /// Protobuf bytes of requests, mutated.
    #[test]
    fn fuzz_envoy_request_protobuf_bytes(bytes in mutated_bytes(sample_requests().iter().map(Message::encode_to_vec).collect())) {
        if let Ok(request) = timed("decode", || RateLimitRequest::decode(bytes.as_slice()))? {
            let encoded = request.encode_to_vec();
            prop_assert_eq!(&RateLimitRequest::decode(encoded.as_slice()).expect("re-decodes"), &request);
            maps_plans_applies(&request)?;
        }
    }
}

#[test]
fn fuzz_sample_envoy_requests_plan() {
    let policies = replica().policies.unwrap();
    for request in sample_requests() {
        Plan::check(&policies, &map_request(&request).unwrap()).unwrap();
    }
}
