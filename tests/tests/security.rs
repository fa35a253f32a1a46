//! A secured cluster of real `quorate serve` processes: TLS on every listener with certificates from
//! `quorate certs init`, mutual TLS between peers, tokens from `quorate token new` with roles.
//!
//! What it shows: checks work over TLS with a check token; a call without a token is UNAUTHENTICATED and a check
//! token on the admin listener PERMISSION_DENIED; a plaintext client and a client that does not trust the
//! cluster CA fail cleanly; the peer listener refuses a certificate from another CA and one from the cluster CA
//! that names no member, before any Raft payload is read; a public certificate replaced on disk is served after
//! SIGHUP while checks on existing connections keep being answered.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quorate_client::endpoint::connect_lazy;
use quorate_client::{Client, ClientError, Credentials, Descriptors, Tls};
use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::raft_client::RaftClient;
use quorate_proto::v1::{RaftRequest, SetPoliciesRequest, StatusRequest};
use quorate_tests::{TEST_POLICIES, binary, free_port};
use tonic::Code;

const READY: Duration = Duration::from_secs(30);

/// A TLS cluster on 127.0.0.1 with its PKI, a second CA (`other/`) and its tokens.
struct SecureCluster {
    dir: tempfile::TempDir,
    /// (public, peer, admin) ports per node, node 1 first.
    ports: Vec<(u16, u16, u16)>,
    children: Vec<Child>,
    check_token: String,
    admin_token: String,
}

impl SecureCluster {
    fn start(n: u64) -> SecureCluster {
        let dir = tempfile::tempdir().unwrap();
        run_cli(&["certs", "init", "--nodes", &n.to_string(), "--out"], Some(&dir.path().join("pki")));
        run_cli(&["certs", "init", "--nodes", "1", "--out"], Some(&dir.path().join("other")));
        let check_token = new_token(dir.path(), "api-servers", "check");
        let admin_token = new_token(dir.path(), "operators", "admin");
        std::fs::write(dir.path().join("policies.toml"), TEST_POLICIES).unwrap();
        let ports: Vec<_> = (0..n).map(|_| (free_port(), free_port(), free_port())).collect();
        let tokens = std::fs::read_to_string(dir.path().join("tokens.toml")).unwrap();
        let mut children = Vec::new();
        for id in 1..=n {
            // The public listener has a certificate file of its own, so the reload test can replace it alone.
            for suffix in ["", "-key"] {
                let from = dir.path().join(format!("pki/node{id}{suffix}.pem"));
                std::fs::copy(from, dir.path().join(format!("public{id}{suffix}.pem"))).unwrap();
            }
            let (public, peer, admin) = ports[id as usize - 1];
            let mut config = format!(
                "id = {id}\ndata_dir = \"node{id}\"\nbootstrap = {}\npolicies = \"policies.toml\"\n\n\
                 [public]\nlisten = \"127.0.0.1:{public}\"\n\
                 tls = {{ cert = \"public{id}.pem\", key = \"public{id}-key.pem\" }}\n\
                 [peer]\nlisten = \"127.0.0.1:{peer}\"\n\
                 tls = {{ cert = \"pki/node{id}.pem\", key = \"pki/node{id}-key.pem\", ca = \"pki/ca.pem\" }}\n\
                 [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
                 tls = {{ cert = \"pki/node{id}.pem\", key = \"pki/node{id}-key.pem\" }}\n\n\
                 [raft]\nheartbeat = \"50ms\"\nelection_timeout_min = \"300ms\"\nelection_timeout_max = \"600ms\"\n\n\
                 [load]\nsample_system = false\n\n{tokens}",
                id == 1
            );
            for (other, (public, peer, _)) in (1..=n).zip(&ports).filter(|(other, _)| *other != id) {
                config.push_str(&format!(
                    "\n[[peers]]\nid = {other}\npeer = \"127.0.0.1:{peer}\"\npublic = \"127.0.0.1:{public}\"\n"
                ));
            }
            let path = dir.path().join(format!("node{id}.toml"));
            std::fs::write(&path, config).unwrap();
            let log = std::fs::File::create(dir.path().join(format!("node{id}.log"))).unwrap();
            let child = Command::new(binary())
                .current_dir(dir.path())
                .args(["serve", "--config"])
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            children.push(child);
        }
        SecureCluster { dir, ports, children, check_token, admin_token }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn public(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.ports[id as usize - 1].0)
    }

    fn peer(&self, id: u64) -> String {
        format!("https://127.0.0.1:{}", self.ports[id as usize - 1].1)
    }

    fn admin(&self, id: u64) -> String {
        format!("https://127.0.0.1:{}", self.ports[id as usize - 1].2)
    }

    fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.path(&format!("node{id}.log"))).unwrap_or_default()
    }

    fn tls(&self) -> Tls {
        Tls::from_files(self.path("pki/ca.pem"), None::<(&Path, &Path)>).unwrap()
    }

    /// Credentials trusting the cluster CA, with `token` if any.
    fn credentials(&self, token: Option<&str>) -> Credentials {
        let credentials = Credentials::none().with_tls(self.tls()).unwrap();
        match token {
            Some(token) => credentials.with_token(token).unwrap(),
            None => credentials,
        }
    }

    /// A client of every public listener with the cluster CA and `token`.
    fn client(&self, token: Option<&str>) -> Client {
        let endpoints: Vec<String> = (1..=self.ports.len() as u64).map(|id| self.public(id)).collect();
        Client::builder(endpoints)
            .credentials(self.credentials(token))
            .deadline(Duration::from_secs(3))
            .build()
            .unwrap()
    }

    fn admin_client(&self, id: u64, token: &str) -> AdminClient<quorate_client::NodeChannel> {
        let channel =
            connect_lazy(&self.admin(id), &self.credentials(Some(token)), Duration::from_secs(2), None).unwrap();
        AdminClient::new(channel)
    }

    /// Waits until every node, asked on its admin listener over TLS with the admin token, names one leader and
    /// has the policies.
    async fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            let mut leaders = Vec::new();
            for id in 1..=self.ports.len() as u64 {
                let mut admin = self.admin_client(id, &self.admin_token);
                let call = admin.status(StatusRequest {});
                if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(1), call).await {
                    let status = status.into_inner();
                    if status.leader_id != 0 && status.policy_version >= 1 {
                        leaders.push(status.leader_id);
                    }
                }
            }
            if leaders.len() == self.ports.len() && leaders.iter().all(|l| *l == leaders[0]) {
                return;
            }
            assert!(start.elapsed() < READY, "not ready after {READY:?}; node 1 log:\n{}", self.log(1));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGHUP to node `id`: reload its certificates.
    fn hang_up(&self, id: u64) {
        let pid = self.children[id as usize - 1].id().to_string();
        let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for SecureCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the CLI with `args` (and `path` appended), asserting success; returns its standard output.
fn run_cli(args: &[&str], path: Option<&Path>) -> String {
    let mut command = Command::new(binary());
    command.args(args);
    if let Some(path) = path {
        command.arg(path);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "quorate {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Makes a token with `quorate token new --json`, appends its `[[tokens]]` entry to `<dir>/tokens.toml` and
/// returns the token.
fn new_token(dir: &Path, name: &str, role: &str) -> String {
    let json = run_cli(&["token", "new", "--role", role, "--name", name, "--json"], None);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let entry = format!(
        "[[tokens]]\nname = \"{name}\"\nroles = [\"{role}\"]\nhash = \"{}\"\n\n",
        value["hash"].as_str().unwrap()
    );
    let mut all = std::fs::read_to_string(dir.join("tokens.toml")).unwrap_or_default();
    all.push_str(&entry);
    std::fs::write(dir.join("tokens.toml"), all).unwrap();
    value["token"].as_str().unwrap().to_owned()
}

fn code(error: &ClientError) -> Option<Code> {
    match error {
        ClientError::Rpc { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_token_holders_and_refuses_everyone_else() {
    let cluster = SecureCluster::start(3);
    cluster.wait_ready().await;
    let user = Descriptors::new().push(quorate_client::Descriptor::new("user", "alice"));

    // Over TLS with the check token: the limit of 10 is spent exactly, whichever node answers.
    let client = cluster.client(Some(&cluster.check_token));
    let mut allowed = 0;
    for _ in 0..15 {
        allowed += u32::from(client.check(&user, 1).await.unwrap().allowed);
    }
    assert_eq!(allowed, 10);

    // No token, or one the cluster does not know: UNAUTHENTICATED, and the message never repeats the token.
    let error = cluster.client(None).check(&user, 1).await.unwrap_err();
    assert_eq!(code(&error), Some(Code::Unauthenticated), "{error}");
    let forged = "qrt_0000000000000000000000000000000000000000000000000000000000000000";
    let error = cluster.client(Some(forged)).check(&user, 1).await.unwrap_err();
    assert_eq!(code(&error), Some(Code::Unauthenticated), "{error}");
    assert!(!error.to_string().contains(forged), "{error}");

    // The check token on the admin listener: PERMISSION_DENIED; the admin token is let through.
    let mut as_api = cluster.admin_client(1, &cluster.check_token);
    let denied = as_api.set_policies(SetPoliciesRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(!denied.message().contains(&cluster.check_token));
    cluster.admin_client(1, &cluster.admin_token).status(StatusRequest {}).await.unwrap();
    // Admin methods other than Status are not served on the public listener at all, whatever the token.
    let public_admin = connect_lazy(
        &format!("https://{}", cluster.public(1)),
        &cluster.credentials(Some(&cluster.admin_token)),
        Duration::from_secs(2),
        None,
    )
    .unwrap();
    let refused = AdminClient::new(public_admin).set_policies(SetPoliciesRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // A plaintext client on a TLS port, and a TLS client that does not trust the cluster CA: clean errors, fast.
    let plaintext = Client::builder([cluster.public(1)]).token(&cluster.check_token).discover_leader(false);
    let plaintext = plaintext.deadline(Duration::from_secs(2)).build().unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), plaintext.check(&user, 1)).await;
    // The node closes the connection at the failed handshake; the client reports the broken HTTP/2 session.
    let error = outcome.expect("a plaintext client must not hang on a TLS port").unwrap_err();
    assert!(matches!(error, ClientError::Rpc { .. } | ClientError::Unavailable { .. }), "{error}");
    let stranger = Tls::from_files(cluster.path("other/ca.pem"), None::<(&Path, &Path)>).unwrap();
    let stranger = Client::builder([cluster.public(1)]).tls(stranger).token(&cluster.check_token);
    let stranger = stranger.deadline(Duration::from_secs(2)).build().unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), stranger.check(&user, 1)).await;
    let error = outcome.expect("an untrusted server certificate must not hang the client").unwrap_err();
    assert!(matches!(error, ClientError::Tls { .. }), "{error:?}");
    assert!(error.to_string().to_lowercase().contains("certificate"), "{error}");
    // A configuration error, not an unreachable cluster: even a fail-open client refuses to decide.
    let open = Client::builder([cluster.public(1)])
        .tls(Tls::from_files(cluster.path("other/ca.pem"), None::<(&Path, &Path)>).unwrap())
        .token(&cluster.check_token)
        .failure_mode(quorate_client::FailureMode::Open)
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let error = open.check(&user, 1).await.unwrap_err();
    assert!(matches!(error, ClientError::Tls { .. }) && !error.is_unreachable(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_listener_refuses_certificates_that_are_not_a_members() {
    let cluster = SecureCluster::start(3);
    cluster.wait_ready().await;
    let vote = |cert: &str, key: &str| {
        let tls = Tls::from_files(cluster.path("pki/ca.pem"), Some((cluster.path(cert), cluster.path(key))));
        let credentials = Credentials::none().with_tls(tls.unwrap()).unwrap();
        let channel = connect_lazy(&cluster.peer(1), &credentials, Duration::from_secs(2), None).unwrap();
        async move {
            let mut raft = RaftClient::new(channel);
            let call = raft.vote(RaftRequest { data: b"not a vote".to_vec() });
            tokio::time::timeout(Duration::from_secs(10), call).await.expect("a refused peer must not hang")
        }
    };
    // A member's own certificate gets through the handshake: the garbage payload is refused by the Raft
    // service itself, with a message saying so.
    let member = vote("pki/node2.pem", "pki/node2-key.pem").await;
    let reached_raft = match &member {
        Ok(_) => true,
        Err(status) => status.code() == Code::InvalidArgument,
    };
    assert!(reached_raft, "a member's certificate should reach the Raft service: {member:?}");

    // Signed by another CA, or by the cluster CA but naming no member (the client certificate): refused at the
    // handshake, so the call fails without any answer from the Raft service.
    for (cert, key) in [("other/node1.pem", "other/node1-key.pem"), ("pki/client.pem", "pki/client-key.pem")] {
        let outcome = vote(cert, key).await;
        let status = outcome.expect_err(cert);
        assert_ne!(status.code(), Code::InvalidArgument, "{cert} reached the Raft service: {status:?}");
        // The connection is closed during the handshake: the call fails in transport, never answered.
        let transport = [Code::Unavailable, Code::Unknown, Code::Cancelled].contains(&status.code());
        assert!(transport && std::error::Error::source(&status).is_some(), "{cert}: {status:?}");
    }
    // The cluster still works: the refused handshakes disturbed nothing.
    let client = cluster.client(Some(&cluster.check_token));
    let user = Descriptors::new().push(quorate_client::Descriptor::new("user", "bob"));
    assert!(client.check(&user, 1).await.unwrap().allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_served_after_sighup_while_checks_keep_flowing() {
    let cluster = SecureCluster::start(3);
    cluster.wait_ready().await;
    let key = Descriptors::new().push(quorate_client::Descriptor::new("tier", "reload"));

    // Load on node 1's public listener over existing connections, counting failures.
    let loaded = Arc::new(
        Client::builder([cluster.public(1)])
            .credentials(cluster.credentials(Some(&cluster.check_token)))
            .discover_leader(false)
            .build()
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = tokio::spawn({
        let (client, stop, answered, failed) = (loaded.clone(), stop.clone(), answered.clone(), failed.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                match client.check(&key, 1).await {
                    Ok(_) => answered.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A client that trusts only the other CA cannot talk to node 1 yet.
    let other_ca = || Tls::from_files(cluster.path("other/ca.pem"), None::<(&Path, &Path)>).unwrap();
    let fresh = || {
        Client::builder([cluster.public(1)])
            .tls(other_ca())
            .token(&cluster.check_token)
            .discover_leader(false)
            .deadline(Duration::from_secs(1))
            .build()
            .unwrap()
    };
    let user = Descriptors::new().push(quorate_client::Descriptor::new("user", "carol"));
    assert!(fresh().check(&user, 1).await.is_err());

    // Node 1's public certificate is replaced by one of the other CA (it names 127.0.0.1 too), then SIGHUP.
    for suffix in ["", "-key"] {
        let from = cluster.path(&format!("other/node1{suffix}.pem"));
        std::fs::copy(from, cluster.path(&format!("public1{suffix}.pem"))).unwrap();
    }
    cluster.hang_up(1);
    let start = Instant::now();
    loop {
        match fresh().check(&user, 1).await {
            Ok(decision) => {
                assert!(decision.allowed);
                break;
            }
            Err(error) => {
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "new certificate not served: {error}\n{}",
                    cluster.log(1)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let (answered, failed) = (answered.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(answered > 0);
    assert_eq!(failed, 0, "{failed} checks failed across the reload ({answered} answered)");
}
