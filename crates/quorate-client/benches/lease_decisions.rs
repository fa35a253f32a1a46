//! What one in-process decision costs an API server in lease mode: `Client::check` on a hot key while the client
//! holds a lease of it, against a real one-node cluster started in this process with `deploy/bench-policies.toml`
//! (a leased token bucket whose limit is never reached).
//!
//! `cargo bench -p quorate-client --bench lease_decisions` runs criterion on:
//! - `one_descriptor`: a check of one `api_key`;
//! - `three_descriptors`: a check of an API key, an IP and an agent id, all leased.
//!
//! Every iteration is the real public path (`Client::check`, awaited); when the lease runs out or expires (every
//! 250 ms) that call goes to the node and asks for the next one, so the figure includes those round trips spread
//! over the decisions between them. Nothing is mocked.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use quorate_client::{Client, Descriptors, Source};
use quorate_node::clock::SystemClock;
use quorate_node::config::LocalAddrs;
use quorate_node::{NodeConfig, NodeHandle, start_node};

/// The benchmark policies: `lease_` keys of `api_key`, `user`... go to a leased token bucket of 10^9 a minute.
const POLICIES: &str = include_str!("../../../deploy/bench-policies.toml");

/// Extra rules so that three descriptors of one check are all leased.
const MORE_RULES: &str = r#"
[[rules]]
dimension = "ip"
policy = "bench_leased"

[[rules]]
dimension = "agent_id"
policy = "bench_leased"
"#;

async fn one_node(dir: &std::path::Path) -> NodeHandle {
    let mut config = NodeConfig::local(1, LocalAddrs::any_port(), dir.join("node1"), BTreeMap::new());
    config.bootstrap = true;
    config.policies_toml = format!("{POLICIES}{MORE_RULES}");
    let node = start_node(config, Arc::new(SystemClock::new())).await.expect("node starts");
    while !node.is_ready() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node
}

/// Checks `key` until a decision comes from a lease: the client has seen the key and holds one.
async fn warm(client: &Client, key: &Descriptors) {
    for _ in 0..10_000 {
        if client.check(key, 1).await.unwrap().source == Source::Lease {
            return;
        }
    }
    panic!("no lease after 10,000 checks");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = runtime.block_on(one_node(dir.path()));
    let endpoint = format!("http://{}", node.local_addr());
    let client = runtime.block_on(async { Client::builder([endpoint]).leases(true).build() }).unwrap();
    let one = Descriptors::new().api_key("lease_hot");
    let three = Descriptors::new().api_key("lease_hot3").ip([192, 0, 2, 7]).agent_id("planner-7");
    runtime.block_on(warm(&client, &one));
    runtime.block_on(warm(&client, &three));

    let mut criterion = Criterion::default().configure_from_args().measurement_time(Duration::from_secs(5));
    let mut group = criterion.benchmark_group("client_lease_decision");
    group.bench_function("one_descriptor", |b| {
        b.to_async(&runtime).iter(|| async { assert!(client.check(&one, 1).await.unwrap().allowed) });
    });
    group.bench_function("three_descriptors", |b| {
        b.to_async(&runtime).iter(|| async { assert!(client.check(&three, 1).await.unwrap().allowed) });
    });
    group.finish();
    criterion.final_summary();
    runtime.block_on(async {
        client.close().await.unwrap();
        node.shutdown().await.unwrap();
    });
}
