//! Starting and stopping a node: storage, Raft, the pipeline and the gRPC server, behind one [`NodeHandle`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::{Config, SnapshotPolicy};
use quorate_proto::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use quorate_proto::v1::admin_server::AdminServer;
use quorate_proto::v1::raft_server::RaftServer;
use quorate_proto::v1::rate_limiter_server::RateLimiterServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Server;

use crate::api::{
    self, AdminService, BulkLimits, EnvoyRateLimitService, RaftService, RateLimiterService, health, reflection,
};
use crate::auth::{Access, AccessLayer, ListenerKind, TokenRule};
use crate::batcher::{BatchLimits, Batcher};
use crate::check::degraded::DegradedLimiter;
use crate::check::local_journal::LocalJournal;
use crate::check::{Pipeline, PipelineParts};
use crate::clock::Clock;
use crate::cluster::{Cluster, ForwardLimits};
use crate::command::{EntryResponse, LogEntry};
use crate::config::{LocalAddrs, NodeConfig, host_of};
use crate::control::Control;
use crate::error::NodeError;
use crate::leases::LeaseHolder;
use crate::listeners::{Listeners, NodeTls, watch_members};
use crate::load::{self, LoadReporter, LoadTracker};
use crate::metrics::NodeMetrics;
use crate::metrics::export::Exporter;
use crate::raft::integrity::{OpenError, Verified, open_verified};
use crate::raft::log_store::open_db;
use crate::raft::network::NetworkFactory;
use crate::raft::state_machine::StateMachineStore;
use crate::raft::{Node, NodeId, Raft};
use crate::tls::MemberNames;
use crate::transport::Dialer;

/// How often a leader checks whether the cluster still needs its initial policy set.
const POLICY_INSTALL_INTERVAL: Duration = Duration::from_millis(200);

/// A running node. Dropping it does not stop it: call [`NodeHandle::shutdown`].
pub struct NodeHandle {
    id: NodeId,
    addrs: LocalAddrs,
    metrics_addr: Option<SocketAddr>,
    raft: Raft,
    state_machine: StateMachineStore,
    db: sled::Db,
    stop_servers: watch::Sender<bool>,
    servers: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
    /// How long a shutdown waits for the calls in flight (a check's deadline and a little).
    drain: Duration,
    background: Vec<JoinHandle<()>>,
    pipeline: Pipeline,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").field("id", &self.id).field("addrs", &self.addrs).finish_non_exhaustive()
    }
}

/// How many slices the election timeout range is cut into, one per node id modulo this.
const ELECTION_SLOTS: u64 = 4;

/// This node's election timeout range: its slice of the configured one, by id.
///
/// openraft 0.9 draws a node's election timeout once, at start, from the configured range. Two survivors whose
/// draws fall close together campaign together after every split vote, and elections then take seconds (measured:
/// 0.75-2.8 s to elect after a leader kill). Giving each node its own slice of the range (node 1 the lowest)
/// makes their timeouts differ by at least a slice, so one of them campaigns first.
fn election_range(id: NodeId, (min, max): (Duration, Duration)) -> (u64, u64) {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (min, max) = (millis(min), millis(max));
    let width = (max.saturating_sub(min) / ELECTION_SLOTS).max(1);
    let low = min + (id.saturating_sub(1) % ELECTION_SLOTS) * width;
    (low, (low + width).min(max).max(low + 1))
}

fn raft_config(config: &NodeConfig) -> Result<Config, NodeError> {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (election_min, election_max) = election_range(config.id, config.election_timeout);
    Ok(Config {
        cluster_name: "quorate".to_owned(),
        heartbeat_interval: millis(config.heartbeat),
        election_timeout_min: election_min,
        election_timeout_max: election_max,
        install_snapshot_timeout: millis(config.heartbeat * 10),
        // Batches make entries large: keep each AppendEntries within one heartbeat (its timeout).
        max_payload_entries: 64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: 1_000,
        ..Config::default()
    }
    .validate()?)
}

/// Starts a node: opens its data directory, starts Raft and serves gRPC; bootstraps the cluster if configured.
///
/// # Errors
///
/// [`NodeError`] if storage cannot be opened, the address cannot be bound or Raft refuses to start.
pub async fn start_node(config: NodeConfig, clock: Arc<dyn Clock>) -> Result<NodeHandle, NodeError> {
    let storage_error =
        |e: Box<dyn std::error::Error + Send + Sync>| NodeError::Storage { path: config.data_dir.clone(), source: e };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| storage_error(Box::new(e)))?;
    let db = open_db(&config.data_dir, config.cache_bytes).map_err(|e| storage_error(Box::new(e)))?;
    let io = config.transport.io_mode();
    let metrics = Arc::new(NodeMetrics::default());
    let Verified { log_store, state_machine } = open_verified(&config.data_dir, &db, io, config.table, metrics.clone())
        .map_err(|e| match e {
            OpenError::Storage(e) => storage_error(Box::new(e)),
            e @ OpenError::Snapshot { .. } => storage_error(Box::new(e)),
            OpenError::Damaged(damage) => {
                NodeError::Damaged { id: config.id, path: config.data_dir.clone(), problem: damage.to_string() }
            }
        })?;
    let journal = LocalJournal::open(&db, io).map_err(|e| storage_error(Box::new(e)))?;

    let listeners = Listeners::bind(&config).await?;
    let metrics_listener = match config.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Listen { addr: addr.to_string(), source })?,
        ),
        None => None,
    };
    let members = MemberNames::configured(config.peers.values().map(|n| host_of(&n.peer_addr).to_owned()).collect());
    let tls = NodeTls::new(&config, &members)?;
    let dialer = Dialer::new(config.transport, tls.peer_client.clone());

    let network = NetworkFactory::new(config.id, dialer.clone());
    let raft = Raft::new(config.id, Arc::new(raft_config(&config)?), network, log_store, state_machine.clone()).await?;
    // Before any tick: see `hold_elections`.
    raft.runtime_config().elect(false);
    let election_hold = tokio::spawn(hold_elections(raft.clone(), config.election_timeout.1 * 2));

    let limits = BatchLimits {
        max_batch: config.max_batch,
        max_inflight: config.max_inflight,
        write_timeout: config.check_deadline,
    };
    let batcher = Batcher::spawn(raft.clone(), clock.clone(), limits, metrics.clone());
    let forwarding = ForwardLimits { max_batch: config.max_batch, max_inflight: config.max_inflight };
    let cluster = Cluster::new(config.id, raft.clone(), dialer, forwarding);
    // Twice the longest election: the quorum side of a split has a new leader by then (check::degraded).
    let local_grace = config.election_timeout.1 * 2;
    let degraded = DegradedLimiter::open(journal, config.table, local_grace, clock.now())
        .map_err(|e| storage_error(Box::new(e)))?;
    let pipeline = Pipeline::new(PipelineParts {
        cluster: cluster.clone(),
        batcher,
        state_machine: state_machine.clone(),
        deadline: config.check_deadline,
        clock: clock.clone(),
        degraded,
        leases: LeaseHolder::new(config.id, config.clock_drift_ppm),
        quorum_ack_within: local_grace / 2,
        metrics: metrics.clone(),
    });
    let tracker = LoadTracker::default();
    let load = LoadReporter::new(cluster.clone(), tracker.clone(), clock.clone(), config.check_deadline);
    let control = Control::new(cluster.clone(), config.check_deadline);
    let sampler = match config.sample_system {
        true => tokio::spawn(load::run_sampler(load.clone())),
        false => tokio::spawn(async {}),
    };
    let multiplier_source = state_machine.clone();
    let folder = tokio::spawn(load::run_folder(cluster.clone(), tracker.clone(), clock, move || {
        multiplier_source.replica().multiplier()
    }));
    let bulk = BulkLimits { max_items: config.max_batch_items, max_stream_checks: config.max_stream_checks };
    let (health_reporter, health_server) = tonic_health::server::health_reporter();
    // The reporter starts with "" SERVING; nothing is served before a leader and a policy set are known.
    health::set_all(&health_reporter, tonic_health::ServingStatus::NotServing).await;
    let raft_service = RaftService::new(raft.clone(), pipeline.clone(), load.clone(), control.clone());
    let admin_service = AdminService::new(
        raft.clone(),
        state_machine.clone(),
        tracker,
        control,
        pipeline.clone(),
        config.election_timeout.1,
    );
    let tokens: Arc<[TokenRule]> = Arc::from(config.tokens.clone());
    // One set of rules per listener, shared by its access layer and the metrics (refusals per listener).
    let [public_rules, peer_rules, admin_rules] = [ListenerKind::Public, ListenerKind::Peer, ListenerKind::Admin]
        .map(|kind| Arc::new(Access::new(kind, tokens.clone())));
    let access_rules = vec![
        (ListenerKind::Public.name(), public_rules.clone()),
        (ListenerKind::Peer.name(), peer_rules.clone()),
        (ListenerKind::Admin.name(), admin_rules.clone()),
    ];
    let public = server(PUBLIC_STREAMS)
        .layer(AccessLayer::new(public_rules))
        .add_service(
            RateLimiterServer::new(RateLimiterService::new(pipeline.clone(), load, bulk))
                .max_decoding_message_size(api::rate_limiter_max_bytes(config.max_batch_items)),
        )
        .add_service(
            RateLimitServiceServer::new(EnvoyRateLimitService::new(pipeline.clone(), config.envoy))
                .max_decoding_message_size(api::ENVOY_MAX_BYTES),
        )
        .add_service(AdminServer::new(admin_service.clone()).max_decoding_message_size(api::ADMIN_MAX_BYTES))
        .add_service(health_server.clone())
        .add_service(reflection::v1()?)
        .add_service(reflection::v1alpha()?);
    let peer = server(PEER_STREAMS)
        .layer(AccessLayer::new(peer_rules))
        .add_service(RaftServer::new(raft_service).max_decoding_message_size(api::RAFT_MAX_BYTES))
        .add_service(health_server.clone());
    let admin = server(ADMIN_STREAMS)
        .layer(AccessLayer::new(admin_rules))
        .add_service(AdminServer::new(admin_service).max_decoding_message_size(api::ADMIN_MAX_BYTES))
        .add_service(health_server)
        .add_service(reflection::v1()?)
        .add_service(reflection::v1alpha()?);
    let (stop_servers, stopped) = watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let addrs = listeners.addrs;
    let advertise = config.public.advertise.clone().unwrap_or_else(|| addrs.public.to_string());
    let peer_advertise = config.peer.advertise.clone().unwrap_or_else(|| addrs.peer.to_string());
    let servers = vec![
        tokio::spawn(listeners.public.serve(public, tls.public.clone(), until_stopped())),
        tokio::spawn(listeners.peer.serve(peer, tls.peer.clone(), until_stopped())),
        tokio::spawn(listeners.admin.serve(admin, tls.admin.clone(), until_stopped())),
    ];

    if config.bootstrap && !raft.is_initialized().await? {
        let mut members: BTreeMap<NodeId, Node> = config.peers.clone();
        members.insert(config.id, Node { peer_addr: peer_advertise.clone(), public_addr: advertise.clone() });
        raft.initialize(members).await?;
        tracing::info!(id = config.id, "initialised a new cluster");
    }
    let installer = tokio::spawn(install_initial_policies(raft.clone(), state_machine.clone(), config.policies_toml));
    let health = tokio::spawn(health::report_health(
        health_reporter,
        raft.clone(),
        state_machine.clone(),
        config.election_timeout.1,
    ));
    let returns = tokio::spawn(pipeline.clone().run_lease_returns());
    let renewals = tokio::spawn(pipeline.clone().run_lease_renewals());
    let watcher = tokio::spawn(watch_members(raft.clone(), members));
    let reloader = tokio::spawn(tls.reload_on_change());
    let leader_changes = tokio::spawn(crate::metrics::count_leader_changes(raft.clone(), metrics.clone()));
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    let exporter = Exporter { metrics, raft: raft.clone(), state_machine: state_machine.clone(), access: access_rules };
    let metrics_server = match metrics_listener {
        Some(listener) => tokio::spawn(crate::metrics::http::serve(listener, exporter, until_stopped())),
        None => tokio::spawn(async {}),
    };
    tracing::info!(
        id = config.id,
        public = %addrs.public,
        peer = %addrs.peer,
        admin = %addrs.admin,
        metrics = ?metrics_addr,
        %advertise,
        "node started"
    );
    Ok(NodeHandle {
        id: config.id,
        addrs,
        metrics_addr,
        raft,
        state_machine,
        db,
        stop_servers,
        drain: config.check_deadline + Duration::from_secs(1),
        servers,
        background: vec![
            election_hold,
            installer,
            sampler,
            folder,
            health,
            returns,
            renewals,
            watcher,
            reloader,
            leader_changes,
            metrics_server,
        ],
        pipeline,
    })
}

/// Concurrent calls one client connection may have open on the public listener: many callers share a connection
/// (quorate-client multiplexes), but one connection cannot hold the node's every task.
const PUBLIC_STREAMS: u32 = 1_024;
/// Concurrent calls per connection on the peer listener: Raft RPCs and forwarded calls of one peer.
const PEER_STREAMS: u32 = 1_024;
/// Concurrent calls per connection on the admin listener.
const ADMIN_STREAMS: u32 = 64;

/// A server with the limits every listener shares: at most `streams` concurrent calls per connection, and
/// HTTP/2 keep-alives that close a connection whose client vanished without a FIN (its calls end with it).
fn server(streams: u32) -> Server {
    Server::builder()
        .max_concurrent_streams(Some(streams))
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
}

/// Keeps this node from campaigning for `hold` after it starts, then lets it.
///
/// openraft 0.9 has a (re)started node campaign at its first tick, before the leader's first heartbeat reached
/// it, usually with a shorter log than the others': the campaign fails, and the "seen a greater log" flag it
/// leaves behind doubles the node's election wait until its next campaign — so the next time the leader died,
/// this node was slow to replace it (measured with the failover report). Twice the longest election timeout is
/// long enough to hear a living leader, and short for a whole cluster starting together. A new cluster's first
/// election is `Raft::initialize`'s, which this does not hold back.
async fn hold_elections(raft: Raft, hold: Duration) {
    tokio::time::sleep(hold).await;
    raft.runtime_config().elect(true);
}

/// While the cluster has no policy set, the leader proposes the one from its config; any node may be that leader.
async fn install_initial_policies(raft: Raft, state_machine: StateMachineStore, toml: String) {
    loop {
        if state_machine.policies().is_some() {
            return;
        }
        let is_leader = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            metrics.current_leader == Some(metrics.id)
        };
        if is_leader {
            let entry = LogEntry::SetPolicies { toml: toml.clone(), expected_version: 0 };
            match raft.client_write(entry).await {
                Ok(written) => {
                    if let EntryResponse::Policies(Ok(version)) = written.data {
                        tracing::info!(version, "installed the initial policy set");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "could not install the initial policy set yet"),
            }
        }
        tokio::time::sleep(POLICY_INSTALL_INTERVAL).await;
    }
}

impl NodeHandle {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the public listener is bound to (API servers, Envoy).
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs.public
    }

    /// Where the metrics listener is bound, if the node has one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The addresses all three listeners are bound to.
    pub fn addrs(&self) -> LocalAddrs {
        self.addrs
    }

    /// The leader this node knows of, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether the node can decide: it knows a leader and has applied a policy set.
    pub fn is_ready(&self) -> bool {
        self.leader().is_some() && self.state_machine.policies().is_some()
    }

    /// Resolves when Raft stops on its own (a storage failure, say), with what stopped it; never while Raft runs.
    /// The node then answers NOT_SERVING and can decide nothing strictly: `quorate serve` exits with this error
    /// so that its supervisor restarts it.
    pub async fn fatal(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            {
                let now = metrics.borrow_and_update();
                if let Err(fatal) = &now.running_state {
                    return fatal.to_string();
                }
            }
            if metrics.changed().await.is_err() {
                return "Raft stopped".to_owned();
            }
        }
    }

    /// Stops the node: Raft, the server and background tasks; flushes storage.
    ///
    /// # Errors
    ///
    /// [`NodeError::Shutdown`] if Raft did not shut down cleanly.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        // Stop taking calls first: the listeners close, and the calls in flight are answered while Raft still
        // runs (a check's deadline bounds them; a stream still open after that is cut).
        let _ = self.stop_servers.send(true);
        let drained = tokio::time::timeout(self.drain, async {
            for server in &mut self.servers {
                let _ = server.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(after = ?self.drain, "calls still in flight at shutdown were cut");
            for server in &self.servers {
                server.abort();
            }
        }
        for task in &self.background {
            task.abort();
        }
        // Give this node's leases back while Raft still runs; if no leader takes them in time they stay charged,
        // which only under-admits.
        self.pipeline.return_all_leases().await;
        let raft_result = self.raft.shutdown().await.map_err(NodeError::Shutdown);
        let _ = self.db.flush_async().await;
        raft_result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_draws_its_election_timeout_from_its_own_slice() {
        let range = (Duration::from_millis(250), Duration::from_millis(500));
        let slices: Vec<(u64, u64)> = (1..=5).map(|id| election_range(id, range)).collect();
        assert_eq!(slices, [(250, 312), (312, 374), (374, 436), (436, 498), (250, 312)]);
        // A range too narrow to slice still gives every node a valid one.
        let narrow = (Duration::from_millis(300), Duration::from_millis(301));
        assert!((1..=4).all(|id| {
            let (low, high) = election_range(id, narrow);
            low < high
        }));
    }
}
