//! Adaptive limits with real processes: a load signal reported to one node tightens the adaptive policy on
//! every node within two seconds, and limits recover after the hysteresis period once the load drops.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use quorate_proto::v1::{CheckRequest, Descriptor, ReportLoadRequest};
use quorate_tests::{Cluster, Nodes, call};

const READY: Duration = Duration::from_secs(20);

fn peek_tier() -> CheckRequest {
    CheckRequest {
        descriptors: vec![Descriptor { dimension: "tier".into(), value: "t1".into(), policy: String::new() }],
        cost: 1,
        peek: true,
        lease: None,
    }
}

/// Polls every node until each answers with `limit` in force; returns how long that took.
async fn wait_for_limit(cluster: &Cluster, limit: u64, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let mut all = true;
        for id in 1..=3 {
            let response = call(&mut cluster.client(id), peek_tier()).await.unwrap();
            let overall = response.overall.unwrap();
            assert_eq!(overall.base_limit, 100);
            all &= overall.limit == limit;
        }
        if all {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "limit {limit} not in force on every node within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_load_tightens_every_node_and_then_relaxes() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(READY).await.unwrap();
    wait_for_limit(&cluster, 100, Duration::from_secs(5)).await;

    // 0.95 is above the top threshold (0.9): multiplier 0.25, the policy's floor.
    let mut follower = cluster.client(2);
    let report = |value: f64| ReportLoadRequest { name: "llm_latency".into(), value, ttl_ms: 60_000 };
    follower.report_load(report(0.95)).await.unwrap();
    let took = wait_for_limit(&cluster, 25, Duration::from_secs(2)).await;
    eprintln!("tightened on every node after {took:?}");
    let status = cluster.status(3).await.unwrap();
    assert!((status.multiplier - 0.25).abs() < 1e-9, "{status:?}");
    assert_eq!(status.drivers[0].name, "llm_latency");

    // The load drops: limits relax one level per quiet second (relax_after = 1s), back to 100.
    follower.report_load(report(0.1)).await.unwrap();
    let took = wait_for_limit(&cluster, 100, Duration::from_secs(15)).await;
    assert!(took >= Duration::from_secs(2), "relaxed after only {took:?}: hysteresis must hold it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_load_reports_are_refused_with_a_reason() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(READY).await.unwrap();
    let mut client = cluster.client(1);
    let cases = [
        (ReportLoadRequest { name: String::new(), value: 0.5, ttl_ms: 0 }, "name"),
        (ReportLoadRequest { name: "x".into(), value: 1.5, ttl_ms: 0 }, "0..1"),
        (ReportLoadRequest { name: "x".into(), value: f64::NAN, ttl_ms: 0 }, "finite"),
        (ReportLoadRequest { name: "cpu@node1".into(), value: 0.5, ttl_ms: 0 }, "reserved"),
    ];
    for (request, needle) in cases {
        let status = client.report_load(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains(needle), "{needle}: {}", status.message());
    }
}
