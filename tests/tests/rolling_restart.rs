//! A rolling restart under load: the three nodes are stopped with SIGTERM and started again one at a time
//! (followers first, the leader last), while quorate-client keeps checking. Nothing is over-admitted, every
//! admitted decision is still counted afterwards, each node exits cleanly, and the callers see no error: what
//! failed over was retried inside the client.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use quorate_client::{Client, Descriptor, Descriptors};
use quorate_tests::{Cluster, Nodes};

const READY: Duration = Duration::from_secs(30);
/// Keys of the 50-per-hour `agent` policy the load spreads over.
const KEYS: usize = 8;
const LIMIT: u64 = 50;

fn key(i: usize) -> Descriptors {
    Descriptors::new().push(Descriptor::new("agent", format!("rolling-{i}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_node_in_turn_under_load_loses_nothing() {
    let mut cluster = Cluster::start(3);
    let first_leader = cluster.wait_ready(READY).await.unwrap();
    let endpoints: Vec<String> = (1..=3).map(|id| cluster.endpoint(id)).collect();
    let client = Arc::new(Client::builder(endpoints).deadline(Duration::from_secs(10)).build().unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut allowed = [0u64; KEYS];
                let mut errors = Vec::new();
                let mut n = worker;
                while !stop.load(Ordering::Relaxed) {
                    let i = n % KEYS;
                    n += 1;
                    match client.check(&key(i), 1).await {
                        Ok(decision) => allowed[i] += u64::from(decision.allowed),
                        Err(error) => errors.push(error.to_string()),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (allowed, errors)
            })
        })
        .collect();

    // Followers first, the leader last; each must exit cleanly on SIGTERM and catch up before the next.
    let order: Vec<u64> = (1..=3).filter(|id| *id != first_leader).chain([first_leader]).collect();
    for id in order {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            cluster.stop(id, Duration::from_secs(15)),
            "node {id} did not exit cleanly on SIGTERM:\n{}",
            cluster.log(id)
        );
        cluster.restart(id);
        let leader = cluster.wait_ready(READY).await.unwrap();
        let target = cluster.status(leader).await.unwrap().applied_index;
        cluster.wait_applied(id, target, READY).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut allowed = [0u64; KEYS];
    let mut errors = Vec::new();
    for worker in workers {
        let (worker_allowed, worker_errors) = worker.await.unwrap();
        for (total, n) in allowed.iter_mut().zip(worker_allowed) {
            *total += n;
        }
        errors.extend(worker_errors);
    }
    assert!(errors.is_empty(), "{} checks failed, e.g. {:?}", errors.len(), errors.first());
    for (i, admitted) in allowed.iter().enumerate() {
        assert!(*admitted <= LIMIT, "key {i}: {admitted} admitted > {LIMIT}");
        // Every admitted decision is still counted: what is left is exactly what was not admitted.
        let peek = client.peek(&key(i), 1).await.unwrap();
        assert_eq!(peek.remaining(), Some(LIMIT - admitted), "key {i}: {admitted} admitted");
    }
    assert!(allowed.iter().sum::<u64>() > 0);
}
