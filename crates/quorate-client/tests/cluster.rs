//! The client and the middleware against a real three-node cluster started in this process (as `quorate dev`
//! does, with the sample tier policies): end-to-end decisions, and failover when the leader dies.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::Cluster;
use http::{Request, Response, StatusCode};
use quorate_client::middleware::RateLimitLayer;
use quorate_client::{Client, Descriptors, Source};
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keeps_deciding_within_its_deadline_when_the_leader_is_killed() {
    let mut cluster = Cluster::start(3).await;
    let client = Client::builder(cluster.endpoints()).deadline(Duration::from_secs(5)).build().unwrap();
    // per_agent: a 200/min sliding window, not adaptive, so counts are exact whatever the machine's load.
    let agent = Descriptors::new().agent_id("failover-test");
    let first = client.check(&agent, 1).await.unwrap();
    assert_eq!((first.allowed, first.source, first.remaining()), (true, Source::Cluster, Some(199)));
    let leader = cluster.leader().unwrap();
    assert_eq!(client.leader().as_deref(), Some(cluster.urls[&leader].as_str()));

    // Crash the leader; every check still gets a cluster decision, each within the client's deadline.
    cluster.kill(leader).await;
    for i in 0..10u64 {
        let start = Instant::now();
        let decision = client.check(&agent, 1).await.unwrap();
        assert!(start.elapsed() < Duration::from_secs(5), "check {i} took {:?}", start.elapsed());
        assert_eq!((decision.allowed, decision.source, decision.degraded), (true, Source::Cluster, false));
        // Restart never refunds quota, nor does a leader change: the count continues.
        assert_eq!(decision.remaining(), Some(198 - i));
    }
    let new_leader = cluster.leader().unwrap();
    assert_ne!(new_leader, leader);
    assert_eq!(client.leader().as_deref(), Some(cluster.urls[&new_leader].as_str()));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_admits_up_to_the_limit_then_answers_429_end_to_end() {
    let cluster = Cluster::start(3).await;
    let client = Client::new(cluster.endpoints()).unwrap();
    // Only the agent id identifies requests here, and the cost header spends the whole 200/min at once.
    let layer =
        RateLimitLayer::new(client.clone()).limit_by_ip(false).cost_header(http::HeaderName::from_static("x-cost"));
    let app = service_fn(|_request: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let request = |cost: &str| {
        let mut request = Request::builder()
            .uri("/v1/run")
            .header("x-agent-id", "planner-7")
            .header("x-cost", cost)
            .body(String::new())
            .unwrap();
        request.extensions_mut().insert(SocketAddr::from(([192, 0, 2, 1], 5000)));
        request
    };

    let allowed = layer.layer(app).oneshot(request("200")).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    let headers = allowed.headers();
    assert_eq!(headers["x-ratelimit-limit"], "200");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    // w= is the policy's window: 60 s for per_agent's one-minute sliding window.
    assert_eq!(headers["ratelimit-policy"], r#""per_agent";q=200;w=60"#);

    let denied = layer.layer(app).oneshot(request("1")).await.unwrap();
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = denied.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    // The 200 units leave the window with their bucket: a minute plus up to one bucket (1 s) from now.
    assert!((59..=61).contains(&retry_after), "{retry_after}");
    assert!(denied.headers()["ratelimit"].to_str().unwrap().starts_with(r#""per_agent";r=0;t="#));

    // The denial consumed nothing: a peek still sees zero left, not less.
    let peek = client.peek(&Descriptors::new().agent_id("planner-7"), 1).await.unwrap();
    assert_eq!((peek.allowed, peek.remaining()), (false, Some(0)));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_in_lease_mode_decides_hot_keys_in_process_and_never_overspends() {
    let cluster = Cluster::start(3).await;
    let client = Client::builder(cluster.endpoints()).leases(true).build().unwrap();
    // The sample `agent` tier (200/min token bucket) is lease-enabled.
    let key = Descriptors::new().api_key("agent_leased");
    let started = Instant::now();
    let (mut allowed, mut leased) = (0u64, 0u64);
    for _ in 0..300 {
        let decision = client.check(&key, 1).await.unwrap();
        allowed += u64::from(decision.allowed);
        leased += u64::from(decision.source == Source::Lease);
        assert!(!decision.degraded);
    }
    // The bucket refills 200 per minute while the test runs: at most that much more than its 200.
    let refilled = started.elapsed().as_millis() as u64 * 200 / 60_000 + 1;
    assert!(allowed <= 200 + refilled, "admitted {allowed} > 200 + {refilled}");
    assert!(allowed >= 190, "only {allowed} admitted");
    assert!(leased >= 100, "only {leased} decisions came from leases");
    client.close().await.unwrap();
    cluster.shutdown().await;
}
