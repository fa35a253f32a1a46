//! Controller and config tests: the classic table, immediate tightening, slow one-level relaxing, damping, and
//! config validation; proptests for the table, determinism across snapshots and the relax delay.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::bounds::MAX_DURATION;
use crate::{CoreError, Nanos};

const SECOND: Nanos = 1_000_000_000;
const T0: Nanos = 1_800_000_000 * SECOND;

fn m(ppm: u32) -> Multiplier {
    Multiplier::from_ppm(ppm)
}

fn unsmoothed() -> AdaptiveController {
    AdaptiveController::new(AdaptiveConfig { smoothing_ppm: PPM, ..AdaptiveConfig::default() }).unwrap()
}

fn field_of(err: CoreError) -> String {
    match err {
        CoreError::InvalidParameter { field, .. } => field,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[test]
fn default_config_is_the_classic_table() {
    let config = AdaptiveConfig::default();
    let table: Vec<(u32, u32)> = config.levels.iter().map(|l| (l.load_ppm, l.multiplier.ppm())).collect();
    assert_eq!(table, [(600_000, 750_000), (750_000, 500_000), (900_000, 250_000)]);
    assert_eq!(config.hysteresis_ppm, 50_000);
    assert_eq!(config.relax_after, 10 * SECOND);
    assert_eq!(config.aggregation, Aggregation::Max);
    config.validate().unwrap();
    assert_eq!(AdaptiveController::default().multiplier(), Multiplier::ONE);
}

#[test]
fn thresholds_map_to_the_classic_table() {
    let cases = [
        (0, Multiplier::ONE),
        (600_000, Multiplier::ONE),
        (600_001, m(750_000)),
        (750_000, m(750_000)),
        (750_001, m(500_000)),
        (900_000, m(500_000)),
        (900_001, m(250_000)),
        (PPM, m(250_000)),
        (u32::MAX, m(250_000)),
    ];
    for (load, expected) in cases {
        assert_eq!(unsmoothed().update(T0, load), expected, "load {load}");
    }
}

#[test]
fn tightening_is_immediate_and_may_skip_levels() {
    let mut controller = unsmoothed();
    assert_eq!(controller.update(T0, 950_000), m(250_000));
    assert_eq!(controller.state().level, 3);

    let mut controller = unsmoothed();
    assert_eq!(controller.update(T0, 700_000), m(750_000));
    // The same instant: no delay of any kind on the way up.
    assert_eq!(controller.update(T0, 800_000), m(500_000));
}

#[test]
fn relaxing_needs_load_below_threshold_minus_hysteresis_for_relax_after() {
    let mut controller = unsmoothed();
    controller.update(T0, 700_000);
    let dropped = T0 + SECOND;
    // 0.6 - 0.05 = 0.55: one ppm under it starts the quiet period.
    assert_eq!(controller.update(dropped, 549_999), m(750_000));
    assert_eq!(controller.state().below_since, Some(dropped));
    assert_eq!(controller.update(dropped + 10 * SECOND - 1, 549_999), m(750_000), "one ns early");
    assert_eq!(controller.update(dropped + 10 * SECOND, 549_999), Multiplier::ONE);
    assert_eq!(controller.state().below_since, None);
}

#[test]
fn load_inside_the_hysteresis_band_never_relaxes() {
    let mut controller = unsmoothed();
    controller.update(T0, 700_000);
    for s in 1..=1000 {
        // Exactly threshold minus hysteresis is not below it.
        assert_eq!(controller.update(T0 + s * SECOND, 550_000), m(750_000));
    }
    assert_eq!(controller.state().below_since, None);
}

#[test]
fn a_return_into_the_band_restarts_the_quiet_period() {
    let mut controller = unsmoothed();
    controller.update(T0, 700_000);
    controller.update(T0 + SECOND, 500_000);
    controller.update(T0 + 5 * SECOND, 570_000);
    controller.update(T0 + 6 * SECOND, 500_000);
    // Without the interruption this would be 10 s of quiet; it is only 5 since the return under 0.55.
    assert_eq!(controller.update(T0 + 11 * SECOND, 500_000), m(750_000));
    assert_eq!(controller.update(T0 + 16 * SECOND, 500_000), Multiplier::ONE);
}

#[test]
fn relaxing_goes_one_level_per_relax_after() {
    let mut controller = unsmoothed();
    controller.update(T0, 950_000);
    let mut changes = Vec::new();
    let mut last = controller.multiplier();
    for s in 1..=60 {
        let now = T0 + s * SECOND;
        let multiplier = controller.update(now, 100_000);
        if multiplier != last {
            changes.push(((now - T0) / SECOND, multiplier));
            last = multiplier;
        }
    }
    assert_eq!(changes, [(11, m(500_000)), (21, m(750_000)), (31, Multiplier::ONE)]);
}

#[test]
fn load_oscillating_around_a_threshold_flaps_the_multiplier_at_most_once() {
    // Smoothed or not; and with no relax delay, where the hysteresis alone must hold the level.
    for (smoothing_ppm, relax_after) in
        [(DEFAULT_SMOOTHING_PPM, DEFAULT_RELAX_AFTER), (PPM, DEFAULT_RELAX_AFTER), (PPM, 0)]
    {
        let config = AdaptiveConfig { smoothing_ppm, relax_after, ..AdaptiveConfig::default() };
        let mut controller = AdaptiveController::new(config).unwrap();
        let mut last = controller.multiplier();
        let mut changes = 0;
        for s in 0..1000 {
            let load = if s % 2 == 0 { 590_000 } else { 610_000 };
            let multiplier = controller.update(T0 + s * SECOND, load);
            if multiplier != last {
                changes += 1;
                last = multiplier;
            }
        }
        assert!(changes <= 1, "smoothing {smoothing_ppm}: {changes} changes");
    }
}

#[test]
fn smoothing_damps_a_single_spike() {
    let loads = [400_000, 400_000, 400_000, 400_000, 790_000, 400_000, 400_000];
    let run = |mut controller: AdaptiveController| {
        let mut worst = Multiplier::ONE;
        for (s, &load) in (0..).zip(&loads) {
            worst = worst.min(controller.update(T0 + s * SECOND, load));
        }
        worst
    };
    assert_eq!(run(unsmoothed()), m(500_000), "unsmoothed, the spike tightens two levels");
    assert_eq!(run(AdaptiveController::default()), Multiplier::ONE, "smoothed, it does not tighten at all");

    // A sustained rise still gets through within a few samples: averages 0.395, 0.5925, 0.69125, ..., 0.765.
    let mut controller = AdaptiveController::default();
    let multipliers: Vec<Multiplier> = (0..5).map(|s| controller.update(T0 + s * SECOND, 790_000)).collect();
    assert_eq!(multipliers, [Multiplier::ONE, Multiplier::ONE, m(750_000), m(750_000), m(500_000)]);
}

#[test]
fn a_steady_load_is_reached_exactly_by_the_average() {
    let config = AdaptiveConfig { smoothing_ppm: 100_000, ..AdaptiveConfig::default() };
    let mut controller = AdaptiveController::new(config).unwrap();
    for s in 0..400 {
        controller.update(T0 + s * SECOND, 600_001);
    }
    assert_eq!(controller.state().smoothed_ppm, 600_001);
    assert_eq!(controller.multiplier(), m(750_000));
    for s in 400..800 {
        controller.update(T0 + s * SECOND, 0);
    }
    assert_eq!(controller.state().smoothed_ppm, 0);
}

#[test]
fn floor_is_respected_via_apply() {
    let mut controller = unsmoothed();
    let multiplier = controller.update(T0, PPM);
    assert_eq!(multiplier, m(250_000));
    assert_eq!(multiplier.apply(1000, m(1)), 250);
    assert_eq!(multiplier.apply(1000, m(500_000)), 500);
    assert_eq!(multiplier.apply(1000, Multiplier::ONE), 1000);
    assert_eq!(multiplier.apply(1, m(1)), 1, "never below 1");
}

#[test]
fn invalid_configs_are_rejected_with_the_field_named() {
    type Mutation = fn(&mut AdaptiveConfig);
    let cases: [(Mutation, &str); 14] = [
        (|c| c.levels.clear(), "adaptive.levels"),
        (|c| c.levels = vec![CLASSIC_LEVELS[0]; MAX_LEVELS + 1], "adaptive.levels"),
        (|c| c.levels[0].load_ppm = 0, "adaptive.levels[0].load"),
        (|c| c.levels[1].load_ppm = PPM, "adaptive.levels[1].load"),
        (|c| c.levels[2].load_ppm = 750_000, "adaptive.levels[2].load"),
        (|c| c.levels[1].load_ppm = 500_000, "adaptive.levels[1].load"),
        (|c| c.levels[1].multiplier = m(750_000), "adaptive.levels[1].multiplier"),
        (|c| c.levels[2].multiplier = m(900_000), "adaptive.levels[2].multiplier"),
        (|c| c.hysteresis_ppm = 150_000, "adaptive.hysteresis"),
        (|c| c.levels = vec![Level { load_ppm: 50_000, multiplier: m(1) }], "adaptive.hysteresis"),
        (|c| c.smoothing_ppm = 0, "adaptive.smoothing"),
        (|c| c.relax_after = MAX_DURATION + 1, "adaptive.relax_after"),
        (|c| c.signal_ttl = 0, "adaptive.signal_ttl"),
        (
            |c| {
                c.scales.insert(String::new(), SignalScale::new(0, 1).unwrap());
            },
            "adaptive.scales",
        ),
    ];
    for (mutate, field) in cases {
        let mut config = AdaptiveConfig::default();
        mutate(&mut config);
        assert_eq!(field_of(config.validate().unwrap_err()), field);
        assert_eq!(field_of(AdaptiveController::new(config.clone()).unwrap_err()), field);
        let mut controller = unsmoothed();
        controller.update(T0, 950_000);
        let before = controller.clone();
        assert!(controller.set_config(config).is_err());
        assert_eq!(controller, before, "a rejected config changes nothing");
    }
    // Just under the smallest gap is fine, as are no hysteresis and no smoothing.
    let edge = AdaptiveConfig { hysteresis_ppm: 149_999, smoothing_ppm: PPM, ..AdaptiveConfig::default() };
    edge.validate().unwrap();
    AdaptiveConfig { hysteresis_ppm: 0, relax_after: 0, ..AdaptiveConfig::default() }.validate().unwrap();
}

#[test]
fn invalid_specs_are_rejected_with_the_field_named() {
    let level = |load: &str, multiplier: &str| format!("[[levels]]\nload = {load}\nmultiplier = {multiplier}\n");
    let cases = [
        (level("0.6", "0.75") + &level("0.5", "0.5"), "adaptive.levels[1].load"),
        (level("1.0", "0.5"), "adaptive.levels[0].load"),
        (level("-0.2", "0.5"), "adaptive.levels[0].load"),
        (level("0.6", "0.0"), "adaptive.levels[0].multiplier"),
        (level("0.6", "1.2"), "adaptive.levels[0].multiplier"),
        ("hysteresis = 0.2".to_owned(), "adaptive.hysteresis"),
        ("smoothing = 0".to_owned(), "adaptive.smoothing"),
        ("relax_after = \"soon\"".to_owned(), "adaptive.relax_after"),
        ("signal_ttl = \"0s\"".to_owned(), "adaptive.signal_ttl"),
        ("relax_after = \"1000years\"".to_owned(), "adaptive.relax_after"),
        ("[scales.db_pool]\nlow = 5\nhigh = 1".to_owned(), "adaptive.scales.db_pool.high"),
    ];
    for (toml_text, field) in cases {
        let spec: AdaptiveConfigSpec = toml::from_str(&toml_text).unwrap();
        assert_eq!(field_of(AdaptiveConfig::from_spec(&spec).unwrap_err()), field, "{toml_text}");
    }
    for unknown in ["threshold = 0.6", "[[levels]]\nload = 0.6\nmultiplier = 0.5\nfloor = 0.1", "aggregation = \"min\""]
    {
        assert!(toml::from_str::<AdaptiveConfigSpec>(unknown).is_err(), "{unknown}");
    }
}

#[test]
fn the_documented_toml_parses_to_the_classic_config_with_a_scale() {
    let spec: AdaptiveConfigSpec = toml::from_str(
        r#"
        hysteresis = 0.05
        relax_after = "10s"
        smoothing = 0.5
        aggregation = "mean"
        signal_ttl = "30s"

        [[levels]]
        load = 0.6
        multiplier = 0.75
        [[levels]]
        load = 0.75
        multiplier = 0.5
        [[levels]]
        load = 0.9
        multiplier = 0.25

        [scales.llm_latency_p95_ms]
        low = 500
        high = 3000
        "#,
    )
    .unwrap();
    let config = AdaptiveConfig::from_spec(&spec).unwrap();
    let mut expected = AdaptiveConfig { aggregation: Aggregation::Mean, ..AdaptiveConfig::default() };
    expected.scales.insert("llm_latency_p95_ms".to_owned(), SignalScale::new(500_000, 3_000_000).unwrap());
    assert_eq!(config, expected);
}

#[test]
fn an_empty_spec_gives_the_default_config_and_specs_round_trip() {
    let empty: AdaptiveConfigSpec = toml::from_str("").unwrap();
    assert_eq!(AdaptiveConfig::from_spec(&empty).unwrap(), AdaptiveConfig::default());

    let mut config = AdaptiveConfig {
        levels: vec![
            Level { load_ppm: 123_457, multiplier: m(999_999) },
            Level { load_ppm: 999_999, multiplier: m(1) },
        ],
        hysteresis_ppm: 3,
        relax_after: 1_500_000_007,
        smoothing_ppm: 1,
        aggregation: Aggregation::Mean,
        signal_ttl: 1,
        ..AdaptiveConfig::default()
    };
    config.scales.insert("db_pool".to_owned(), SignalScale::new(-7, 19).unwrap());
    assert_eq!(AdaptiveConfig::from_spec(&config.to_spec()).unwrap(), config);
}

#[test]
fn restored_or_reconfigured_state_is_capped_to_the_table() {
    let state = AdaptiveState { smoothed_ppm: u32::MAX, level: 99, below_since: Some(T0) };
    let controller = AdaptiveController::with_state(AdaptiveConfig::default(), state).unwrap();
    assert_eq!(controller.state().level, 3);
    assert_eq!(controller.state().smoothed_ppm, PPM);
    assert_eq!(controller.multiplier(), m(250_000));

    let mut controller = unsmoothed();
    controller.update(T0, PPM);
    let one_level = AdaptiveConfig {
        levels: vec![Level { load_ppm: 800_000, multiplier: m(100_000) }],
        ..controller.config().clone()
    };
    controller.set_config(one_level).unwrap();
    assert_eq!(controller.state().level, 1);
    assert_eq!(controller.multiplier(), m(100_000));
}

#[test]
fn update_from_combines_signals_with_the_configured_aggregation() {
    let mut signals = LoadSignals::new();
    signals.report("cpu", 500_000, T0, SECOND).unwrap();
    signals.report("db_pool", 950_000, T0, SECOND).unwrap();
    let mean = AdaptiveConfig { smoothing_ppm: PPM, aggregation: Aggregation::Mean, ..AdaptiveConfig::default() };
    // Mean 0.725 is one level; max 0.95 is three.
    assert_eq!(AdaptiveController::new(mean).unwrap().update_from(T0, &signals), m(750_000));
    assert_eq!(unsmoothed().update_from(T0, &signals), m(250_000));
    assert_eq!(unsmoothed().update_from(T0 + SECOND, &signals), Multiplier::ONE, "expired signals are no load");
}

/// Valid configs: 1 to 4 levels, any hysteresis below the smallest gap, any relax delay and smoothing.
fn any_config() -> impl Strategy<Value = AdaptiveConfig> {
    let random = (1usize..=4)
        .prop_flat_map(|n| {
            (
                prop::collection::btree_set(1u32..PPM, n),
                prop::collection::btree_set(1u32..=PPM, n),
                0u32..=PPM,
                0u64..=30 * SECOND,
                1u32..=PPM,
            )
        })
        .prop_map(|(loads, multipliers, hysteresis_share, relax_after, smoothing_ppm)| {
            let loads: Vec<u32> = loads.into_iter().collect();
            let smallest_gap = loads.iter().zip([0].iter().chain(&loads)).map(|(l, p)| l - p).min().unwrap();
            let hysteresis_ppm = (u64::from(smallest_gap - 1) * u64::from(hysteresis_share) / u64::from(PPM)) as u32;
            let levels = loads
                .iter()
                .zip(multipliers.iter().rev())
                .map(|(&load_ppm, &multiplier)| Level { load_ppm, multiplier: m(multiplier) })
                .collect();
            AdaptiveConfig { levels, hysteresis_ppm, relax_after, smoothing_ppm, ..AdaptiveConfig::default() }
        });
    prop_oneof![Just(AdaptiveConfig::default()), random]
}

/// Sample sequences: a start time, then (time step, load) pairs, loads biased toward low values so that limits
/// have a chance to relax.
fn any_samples() -> impl Strategy<Value = (Nanos, Vec<(Nanos, u32)>)> {
    let load = prop_oneof![0u32..=1_100_000, 0u32..200_000];
    (prop_oneof![Just(T0), any::<Nanos>()], prop::collection::vec((0..=5 * SECOND, load), 0..300))
}

proptest! {
    #[test]
    fn random_samples_never_panic_stay_on_the_table_and_are_deterministic(
        config in any_config(),
        (start, samples) in any_samples(),
        split in any::<prop::sample::Index>(),
    ) {
        let allowed: Vec<Multiplier> =
            std::iter::once(Multiplier::ONE).chain(config.levels.iter().map(|l| l.multiplier)).collect();
        let mut controller = AdaptiveController::new(config.clone()).unwrap();
        let mut states = Vec::new();
        let mut now = start;
        for &(step, load) in &samples {
            now = now.saturating_add(step);
            let level_before = controller.state().level;
            let multiplier = controller.update(now, load);
            let state = controller.state();
            prop_assert!(allowed.contains(&multiplier), "{multiplier:?} is not on the table");
            prop_assert_eq!(multiplier, controller.multiplier());
            prop_assert!(state.smoothed_ppm <= PPM);
            prop_assert!(state.level >= config.level_for(state.smoothed_ppm), "tightening was not immediate");
            prop_assert!(state.level + 1 >= level_before, "relaxed more than one level at once");
            states.push(state.clone());
        }

        // Same samples, same states: on a fresh controller, and on one restored from a serialized snapshot.
        let mut again = AdaptiveController::new(config.clone()).unwrap();
        let mut restored: Option<AdaptiveController> = None;
        let split = if samples.is_empty() { 0 } else { split.index(samples.len()) };
        let mut now = start;
        for (i, &(step, load)) in samples.iter().enumerate() {
            now = now.saturating_add(step);
            again.update(now, load);
            prop_assert_eq!(again.state(), &states[i]);
            if i == split {
                let bytes = bincode::serialize(again.state()).unwrap();
                let state: AdaptiveState = bincode::deserialize(&bytes).unwrap();
                restored = Some(AdaptiveController::with_state(config.clone(), state).unwrap());
            } else if let Some(restored) = restored.as_mut() {
                restored.update(now, load);
                prop_assert_eq!(restored.state(), &states[i]);
            }
        }
    }

    #[test]
    fn the_multiplier_never_relaxes_sooner_than_relax_after_once_the_load_drops(
        config in any_config(),
        (start, samples) in any_samples(),
    ) {
        let mut controller = AdaptiveController::new(config.clone()).unwrap();
        // (time, smoothed load, level after the update)
        let mut history: Vec<(Nanos, u32, usize)> = Vec::new();
        let mut now = start;
        for &(step, load) in &samples {
            now = now.saturating_add(step);
            let level_before = controller.state().level;
            controller.update(now, load);
            let state = controller.state();
            history.push((now, state.smoothed_ppm, state.level));
            if state.level >= level_before {
                continue;
            }
            // A relax from `level`: find the longest run of updates, ending here, in which the average stayed
            // under that level's threshold minus hysteresis while the level held. It must span relax_after.
            let level = level_before;
            let bar = config.levels[level - 1].load_ppm - config.hysteresis_ppm;
            let last = history.len() - 1;
            let mut first = last;
            while first > 0 {
                let (_, smoothed, level_after) = history[first - 1];
                if smoothed >= bar || level_after != level {
                    break;
                }
                first -= 1;
            }
            prop_assert!(history[first].1 < bar, "relaxed while the average was not under the bar");
            let quiet = now - history[first].0;
            prop_assert!(
                quiet >= config.relax_after,
                "relaxed from level {} after {}ns of quiet, relax_after is {}ns", level, quiet, config.relax_after
            );
        }
    }
}

#[test]
fn node_samples_aggregate_per_kind_and_the_highest_kind_wins() {
    const SECOND: u64 = 1_000_000_000;
    let mut signals = LoadSignals::new();
    signals.report("cpu@node1", 900_000, 0, 10 * SECOND).unwrap();
    signals.report("cpu@node2", 100_000, 0, 10 * SECOND).unwrap();
    signals.report("cpu@node3", 200_000, 0, 10 * SECOND).unwrap();
    signals.report("db_pool_utilization", 300_000, 0, 10 * SECOND).unwrap();
    assert_eq!(signals.cluster_load(SECOND, Aggregation::Max), 900_000);
    assert_eq!(signals.cluster_load(SECOND, Aggregation::Mean), 400_000);
    // Expired signals no longer count.
    assert_eq!(signals.cluster_load(11 * SECOND, Aggregation::Max), 0);
}
