//! Test harness: fake Quorate nodes (tonic servers on 127.0.0.1:0 with scripted answers) for exact, deterministic
//! tests, and a real in-process three-node cluster (as `quorate dev` starts it) for end-to-end ones.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quorate_node::Node;
use quorate_node::clock::SystemClock;
use quorate_node::config::LocalAddrs;
use quorate_node::{NodeConfig, NodeHandle, start_node};
use quorate_proto::v1::admin_server::{Admin, AdminServer};
use quorate_proto::v1::rate_limiter_server::{RateLimiter, RateLimiterServer};
use quorate_proto::v1::*;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

/// How a fake node answers `Check`.
pub type CheckFn = Arc<dyn Fn(&CheckRequest) -> Result<CheckResponse, Status> + Send + Sync>;

/// A scripted node: answers `Check` (and `Refund`) with `check`, `Status` with `status`, counts calls and
/// connections.
pub struct FakeNode {
    pub addr: SocketAddr,
    pub url: String,
    pub checks: Arc<AtomicUsize>,
    /// `CheckBatch` calls received (their checks count in `checks` too).
    pub batches: Arc<AtomicUsize>,
    /// Checks received inside `CheckBatch` calls.
    pub batched: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    status: Arc<Mutex<StatusResponse>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct Service {
    check: CheckFn,
    delay: Duration,
    checks: Arc<AtomicUsize>,
    batches: Arc<AtomicUsize>,
    batched: Arc<AtomicUsize>,
    status: Arc<Mutex<StatusResponse>>,
}

impl FakeNode {
    /// Starts a fake node answering every check with `check` after `delay`.
    pub async fn start(check: CheckFn, delay: Duration) -> FakeNode {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let checks = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let status = Arc::new(Mutex::new(StatusResponse { addr: addr.to_string(), ..Default::default() }));
        let (batches, batched) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let service = Service {
            check,
            delay,
            checks: checks.clone(),
            batches: batches.clone(),
            batched: batched.clone(),
            status: status.clone(),
        };
        let counter = connections.clone();
        let incoming = futures::stream::unfold(listener, move |listener| {
            let counter = counter.clone();
            async move {
                let accepted = listener.accept().await.map(|(stream, _)| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    stream
                });
                Some((accepted, listener))
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(RateLimiterServer::new(service.clone()))
            .add_service(AdminServer::new(service))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        FakeNode {
            addr,
            url: format!("http://{addr}"),
            checks,
            batches,
            batched,
            connections,
            status,
            stop: Some(stop),
            task,
        }
    }

    /// Starts a fake node that answers every check with `response`.
    pub async fn answering(response: CheckResponse) -> FakeNode {
        FakeNode::start(Arc::new(move |_| Ok(response.clone())), Duration::ZERO).await
    }

    /// Starts a fake node that fails every check with `status`.
    pub async fn failing(code: tonic::Code, message: &'static str) -> FakeNode {
        FakeNode::start(Arc::new(move |_| Err(Status::new(code, message))), Duration::ZERO).await
    }

    /// Sets what `Admin.Status` answers (node id, leader, members).
    pub fn set_status(&self, node_id: u64, leader_id: u64, members: &[(u64, SocketAddr)]) {
        let mut status = self.status.lock().unwrap();
        status.node_id = node_id;
        status.leader_id = leader_id;
        status.role = if node_id == leader_id { "leader" } else { "follower" }.to_owned();
        status.members = members
            .iter()
            .map(|(id, addr)| Member { id: *id, addr: addr.to_string(), voter: true, ..Member::default() })
            .collect();
    }

    pub fn check_count(&self) -> usize {
        self.checks.load(Ordering::SeqCst)
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Stops the server (open connections are told to go away).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

/// An address where nothing listens: connections are refused.
pub async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    listener.local_addr().unwrap()
}

/// One limit status with the fields header tests care about; durations in nanoseconds.
pub fn limit(policy: &str, allowed: bool, limit: u64, remaining: u64, reset_ns: u64, retry_ns: u64) -> LimitStatus {
    LimitStatus {
        policy: policy.to_owned(),
        key: format!("api_key={policy}_key"),
        allowed,
        limit,
        base_limit: limit,
        remaining,
        reset_after_ns: reset_ns,
        retry_after_ns: retry_ns,
        window_ns: 60_000_000_000,
    }
}

/// A decision on one limit.
pub fn response(status: LimitStatus) -> CheckResponse {
    CheckResponse {
        allowed: status.allowed,
        overall: Some(status.clone()),
        limits: vec![status],
        degraded: false,
        policy_version: 1,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl RateLimiter for Service {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        (self.check)(request.get_ref()).map(Response::new)
    }

    /// Each check of a batch is answered as a lone check would be (and counts as one check); the node's delay
    /// applies once per call.
    async fn check_batch(&self, request: Request<CheckBatchRequest>) -> Result<Response<CheckBatchResponse>, Status> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        let checks = request.into_inner().checks;
        self.batched.fetch_add(checks.len(), Ordering::SeqCst);
        self.checks.fetch_add(checks.len(), Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let results = checks
            .iter()
            .map(|check| {
                let result = match (self.check)(check) {
                    Ok(response) => check_result::Result::Decision(response),
                    Err(status) => check_result::Result::Error(ItemError {
                        code: status.code() as i32,
                        message: status.message().into(),
                    }),
                };
                CheckResult { result: Some(result) }
            })
            .collect();
        Ok(Response::new(CheckBatchResponse { results }))
    }

    type CheckStreamStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<CheckStreamResponse, Status>> + Send>>;

    async fn check_stream(
        &self,
        _: Request<tonic::Streaming<CheckStreamRequest>>,
    ) -> Result<Response<Self::CheckStreamStream>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn return_leases(&self, _: Request<ReturnLeasesRequest>) -> Result<Response<ReturnLeasesResponse>, Status> {
        Ok(Response::new(ReturnLeasesResponse {}))
    }

    /// Refunds succeed or fail as checks do (and count as checks).
    async fn refund(&self, request: Request<RefundRequest>) -> Result<Response<RefundResponse>, Status> {
        let RefundRequest { descriptors, amount } = request.into_inner();
        let as_check = CheckRequest { descriptors, cost: amount, peek: false, lease: None };
        self.check(Request::new(as_check)).await.map(|_| Response::new(RefundResponse {}))
    }

    async fn report_load(&self, request: Request<ReportLoadRequest>) -> Result<Response<ReportLoadResponse>, Status> {
        Ok(Response::new(ReportLoadResponse { load: request.get_ref().value.clamp(0.0, 1.0) }))
    }
}

#[tonic::async_trait]
impl Admin for Service {
    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(self.status.lock().unwrap().clone()))
    }

    async fn add_learner(&self, _: Request<AddLearnerRequest>) -> Result<Response<MembershipResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn change_membership(
        &self,
        _: Request<ChangeMembershipRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_policies(&self, _: Request<GetPoliciesRequest>) -> Result<Response<PoliciesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn set_policies(&self, _: Request<SetPoliciesRequest>) -> Result<Response<PoliciesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn state_digest(&self, _: Request<StateDigestRequest>) -> Result<Response<StateDigestResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn snapshot(&self, _: Request<SnapshotRequest>) -> Result<Response<SnapshotResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn campaign(&self, _: Request<CampaignRequest>) -> Result<Response<CampaignResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

/// A real three-node cluster in this process, with the sample tier policies, each node on a port the OS
/// assigned. One at a time per test process: the lease test's share of leased decisions depends on the two
/// cores not being shared with another cluster.
pub struct Cluster {
    pub nodes: BTreeMap<u64, NodeHandle>,
    pub urls: BTreeMap<u64, String>,
    _dir: tempfile::TempDir,
    _exclusive: tokio::sync::MutexGuard<'static, ()>,
}

static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Cluster {
    /// Starts `n` nodes (node 1 bootstraps) and waits until a leader has installed the policies.
    pub async fn start(n: u64) -> Cluster {
        let exclusive = EXCLUSIVE.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(SystemClock::new());
        let config = |id: u64, peers: BTreeMap<u64, Node>| {
            NodeConfig::local(id, LocalAddrs::any_port(), dir.path().join(format!("node{id}")), peers)
        };
        // The others first, on ports the OS picks, so that node 1 bootstraps with their real addresses.
        let mut nodes = BTreeMap::new();
        for id in 2..=n {
            nodes.insert(id, start_node(config(id, BTreeMap::new()), clock.clone()).await.unwrap());
        }
        let peers: BTreeMap<u64, Node> = nodes
            .iter()
            .map(|(id, n)| {
                (*id, Node { peer_addr: n.addrs().peer.to_string(), public_addr: n.addrs().public.to_string() })
            })
            .collect();
        let mut first = config(1, peers);
        first.bootstrap = true;
        nodes.insert(1, start_node(first, clock).await.unwrap());
        let urls = nodes.iter().map(|(id, n)| (*id, format!("http://{}", n.addrs().public))).collect();
        let cluster = Cluster { nodes, urls, _dir: dir, _exclusive: exclusive };
        cluster.wait_until_ready(Duration::from_secs(30)).await;
        cluster
    }

    /// The id of the node every live node agrees leads, if any.
    pub fn leader(&self) -> Option<u64> {
        let leaders: Vec<Option<u64>> = self.nodes.values().map(NodeHandle::leader).collect();
        let first = *leaders.first()?;
        let alive = first.filter(|id| self.nodes.contains_key(id))?;
        leaders.iter().all(|l| *l == Some(alive)).then_some(alive)
    }

    /// Polls until the live nodes agree on a live leader and all have the policies.
    pub async fn wait_until_ready(&self, within: Duration) {
        let ready = async {
            loop {
                if self.leader().is_some() && self.nodes.values().all(NodeHandle::is_ready) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(within, ready).await.expect("the cluster did not become ready in time");
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.urls.values().cloned().collect()
    }

    /// Stops node `id` as a crash would look to clients: its port stops answering.
    pub async fn kill(&mut self, id: u64) {
        if let Some(node) = self.nodes.remove(&id) {
            let _ = node.shutdown().await;
        }
    }

    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill(id).await;
        }
    }
}
