//! Tests of the policy model: the sample config, rule precedence, request validation, config validation paths,
//! effective limits, deterministic ids and the wire form. Property tests are in `proptests.rs`.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::adaptive::Multiplier;
use crate::{CalendarUnit, CoreError, Limiter, PolicyId, WindowSpan};

fn names(set: &PolicySet, limits: &[ResolvedLimit]) -> Vec<String> {
    limits.iter().map(|limit| set.policy(limit.policy).unwrap().name().to_owned()).collect()
}

fn resolve_one(set: &PolicySet, descriptor: Descriptor) -> Result<String, CoreError> {
    let limits = set.resolve(&[descriptor])?;
    assert_eq!(limits.len(), 1);
    Ok(names(set, &limits).remove(0))
}

fn request_error(set: &PolicySet, descriptors: &[Descriptor]) -> String {
    match set.resolve(descriptors) {
        Err(CoreError::InvalidRequest(message)) => message,
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

/// A policy set whose rules exercise precedence within the `api_key` dimension.
fn tiered(unmatched: &str) -> PolicySet {
    PolicySet::from_toml(&format!(
        r#"
        unmatched = "{unmatched}"
        [policies.short]
        algorithm = "window_counter"
        limit = 1
        period = "1s"
        [policies.long]
        algorithm = "window_counter"
        limit = 2
        period = "1s"
        [policies.exact]
        algorithm = "window_counter"
        limit = 3
        period = "1s"
        [policies.fallback]
        algorithm = "window_counter"
        limit = 4
        period = "1s"
        [[rules]]
        dimension = "api_key"
        policy = "fallback"
        [[rules]]
        dimension = "api_key"
        prefix = "ag"
        policy = "short"
        [[rules]]
        dimension = "api_key"
        prefix = "agent_"
        policy = "long"
        [[rules]]
        dimension = "api_key"
        value = "agent_7"
        policy = "exact"
        [[rules]]
        dimension = "user"
        prefix = "u"
        policy = "short"
        "#
    ))
    .unwrap()
}

#[test]
fn sample_parses() {
    let set = PolicySet::from_toml(SAMPLE_POLICIES_TOML).unwrap();
    assert_eq!(set.version(), PolicySet::FIRST_VERSION);
    assert_eq!(set.unmatched(), Unmatched::Reject);
    let default = set.policy(set.id_of("default").unwrap()).unwrap();
    assert!(default.is_adaptive());
    assert_eq!(default.adaptive_floor(), Multiplier::from_ppm(250_000));
    assert_eq!(default.on_no_quorum(), NoQuorumMode::Deny);
    assert_eq!(set, PolicySet::sample());
}

#[test]
fn sample_resolves_the_seed_tiers() {
    let set = PolicySet::sample();
    let cases = [
        ("api_key", "agent_42", "agent", 200),
        ("api_key", "admin_1", "admin", 1000),
        ("api_key", "xyz", "default", 60),
        ("ip", "10.0.0.1", "per_ip", 600),
        ("agent_id", "planner-7", "per_agent", 200),
    ];
    for (dimension, value, policy, limit) in cases {
        let limits = set.resolve(&[Descriptor::new(dimension, value)]).unwrap();
        assert_eq!(names(&set, &limits), [policy], "{dimension} = {value}");
        assert_eq!(limits[0].key, format!("{dimension}={value}"));
        assert_eq!(set.policy(limits[0].policy).unwrap().base_limit(), limit);
    }
    let per_ip = set.policy(set.id_of("per_ip").unwrap()).unwrap();
    match per_ip.limiter() {
        Limiter::SlidingWindow(window) => {
            assert_eq!(window.precision(), 60);
            assert_eq!(window.window(), 60_000_000_000);
        }
        other => panic!("per_ip should be a sliding window, got {other:?}"),
    }
}

#[test]
fn one_request_resolves_every_descriptor_in_order() {
    let set = PolicySet::sample();
    let limits = set
        .resolve(&[
            Descriptor::new("api_key", "agent_42"),
            Descriptor::new("ip", "10.0.0.1"),
            Descriptor::new("agent_id", "planner-7"),
        ])
        .unwrap();
    assert_eq!(names(&set, &limits), ["agent", "per_ip", "per_agent"]);
}

#[test]
fn explicit_policy_overrides_rules() {
    let set = PolicySet::sample();
    let descriptor = Descriptor::new("api_key", "agent_42").with_policy("admin");
    assert_eq!(resolve_one(&set, descriptor).unwrap(), "admin");
    // Even a dimension no rule knows is limited when it names its policy.
    let descriptor = Descriptor::new("tenant", "acme").with_policy("per_ip");
    assert_eq!(resolve_one(&set, descriptor).unwrap(), "per_ip");
}

#[test]
fn longest_prefix_wins() {
    let set = tiered("reject");
    assert_eq!(resolve_one(&set, Descriptor::new("api_key", "agent_8")).unwrap(), "long");
    assert_eq!(resolve_one(&set, Descriptor::new("api_key", "agx")).unwrap(), "short");
    assert_eq!(resolve_one(&set, Descriptor::new("api_key", "zzz")).unwrap(), "fallback");
}

#[test]
fn exact_value_beats_prefix_and_any() {
    let set = tiered("reject");
    assert_eq!(resolve_one(&set, Descriptor::new("api_key", "agent_7")).unwrap(), "exact");
    // Only the exact value: a longer value falls back to the prefixes.
    assert_eq!(resolve_one(&set, Descriptor::new("api_key", "agent_77")).unwrap(), "long");
}

#[test]
fn rule_order_in_the_file_does_not_matter() {
    let forward = tiered("reject");
    let mut spec: PolicySetSpec = toml::from_str(
        r#"
        [policies.a]
        algorithm = "window_counter"
        limit = 1
        period = "1s"
        [policies.b]
        algorithm = "window_counter"
        limit = 1
        period = "1s"
        "#,
    )
    .unwrap();
    let rule = |prefix: &str, policy: &str| RuleSpec {
        dimension: "k".into(),
        value: None,
        prefix: Some(prefix.into()),
        policy: policy.into(),
    };
    spec.rules = vec![rule("ab", "b"), rule("a", "a")];
    let one = PolicySet::from_spec(spec.clone()).unwrap();
    spec.rules.reverse();
    let other = PolicySet::from_spec(spec).unwrap();
    for set in [&one, &other] {
        assert_eq!(resolve_one(set, Descriptor::new("k", "abc")).unwrap(), "b");
        assert_eq!(resolve_one(set, Descriptor::new("k", "ax")).unwrap(), "a");
    }
    assert_eq!(resolve_one(&forward, Descriptor::new("user", "u1")).unwrap(), "short");
}

#[test]
fn unmatched_reject_names_dimension_and_value() {
    let set = tiered("reject");
    let message = request_error(&set, &[Descriptor::new("user", "bob")]);
    assert!(message.contains("user") && message.contains("\"bob\"") && message.contains("no policy rule"), "{message}");
    let message = request_error(&set, &[Descriptor::new("api_key", "k"), Descriptor::new("region", "eu")]);
    assert!(message.contains("descriptor 1 (region = \"eu\")"), "{message}");
}

#[test]
fn unmatched_ignore_skips_only_that_descriptor() {
    let set = tiered("ignore");
    let limits = set.resolve(&[Descriptor::new("region", "eu"), Descriptor::new("api_key", "k")]).unwrap();
    assert_eq!(names(&set, &limits), ["fallback"]);
    assert_eq!(limits[0].key, "api_key=k");
}

#[test]
fn request_with_no_limit_is_an_error() {
    let set = tiered("ignore");
    let message = request_error(&set, &[Descriptor::new("region", "eu")]);
    assert!(message.contains("no limit to check"), "{message}");
    let message = request_error(&set, &[]);
    assert!(message.contains("at least one descriptor"), "{message}");
}

#[test]
fn same_limit_twice_is_an_error() {
    let set = PolicySet::sample();
    let twice = [Descriptor::new("ip", "1.2.3.4"), Descriptor::new("ip", "1.2.3.4")];
    let message = request_error(&set, &twice);
    assert!(message.contains("charged twice") && message.contains("per_ip"), "{message}");
    // The same key under two policies is two limits.
    let two = [Descriptor::new("ip", "1.2.3.4"), Descriptor::new("ip", "1.2.3.4").with_policy("default")];
    assert_eq!(names(&set, &set.resolve(&two).unwrap()), ["per_ip", "default"]);
}

#[test]
fn malformed_descriptors_are_invalid_requests() {
    let set = PolicySet::sample();
    let cases = [
        (Descriptor::new("", "x"), "dimension must not be empty"),
        (Descriptor::new("Api_Key", "x"), "is not an identifier"),
        (Descriptor::new("ip=1", "x"), "is not an identifier"),
        (Descriptor::new("d".repeat(65), "x"), "bytes long"),
        (Descriptor::new("ip", ""), "value is empty"),
        (Descriptor::new("ip", "v".repeat(MAX_VALUE_LEN + 1)), "257 bytes long, above the maximum 256"),
        (Descriptor::new("ip", "1.2.3.4").with_policy("nope"), "unknown policy \"nope\""),
        (Descriptor::new("ip", "1.2.3.4").with_policy(""), "unknown policy \"\""),
    ];
    for (descriptor, expected) in cases {
        let message = request_error(&set, std::slice::from_ref(&descriptor));
        assert!(message.contains(expected), "{descriptor:?}: {message}");
    }
    assert!(set.resolve(&[Descriptor::new("ip", "v".repeat(MAX_VALUE_LEN))]).is_ok());
}

#[test]
fn too_many_descriptors_are_refused() {
    let set = PolicySet::sample();
    let many: Vec<_> = (0..=MAX_DESCRIPTORS).map(|i| Descriptor::new("ip", format!("10.0.0.{i}"))).collect();
    let message = request_error(&set, &many);
    assert!(message.contains("at most 16 descriptors, this one has 17"), "{message}");
    assert_eq!(set.resolve(&many[..MAX_DESCRIPTORS]).unwrap().len(), MAX_DESCRIPTORS);
}

/// A config with one policy `p` made of `policy` (TOML lines) and the given trailing rules.
fn config(policy: &str, rules: &str) -> String {
    format!("[policies.p]\n{policy}\n{rules}")
}

fn config_error(text: &str) -> String {
    match PolicySet::from_toml(text) {
        Err(error @ (CoreError::InvalidParameter { .. } | CoreError::Config(_))) => error.to_string(),
        other => panic!("expected a config error for\n{text}\ngot {other:?}"),
    }
}

#[test]
fn policy_errors_name_their_path() {
    let tb = "algorithm = \"token_bucket\"\nlimit = 10\nperiod = \"1m\"";
    let sw = "algorithm = \"sliding_window\"\nlimit = 10\nperiod = \"1m\"";
    let fw = "algorithm = \"fixed_window\"\nlimit = 10";
    let cases = [
        (format!("{tb}\nprecision = 10"), "policies.p.precision: does not apply to algorithm `token_bucket`"),
        (format!("{tb}\ncalendar = \"day\""), "policies.p.calendar: does not apply"),
        (format!("{sw}\nburst = 10"), "policies.p.burst: does not apply to algorithm `sliding_window`"),
        (format!("{fw}\nprecision = 2"), "policies.p.precision: does not apply"),
        (format!("{fw}\nperiod = \"1h\"\ncalendar = \"day\""), "policies.p.calendar: give either"),
        (fw.to_owned(), "policies.p.period: algorithm `fixed_window` needs"),
        ("algorithm = \"token_bucket\"\nlimit = 10".to_owned(), "policies.p.period: algorithm `token_bucket` needs"),
        (
            "algorithm = \"window_counter\"\nlimit = 1\nperiod = \"soon\"".to_owned(),
            "policies.p.period: \"soon\" is not",
        ),
        ("algorithm = \"token_bucket\"\nlimit = 0\nperiod = \"1m\"".to_owned(), "policies.p.limit: must be at least 1"),
        (format!("{tb}\nburst = 0"), "policies.p.burst: must be at least 1"),
        ("algorithm = \"token_bucket\"\nlimit = 1\nperiod = \"0s\"".to_owned(), "policies.p.period: must be longer"),
        ("algorithm = \"window_counter\"\nlimit = 1\nperiod = \"100y\"".to_owned(), "policies.p.period: 3155"),
        (
            "algorithm = \"window_counter\"\nlimit = 1\nperiod = \"1000y\"".to_owned(),
            "policies.p.period: \"1000y\" is above",
        ),
        ("algorithm = \"fixed_window\"\nlimit = 1099511627777\ncalendar = \"day\"".to_owned(), "policies.p.limit:"),
        (format!("{sw}\nprecision = 7"), "policies.p.precision: window of 60000000000ns does not divide"),
        (format!("{sw}\nprecision = 0"), "policies.p.precision: 0 is outside"),
        (format!("{tb}\nadaptive = true\nadaptive_floor = 0"), "policies.p.adaptive_floor: 0 is outside (0, 1]"),
        (format!("{tb}\nadaptive = true\nadaptive_floor = 1.5"), "policies.p.adaptive_floor: 1.5 is outside"),
        (format!("{tb}\nadaptive = true\nadaptive_floor = nan"), "policies.p.adaptive_floor: NaN is outside"),
        (format!("{tb}\nadaptive = true\nadaptive_floor = 1e-9"), "policies.p.adaptive_floor: 0.000000001 is below"),
        (format!("{tb}\nadaptive_floor = 0.5"), "policies.p.adaptive_floor: only applies with `adaptive = true`"),
    ];
    for (policy, expected) in cases {
        let message = config_error(&config(&policy, ""));
        assert!(message.contains(expected), "expected {expected:?} in {message:?}");
    }
    let message = config_error("[policies.Per_IP]\nalgorithm = \"token_bucket\"\nlimit = 1\nperiod = \"1s\"");
    assert!(message.contains("policies.\"Per_IP\": \"Per_IP\" is not an identifier"), "{message}");
    let message = config_error("unmatched = \"ignore\"");
    assert!(message.contains("policies: at least one policy is required"), "{message}");
}

#[test]
fn rule_errors_name_their_path() {
    let policy = "algorithm = \"token_bucket\"\nlimit = 10\nperiod = \"1m\"";
    let ok = "[[rules]]\ndimension = \"ip\"\npolicy = \"p\"\n";
    let cases = [
        (format!("{ok}[[rules]]\ndimension = \"ip\"\nprefix = \"10.\"\npolicy = \"q\""), "rules[1].policy: unknown policy \"q\""),
        (format!("{ok}[[rules]]\ndimension = \"ip\"\npolicy = \"p\""), "rules[1]: has the same dimension and matcher as rules[0]"),
        (
            "[[rules]]\ndimension = \"ip\"\nvalue = \"1\"\npolicy = \"p\"\n[[rules]]\ndimension = \"ip\"\nvalue = \"1\"\npolicy = \"p\""
                .to_owned(),
            "rules[1]: has the same dimension and matcher as rules[0]",
        ),
        ("[[rules]]\ndimension = \"ip\"\nvalue = \"1\"\nprefix = \"1\"\npolicy = \"p\"".to_owned(), "rules[0].prefix: cannot be combined"),
        ("[[rules]]\ndimension = \"ip\"\nprefix = \"\"\npolicy = \"p\"".to_owned(), "rules[0].prefix: must not be empty"),
        ("[[rules]]\ndimension = \"ip\"\nvalue = \"\"\npolicy = \"p\"".to_owned(), "rules[0].value: must not be empty"),
        (format!("[[rules]]\ndimension = \"ip\"\nvalue = \"{}\"\npolicy = \"p\"", "x".repeat(300)), "rules[0].value: is 300 bytes"),
        ("[[rules]]\ndimension = \"IP\"\npolicy = \"p\"".to_owned(), "rules[0].dimension: \"IP\" is not an identifier"),
        ("[[rules]]\ndimension = \"\"\npolicy = \"p\"".to_owned(), "rules[0].dimension: must not be empty"),
    ];
    for (rules, expected) in cases {
        let message = config_error(&config(policy, &rules));
        assert!(message.contains(expected), "expected {expected:?} in {message:?}");
    }
    // The same value under two dimensions, or as both exact value and prefix, is not a duplicate.
    let distinct = "[[rules]]\ndimension = \"ip\"\nvalue = \"1\"\npolicy = \"p\"\n\
                    [[rules]]\ndimension = \"ip\"\nprefix = \"1\"\npolicy = \"p\"\n\
                    [[rules]]\ndimension = \"ip6\"\nvalue = \"1\"\npolicy = \"p\"";
    assert!(PolicySet::from_toml(&config(policy, distinct)).is_ok());
}

#[test]
fn unknown_keys_are_config_errors_with_their_line() {
    let cases = [
        ("[policies.p]\nalgorithm = \"token_bucket\"\nlimt = 10\nperiod = \"1m\"", "limt"),
        ("unmatch = \"ignore\"", "unmatch"),
        ("[[rule]]\ndimension = \"ip\"\npolicy = \"p\"", "rule"),
        ("[[rules]]\ndimension = \"ip\"\nvalues = \"1\"\npolicy = \"p\"", "values"),
        ("[policies.p]\nalgorithm = \"token_bukcet\"\nlimit = 1\nperiod = \"1m\"", "token_bukcet"),
        ("unmatched = \"drop\"", "drop"),
        ("[policies.p]\nalgorithm = \"fixed_window\"\nlimit = 1\ncalendar = \"fortnight\"", "fortnight"),
        ("[policies.p]\nalgorithm = \"token_bucket\"\nlimit = -1\nperiod = \"1m\"", "-1"),
        ("[policies.p]\nalgorithm = \"token_bucket\"\nlimit = 1\nperiod = \"1m\"\non_no_quorum = \"retry\"", "retry"),
    ];
    for (text, typo) in cases {
        match PolicySet::from_toml(text) {
            Err(CoreError::Config(message)) => {
                assert!(message.contains(typo) && message.contains("line"), "{typo}: {message}");
            }
            other => panic!("{typo}: expected CoreError::Config, got {other:?}"),
        }
    }
}

#[test]
fn optional_keys_take_their_documented_defaults() {
    let text = "[policies.p]\nalgorithm = \"sliding_window\"\nlimit = 5\nperiod = \"1m\"\n\
                [policies.q]\nalgorithm = \"token_bucket\"\nlimit = 5\nperiod = \"1s\"\nburst = 9\nadaptive = true\n\
                on_no_quorum = \"local\"\n\
                [policies.r]\nalgorithm = \"fixed_window\"\nlimit = 5\ncalendar = \"month\"\non_no_quorum = \"allow\"\n\
                [policies.s]\nalgorithm = \"token_bucket\"\nlimit = 5\nperiod = \"1s\"\nadaptive = true\nadaptive_floor = 1";
    let set = PolicySet::from_toml(text).unwrap();
    let policy = |name: &str| set.policy(set.id_of(name).unwrap()).unwrap().clone();
    let p = policy("p");
    assert!(matches!(p.limiter(), Limiter::SlidingWindow(w) if w.precision() == DEFAULT_PRECISION));
    assert!(!p.is_adaptive());
    assert_eq!(p.on_no_quorum(), NoQuorumMode::Deny);
    let q = policy("q");
    assert!(matches!(q.limiter(), Limiter::TokenBucket(b) if b.capacity() == 9 && b.refill_amount() == 5));
    assert_eq!(q.adaptive_floor(), Multiplier::from_ppm(DEFAULT_ADAPTIVE_FLOOR_PPM));
    assert_eq!(q.on_no_quorum(), NoQuorumMode::Local);
    let r = policy("r");
    assert!(matches!(r.limiter(), Limiter::FixedWindow(w) if w.span() == WindowSpan::Calendar(CalendarUnit::Month)));
    assert_eq!(r.on_no_quorum(), NoQuorumMode::Allow);
    // An integer floor is accepted as a number.
    assert_eq!(policy("s").adaptive_floor(), Multiplier::ONE);
    assert_eq!(set.unmatched(), Unmatched::Reject);
    assert!(set.rules().is_empty());
}

#[test]
fn effective_limit_applies_the_multiplier_to_adaptive_policies_only() {
    let set = PolicySet::sample();
    let default = set.id_of("default").unwrap();
    let per_ip = set.id_of("per_ip").unwrap();
    assert_eq!(set.effective_limit(default, Multiplier::ONE), Some(60));
    assert_eq!(set.effective_limit(default, Multiplier::from_ppm(500_000)), Some(30));
    // 10% would be 6, but the floor of 0.25 keeps 15.
    assert_eq!(set.effective_limit(default, Multiplier::from_ppm(100_000)), Some(15));
    assert_eq!(set.effective_limit(per_ip, Multiplier::from_ppm(100_000)), Some(600));
    assert_eq!(set.effective_limit(set.len() as PolicyId, Multiplier::ONE), None);
}

#[test]
fn limit_refs_carry_limiters_keys_and_effective_limits() {
    let set = PolicySet::sample();
    let resolved = set.resolve(&[Descriptor::new("api_key", "agent_1"), Descriptor::new("ip", "::1")]).unwrap();
    let refs = set.limit_refs(&resolved, Multiplier::from_ppm(500_000)).unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(
        (refs[0].policy, refs[0].key, refs[0].effective_limit),
        (set.id_of("agent").unwrap(), "api_key=agent_1", 100)
    );
    assert_eq!(refs[0].limiter, set.policy(refs[0].policy).unwrap().limiter());
    assert_eq!((refs[1].key, refs[1].effective_limit), ("ip=::1", 600));
    let stale = [ResolvedLimit { policy: 99, key: "ip=::1".into() }];
    assert!(matches!(set.limit_refs(&stale, Multiplier::ONE), Err(CoreError::InvalidRequest(_))));
}

#[test]
fn policy_ids_follow_name_order_whatever_the_file_order() {
    let set = PolicySet::sample();
    let ids: Vec<(PolicyId, &str)> = set.policies().map(|(id, policy)| (id, policy.name())).collect();
    assert_eq!(ids, [(0, "admin"), (1, "agent"), (2, "default"), (3, "per_agent"), (4, "per_ip")]);
    for (id, policy) in set.policies() {
        assert_eq!(set.id_of(policy.name()), Some(id));
    }
    assert_eq!(set.id_of("nope"), None);
    let one = "[policies.b]\nalgorithm = \"window_counter\"\nlimit = 1\nperiod = \"1s\"\n\
               [policies.a]\nalgorithm = \"window_counter\"\nlimit = 2\nperiod = \"1s\"";
    let other = "[policies.a]\nalgorithm = \"window_counter\"\nlimit = 2\nperiod = \"1s\"\n\
                 [policies.b]\nalgorithm = \"window_counter\"\nlimit = 1\nperiod = \"1s\"";
    assert_eq!(PolicySet::from_toml(one).unwrap(), PolicySet::from_toml(other).unwrap());
}

#[test]
fn wire_form_round_trips_and_rebuilds_the_index() {
    let set = PolicySet::sample().with_version(7);
    let bytes = bincode::serialize(&set).unwrap();
    let back: PolicySet = bincode::deserialize(&bytes).unwrap();
    assert_eq!(back, set);
    assert_eq!(back.version(), 7);
    let limits = back.resolve(&[Descriptor::new("api_key", "admin_9")]).unwrap();
    assert_eq!(names(&back, &limits), ["admin"]);
}

#[test]
fn adaptive_section_configures_the_controller() {
    let text = format!(
        "{}\n[adaptive]\nrelax_after = \"2s\"\naggregation = \"mean\"\n[adaptive.scales.llm_latency_p95_ms]\nlow = 500.0\nhigh = 3000.0\n",
        SAMPLE_POLICIES_TOML
    );
    let set = PolicySet::from_toml(&text).unwrap();
    assert_eq!(set.adaptive().relax_after, 2_000_000_000);
    assert!(set.adaptive().scales.contains_key("llm_latency_p95_ms"));
    let bad = format!("{SAMPLE_POLICIES_TOML}\n[adaptive]\nhysteresis = 0.5\n");
    let message = PolicySet::from_toml(&bad).unwrap_err().to_string();
    assert!(message.contains("hysteresis"), "{message}");
}

#[test]
fn wire_form_with_unsorted_policies_is_refused() {
    // Same field layout as a serialized PolicySet.
    #[derive(serde::Serialize)]
    struct Wire {
        version: u64,
        unmatched: Unmatched,
        policies: Vec<Policy>,
        rules: Vec<Rule>,
        adaptive: crate::adaptive::AdaptiveConfig,
    }
    let set = PolicySet::sample();
    let mut policies: Vec<Policy> = set.policies().map(|(_, policy)| policy.clone()).collect();
    policies.reverse();
    let wire = Wire {
        version: 1,
        unmatched: Unmatched::Reject,
        policies,
        rules: set.rules().to_vec(),
        adaptive: set.adaptive().clone(),
    };
    let bytes = bincode::serialize(&wire).unwrap();
    let error = bincode::deserialize::<PolicySet>(&bytes).unwrap_err();
    assert!(error.to_string().contains("sorted by name"), "{error}");
}

#[test]
fn sample_adaptive_block_parses_when_uncommented() {
    // The commented `[adaptive]` example at the end of the sample must be valid as written.
    let (policies, adaptive) = SAMPLE_POLICIES_TOML.split_once("# [adaptive]\n").unwrap();
    let block: String = std::iter::once("[adaptive]")
        .chain(adaptive.lines().map(|line| line.strip_prefix("# ").unwrap_or("")))
        .map(|line| format!("{line}\n"))
        .collect();
    let set = PolicySet::from_toml(&format!("{policies}{block}")).unwrap();
    assert_eq!(
        set.adaptive(),
        &crate::adaptive::AdaptiveConfig {
            scales: set.adaptive().scales.clone(),
            ..crate::adaptive::AdaptiveConfig::default()
        }
    );
    assert!(set.adaptive().scales.contains_key("llm_latency_p95_ms"));
}
