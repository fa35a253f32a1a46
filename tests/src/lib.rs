//! Harness for cluster tests: real `quorate serve` processes on 127.0.0.1, one temp dir per test.
//!
//! A [`Cluster`] writes each node's config, spawns the binary, and kills every child it started when dropped, so
//! a failing test never leaves processes behind. Tests drive the cluster only through the public gRPC API.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{
    CheckRequest, CheckResponse, Descriptor, StateDigestRequest, StateDigestResponse, StatusRequest, StatusResponse,
};
use tonic::transport::Channel;

/// Policies used by the cluster tests: small limits over long windows, so a test's whole history is one window.
pub const TEST_POLICIES: &str = r#"
[policies.ten_per_hour]
algorithm = "sliding_window"
limit = 10
period = "1h"

[policies.fifty_per_hour]
algorithm = "sliding_window"
limit = 50
period = "1h"

[policies.roomy]
algorithm = "token_bucket"
limit = 1000000
period = "1s"

[policies.adaptive_tier]
algorithm = "token_bucket"
limit = 100
period = "1m"
adaptive = true
adaptive_floor = 0.25

[policies.courtesy]
algorithm = "token_bucket"
limit = 10
period = "1h"
on_no_quorum = "allow"

[policies.shared]
algorithm = "sliding_window"
limit = 30
period = "1h"
on_no_quorum = "local"

[policies.leased]
algorithm = "sliding_window"
limit = 100
period = "1s"
precision = 10
lease = { ttl = "250ms", max_share = 0.1, reserve = 0.1 }

# Its twin without leases, for comparisons under the same demand.
[policies.unleased]
algorithm = "sliding_window"
limit = 100
period = "1s"
precision = 10

[[rules]]
dimension = "unleased"
policy = "unleased"

[[rules]]
dimension = "leased"
policy = "leased"

[[rules]]
dimension = "courtesy"
policy = "courtesy"

[[rules]]
dimension = "shared"
policy = "shared"

[[rules]]
dimension = "tier"
policy = "adaptive_tier"

[[rules]]
dimension = "user"
policy = "ten_per_hour"

[[rules]]
dimension = "agent"
policy = "fifty_per_hour"

[[rules]]
dimension = "load"
policy = "roomy"

# Fast reactions for tests: no smoothing, relax one level per quiet second.
[adaptive]
smoothing = 1.0
relax_after = "1s"
"#;

/// One node process.
#[derive(Debug)]
struct NodeProcess {
    child: Option<Child>,
}

/// A cluster of `quorate serve` processes.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    ports: BTreeMap<u64, Ports>,
    nodes: BTreeMap<u64, NodeProcess>,
    snapshot_every: u64,
    check_deadline: &'static str,
    /// Nodes started inside a shell script of the test's (`{serve}` in it stands for the quorate command).
    wrappers: BTreeMap<u64, String>,
    /// Raft timings as the config file gives them: the tests' fast ones, or the defaults (no `[raft]` table).
    default_raft: bool,
}

/// A node's listener ports on 127.0.0.1: the three gRPC listeners and the metrics listener.
#[derive(Debug, Clone, Copy)]
struct Ports {
    public: u16,
    peer: u16,
    admin: u16,
    metrics: u16,
}

impl Ports {
    fn free() -> Self {
        Ports { public: free_port(), peer: free_port(), admin: free_port(), metrics: free_port() }
    }
}

/// A port on 127.0.0.1 that was free a moment ago, never the same twice in this process.
///
/// Ports come from 20000-31999, below Linux's ephemeral range (32768-60999): a port the OS handed out and this
/// harness released could otherwise be taken by any outgoing connection (the tests' clients, the nodes' peer
/// channels) before the node binds it.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(7_919);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + (offset.wrapping_add(n) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The binary under test: `$QUORATE_BIN`, or `quorate-under-test` next to the test executable's `deps/` folder
/// (cargo builds it for this package's integration tests).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("QUORATE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let target = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    target.join(format!("quorate-under-test{}", std::env::consts::EXE_SUFFIX))
}

/// Runs the binary under test as a command-line tool (`quorate args...`); returns success, stdout and stderr.
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(binary()).args(args).output().expect("running quorate");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

impl Cluster {
    /// Starts `n` nodes (node 1 bootstraps the cluster) with [`TEST_POLICIES`].
    pub fn start(n: u64) -> Self {
        Cluster::start_with(n, 20_000)
    }

    /// Like [`Cluster::start`], snapshotting every `snapshot_every` log entries.
    pub fn start_with(n: u64, snapshot_every: u64) -> Self {
        Cluster::start_custom(n, snapshot_every, "2s")
    }

    /// Like [`Cluster::start`], with a custom snapshot interval and check deadline (e.g. `"300ms"`).
    pub fn start_custom(n: u64, snapshot_every: u64, check_deadline: &'static str) -> Self {
        let mut cluster = Cluster::prepare(n);
        cluster.snapshot_every = snapshot_every;
        cluster.check_deadline = check_deadline;
        cluster.start_nodes(n);
        cluster
    }

    /// Like [`Cluster::start`], with the default Raft timings of a config file without `[raft]` (heartbeat
    /// 50 ms, elections 150-300 ms): for measuring what a deployment sees.
    pub fn start_with_default_raft(n: u64) -> Self {
        let mut cluster = Cluster::prepare(n);
        cluster.default_raft = true;
        cluster.start_nodes(n);
        cluster
    }

    /// Like [`Cluster::start`], but node `id` is started by `sh -c <script>`, where `{serve}` in the script is
    /// the quorate command and `{data}` its data directory (e.g. to run it on a small tmpfs in a mount namespace
    /// of its own).
    pub fn start_wrapped(n: u64, id: u64, script: &str) -> Self {
        let mut cluster = Cluster::prepare(n);
        cluster.wrappers.insert(id, script.to_owned());
        cluster.start_nodes(n);
        cluster
    }

    /// A cluster of `n` nodes with the default settings and [`TEST_POLICIES`], not started yet.
    fn prepare(n: u64) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("policies.toml"), TEST_POLICIES).expect("writing policies");
        Cluster {
            dir,
            ports: (1..=n).map(|id| (id, Ports::free())).collect(),
            nodes: BTreeMap::new(),
            snapshot_every: 20_000,
            check_deadline: "2s",
            wrappers: BTreeMap::new(),
            default_raft: false,
        }
    }

    fn start_nodes(&mut self, n: u64) {
        let cluster = self;
        for id in 1..=n {
            cluster.write_config(id, id == 1, &(1..=n).collect::<Vec<_>>());
            cluster.spawn(id);
        }
    }

    fn write_config(&self, id: u64, bootstrap: bool, members: &[u64]) -> PathBuf {
        let ports = self.ports[&id];
        let mut text = format!(
            "id = {id}\ndata_dir = \"node{id}\"\nbootstrap = {bootstrap}\npolicies = \"policies.toml\"\n\n\
             [public]\nlisten = \"127.0.0.1:{}\"\n[peer]\nlisten = \"127.0.0.1:{}\"\n\
             [admin]\nlisten = \"127.0.0.1:{}\"\ninsecure = true\n\n\
             [metrics]\nlisten = \"127.0.0.1:{}\"\n\n\
             [raft]\nheartbeat = \"50ms\"\nelection_timeout_min = \"300ms\"\n\
             election_timeout_max = \"600ms\"\nsnapshot_every = {}\n\n[limits]\ncheck_deadline = \"{}\"\n\n\
             [load]\nsample_system = false\n",
            ports.public, ports.peer, ports.admin, ports.metrics, self.snapshot_every, self.check_deadline
        );
        if self.default_raft {
            let start = text.find("[raft]").unwrap_or(0);
            let end = text[start..].find("snapshot_every").map_or(start, |at| start + at);
            text.replace_range(start..end, "[raft]\n");
        }
        for peer in members.iter().filter(|&&p| p != id) {
            let Ports { public, peer: peer_port, .. } = self.ports[peer];
            text.push_str(&format!(
                "\n[[peers]]\nid = {peer}\npeer = \"127.0.0.1:{peer_port}\"\npublic = \"127.0.0.1:{public}\"\n"
            ));
        }
        let path = self.dir.path().join(format!("node{id}.toml"));
        std::fs::write(&path, text).expect("writing a node config");
        path
    }

    fn spawn(&mut self, id: u64) {
        let config = self.dir.path().join(format!("node{id}.toml"));
        // Appended to, so a restarted node's log follows its earlier life in the same file.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{id}.log")))
            .expect("a log file");
        let mut command = match self.wrappers.get(&id) {
            None => {
                let mut command = Command::new(binary());
                command.args(["serve", "--config"]).arg(&config);
                command
            }
            Some(script) => {
                let serve = format!("'{}' serve --config '{}'", binary().display(), config.display());
                let data = self.dir.path().join(format!("node{id}"));
                let script = script.replace("{serve}", &serve).replace("{data}", &data.display().to_string());
                let mut command = Command::new("sh");
                command.args(["-c", &script]);
                command
            }
        };
        let child = command.stdout(Stdio::null()).stderr(log).spawn().expect("spawning quorate");
        self.nodes.insert(id, NodeProcess { child: Some(child) });
    }

    /// The process id of node `id`, if it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.nodes.get(&id)?.child.as_ref().map(Child::id)
    }

    /// Whether node `id`'s process has exited, with its exit status.
    pub fn exited(&mut self, id: u64) -> Option<std::process::ExitStatus> {
        self.nodes.get_mut(&id)?.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Adds node `id` (not yet a member) on a fresh port and starts it.
    pub fn add_process(&mut self, id: u64) {
        self.ports.insert(id, Ports::free());
        self.write_config(id, false, &[]);
        self.spawn(id);
    }

    /// The data directory of the cluster (per-node subdirectories).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `host:port` of node `id`'s public listener.
    pub fn addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.ports[&id].public)
    }

    /// `host:port` of node `id`'s peer listener.
    pub fn peer_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.ports[&id].peer)
    }

    /// Fetches `path` from node `id`'s metrics listener: the HTTP status and the body.
    pub fn http_get(&self, id: u64, path: &str) -> anyhow::Result<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.ports[&id].metrics))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").context("no end of headers")?;
        let status = head.split_whitespace().nth(1).context("no status")?.parse()?;
        Ok((status, body.to_owned()))
    }

    /// `http://host:port` of node `id`.
    pub fn endpoint(&self, id: u64) -> String {
        format!("http://{}", self.addr(id))
    }

    /// Ids of the nodes whose processes are running.
    pub fn running(&self) -> Vec<u64> {
        self.nodes.iter().filter(|(_, n)| n.child.is_some()).map(|(id, _)| *id).collect()
    }

    /// Kills node `id` with SIGKILL (no chance to flush or say goodbye).
    pub fn kill(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id)
            && let Some(mut child) = node.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops node `id` with SIGTERM, as an operator or systemd would, and waits up to `within` for it to exit;
    /// returns whether it exited successfully in time (a node still running then is killed).
    pub fn stop(&mut self, id: u64, within: Duration) -> bool {
        let Some(mut child) = self.nodes.get_mut(&id).and_then(|node| node.child.take()) else { return false };
        let signalled = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let start = Instant::now();
        while signalled.as_ref().is_ok_and(|s| s.success()) && start.elapsed() < within {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Starts node `id` again on its data directory.
    pub fn restart(&mut self, id: u64) {
        self.spawn(id);
    }

    /// Waits up to `within` for node `id`'s process to exit; its exit status (the node no longer counts as
    /// running), or `None` if it still runs.
    pub fn wait_exit(&mut self, id: u64, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(status) = self.exited(id) {
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.child = None;
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// `host:port` of node `id`'s admin listener, as the CLI's `--endpoint` takes it.
    pub fn admin_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.ports[&id].admin)
    }
}

/// What the tests need of any cluster, whichever way its processes run: endpoints, logs and status calls.
// Test harness only: its futures are awaited in place, so they need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Nodes {
    /// The node ids the readiness checks cover (the running ones).
    fn node_ids(&self) -> Vec<u64>;

    /// `http://host:port` where the test reaches node `id`'s public listener.
    fn endpoint(&self, id: u64) -> String;

    /// `http://host:port` where the test reaches node `id`'s admin listener.
    fn admin_endpoint(&self, id: u64) -> String;

    /// The folder holding `node<id>.log`.
    fn log_dir(&self) -> &Path;

    /// The stderr log of node `id`, for failure messages.
    fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_dir().join(format!("node{id}.log"))).unwrap_or_default()
    }

    /// A Check client to node `id` (lazy: connects on first use).
    fn client(&self, id: u64) -> RateLimiterClient<Channel> {
        RateLimiterClient::new(channel(&self.endpoint(id)))
    }

    /// An Admin client to node `id`'s admin listener.
    fn admin(&self, id: u64) -> AdminClient<Channel> {
        AdminClient::new(channel(&self.admin_endpoint(id)))
    }

    /// Status of node `id`, or an error if it does not answer within a second.
    async fn status(&self, id: u64) -> anyhow::Result<StatusResponse> {
        let mut admin = self.admin(id);
        let call = admin.status(StatusRequest {});
        let status = tokio::time::timeout(Duration::from_secs(1), call).await.context("status timed out")??;
        Ok(status.into_inner())
    }

    /// The state digest of node `id`, or an error if it does not answer within two seconds.
    async fn state_digest(&self, id: u64) -> anyhow::Result<StateDigestResponse> {
        let mut admin = self.admin(id);
        let call = admin.state_digest(StateDigestRequest {});
        let digest = tokio::time::timeout(Duration::from_secs(2), call).await.context("digest timed out")??;
        Ok(digest.into_inner())
    }

    /// Waits until every node of [`Nodes::node_ids`] agrees on a leader and has the policy set; returns the leader.
    async fn wait_ready(&self, within: Duration) -> anyhow::Result<u64> {
        let start = Instant::now();
        loop {
            let ids = self.node_ids();
            let mut leaders = Vec::new();
            for &id in &ids {
                if let Ok(s) = self.status(id).await
                    && s.leader_id != 0
                    && s.policy_version >= 1
                {
                    leaders.push(s.leader_id);
                }
            }
            if !ids.is_empty() && leaders.len() == ids.len() && leaders.iter().all(|&l| l == leaders[0]) {
                return Ok(leaders[0]);
            }
            if start.elapsed() > within {
                bail!("cluster not ready after {within:?}; node 1 log:\n{}", self.log(1));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until node `id` has applied at least `index`.
    async fn wait_applied(&self, id: u64, index: u64, within: Duration) -> anyhow::Result<StatusResponse> {
        let start = Instant::now();
        loop {
            if let Ok(status) = self.status(id).await
                && status.applied_index >= index
            {
                return Ok(status);
            }
            if start.elapsed() > within {
                bail!("node {id} did not apply index {index} within {within:?}:\n{}", self.log(id));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Nodes for Cluster {
    fn node_ids(&self) -> Vec<u64> {
        self.running()
    }

    fn endpoint(&self, id: u64) -> String {
        Cluster::endpoint(self, id)
    }

    fn admin_endpoint(&self, id: u64) -> String {
        format!("http://127.0.0.1:{}", self.ports[&id].admin)
    }

    fn log_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Nodes for NetnsCluster {
    fn node_ids(&self) -> Vec<u64> {
        (1..=self.n).collect()
    }

    fn endpoint(&self, id: u64) -> String {
        NetnsCluster::endpoint(self, id)
    }

    fn admin_endpoint(&self, id: u64) -> String {
        format!("http://10.214.{}.{}:{NETNS_ADMIN_PORT}", self.subnet, 4 * id + 2)
    }

    fn log_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn channel(endpoint: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .expect("a valid endpoint")
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy()
}

/// A check of `cost` for one descriptor.
pub fn check(dimension: &str, value: &str, cost: u64) -> CheckRequest {
    CheckRequest {
        descriptors: vec![Descriptor { dimension: dimension.into(), value: value.into(), policy: String::new() }],
        cost,
        peek: false,
        lease: None,
    }
}

/// Sends `request` to node `id` with a per-call timeout; the result says allowed, denied or the error.
pub async fn call(
    client: &mut RateLimiterClient<Channel>,
    request: CheckRequest,
) -> Result<CheckResponse, tonic::Status> {
    let mut request = tonic::Request::new(request);
    request.set_timeout(Duration::from_secs(5));
    match tokio::time::timeout(Duration::from_secs(6), client.check(request)).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer within 6 s")),
    }
}

/// A cluster of `quorate serve` processes, each in its own Linux network namespace, for partition tests.
///
/// Every node has two links:
///
/// - a *peer* link (`10.213.0.<id>/24`) into a bridge that lives in a namespace of its own. Raft and forwarded
///   checks use it: nodes listen on all their addresses and advertise the peer address.
/// - a *client* link: a point-to-point veth to the root namespace (`10.214.<s>.<4·id+2>/30`, the root side
///   `…<4·id+1>`), where the test process — the client — lives. No namespace has a default route and nothing
///   forwards between links, so the client link carries only the test's own calls.
///
/// [`NetnsCluster::isolate`] sets the node's port on the bridge down: peer traffic then drops silently in both
/// directions (open TCP connections stall, like in a real partition) while the test still reaches the node over
/// its client link and sees what it answers without a quorum. [`NetnsCluster::heal`] sets the port up again.
///
/// Names carry the test process id (`qns<pid>-<id>`, interfaces of at most 15 characters); leftovers of a crashed
/// earlier run with the same names are removed before starting, and everything (processes, namespaces, links) is
/// removed on drop, also when the test panics. Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and `ip` (iproute2).
#[derive(Debug)]
pub struct NetnsCluster {
    /// Held while the cluster exists: the namespaces' names and client subnet come from the process id, and the
    /// partition tests' timing assumes no other namespace cluster competes for the two cores.
    _exclusive: std::sync::MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
    pid: u32,
    /// Third octet of the client links' addresses, from the process id so that parallel runs do not collide.
    subnet: u8,
    n: u64,
    nodes: BTreeMap<u64, NodeProcess>,
}

/// The port every node listens on inside its namespace.
const NETNS_PORT: u16 = 7101;
/// The peer port of every node in its namespace.
const NETNS_PEER_PORT: u16 = 7201;
/// The admin port of every node in its namespace.
const NETNS_ADMIN_PORT: u16 = 7301;

/// Runs `ip args…`; the error is the command line and what `ip` said.
fn run_ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl NetnsCluster {
    /// Creates the namespaces and links and starts `n` nodes (node 1 bootstraps) with [`TEST_POLICIES`], the
    /// given check deadline (e.g. `"500ms"`), a 50 ms heartbeat and 300-600 ms elections.
    ///
    /// # Errors
    ///
    /// Only when network namespaces cannot be created here (not root, no CAP_SYS_ADMIN/CAP_NET_ADMIN, no `ip`):
    /// the message says why, for the test to skip. Any later setup failure panics (after cleaning up).
    pub fn start(n: u64, check_deadline: &str) -> Result<Self, String> {
        assert!((1..=9).contains(&n), "NetnsCluster supports 1 to 9 nodes");
        // One namespace cluster at a time in this process (a test that panicked leaves the lock poisoned, not
        // held: its cluster was dropped).
        static EXCLUSIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let exclusive = EXCLUSIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let pid = std::process::id();
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("policies.toml"), TEST_POLICIES).expect("writing policies");
        let subnet = 16 + (pid % 224) as u8;
        let mut cluster = NetnsCluster { _exclusive: exclusive, dir, pid, subnet, n, nodes: BTreeMap::new() };
        cluster.cleanup_network();
        // The one step whose failure means "this machine cannot do namespaces": skip, don't fail.
        run_ip(&["netns", "add", &cluster.bridge_ns()])
            .map_err(|e| format!("cannot create a network namespace (needs root and iproute2): {e}"))?;
        cluster.setup_network().unwrap_or_else(|e| panic!("setting up the namespaces: {e}"));
        for id in 1..=n {
            cluster.write_config(id, check_deadline);
            cluster.spawn(id);
        }
        Ok(cluster)
    }

    fn bridge_ns(&self) -> String {
        format!("qns{}-br", self.pid)
    }

    /// The network namespace of node `id`.
    pub fn namespace(&self, id: u64) -> String {
        format!("qns{}-{id}", self.pid)
    }

    /// The node's port on the bridge (in the bridge namespace).
    fn bridge_port(&self, id: u64) -> String {
        format!("qpb{}-{id}", self.pid)
    }

    /// The root namespace's end of the node's client link.
    fn root_link(&self, id: u64) -> String {
        format!("qcr{}-{id}", self.pid)
    }

    fn setup_network(&self) -> Result<(), String> {
        let pid = self.pid;
        let br_ns = self.bridge_ns();
        let bridge = format!("qb{pid}");
        run_ip(&["-n", &br_ns, "link", "add", &bridge, "type", "bridge"])?;
        run_ip(&["-n", &br_ns, "link", "set", &bridge, "up"])?;
        for id in 1..=self.n {
            let ns = self.namespace(id);
            run_ip(&["netns", "add", &ns])?;
            run_ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            // Peer link: node namespace <-> bridge namespace.
            let (inner, port) = (format!("qp{pid}-{id}"), self.bridge_port(id));
            run_ip(&["link", "add", &inner, "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &br_ns])?;
            run_ip(&["-n", &br_ns, "link", "set", &port, "master", &bridge])?;
            run_ip(&["-n", &br_ns, "link", "set", &port, "up"])?;
            run_ip(&["-n", &ns, "addr", "add", &format!("10.213.0.{id}/24"), "dev", &inner])?;
            run_ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            // Client link: node namespace <-> root namespace.
            let (inner, root) = (format!("qc{pid}-{id}"), self.root_link(id));
            run_ip(&["link", "add", &root, "type", "veth", "peer", "name", &inner, "netns", &ns])?;
            let host = 4 * id;
            run_ip(&["-n", &ns, "addr", "add", &format!("10.214.{}.{}/30", self.subnet, host + 2), "dev", &inner])?;
            run_ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            run_ip(&["addr", "add", &format!("10.214.{}.{}/30", self.subnet, host + 1), "dev", &root])?;
            run_ip(&["link", "set", &root, "up"])?;
        }
        Ok(())
    }

    /// Removes this run's links and namespaces; errors (nothing to remove) are ignored.
    fn cleanup_network(&self) {
        for id in 1..=9 {
            let _ = run_ip(&["link", "del", &self.root_link(id)]);
        }
        for id in 1..=9 {
            let _ = run_ip(&["netns", "del", &self.namespace(id)]);
        }
        let _ = run_ip(&["netns", "del", &self.bridge_ns()]);
    }

    fn write_config(&self, id: u64, check_deadline: &str) {
        // Plaintext on purpose: the namespaces are the test's own private network.
        let mut text = format!(
            "id = {id}\ndata_dir = \"node{id}\"\nbootstrap = {}\npolicies = \"policies.toml\"\n\n\
             [public]\nlisten = \"0.0.0.0:{NETNS_PORT}\"\nadvertise = \"{}\"\ninsecure = true\n\
             [peer]\nlisten = \"0.0.0.0:{NETNS_PEER_PORT}\"\nadvertise = \"{}\"\ninsecure = true\n\
             [admin]\nlisten = \"0.0.0.0:{NETNS_ADMIN_PORT}\"\ninsecure = true\n\n\
             [raft]\nheartbeat = \"50ms\"\n\
             election_timeout_min = \"300ms\"\nelection_timeout_max = \"600ms\"\n\n[limits]\n\
             check_deadline = \"{check_deadline}\"\n\n[load]\nsample_system = false\n",
            id == 1,
            self.public_addr(id),
            self.peer_addr(id),
        );
        for peer in (1..=self.n).filter(|&p| p != id) {
            text.push_str(&format!(
                "\n[[peers]]\nid = {peer}\npeer = \"{}\"\npublic = \"{}\"\n",
                self.peer_addr(peer),
                self.public_addr(peer)
            ));
        }
        std::fs::write(self.dir.path().join(format!("node{id}.toml")), text).expect("writing a node config");
    }

    fn spawn(&mut self, id: u64) {
        let config = self.dir.path().join(format!("node{id}.toml"));
        // Appended to, so a restarted node's log follows its earlier life in the same file.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{id}.log")))
            .expect("a log file");
        // `ip netns exec` execs the binary, so the child is the node itself and kill() reaches it.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.namespace(id)])
            .arg(binary())
            .args(["serve", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning quorate in its namespace");
        self.nodes.insert(id, NodeProcess { child: Some(child) });
    }

    /// `host:port` of node `id`'s peer listener, as its peers reach it (on the bridge).
    pub fn peer_addr(&self, id: u64) -> String {
        format!("10.213.0.{id}:{NETNS_PEER_PORT}")
    }

    /// `host:port` of node `id`'s public listener over its client link (reachable while it is isolated).
    pub fn public_addr(&self, id: u64) -> String {
        format!("10.214.{}.{}:{NETNS_PORT}", self.subnet, 4 * id + 2)
    }

    /// `http://host:port` of node `id`'s public listener over its client link.
    pub fn endpoint(&self, id: u64) -> String {
        format!("http://{}", self.public_addr(id))
    }

    /// Cuts node `id` off from its peers, both directions, silently; the test still reaches it.
    pub fn isolate(&self, id: u64) {
        run_ip(&["-n", &self.bridge_ns(), "link", "set", &self.bridge_port(id), "down"]).expect("isolating a node");
    }

    /// Reconnects node `id` to its peers.
    pub fn heal(&self, id: u64) {
        run_ip(&["-n", &self.bridge_ns(), "link", "set", &self.bridge_port(id), "up"]).expect("healing a node");
    }

    /// Kills node `id` with SIGKILL; its links stay as they are.
    pub fn kill(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id)
            && let Some(mut child) = node.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `id` again on its data directory, in its namespace (cut off still, if it was).
    pub fn restart(&mut self, id: u64) {
        self.spawn(id);
    }
}

impl Drop for NetnsCluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.cleanup_network();
    }
}
