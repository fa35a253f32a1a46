//! `quorate dev`: a local three-node cluster on 127.0.0.1, bootstrapped with the sample tier policies.
//!
//! All three nodes run in this process, each with its own sled database under the data directory, so stopping
//! and starting `quorate dev` again resumes the same cluster state (restart never refunds quota).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use quorate_core::policy::PolicySet;
use quorate_node::config::{DEFAULT_MAX_INFLIGHT, LocalAddrs, MAX_INFLIGHT};
use quorate_node::{Node, NodeConfig, NodeHandle, SystemClock, start_node};

use crate::output;

/// How long `dev` waits for the cluster to elect a leader and install policies before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Arguments of `quorate dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Where the three nodes keep their data (one subdirectory each); reused across runs.
    #[arg(long, default_value = "quorate-dev-data")]
    pub data_dir: PathBuf,
    /// Port of node 1; nodes 2 and 3 take the next two ports.
    #[arg(long, default_value_t = 7101)]
    pub base_port: u16,
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Most batches the leader replicates at once (see `limits.max_inflight` in the node config).
    #[arg(long, default_value_t = DEFAULT_MAX_INFLIGHT)]
    pub max_inflight: usize,
    /// A policies file (as `deploy/policies.toml`) instead of the sample tiers, e.g.
    /// `deploy/bench-policies.toml` for benchmarks. Installed when the cluster is first created: a data
    /// directory from an earlier run keeps the policies it has.
    #[arg(long, value_name = "FILE")]
    pub policies: Option<PathBuf>,
}

/// Starts the cluster, prints how to use it, and runs until Ctrl-C.
///
/// # Errors
///
/// If a node cannot start (e.g. a port is taken) or the cluster does not become ready.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 9 {
        bail!("--nodes must be between 1 and 9");
    }
    if !(1..=MAX_INFLIGHT).contains(&args.max_inflight) {
        bail!("--max-inflight must be between 1 and {MAX_INFLIGHT}");
    }
    if args.base_port.checked_add(300 + args.nodes as u16).is_none() {
        bail!("--base-port leaves no room for the peer (+100), admin (+200) and metrics (+300) ports");
    }
    let addrs = |i: u64| LocalAddrs::loopback(args.base_port + i as u16 - 1);
    let metrics = |i: u64| SocketAddr::from((Ipv4Addr::LOCALHOST, args.base_port + 300 + i as u16 - 1));
    let members: BTreeMap<u64, Node> = (1..=args.nodes)
        .map(|i| (i, Node { peer_addr: addrs(i).peer.to_string(), public_addr: addrs(i).public.to_string() }))
        .collect();
    let policies = match &args.policies {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            PolicySet::from_toml(&text).with_context(|| format!("{} is not a valid policies file", path.display()))?;
            Some(text)
        }
    };
    let clock = Arc::new(SystemClock::new());
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for id in 1..=args.nodes {
        let mut peers = members.clone();
        peers.remove(&id);
        let mut config = NodeConfig::local(id, addrs(id), args.data_dir.join(format!("node{id}")), peers);
        config.bootstrap = id == 1;
        config.max_inflight = args.max_inflight;
        config.metrics = Some(metrics(id));
        if let Some(policies) = &policies {
            config.policies_toml.clone_from(policies);
        }
        let node = start_node(config, clock.clone())
            .await
            .with_context(|| format!("starting node {id} on {:?}", addrs(id)))?;
        nodes.push(node);
    }
    wait_until_ready(&nodes).await?;
    let endpoints: Vec<String> = (1..=args.nodes).map(|i| format!("http://{}", addrs(i).public)).collect();
    let mut text = format!("quorate dev: {} nodes, data in {}\n", args.nodes, args.data_dir.display());
    for (i, endpoint) in (1..).zip(&endpoints) {
        let LocalAddrs { peer, admin, .. } = addrs(i);
        let metrics = metrics(i);
        text += &format!(
            "  node {i}  {endpoint}   (admin http://{admin}, peers {peer}, metrics http://{metrics}/metrics)\n"
        );
    }
    text += &match &args.policies {
        None => {
            "policies: the sample tiers (deploy/policies.toml): default 60/min, agent_ 200/min, admin_ 1000/min\n\n"
                .to_owned()
        }
        Some(path) => format!("policies: {} (if this data directory is new)\n\n", path.display()),
    };
    text += "try:\n";
    text += &format!("  quorate check --endpoint {} --descriptor api_key=agent_42\n", endpoints.join(","));
    text += &format!("  quorate status --endpoint {}\n", endpoints[0]);
    text +=
        &format!("  quorate bench --endpoints {} --concurrency 16 --duration 10 --keys 10000\n", endpoints.join(","));
    text += "(from a checkout: cargo run --release -p quorate-cli -- check ...)  Ctrl-C stops the cluster.\n";
    output::print(text)?;
    super::shutdown_signal().await;
    output::println("stopping...")?;
    for node in nodes {
        node.shutdown().await.context("stopping a node")?;
    }
    Ok(())
}

/// Waits until some node leads and every node has applied a policy set.
async fn wait_until_ready(nodes: &[NodeHandle]) -> anyhow::Result<()> {
    let ready = async {
        loop {
            if nodes.iter().all(NodeHandle::is_ready) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(READY_TIMEOUT, ready).await.map_err(|_| {
        anyhow::anyhow!("the cluster did not elect a leader and install policies within {READY_TIMEOUT:?}")
    })
}
