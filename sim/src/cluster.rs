//! The simulation harness: three node hosts, two client hosts, one seed, a fixed epoch.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use quorate_core::Nanos;
use quorate_node::Node;
use quorate_node::clock::Clock;
use quorate_node::config::LocalAddrs;
use quorate_node::seed_raft_rng;
use quorate_node::transport::Transport;
use quorate_node::{NodeConfig, start_node};
use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{
    CheckBatchRequest, CheckRequest, CheckResult, CheckStreamRequest, CheckStreamResponse, Descriptor,
    ReportLoadRequest, StateDigestRequest, check_result,
};
use tokio::sync::mpsc;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

use crate::history::{Event, FinalState, History, Outcome};
use crate::nemesis::{Scenario, Workload};

/// Checks per batch call or stream message in the bulk workloads.
pub const BULK: usize = 4;
/// The port every node listens on (each host has its own address).
pub const PORT: u16 = 7101;
/// The peer port every simulated node listens on (Raft and forwarded calls).
pub const PEER_PORT: u16 = 7201;
/// The admin port every simulated node listens on.
pub const ADMIN_PORT: u16 = 7301;
/// Number of nodes.
pub const NODES: u64 = 3;
/// The strict (deny-mode) policy's limit over its one-hour window: longer than any run, so a run's whole history
/// is one window.
pub const STRICT_LIMIT: u64 = 20;
/// The local-mode policy's limit.
pub const LOCAL_LIMIT: u64 = 30;
/// The leased policy's limit per [`LEASED_WINDOW`]: one hot key, decided from leases on the nodes, that the clients
/// ask for at least twice as often. The window is short so that it moves during the run: a lease spent after its
/// bucket ended would show as a second with more than the limit.
pub const LEASED_LIMIT: u64 = 20;
/// The leased policy's window.
pub const LEASED_WINDOW: Duration = Duration::from_secs(1);
/// The longest lease the leased policy grants.
pub const LEASE_TTL: Duration = Duration::from_millis(250);
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

[policies.leased]
algorithm = "sliding_window"
limit = 20
period = "1s"
precision = 10
on_no_quorum = "deny"
lease = { ttl = "250ms", max_share = 0.3, reserve = 0.1 }

[[rules]]
dimension = "strict"
policy = "strict"

[[rules]]
dimension = "leased"
policy = "leased"

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
    let peers: BTreeMap<u64, Node> = (1..=NODES)
        .filter(|&p| p != id)
        .map(|p| {
            (p, Node { peer_addr: format!("{}:{PEER_PORT}", host(p)), public_addr: format!("{}:{PORT}", host(p)) })
        })
        .collect();
    let any = |port: u16| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let addrs = LocalAddrs { public: any(PORT), peer: any(PEER_PORT), admin: any(ADMIN_PORT) };
    let mut config = NodeConfig::local(id, addrs, dir.join(host(id)), peers);
    config.public.advertise = Some(format!("{}:{PORT}", host(id)));
    config.peer.advertise = Some(format!("{}:{PEER_PORT}", host(id)));
    config.bootstrap = id == 1;
    config.transport = Transport::Turmoil;
    config.sample_system = false;
    config.policies_toml = POLICIES.to_owned();
    config.check_deadline = Duration::from_millis(1_000);
    config.snapshot_every = 200;
    config
}

/// A channel from a client host to node `id`'s public listener through turmoil.
pub fn channel(id: u64) -> Channel {
    channel_to(id, PORT)
}

/// A channel from a client host to node `id`'s admin listener through turmoil.
pub fn admin_channel(id: u64) -> Channel {
    channel_to(id, ADMIN_PORT)
}

fn channel_to(id: u64, port: u16) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{}:{port}", host(id)))
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
        let mut config = node_config(id, dir.path());
        config.clock_drift_ppm = scenario.drift_ppm.get(id as usize - 1).copied().unwrap_or(0);
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
struct WorkloadRng(u64);

impl WorkloadRng {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

fn request(dimension: &str, key: u64) -> CheckRequest {
    let descriptor = Descriptor { dimension: dimension.into(), value: format!("k{key}"), policy: String::new() };
    CheckRequest { descriptors: vec![descriptor], cost: 1, peek: false, lease: None }
}

/// One client: checks every 25 ms (simulated) for the run, against its preferred node or a random one.
async fn workload(client: u8, seed: u64, scenario: &Scenario, history: Arc<Mutex<Vec<Event>>>) {
    let mut rng = WorkloadRng(seed ^ (u64::from(client) << 32) | 1);
    let mut clients: BTreeMap<u64, RateLimiterClient<Channel>> =
        (1..=NODES).map(|id| (id, RateLimiterClient::new(channel(id)))).collect();
    let start = tokio::time::Instant::now();
    let mut reports = 0u64;
    let mut stream = StreamConn::default();
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
        let size = if scenario.workload == Workload::Unary { 1 } else { BULK };
        let picks: Vec<(&'static str, u64)> = (0..size)
            .map(|_| {
                let [strict, local, leased] = scenario.mix;
                let pick = rng.next(strict + local + leased);
                if pick < strict {
                    ("strict", rng.next(KEYS))
                } else if pick < strict + local {
                    ("local", rng.next(KEYS))
                } else {
                    // One hot key: hot enough on every node to be decided from leases, and (at the default mix,
                    // half the checks) asked for more often than its limit allows.
                    ("leased", 0)
                }
            })
            .collect();
        let at = start.elapsed();
        let outcomes = match scenario.workload {
            Workload::Unary => vec![unary(&mut clients, node, picks[0]).await],
            Workload::Batch => batch(&mut clients, node, &picks).await,
            Workload::Stream => stream.send(&mut clients, node, &picks).await,
        };
        let answered = start.elapsed();
        let called = if scenario.workload == Workload::Stream { stream.node.unwrap_or(node) } else { node };
        let events = picks.into_iter().zip(outcomes).map(|((policy, key), (outcome, leased))| Event {
            client,
            node: called,
            policy,
            key,
            at_ms: at.as_millis() as u64,
            sent_us: at.as_micros() as u64,
            answered_us: answered.as_micros() as u64,
            outcome,
            leased,
        });
        history.lock().expect("history").extend(events);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How long a client waits for an answer.
const CALL_TIMEOUT: Duration = Duration::from_millis(1_500);

/// What a failed call means for each of its checks.
fn failed(status: &tonic::Status) -> Outcome {
    match status.code() {
        tonic::Code::Unavailable => Outcome::Unavailable,
        // The client's own connection broke (the node crashed mid-call): no answer, not a server error.
        _ if is_transport_error(status) => Outcome::Unreachable,
        code => Outcome::Error(format!("{code:?}: {}", status.message())),
    }
}

fn decided(allowed: bool, degraded: bool) -> Outcome {
    if allowed { Outcome::Allowed { degraded } } else { Outcome::Denied { degraded } }
}

/// A check's outcome and whether a node decided it from its leases.
type Answer = (Outcome, bool);

fn unanswered(outcome: Outcome, n: usize) -> Vec<Answer> {
    vec![(outcome, false); n]
}

/// One check's outcome within a batch or stream answer.
fn result_outcome(result: &CheckResult) -> Answer {
    match &result.result {
        Some(check_result::Result::Decision(d)) => (decided(d.allowed, d.degraded), d.leased),
        Some(check_result::Result::Error(e)) if e.code == tonic::Code::Unavailable as i32 => {
            (Outcome::Unavailable, false)
        }
        Some(check_result::Result::Error(e)) => (Outcome::Error(format!("{}: {}", e.code, e.message)), false),
        None => (Outcome::Error("an empty result".into()), false),
    }
}

async fn unary(clients: &mut BTreeMap<u64, RateLimiterClient<Channel>>, node: u64, pick: (&str, u64)) -> Answer {
    let Some(client) = clients.get_mut(&node) else { return (Outcome::Error("no such node".into()), false) };
    match tokio::time::timeout(CALL_TIMEOUT, client.check(request(pick.0, pick.1))).await {
        Err(_) => (Outcome::Timeout, false),
        Ok(Ok(response)) => {
            let response = response.get_ref();
            (decided(response.allowed, response.degraded), response.leased)
        }
        Ok(Err(status)) => (failed(&status), false),
    }
}

async fn batch(
    clients: &mut BTreeMap<u64, RateLimiterClient<Channel>>,
    node: u64,
    picks: &[(&'static str, u64)],
) -> Vec<Answer> {
    let Some(client) = clients.get_mut(&node) else {
        return unanswered(Outcome::Error("no such node".into()), picks.len());
    };
    let checks = picks.iter().map(|(policy, key)| request(policy, *key)).collect();
    match tokio::time::timeout(CALL_TIMEOUT, client.check_batch(CheckBatchRequest { checks })).await {
        Err(_) => unanswered(Outcome::Timeout, picks.len()),
        Ok(Ok(response)) => {
            let results = response.into_inner().results;
            if results.len() != picks.len() {
                let error = Outcome::Error(format!("{} results for {} checks", results.len(), picks.len()));
                return unanswered(error, picks.len());
            }
            results.iter().map(result_outcome).collect()
        }
        Ok(Err(status)) => unanswered(failed(&status), picks.len()),
    }
}

/// A client's check stream: opened on the node it calls, reopened (on the node of the next call) when it breaks.
#[derive(Default)]
struct StreamConn {
    node: Option<u64>,
    open: Option<(mpsc::Sender<CheckStreamRequest>, Streaming<CheckStreamResponse>)>,
    next_id: u64,
}

impl StreamConn {
    async fn send(
        &mut self,
        clients: &mut BTreeMap<u64, RateLimiterClient<Channel>>,
        node: u64,
        picks: &[(&'static str, u64)],
    ) -> Vec<Answer> {
        if self.open.is_none() {
            let Some(client) = clients.get_mut(&node) else {
                return unanswered(Outcome::Error("no such node".into()), picks.len());
            };
            let (send, outbound) = mpsc::channel(4);
            let requests = futures::stream::unfold(outbound, |mut o| async move { o.recv().await.map(|m| (m, o)) });
            match tokio::time::timeout(CALL_TIMEOUT, client.check_stream(requests)).await {
                Ok(Ok(response)) => {
                    self.open = Some((send, response.into_inner()));
                    self.node = Some(node);
                }
                Ok(Err(status)) => return unanswered(failed(&status), picks.len()),
                Err(_) => return unanswered(Outcome::Timeout, picks.len()),
            }
        }
        let Some((send, answers)) = self.open.as_mut() else { return unanswered(Outcome::Unreachable, picks.len()) };
        self.next_id += 1;
        let id = self.next_id;
        let checks = picks.iter().map(|(policy, key)| request(policy, *key)).collect();
        if send.send(CheckStreamRequest { id, checks }).await.is_err() {
            self.open = None;
            return unanswered(Outcome::Unreachable, picks.len());
        }
        let outcomes = match tokio::time::timeout(CALL_TIMEOUT, answers.message()).await {
            Ok(Ok(Some(answer))) if answer.id == id && answer.error.is_none() => {
                answer.results.iter().map(result_outcome).collect()
            }
            Ok(Ok(Some(answer))) => unanswered(Outcome::Error(format!("unexpected answer {answer:?}")), picks.len()),
            Ok(Ok(None)) => unanswered(Outcome::Unreachable, picks.len()),
            Ok(Err(status)) => unanswered(failed(&status), picks.len()),
            Err(_) => unanswered(Outcome::Timeout, picks.len()),
        };
        if outcomes.iter().any(|(o, _)| matches!(o, Outcome::Unreachable | Outcome::Timeout)) || outcomes.is_empty() {
            // A stream that broke or stalled is abandoned; the next message opens a new one.
            self.open = None;
        }
        outcomes
    }
}

/// Whether tonic made `status` from a broken connection or stream rather than receiving it from the server: a
/// status the server sent has no source error, one made in this process from a transport or HTTP/2 failure has.
fn is_transport_error(status: &tonic::Status) -> bool {
    use std::error::Error as _;
    status.source().is_some()
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
    for policy in ["strict", "local", "leased"] {
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
        let mut admin = AdminClient::new(admin_channel(id));
        if let Ok(Ok(digest)) =
            tokio::time::timeout(Duration::from_secs(1), admin.state_digest(StateDigestRequest {})).await
        {
            let digest = digest.into_inner();
            out.insert(id, (digest.applied_index, digest.digest));
        }
    }
    out
}
