use super::*;
use crate::adaptive::Multiplier;
use crate::policy::{Descriptor, PolicySet, SAMPLE_POLICIES_TOML};
use crate::{CoreError, LimiterTable, TableConfig};

const T0: u64 = 1_800_000_000_000_000_000;

fn set() -> PolicySet {
    PolicySet::sample()
}

fn check(descriptors: &[(&str, &str)], cost: u64) -> Check {
    let descriptors = descriptors.iter().map(|(d, v)| Descriptor::new(*d, *v)).collect();
    Check::new(descriptors, Cost::new(cost).unwrap())
}

#[test]
fn a_zero_cost_cannot_be_made_and_the_api_reads_zero_as_one() {
    assert_eq!(Cost::new(0), None);
    assert_eq!(Cost::at_least_one(0), Cost::ONE);
    assert_eq!(Cost::at_least_one(7).get(), 7);
    assert_eq!(Cost::try_from(0).unwrap_err(), CoreError::ZeroCost);
}

#[test]
fn a_plan_names_each_limited_descriptor_with_its_policy_key_and_cost() {
    let plan = Plan::check(&set(), &check(&[("api_key", "agent_42"), ("ip", "10.0.0.1")], 3)).unwrap();
    assert_eq!(plan.policy_version, set().version());
    let names: Vec<_> = plan.limits.iter().map(|l| (l.descriptor(), l.name(&set()).into_owned())).collect();
    assert_eq!(names, [(0, "agent".to_owned()), (1, "per_ip".to_owned())]);
    assert_eq!(plan.limits[1].key, "ip=10.0.0.1");
    assert_eq!(plan.uniform_cost(), Some(Cost::new(3).unwrap()));
}

#[test]
fn bad_requests_are_refused_with_what_is_wrong() {
    let cases = [
        (check(&[], 1), "at least one descriptor"),
        (check(&[("api_key", "a"), ("api_key", "a")], 1), "charged twice"),
        (check(&[("API", "a")], 1), "descriptor 0: dimension"),
        (check(&[("api_key", "agent_1")], 201), "can never be allowed"),
    ];
    for (check, expected) in cases {
        let message = Plan::check(&set(), &check).unwrap_err().to_string();
        assert!(message.contains(expected), "{expected}: {message}");
    }
    let seventeen: Vec<_> = (0..17).map(|i| Descriptor::new("ip", format!("10.0.0.{i}"))).collect();
    let error = Plan::check(&set(), &Check::new(seventeen, Cost::ONE)).unwrap_err();
    assert!(error.to_string().contains("at most 16"), "{error}");
}

#[test]
fn an_override_replaces_the_rules_and_counts_under_its_own_key() {
    let mut check = check(&[("api_key", "agent_42")], 1);
    let limit = LimitOverride { requests_per_unit: 5, unit: OverrideUnit::Minute };
    check.overrides = vec![DescriptorOverride { cost: Some(Cost::new(2).unwrap()), limit: Some(limit) }];
    let plan = Plan::check(&set(), &check).unwrap();
    assert_eq!(plan.limits[0].source, LimitSource::Override(limit));
    assert_eq!(plan.limits[0].key, "5/minute:api_key=agent_42");
    assert_eq!(plan.limits[0].name(&set()), "override 5/minute");
    assert_eq!(plan.limits[0].cost.get(), 2);
    check.overrides[0].cost = Some(Cost::new(6).unwrap());
    assert!(matches!(Plan::check(&set(), &check), Err(CoreError::CostExceedsLimit { limit: 5, .. })));
    check.overrides.push(DescriptorOverride::default());
    assert!(Plan::check(&set(), &check).unwrap_err().to_string().contains("1 descriptors came with 2 overrides"));
}

#[test]
fn a_refund_is_not_bounded_by_the_limit() {
    let refund = Refund { descriptors: vec![Descriptor::new("api_key", "user_1")], amount: Cost::new(1_000).unwrap() };
    let plan = Plan::refund(&set(), &refund).unwrap();
    assert_eq!(plan.limits[0].cost.get(), 1_000);
}

#[test]
fn a_plan_applies_only_under_the_policy_version_it_was_made_with() {
    let plan = Plan::check(&set(), &check(&[("api_key", "user_1")], 1)).unwrap();
    let newer = PolicySet::from_toml(SAMPLE_POLICIES_TOML).unwrap().with_version(set().version() + 1);
    let error = plan.limit_refs(&newer, Multiplier::ONE).unwrap_err();
    assert!(error.to_string().contains("policy set version"), "{error}");
    let refs = plan.limit_refs(&set(), Multiplier::ONE).unwrap();
    let mut table = LimiterTable::new(TableConfig::default());
    assert!(table.check(T0, &refs, 1).unwrap().allowed);
}

#[test]
fn plans_round_trip_through_serde_and_a_zero_cost_does_not_decode() {
    let plan = Plan::check(&set(), &check(&[("api_key", "agent_42")], 2)).unwrap();
    let bytes = bincode::serialize(&plan).unwrap();
    assert_eq!(bincode::deserialize::<Plan>(&bytes).unwrap(), plan);
    assert!(bincode::deserialize::<Cost>(&bincode::serialize(&0u64).unwrap()).is_err());
}
