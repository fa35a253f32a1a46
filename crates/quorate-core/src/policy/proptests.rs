//! Property tests of the policy model: no request and no config, however malformed, makes it panic.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::CoreError;
use crate::adaptive::Multiplier;

/// Dimensions from the sample, malformed ones and random text.
fn dimension() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("api_key".to_owned()),
        Just("ip".to_owned()),
        Just("agent_id".to_owned()),
        Just(String::new()),
        Just("a=b".to_owned()),
        "[a-z0-9_.-]{1,70}",
        ".{0,80}",
    ]
}

/// Values: typical, empty, at and beyond the length limit, and arbitrary unicode.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "agent_[0-9]{1,3}",
        "admin_[a-z]{0,3}",
        "[0-9.]{1,15}",
        Just("é".repeat(128)),
        Just("x".repeat(MAX_VALUE_LEN + 1)),
        ".{0,300}",
        "\\PC{0,40}",
    ]
}

fn descriptor() -> impl Strategy<Value = Descriptor> {
    let policy = prop::option::weighted(
        0.2,
        prop_oneof![Just("agent".to_owned()), Just("per_ip".to_owned()), Just("missing".to_owned()), ".{0,10}"],
    );
    (dimension(), value(), policy).prop_map(|(dimension, value, policy)| Descriptor { dimension, value, policy })
}

/// TOML text for one policy `p` from random, often invalid, parameter values.
fn policy_toml() -> impl Strategy<Value = String> {
    let algorithm = prop_oneof![
        Just("token_bucket"),
        Just("sliding_window"),
        Just("window_counter"),
        Just("fixed_window"),
        Just("bogus")
    ];
    let count = prop_oneof![0i64..5, 1i64..100_000, any::<i64>(), Just(1i64 << 40), Just((1i64 << 40) + 1)];
    let period = prop_oneof![
        Just("1m".to_owned()),
        Just("0s".to_owned()),
        Just("1ns".to_owned()),
        Just("600000y".to_owned()),
        Just("99999999999999999999s".to_owned()),
        "[0-9]{1,6}(ns|ms|s|m|h|d|w)",
        ".{0,8}",
    ];
    let calendar = prop_oneof![Just("day"), Just("month"), Just("week"), Just("fortnight")];
    let floor = prop_oneof![
        Just("0.25".to_owned()),
        Just("nan".to_owned()),
        Just("1".to_owned()),
        any::<f64>().prop_map(|f| format!("{f:?}"))
    ];
    (
        algorithm,
        count.clone(),
        prop::option::of(period),
        prop::option::of(count.clone()),
        prop::option::of(count),
        prop::option::of(calendar),
        prop::option::of(any::<bool>()),
        prop::option::of(floor),
    )
        .prop_map(|(algorithm, limit, period, burst, precision, calendar, adaptive, floor)| {
            let mut text = format!("[policies.p]\nalgorithm = \"{algorithm}\"\nlimit = {limit}\n");
            if let Some(period) = period {
                text += &format!("period = {period:?}\n");
            }
            if let Some(burst) = burst {
                text += &format!("burst = {burst}\n");
            }
            if let Some(precision) = precision {
                text += &format!("precision = {precision}\n");
            }
            if let Some(calendar) = calendar {
                text += &format!("calendar = \"{calendar}\"\n");
            }
            if let Some(adaptive) = adaptive {
                text += &format!("adaptive = {adaptive}\n");
            }
            if let Some(floor) = floor {
                text += &format!("adaptive_floor = {floor}\n");
            }
            text
        })
}

fn rule_toml() -> impl Strategy<Value = String> {
    let text = || prop::option::of(prop_oneof![Just("p".to_owned()), Just(String::new()), "[a-z_]{1,5}", ".{0,5}"]);
    (dimension(), text(), text(), text()).prop_map(|(dimension, value, prefix, policy)| {
        let mut rule = format!("[[rules]]\ndimension = {dimension:?}\n");
        for (key, text) in [("value", value), ("prefix", prefix), ("policy", policy)] {
            if let Some(text) = text {
                rule += &format!("{key} = {text:?}\n");
            }
        }
        rule
    })
}

proptest! {
    /// Any request either resolves to distinct, well-formed limits or is refused as invalid; it never panics.
    #[test]
    fn random_descriptors_resolve_or_are_invalid_requests(descriptors in prop::collection::vec(descriptor(), 0..20)) {
        let set = PolicySet::sample();
        match set.resolve(&descriptors) {
            Ok(limits) => {
                prop_assert!(!limits.is_empty() && limits.len() <= descriptors.len());
                for (limit, descriptor) in limits.iter().zip(&descriptors) {
                    prop_assert!(set.policy(limit.policy).is_some());
                    prop_assert_eq!(limit.key.as_str(), format!("{}={}", descriptor.dimension, descriptor.value));
                }
            }
            Err(CoreError::InvalidRequest(message)) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }

    /// Any config built from random parameters validates or fails with a config error; it never panics.
    #[test]
    fn random_policy_configs_never_panic(
        policy in policy_toml(),
        rules in prop::collection::vec(rule_toml(), 0..4),
        unmatched in prop_oneof![Just(""), Just("unmatched = \"ignore\"\n"), Just("unmatched = 3\n")],
    ) {
        let text = format!("{unmatched}{policy}{}", rules.concat());
        match PolicySet::from_toml(&text) {
            Ok(set) => {
                prop_assert_eq!(set.len(), 1);
                let limiter = set.policy(0).unwrap().limiter();
                prop_assert!(limiter.base_limit() >= 1 && limiter.period() >= 1);
                for multiplier in [Multiplier::ONE, Multiplier::from_ppm(1)] {
                    let limit = set.effective_limit(0, multiplier).unwrap();
                    prop_assert!((1..=limiter.base_limit()).contains(&limit));
                }
            }
            Err(CoreError::InvalidParameter { field, .. }) => {
                prop_assert!(field.starts_with("policies") || field.starts_with("rules["), "{}", field);
            }
            Err(CoreError::Config(_)) => {}
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }
}
