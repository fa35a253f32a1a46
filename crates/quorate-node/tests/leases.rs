//! Leases on an in-process three-node cluster: hot keys decided on every node without a log entry, cold keys
//! strict, exact totals at the limit, returns, and leases for clients over the public API.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{
    CheckRequest, CheckResponse, Descriptor, LeaseRequest, LeaseReturn, ReturnLeasesRequest, StatusRequest,
    StatusResponse,
};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::Cluster;

/// `roomy` leases with the defaults; `tight` is small and leased; `strict` is never leased.
const POLICIES: &str = r#"
[policies.roomy]
algorithm = "token_bucket"
limit = 100000
period = "1m"
lease = true

[policies.tight]
algorithm = "sliding_window"
limit = 100
period = "1h"
lease = { ttl = "200ms", max_share = 0.2, reserve = 0.1 }

[policies.strict]
algorithm = "sliding_window"
limit = 100
period = "1h"

[[rules]]
dimension = "roomy"
policy = "roomy"

[[rules]]
dimension = "tight"
policy = "tight"

[[rules]]
dimension = "strict"
policy = "strict"
"#;

/// A client holder id: the top bit set.
const CLIENT: u64 = (1 << 63) | 42;

fn check(dimension: &str, value: &str) -> CheckRequest {
    let descriptor = Descriptor { dimension: dimension.into(), value: value.into(), policy: String::new() };
    CheckRequest { descriptors: vec![descriptor], cost: 1, peek: false, lease: None }
}

async fn client(cluster: &Cluster, node: usize) -> RateLimiterClient<Channel> {
    RateLimiterClient::new(cluster.channel(node).await)
}

async fn status(cluster: &Cluster, node: usize) -> StatusResponse {
    AdminClient::new(cluster.channel(node).await).status(StatusRequest {}).await.unwrap().into_inner()
}

async fn start() -> Cluster {
    let cluster = Cluster::start(POLICIES, |_, _| {}).await;
    cluster.wait_until_ready().await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_keys_are_decided_from_leases_on_every_node_and_cold_keys_strictly() {
    let cluster = start().await;
    for node in 0..3 {
        let mut rl = client(&cluster, node).await;
        let mut leased = 0;
        for _ in 0..200 {
            let response = rl.check(check("roomy", "hot")).await.unwrap().into_inner();
            assert!(response.allowed);
            leased += usize::from(response.leased);
        }
        assert!(leased >= 150, "node {node}: only {leased} of 200 hot checks were decided from leases");
        // A key seen once is cold: it never takes a lease.
        for i in 0..20 {
            let response = rl.check(check("roomy", &format!("cold-{node}-{i}"))).await.unwrap().into_inner();
            assert!(response.allowed && !response.leased);
        }
        // A policy without leases is always strict.
        for _ in 0..20 {
            assert!(!rl.check(check("strict", "hot")).await.unwrap().into_inner().leased);
        }
        let status = status(&cluster, node).await;
        assert!(status.leased_decisions >= 150 && status.lease_grants >= 1, "{status:?}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_on_every_node_never_admit_more_than_the_limit_and_give_back_what_they_do_not_use() {
    // Invariant 2 with leases: three nodes hammer one key limited to 100 per hour.
    let cluster = start().await;
    let mut tasks = Vec::new();
    for node in 0..3 {
        let mut rl = client(&cluster, node).await;
        tasks.push(tokio::spawn(async move {
            let (mut allowed, mut leased) = (0, 0);
            for _ in 0..120 {
                let response = rl.check(check("tight", "shared")).await.unwrap().into_inner();
                allowed += usize::from(response.allowed);
                leased += usize::from(response.allowed && response.leased);
            }
            (allowed, leased)
        }));
    }
    let (mut allowed, mut leased) = (0, 0);
    for task in tasks {
        let (a, l) = task.await.unwrap();
        (allowed, leased) = (allowed + a, leased + l);
    }
    assert!(allowed <= 100, "admitted {allowed} > 100");
    assert!(leased > 0, "no decision came from a lease");
    // Leases expire within 200 ms and their unused units come back: the rest of the limit is admitted, exactly.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut rl = client(&cluster, 0).await;
    for _ in 0..100 {
        allowed += usize::from(rl.check(check("tight", "shared")).await.unwrap().into_inner().allowed);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..20 {
        allowed += usize::from(rl.check(check("tight", "shared")).await.unwrap().into_inner().allowed);
    }
    assert_eq!(allowed, 100, "returned units must come back and nothing more");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_granted_leases_with_a_check_and_returns_them() {
    let cluster = start().await;
    let (_, follower) = cluster.leader_and_follower();
    let mut rl = client(&cluster, follower).await;
    let ask = |value: &str, units: u64| CheckRequest {
        lease: Some(LeaseRequest { holder: CLIENT, units, returns: Vec::new() }),
        ..check("tight", value)
    };
    let response: CheckResponse = rl.check(ask("client-key", 50)).await.unwrap().into_inner();
    assert!(response.allowed && !response.leased);
    let [grant] = response.grants.as_slice() else { panic!("one grant expected: {response:?}") };
    // At most the holder's share (20% of 100), never the reserve.
    assert_eq!((grant.descriptor, grant.units), (0, 20));
    assert!(grant.valid_for_ns > 0 && grant.valid_for_ns <= 200_000_000);
    let status = grant.status.as_ref().unwrap();
    assert_eq!((status.policy.as_str(), status.remaining), ("tight", 79));
    // The client used none of them: returning all 20 gives them back.
    let returns = vec![LeaseReturn { lease_id: grant.lease_id, unused: 20 }];
    rl.return_leases(ReturnLeasesRequest { holder: CLIENT, returns: returns.clone() }).await.unwrap();
    let after = rl.check(CheckRequest { peek: true, ..check("tight", "client-key") }).await.unwrap().into_inner();
    assert_eq!(after.overall.unwrap().remaining, 99);
    // Returning twice changes nothing.
    rl.return_leases(ReturnLeasesRequest { holder: CLIENT, returns }).await.unwrap();
    let again = rl.check(CheckRequest { peek: true, ..check("tight", "client-key") }).await.unwrap().into_inner();
    assert_eq!(again.overall.unwrap().remaining, 99);
    // A holder id that could name a node is refused.
    let bad =
        CheckRequest { lease: Some(LeaseRequest { holder: 2, units: 5, returns: Vec::new() }), ..check("tight", "x") };
    assert_eq!(rl.check(bad).await.unwrap_err().code(), Code::InvalidArgument);
    cluster.shutdown().await;
}
