//! An in-process three-node cluster for the node's integration tests: real nodes on 127.0.0.1 with OS-assigned
//! ports, each with its own temp dir, driven over real gRPC.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Duration;

use quorate_node::clock::SystemClock;
use quorate_node::config::LocalAddrs;
use quorate_node::{Node, NodeConfig, NodeHandle, NodeId, start_node};
use tempfile::TempDir;
use tonic::transport::Channel;

/// How long a cluster may take to elect a leader and install its policies.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running cluster and where its nodes listen.
pub struct Cluster {
    pub nodes: Vec<NodeHandle>,
    _dir: TempDir,
}

impl Cluster {
    /// Starts three nodes with `policies`; `configure` adjusts each node's config (by id) before it starts.
    pub async fn start(policies: &str, configure: impl Fn(NodeId, &mut NodeConfig)) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let config = |id: NodeId, peers: BTreeMap<NodeId, Node>| {
            let mut config = NodeConfig::local(id, LocalAddrs::any_port(), dir.path().join(format!("node{id}")), peers);
            config.policies_toml = policies.to_owned();
            config.sample_system = false;
            configure(id, &mut config);
            config
        };
        let clock = Arc::new(SystemClock::new());
        // Followers first, so that the bootstrapping node knows their OS-assigned addresses.
        let two = start_node(config(2, BTreeMap::new()), clock.clone()).await.unwrap();
        let three = start_node(config(3, BTreeMap::new()), clock.clone()).await.unwrap();
        let peers = [(2, &two), (3, &three)].map(|(id, n)| {
            (id, Node { peer_addr: n.addrs().peer.to_string(), public_addr: n.addrs().public.to_string() })
        });
        let mut first = config(1, peers.into_iter().collect());
        first.bootstrap = true;
        let one = start_node(first, clock).await.unwrap();
        Cluster { nodes: vec![one, two, three], _dir: dir }
    }

    /// Waits until every node knows the leader and has the policies.
    pub async fn wait_until_ready(&self) {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while !self.nodes.iter().all(NodeHandle::is_ready) {
            assert!(tokio::time::Instant::now() < deadline, "the cluster did not become ready in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn leader(&self) -> NodeId {
        self.nodes.iter().find_map(NodeHandle::leader).unwrap()
    }

    /// The index of the leader and of one follower in `nodes`.
    pub fn leader_and_follower(&self) -> (usize, usize) {
        let leader = self.nodes.iter().position(|n| n.id() == self.leader()).unwrap();
        (leader, (leader + 1) % self.nodes.len())
    }

    pub async fn channel(&self, node: usize) -> Channel {
        let endpoint = format!("http://{}", self.nodes[node].local_addr());
        Channel::from_shared(endpoint).unwrap().connect().await.unwrap()
    }

    pub async fn shutdown(self) {
        for node in self.nodes {
            node.shutdown().await.unwrap();
        }
    }
}
