//! CheckBatch and CheckStream with real `quorate serve` processes: killing the leader (SIGKILL) while batches and
//! stream messages are in flight never admits more than the limit (design.md invariant 2).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use quorate_proto::v1::check_result::Result as Outcome;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{CheckBatchRequest, CheckResult, CheckStreamRequest};
use quorate_tests::{Cluster, Nodes, check};
use tokio::sync::mpsc;
use tonic::Code;
use tonic::transport::Channel;

const READY: Duration = Duration::from_secs(20);

/// The `agent` dimension is limited to 50 per hour in the test policies.
const LIMIT: usize = 50;

/// Counts one check's result: `Ok(allowed)`, or the error code, which must be UNAVAILABLE.
fn tally(result: &CheckResult, allowed: &mut usize, denied: &mut usize, unavailable: &mut usize) {
    match result.result.as_ref().unwrap() {
        Outcome::Decision(decision) if decision.allowed => *allowed += 1,
        Outcome::Decision(_) => *denied += 1,
        Outcome::Error(error) => {
            assert_eq!(Code::from_i32(error.code), Code::Unavailable, "only UNAVAILABLE is acceptable: {error:?}");
            *unavailable += 1;
        }
    }
}

/// Calls answered so far, to kill the leader in the middle of the traffic rather than before or after it.
type Progress = Arc<AtomicUsize>;

/// Waits until `progress` reaches `calls`.
async fn wait_for(progress: &Progress, calls: usize) {
    while progress.load(Ordering::SeqCst) < calls {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends batches of 5 checks of one key to `client` until `rounds` are done, 10 ms apart; returns (allowed,
/// denied, unavailable).
async fn batches(mut client: RateLimiterClient<Channel>, rounds: usize, progress: Progress) -> (usize, usize, usize) {
    let (mut allowed, mut denied, mut unavailable) = (0, 0, 0);
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let checks = (0..5).map(|_| check("agent", "batched", 1)).collect();
        let mut request = tonic::Request::new(CheckBatchRequest { checks });
        request.set_timeout(Duration::from_secs(5));
        match client.check_batch(request).await {
            Ok(response) => {
                for result in &response.into_inner().results {
                    tally(result, &mut allowed, &mut denied, &mut unavailable);
                }
            }
            // The node was killed under the call, or could not reach a quorum in time.
            Err(status) => {
                assert!(
                    matches!(
                        status.code(),
                        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
                    ),
                    "{status}"
                );
                unavailable += 5;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        progress.fetch_add(1, Ordering::SeqCst);
    }
    (allowed, denied, unavailable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_during_batches_never_over_admits() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(READY).await.unwrap();
    let progress = Progress::default();
    let tasks: Vec<_> = (1..=3).map(|id| tokio::spawn(batches(cluster.client(id), 12, progress.clone()))).collect();
    // Let a third of the batches through, then kill the leader while the rest are in flight.
    wait_for(&progress, 12).await;
    cluster.kill(leader);
    let killed_at = progress.load(Ordering::SeqCst);
    let (mut allowed, mut denied, mut unavailable) = (0, 0, 0);
    for task in tasks {
        let (a, d, u) = task.await.unwrap();
        (allowed, denied, unavailable) = (allowed + a, denied + d, unavailable + u);
    }
    assert!(allowed <= LIMIT, "admitted {allowed} > limit {LIMIT} (denied {denied}, unavailable {unavailable})");
    assert!(allowed >= 20, "only {allowed} admitted: the surviving nodes stopped serving");
    assert_eq!(allowed + denied + unavailable, 3 * 12 * 5, "every check was answered");
    assert!(killed_at < 3 * 12, "the leader was killed after the traffic ended");
}

/// Keeps up to 4 messages of 5 checks in flight on one stream to node `id`, `messages` in all; a broken stream is
/// reopened on the next node. Returns (allowed, denied, unavailable).
async fn stream(
    cluster_clients: Vec<RateLimiterClient<Channel>>,
    start: usize,
    messages: u64,
    progress: Progress,
) -> (usize, usize, usize) {
    let (mut allowed, mut denied, mut unavailable) = (0, 0, 0);
    let mut node = start;
    let mut next_id = 0;
    while next_id < messages {
        let (send, outbound) = mpsc::channel::<CheckStreamRequest>(4);
        let requests = futures::stream::unfold(outbound, |mut o| async move { o.recv().await.map(|m| (m, o)) });
        let mut client = cluster_clients[node % cluster_clients.len()].clone();
        node += 1;
        let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(5), client.check_stream(requests)).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut answers = response.into_inner();
        let mut in_flight: BTreeMap<u64, usize> = BTreeMap::new();
        loop {
            while in_flight.len() < 4 && next_id < messages {
                tokio::time::sleep(Duration::from_millis(10)).await;
                next_id += 1;
                let checks: Vec<_> = (0..5).map(|_| check("agent", "streamed", 1)).collect();
                in_flight.insert(next_id, checks.len());
                let _ = send.send(CheckStreamRequest { id: next_id, checks }).await;
            }
            if in_flight.is_empty() {
                return (allowed, denied, unavailable);
            }
            match tokio::time::timeout(Duration::from_secs(6), answers.message()).await {
                Ok(Ok(Some(answer))) => {
                    in_flight.remove(&answer.id);
                    progress.fetch_add(1, Ordering::SeqCst);
                    assert!(answer.error.is_none(), "{:?}", answer.error);
                    for result in &answer.results {
                        tally(result, &mut allowed, &mut denied, &mut unavailable);
                    }
                }
                // The stream broke (its node was killed): its messages in flight got no answer.
                _ => {
                    unavailable += in_flight.values().sum::<usize>();
                    break;
                }
            }
        }
    }
    (allowed, denied, unavailable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_during_streams_never_over_admits() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(READY).await.unwrap();
    let clients: Vec<_> = (1..=3).map(|id| cluster.client(id)).collect();
    let progress = Progress::default();
    let tasks: Vec<_> =
        (0..3).map(|start| tokio::spawn(stream(clients.clone(), start, 12, progress.clone()))).collect();
    wait_for(&progress, 12).await;
    cluster.kill(leader);
    let killed_at = progress.load(Ordering::SeqCst);
    let (mut allowed, mut denied, mut unavailable) = (0, 0, 0);
    for task in tasks {
        let (a, d, u) = task.await.unwrap();
        (allowed, denied, unavailable) = (allowed + a, denied + d, unavailable + u);
    }
    assert!(allowed <= LIMIT, "admitted {allowed} > limit {LIMIT} (denied {denied}, unavailable {unavailable})");
    assert!(allowed >= 20, "only {allowed} admitted: the surviving nodes stopped serving");
    assert_eq!(allowed + denied + unavailable, 3 * 12 * 5, "every check was counted once");
    assert!(killed_at < 3 * 12, "the leader was killed after the traffic ended");
}
