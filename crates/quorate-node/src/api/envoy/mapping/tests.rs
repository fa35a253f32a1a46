use quorate_proto::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;

use super::*;

fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries.iter().map(|(k, v)| Entry { key: (*k).into(), value: (*v).into() }).collect(),
        limit: None,
        hits_addend: None,
    }
}

fn mapped(entries: &[(&str, &str)]) -> (String, String) {
    let d = map_descriptor(0, &descriptor(entries)).unwrap();
    (d.dimension, d.value)
}

/// The inverse of the mapping, to prove that it loses nothing: dimension and value back to entries.
fn unmap(dimension: &str, value: &str) -> Vec<(String, String)> {
    let keys: Vec<&str> = dimension.split('.').collect();
    let values: Vec<&str> = value.split('|').collect();
    assert_eq!(keys.len(), values.len(), "{dimension} = {value}");
    let unescape = |v: &str| if v == "%" { String::new() } else { v.replace("%7C", "|").replace("%25", "%") };
    keys.iter().zip(values).map(|(k, v)| ((*k).to_owned(), unescape(v))).collect()
}

#[test]
fn single_entry_maps_to_its_key_and_value_unchanged() {
    assert_eq!(mapped(&[("remote_address", "10.0.0.1")]), ("remote_address".into(), "10.0.0.1".into()));
    assert_eq!(mapped(&[("api_key", "agent_42")]), ("api_key".into(), "agent_42".into()));
    assert_eq!(mapped(&[("path", "/v1/chat?x=1")]), ("path".into(), "/v1/chat?x=1".into()));
}

#[test]
fn several_entries_join_keys_with_dots_and_escaped_values_with_bars() {
    assert_eq!(mapped(&[("method", "GET"), ("path", "/a|b")]), ("method.path".into(), "GET|/a%7Cb".into()));
    assert_eq!(mapped(&[("a", "50%"), ("b", "")]), ("a.b".into(), "50%25|%".into()));
}

#[test]
fn key_only_entries_map_to_a_lone_percent() {
    assert_eq!(mapped(&[("generic_key", "")]), ("generic_key".into(), "%".into()));
    assert_ne!(mapped(&[("generic_key", "")]), mapped(&[("generic_key", "%")]));
}

#[test]
fn mapping_round_trips_and_never_merges_distinct_descriptors() {
    let cases: &[&[(&str, &str)]] = &[
        &[("a", "x|y"), ("b", "z")],
        &[("a", "x"), ("b", "y|z")],
        &[("a", "x%7Cy"), ("b", "z")],
        &[("a", ""), ("b", "")],
        &[("a", "%"), ("b", "")],
        &[("a", "|"), ("b", "%")],
        &[("a", "x")],
        &[("a", "x|y")],
        &[("a", "")],
        &[("a-b", "1"), ("c_d", "2"), ("e", "3")],
    ];
    let mut seen = std::collections::BTreeSet::new();
    for entries in cases {
        let (dimension, value) = mapped(entries);
        let back = unmap(&dimension, &value);
        let expected: Vec<(String, String)> = entries.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        assert_eq!(back, expected, "{dimension} = {value}");
        assert!(seen.insert((dimension, value)), "{entries:?} collides with an earlier case");
    }
}

#[test]
fn keys_that_are_not_lowercase_identifiers_without_dots_are_refused() {
    for key in ["", "X-Api-Key", "a.b", "key with space", "k".repeat(65).as_str()] {
        let error = map_descriptor(3, &descriptor(&[("ok", "v"), (key, "v")])).unwrap_err();
        assert!(matches!(error, MappingError::BadKey { descriptor: 3, entry: 1, .. }), "{key:?}: {error}");
        assert!(error.to_string().contains("lowercase letters"), "{error}");
    }
}

#[test]
fn empty_requests_and_descriptors_are_refused() {
    assert_eq!(map_request(&RateLimitRequest::default()), Err(MappingError::NoDescriptors));
    let request = RateLimitRequest { descriptors: vec![descriptor(&[])], ..Default::default() };
    assert_eq!(map_request(&request), Err(MappingError::NoEntries { descriptor: 0 }));
}

#[test]
fn descriptor_hits_addend_overrides_the_requests_and_zero_counts_as_one() {
    let mut own = descriptor(&[("a", "1")]);
    own.hits_addend = Some(5);
    let mut zero = descriptor(&[("b", "2")]);
    zero.hits_addend = Some(0);
    let request = RateLimitRequest {
        domain: "edge".into(),
        descriptors: vec![own, zero, descriptor(&[("c", "3")])],
        hits_addend: 0,
    };
    let Check { cost, overrides, peek, .. } = map_request(&request).unwrap();
    assert_eq!((cost, peek), (Cost::ONE, false));
    let costs: Vec<Option<u64>> = overrides.iter().map(|o| o.cost.map(Cost::get)).collect();
    assert_eq!(costs, [Some(5), Some(1), None]);

    let plain = RateLimitRequest { descriptors: vec![descriptor(&[("c", "3")])], hits_addend: 4, ..Default::default() };
    let Check { cost, overrides, .. } = map_request(&plain).unwrap();
    assert_eq!(cost.get(), 4);
    assert!(overrides.is_empty(), "no per-descriptor settings: no override list");
}

#[test]
fn limit_overrides_map_units_and_refuse_unknown_ones_and_zero() {
    let with_limit = |unit: i32, requests_per_unit: u32| {
        let mut d = descriptor(&[("a", "1")]);
        d.limit = Some(RateLimitOverride { requests_per_unit, unit });
        RateLimitRequest { descriptors: vec![d], ..Default::default() }
    };
    let units = [(1, OverrideUnit::Second), (2, OverrideUnit::Minute), (3, OverrideUnit::Hour)];
    let units = units.into_iter().chain([(4, OverrideUnit::Day), (5, OverrideUnit::Month), (6, OverrideUnit::Year)]);
    for (number, unit) in units {
        let Check { overrides, .. } = map_request(&with_limit(number, 10)).unwrap();
        assert_eq!(overrides[0].limit, Some(LimitOverride { requests_per_unit: 10, unit }));
    }
    assert_eq!(map_request(&with_limit(0, 10)), Err(MappingError::BadUnit { descriptor: 0, unit: 0 }));
    assert_eq!(map_request(&with_limit(9, 10)), Err(MappingError::BadUnit { descriptor: 0, unit: 9 }));
    assert_eq!(map_request(&with_limit(2, 0)), Err(MappingError::ZeroLimit { descriptor: 0 }));
}
