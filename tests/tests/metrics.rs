//! The metrics listener of real `quorate serve` processes, scraped after known traffic: decisions by policy and
//! outcome, paths, errors, Raft's state, the log's work, and the health endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use quorate_proto::v1::CheckRequest;
use quorate_tests::{Cluster, Nodes, call, check};
use tonic::Code;

const READY: Duration = Duration::from_secs(20);

/// The value of the sample `name` (with its labels, as exposed) in an OpenMetrics text, if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_traffic() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready(READY).await.unwrap();
    let node = if leader == 2 { 3 } else { 2 };
    let mut client = cluster.client(node);
    // 15 checks of one user against a limit of 10, all through one node: 10 allowed, 5 denied.
    for _ in 0..15 {
        call(&mut client, check("user", "metrics-alice", 1)).await.unwrap();
    }
    // One check without descriptors: INVALID_ARGUMENT.
    let empty = CheckRequest { descriptors: Vec::new(), cost: 1, peek: false, lease: None };
    assert_eq!(call(&mut client, empty).await.unwrap_err().code(), Code::InvalidArgument);

    let (status, text) = cluster.http_get(node, "/metrics").unwrap();
    assert_eq!(status, 200);
    let value = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("{name} missing in:\n{text}"));
    assert_eq!(value(r#"quorate_decisions_total{policy="ten_per_hour",outcome="allowed"}"#), 10.0);
    assert_eq!(value(r#"quorate_decisions_total{policy="ten_per_hour",outcome="denied"}"#), 5.0);
    // This node is a follower: its checks were committed by the leader for it.
    assert_eq!(value(r#"quorate_checks_total{path="forwarded",outcome="allowed"}"#), 10.0);
    assert_eq!(value(r#"quorate_checks_total{path="forwarded",outcome="denied"}"#), 5.0);
    assert_eq!(value(r#"quorate_check_duration_seconds_count{path="forwarded"}"#), 15.0);
    assert_eq!(value(r#"quorate_check_errors_total{code="INVALID_ARGUMENT"}"#), 1.0);
    assert_eq!(value(r#"quorate_raft_role{role="follower"}"#), 1.0);
    assert_eq!(value("quorate_raft_leader_id"), leader as f64);
    assert!(value("quorate_raft_applied_index") >= 15.0);
    assert!(value("quorate_tracked_keys") >= 1.0);

    // The leader proposed the entries, flushed its log and tracks its followers.
    let (_, text) = cluster.http_get(leader, "/metrics").unwrap();
    let value = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("{name} missing in:\n{text}"));
    assert_eq!(value(r#"quorate_raft_role{role="leader"}"#), 1.0);
    assert!(value("quorate_entries_proposed_total") >= 1.0);
    assert!(value("quorate_batch_checks_sum") >= 15.0);
    assert!(value("quorate_fsync_duration_seconds_count") >= 1.0);
    for follower in (1..=3).filter(|id| *id != leader) {
        let lag = value(&format!(r#"quorate_raft_replication_lag{{follower="{follower}"}}"#));
        assert!(lag >= 0.0);
    }
    // No key values as labels: the user's value appears nowhere.
    assert!(!text.contains("metrics-alice"));

    assert_eq!(cluster.http_get(node, "/healthz").unwrap().0, 200);
    assert_eq!(cluster.http_get(node, "/readyz").unwrap().0, 200);
    assert_eq!(cluster.http_get(node, "/nothing").unwrap().0, 404);
}
