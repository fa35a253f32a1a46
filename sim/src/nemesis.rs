//! Faults and the named scenarios: each is a list of faults at simulated times, in story order.

use std::time::Duration;

use turmoil::Sim;

/// Every host a fault may name.
const HOSTS: [&str; 5] = ["n1", "n2", "n3", "c1", "c2"];
const NODE_HOSTS: [&str; 3] = ["n1", "n2", "n3"];

/// One fault, applied from the simulation driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Drops every message between the two sides (TCP included: open connections break).
    Partition(Vec<&'static str>, Vec<&'static str>),
    /// Drops messages from the first side to the second only.
    PartitionOneway(Vec<&'static str>, Vec<&'static str>),
    /// Queues messages between the sides until released.
    Hold(Vec<&'static str>, Vec<&'static str>),
    /// Kills a host (its runtime, tasks and open files go; its data directory stays).
    Crash(&'static str),
    /// Starts a crashed host again on its data directory; the links it had stay as they were.
    Restart(&'static str),
    /// Sets a fixed latency on every link.
    Latency(Duration),
    /// Ends every fault: repairs links, releases held messages, restores latency, restarts crashed hosts.
    HealAll,
}

impl Fault {
    /// Applies the fault to `sim`.
    pub fn apply(&self, sim: &mut Sim<'_>) {
        match self {
            Fault::Partition(a, b) => pairs(a, b, |x, y| sim.partition(x, y)),
            Fault::PartitionOneway(a, b) => pairs(a, b, |x, y| sim.partition_oneway(x, y)),
            Fault::Hold(a, b) => pairs(a, b, |x, y| sim.hold(x, y)),
            Fault::Crash(host) => sim.crash(*host),
            Fault::Restart(host) => {
                if !sim.is_host_running(*host) {
                    sim.bounce(*host);
                }
            }
            Fault::Latency(latency) => pairs(&HOSTS, &HOSTS, |x, y| {
                if x != y {
                    sim.set_link_latency(x, y, *latency);
                }
            }),
            Fault::HealAll => {
                pairs(&HOSTS, &HOSTS, |x, y| {
                    if x != y {
                        sim.repair(x, y);
                        sim.release(x, y);
                        sim.set_link_latency(x, y, Duration::from_millis(2));
                    }
                });
                for host in NODE_HOSTS {
                    if !sim.is_host_running(host) {
                        sim.bounce(host);
                    }
                }
            }
        }
    }
}

fn pairs<'a>(a: &[&'a str], b: &[&'a str], mut f: impl FnMut(&'a str, &'a str)) {
    for &x in a {
        for &y in b {
            f(x, y);
        }
    }
}

/// How the clients send their checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Workload {
    /// One `Check` per call.
    #[default]
    Unary,
    /// `CheckBatch` calls of [`BULK`](crate::cluster::BULK) checks.
    Batch,
    /// Messages of [`BULK`](crate::cluster::BULK) checks on a `CheckStream` per client.
    Stream,
}

/// A named story: how long the clients run, the faults, and per-node clock skew.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The scenario's name (for replay commands).
    pub name: String,
    /// How long the clients send checks (simulated time).
    pub run_for: Duration,
    /// Faults at simulated times, in order; the last one heals everything.
    pub faults: Vec<(Duration, Fault)>,
    /// Per-node clock skew in nanoseconds (n1, n2, n3).
    pub skew: Vec<i64>,
    /// How the clients send checks.
    pub workload: Workload,
    /// Per-node monotonic clock drift in ppm (n1, n2, n3): positive runs slow, so leases last longer in real time.
    pub drift_ppm: Vec<i64>,
    /// How often the clients pick each policy: weights of `strict`, `local` and `leased`.
    pub mix: [u64; 3],
}

/// The default mix: a quarter strict, a quarter local, half on the leased hot key.
const MIX: [u64; 3] = [1, 1, 2];
/// The mix of the `local` scenarios: mostly local, in batches, so that a cut-off node meets enough of them to
/// spend its whole share.
const LOCAL_MIX: [u64; 3] = [1, 6, 1];

impl Scenario {
    /// When the last fault healed.
    pub fn healed_at(&self) -> Duration {
        self.faults.last().map_or(Duration::ZERO, |(at, _)| *at)
    }

    fn story(name: &str, faults: Vec<(u64, Fault)>) -> Scenario {
        Scenario {
            name: name.to_owned(),
            run_for: Duration::from_secs(20),
            faults: faults.into_iter().map(|(ms, f)| (Duration::from_millis(ms), f)).collect(),
            skew: vec![0; 3],
            workload: Workload::Unary,
            drift_ppm: vec![0; 3],
            mix: MIX,
        }
    }

    /// Every named scenario except the random nemesis.
    pub fn all() -> Vec<Scenario> {
        use Fault::*;
        let others =
            |n: &'static str| -> Vec<&'static str> { HOSTS.iter().copied().filter(|&h| h != n && h != "c1").collect() };
        vec![
            // n1 bootstraps and usually leads; cut it (and its client c1) off from the rest.
            Scenario::story("leader_isolated", vec![(3_000, Partition(vec!["n1"], others("n1"))), (9_000, HealAll)]),
            Scenario::story(
                "follower_isolated",
                vec![(3_000, Partition(vec!["n3"], vec!["n1", "n2", "c2"])), (9_000, HealAll)],
            ),
            Scenario::story(
                "split_2_1_clients_on_both_sides",
                vec![(3_000, Partition(vec!["n1", "c1"], vec!["n2", "n3", "c2"])), (9_000, HealAll)],
            ),
            Scenario::story(
                "one_way_loss",
                vec![(3_000, PartitionOneway(vec!["n1"], vec!["n2", "n3"])), (9_000, HealAll)],
            ),
            Scenario::story("held_messages", vec![(3_000, Hold(vec!["n1"], vec!["n2", "n3"])), (6_000, HealAll)]),
            Scenario::story(
                "flapping_partitions",
                vec![
                    (2_000, Partition(vec!["n1"], vec!["n2", "n3"])),
                    (3_000, HealAll),
                    (4_000, Partition(vec!["n2"], vec!["n1", "n3"])),
                    (5_000, HealAll),
                    (6_000, Partition(vec!["n3"], vec!["n1", "n2"])),
                    (7_000, HealAll),
                    (8_000, Partition(vec!["n1"], vec!["n2", "n3"])),
                    (9_000, HealAll),
                ],
            ),
            Scenario::story("crash_and_restart_one", vec![(3_000, Crash("n2")), (7_000, HealAll)]),
            Scenario::story("crash_and_restart_leader", vec![(3_000, Crash("n1")), (7_000, HealAll)]),
            Scenario {
                workload: Workload::Batch,
                ..Scenario::story("crash_leader_during_batches", vec![(3_000, Crash("n1")), (7_000, HealAll)])
            },
            Scenario {
                workload: Workload::Stream,
                ..Scenario::story("crash_leader_during_streams", vec![(3_000, Crash("n1")), (7_000, HealAll)])
            },
            Scenario::story(
                "crash_and_restart_all",
                vec![(4_000, Crash("n1")), (4_000, Crash("n2")), (4_000, Crash("n3")), (6_000, HealAll)],
            ),
            // The `local` mode's bound across several partitions and restarts: each node cut off in turn (a quorum
            // present throughout), all three apart, and one follower cut off for good and restarted twice. No
            // node may spend more than its share of a window alone, however often it is cut off or restarted.
            Scenario {
                run_for: Duration::from_secs(26),
                workload: Workload::Batch,
                mix: LOCAL_MIX,
                ..Scenario::story(
                    "local_nodes_cut_off_in_turn",
                    vec![
                        (2_000, Partition(vec!["n1"], vec!["n2", "n3"])),
                        (6_000, HealAll),
                        (8_000, Partition(vec!["n2"], vec!["n1", "n3"])),
                        (12_000, HealAll),
                        (14_000, Partition(vec!["n3"], vec!["n1", "n2"])),
                        (18_000, HealAll),
                    ],
                )
            },
            Scenario {
                workload: Workload::Batch,
                mix: LOCAL_MIX,
                ..Scenario::story(
                    "local_all_split",
                    vec![
                        (3_000, Partition(vec!["n1"], vec!["n2", "n3"])),
                        (3_000, Partition(vec!["n2"], vec!["n3"])),
                        (9_000, HealAll),
                    ],
                )
            },
            Scenario {
                run_for: Duration::from_secs(24),
                workload: Workload::Batch,
                mix: LOCAL_MIX,
                ..Scenario::story(
                    "local_follower_cut_off_and_restarted",
                    vec![
                        (2_000, Partition(vec!["n2"], vec!["n1", "n3"])),
                        (6_000, Crash("n2")),
                        (7_000, Restart("n2")),
                        (10_000, Crash("n2")),
                        (11_000, Restart("n2")),
                        (15_000, HealAll),
                    ],
                )
            },
            Scenario::story("latency_spike", vec![(3_000, Latency(Duration::from_millis(300))), (7_000, HealAll)]),
            // Leases: n2 (client c2's node) holds leases of the hot key when it crashes, is cut off, or sees the
            // leader crash; and with clocks 1,000 ppm slow or fast, the drift margin still holds.
            Scenario::story("lease_holder_crashes", vec![(3_000, Crash("n2")), (6_000, HealAll)]),
            Scenario::story(
                "lease_holder_partitioned",
                vec![(3_000, Partition(vec!["n2", "c2"], vec!["n1", "n3", "c1"])), (8_000, HealAll)],
            ),
            Scenario::story("leader_changes_mid_lease", vec![(3_000, Crash("n1")), (6_000, HealAll)]),
            Scenario {
                drift_ppm: vec![1_000, 1_000, -1_000],
                ..Scenario::story(
                    "lease_clock_drift",
                    vec![
                        (2_000, Partition(vec!["n2"], vec!["n1", "n3"])),
                        (4_000, HealAll),
                        (6_000, Partition(vec!["n1"], vec!["n2", "n3"])),
                        (8_000, HealAll),
                    ],
                )
            },
            Scenario {
                skew: vec![2_000_000_000, -2_000_000_000, 500_000_000],
                ..Scenario::story(
                    "clock_skew",
                    vec![(4_000, Partition(vec!["n1"], vec!["n2", "n3"])), (8_000, HealAll)],
                )
            },
        ]
    }

    /// The scenario called `name`, or the nemesis for `nemesis`.
    pub fn named(name: &str, seed: u64) -> Option<Scenario> {
        if name == "nemesis" {
            return Some(Scenario::nemesis(seed));
        }
        Scenario::all().into_iter().find(|s| s.name == name)
    }

    /// A random schedule of faults drawn from `seed`: one fault or heal every 0.5-2 s for 12 s, then heal.
    pub fn nemesis(seed: u64) -> Scenario {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = |bound: u64| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
        };
        let mut faults = Vec::new();
        let mut at = 1_000;
        while at < 13_000 {
            let node = NODE_HOSTS[next(3) as usize];
            let rest: Vec<&'static str> = NODE_HOSTS.iter().copied().filter(|&h| h != node).collect();
            let fault = match next(7) {
                0 => Fault::Partition(vec![node], rest),
                1 => Fault::PartitionOneway(vec![node], rest),
                2 => Fault::Hold(vec![node], rest),
                3 => Fault::Crash(node),
                4 => Fault::Latency(Duration::from_millis(50 + next(250))),
                _ => Fault::HealAll,
            };
            faults.push((Duration::from_millis(at), fault));
            at += 500 + next(1_500);
        }
        faults.push((Duration::from_millis(at), Fault::HealAll));
        // The workload too is drawn from the seed, so the nemesis covers batches and streams.
        let workload = [Workload::Unary, Workload::Batch, Workload::Stream][next(3) as usize];
        Scenario {
            name: "nemesis".to_owned(),
            run_for: Duration::from_millis(at + 12_000),
            faults,
            skew: vec![0; 3],
            workload,
            drift_ppm: vec![0; 3],
            mix: MIX,
        }
    }
}
