//! Degraded modes with real processes: with two of three nodes dead the survivor has no quorum, and every
//! policy's `on_no_quorum` mode decides — deny fails closed, allow fails open, local admits 1/N of the limit —
//! and every such answer says it was degraded.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use quorate_tests::{Cluster, Nodes, call, check};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivor_without_quorum_follows_each_policys_mode() {
    let mut cluster = Cluster::start_custom(3, 20_000, "300ms");
    cluster.wait_ready(Duration::from_secs(20)).await.unwrap();
    // A strict decision first: not degraded.
    let mut client = cluster.client(3);
    let strict = call(&mut client, check("user", "carol", 1)).await.unwrap();
    assert!(strict.allowed && !strict.degraded);

    cluster.kill(1);
    cluster.kill(2);

    // deny (the default): fail closed.
    let denied = call(&mut client, check("user", "carol", 1)).await.unwrap();
    assert!(!denied.allowed && denied.degraded, "{denied:?}");
    assert!(denied.overall.unwrap().retry_after_ns > 0);

    // allow: fail open, however many.
    for _ in 0..12 {
        let open = call(&mut client, check("courtesy", "dave", 1)).await.unwrap();
        assert!(open.allowed && open.degraded);
    }

    // local: this node alone admits 30 / 3 = 10.
    let mut allowed = 0;
    for _ in 0..15 {
        let local = call(&mut client, check("shared", "erin", 1)).await.unwrap();
        assert!(local.degraded);
        allowed += u32::from(local.allowed);
    }
    assert_eq!(allowed, 10);
}
