//! The simulation harness: three node hosts, two client hosts, one seed, a fixed epoch.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use quorate_core::Nanos;
use quorate_node::Node;
use quorate_node::clock::Clock;
use quorate_node::seed_raft_rng;
use quorate_node::transport::Transport;
use quorate_node::{NodeConfig, start_node};
use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{CheckRequest, Descriptor, ReportLoadRequest, StateDigestRequest};
use tonic::transport::{Channel, Endpoint};

use crate::history::{Event, FinalState, History, Outcome};
use crate::nemesis::Scenario;

/// The port every node listens on (each host has its own address).
pub const PORT: u16 = 7101;
/// Number of nodes.
pub const NODES: u64 = 3;
/// The strict (deny-mode) policy's limit over its one-hour window: longer than any run, so a run's whole history
/// is one window.
pub const STRICT_LIMIT: u64 = 20;
/// The local-mode policy's limit.
pub const LOCAL_LIMIT: u64 = 30;
/// Keys per policy the clients spread over.
pub const KEYS: u64 = 3;
/// The simulated epoch: late 2026, fixed so that runs are reproducible.
const EPOCH_SECS: u64 = 1_795_000_000;

/// The policies every simulated cluster runs.
pub const POLICIES: &str = r#"
[policies.strict]
algorithm = "sliding_window"
limit = 20
period = "1h"
on_no_quorum = "deny"

[policies.local]
algorithm = "sliding_window"
limit = 30
period = "1h"
on_no_quorum = "local"

[[rules]]
dimension = "strict"
policy = "strict"

[[rules]]
dimension = "local"
policy = "local"
"#;

/// The wall clock in simulation: turmoil's epoch plus simulated time, plus this node's skew.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    /// Nanoseconds this node's clock is ahead (positive) or behind.
    pub skew: i64,
}

impl Clock for SimClock {
    fn now(&self) -> Nanos {
        let now = turmoil::since_epoch().map_or(0, |d| d.as_nanos() as i128);
        (now + i128::from(self.skew)).clamp(0, i128::from(u64::MAX)) as Nanos
    }
}

fn host(id: u64) -> String {
    format!("n{id}")
}

fn node_config(id: u64, dir: &std::path::Path) -> NodeConfig {
    let peers: BTreeMap<u64, Node> =
        (1..=NODES).filter(|&p| p != id).map(|p| (p, Node { addr: format!("{}:{PORT}", host(p)) })).collect();
    let listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT));
    let mut config = NodeConfig::local(id, listen, dir.join(host(id)), peers);
    config.advertise = Some(format!("{}:{PORT}", host(id)));
    config.bootstrap = id == 1;
    config.transport = Transport::Turmoil;
    config.sample_system = false;
    config.policies_toml = POLICIES.to_owned();
    config.check_deadline = Duration::from_millis(1_000);
    config.snapshot_every = 200;
    config
}

/// A channel from a client host to node `id` through turmoil.
pub fn channel(id: u64) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{}:{PORT}", host(id)))
        .expect("a valid endpoint")
        .connect_timeout(Duration::from_millis(500));
    Transport::Turmoil.channel(endpoint)
}

/// What one simulated run produced.
#[derive(Debug)]
pub struct RunResult {
    /// Everything the clients saw, in order.
    pub history: History,
    /// The state read back after the last fault healed.
    pub final_state: FinalState,
}

/// Runs `scenario` with `seed` and returns the history (invariants are checked by the caller).
///
/// # Errors
///
/// If turmoil reports a host failure or the simulation exceeds its duration.
pub fn run(scenario: &Scenario, seed: u64) -> anyhow::Result<RunResult> {
    seed_raft_rng(seed);
    let dir = tempfile::tempdir()?;
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .simulation_duration(scenario.run_for + Duration::from_secs(60))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .tcp_capacity(4096)
        .build();
    for id in 1..=NODES {
        let config = node_config(id, dir.path());
        let skew = scenario.skew.get(id as usize - 1).copied().unwrap_or(0);
        sim.host(host(id), move || {
            let config = config.clone();
            async move {
                let node = start_node(config, Arc::new(SimClock { skew })).await?;
                std::future::pending::<()>().await;
                drop(node);
                Ok(())
            }
        });
    }
    let history = Arc::new(Mutex::new(Vec::new()));
    let final_state = Arc::new(Mutex::new(FinalState::default()));
    for client in 1..=2u8 {
        let history = history.clone();
        let final_state = final_state.clone();
        let scenario = scenario.clone();
        sim.client(format!("c{client}"), async move {
            workload(client, seed, &scenario, history).await;
            if client == 1 {
                let state = read_final_state(&scenario).await;
                *final_state.lock().expect("final state") = state;
            }
            Ok(())
        });
    }
    let mut faults = scenario.faults.iter().peekable();
    loop {
        while let Some((at, fault)) = faults.peek() {
            if sim.elapsed() < *at {
                break;
            }
            fault.apply(&mut sim);
            faults.next();
        }
        if sim.step().map_err(|e| anyhow::anyhow!("{e}"))? {
            break;
        }
    }
    let history = History(std::mem::take(&mut *history.lock().expect("history")));
    let final_state = std::mem::take(&mut *final_state.lock().expect("final state"));
    Ok(RunResult { history, final_state })
}

/// A tiny deterministic PRNG for the workload (xorshift64*), seeded from the run's seed.
struct Workload(u64);

impl Workload {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

fn request(dimension: &str, key: u64) -> CheckRequest {
    let descriptor = Descriptor { dimension: dimension.into(), value: format!("k{key}"), policy: String::new() };
    CheckRequest { descriptors: vec![descriptor], cost: 1, peek: false }
}

/// One client: checks every 25 ms (simulated) for the run, against its preferred node or a random one.
async fn workload(client: u8, seed: u64, scenario: &Scenario, history: Arc<Mutex<Vec<Event>>>) {
    let mut rng = Workload(seed ^ (u64::from(client) << 32) | 1);
    let mut clients: BTreeMap<u64, RateLimiterClient<Channel>> =
        (1..=NODES).map(|id| (id, RateLimiterClient::new(channel(id)))).collect();
    let start = tokio::time::Instant::now();
    let mut reports = 0u64;
    while start.elapsed() < scenario.run_for {
        let node = if rng.next(4) == 0 { 1 + rng.next(NODES) } else { u64::from(client) };
        // Client 2 also reports a load signal about once a second, so that adaptive state flows through the
        // log under faults too (its replicas must stay identical like the rest).
        if client == 2 && start.elapsed().as_secs() >= reports {
            reports += 1;
            let report =
                ReportLoadRequest { name: "llm_latency".into(), value: rng.next(100) as f64 / 100.0, ttl_ms: 5_000 };
            if let Some(c) = clients.get_mut(&node) {
                let _ = tokio::time::timeout(Duration::from_millis(500), c.report_load(report)).await;
            }
        }
        let (policy, key) = if rng.next(2) == 0 { ("strict", rng.next(KEYS)) } else { ("local", rng.next(KEYS)) };
        let at = start.elapsed();
        let call = clients.get_mut(&node).map(|c| c.check(request(policy, key)));
        let outcome = match call {
            None => Outcome::Error("no such node".into()),
            Some(call) => match tokio::time::timeout(Duration::from_millis(1_500), call).await {
                Err(_) => Outcome::Timeout,
                Ok(Ok(response)) => {
                    let response = response.into_inner();
                    if response.allowed {
                        Outcome::Allowed { degraded: response.degraded }
                    } else {
                        Outcome::Denied { degraded: response.degraded }
                    }
                }
                Ok(Err(status)) if status.code() == tonic::Code::Unavailable => Outcome::Unavailable,
                // The client's own connection broke (the node crashed mid-call): no answer, not a server error.
                Ok(Err(status)) if is_transport_error(&status) => Outcome::Unreachable,
                Ok(Err(status)) => Outcome::Error(format!("{:?}: {}", status.code(), status.message())),
            },
        };
        let event = Event { client, node, policy, key, at_ms: at.as_millis() as u64, outcome };
        history.lock().expect("history").push(event);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether tonic made `status` from a broken connection rather than receiving it from the server.
fn is_transport_error(status: &tonic::Status) -> bool {
    use std::error::Error as _;
    status.source().is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some())
}

/// After the run: waits for the replicas to converge, then reads what each key has consumed and each node's
/// state digest.
async fn read_final_state(scenario: &Scenario) -> FinalState {
    let _ = scenario;
    let mut state = FinalState::default();
    // Give the cluster time to elect, catch up and apply everything.
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let digests = digests().await;
        let applied: Vec<u64> = digests.values().map(|d| d.0).collect();
        if digests.len() == NODES as usize && applied.iter().all(|&a| a == applied[0]) {
            state.digests = digests;
            break;
        }
        state.digests = digests;
    }
    for policy in ["strict", "local"] {
        for key in 0..KEYS {
            let mut request = request(policy, key);
            request.peek = true;
            for id in 1..=NODES {
                let mut client = RateLimiterClient::new(channel(id));
                if let Ok(Ok(response)) =
                    tokio::time::timeout(Duration::from_secs(2), client.check(request.clone())).await
                {
                    let response = response.into_inner();
                    if !response.degraded {
                        let remaining = response.overall.map_or(0, |o| o.remaining);
                        state.remaining.insert((policy, key), remaining);
                        break;
                    }
                }
            }
        }
    }
    state
}

async fn digests() -> BTreeMap<u64, (u64, u64)> {
    let mut out = BTreeMap::new();
    for id in 1..=NODES {
        let mut admin = AdminClient::new(channel(id));
        if let Ok(Ok(digest)) =
            tokio::time::timeout(Duration::from_secs(1), admin.state_digest(StateDigestRequest {})).await
        {
            let digest = digest.into_inner();
            out.insert(id, (digest.applied_index, digest.digest));
        }
    }
    out
}
