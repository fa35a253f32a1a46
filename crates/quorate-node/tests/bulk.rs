//! CheckBatch and CheckStream on an in-process three-node cluster: per-check results and errors, order, limits,
//! forwarding from followers, and exact totals under concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::check_result::Result as Outcome;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{
    CheckBatchRequest, CheckRequest, CheckResult, CheckStreamRequest, CheckStreamResponse, Descriptor, StatusRequest,
};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::Cluster;

/// Hourly buckets: nothing refills while a test runs.
const POLICIES: &str = r#"
[policies.three]
algorithm = "sliding_window"
limit = 3
period = "1h"

[policies.fifty]
algorithm = "sliding_window"
limit = 50
period = "1h"

[[rules]]
dimension = "user"
policy = "three"

[[rules]]
dimension = "tenant"
policy = "fifty"
"#;

fn check(dimension: &str, value: &str) -> CheckRequest {
    let descriptor = Descriptor { dimension: dimension.into(), value: value.into(), policy: String::new() };
    CheckRequest { descriptors: vec![descriptor], cost: 1, peek: false, lease: None }
}

/// `Some(allowed)` for a decision, `None` for an error.
fn allowed(result: &CheckResult) -> Option<bool> {
    match result.result.as_ref().unwrap() {
        Outcome::Decision(decision) => Some(decision.allowed),
        Outcome::Error(_) => None,
    }
}

fn error_code(result: &CheckResult) -> Option<Code> {
    match result.result.as_ref().unwrap() {
        Outcome::Error(error) => Some(Code::from_i32(error.code)),
        Outcome::Decision(_) => None,
    }
}

async fn client(cluster: &Cluster, node: usize) -> RateLimiterClient<Channel> {
    RateLimiterClient::new(cluster.channel(node).await)
}

async fn commit_index(cluster: &Cluster, node: usize) -> u64 {
    let mut admin = AdminClient::new(cluster.channel(node).await);
    admin.status(StatusRequest {}).await.unwrap().into_inner().commit_index
}

async fn start() -> Cluster {
    let cluster = Cluster::start(POLICIES, |_, config| {
        config.max_batch_items = 100;
        config.max_stream_checks = 200;
    })
    .await;
    cluster.wait_until_ready().await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_decides_each_check_on_its_own_in_order() {
    let cluster = start().await;
    let (leader, follower) = cluster.leader_and_follower();
    for (node, key) in [(leader, "on-leader"), (follower, "on-follower")] {
        let mut rl = client(&cluster, node).await;
        let mut checks: Vec<CheckRequest> = (0..5).map(|_| check("user", key)).collect();
        checks.insert(2, check("nobody", "x"));
        checks.insert(4, CheckRequest { cost: 4, ..check("user", key) });
        let results = rl.check_batch(CheckBatchRequest { checks }).await.unwrap().into_inner().results;
        let decisions: Vec<Option<bool>> = results.iter().map(allowed).collect();
        // Three fit; the unknown dimension and the cost above the limit are errors of their own.
        assert_eq!(decisions, [Some(true), Some(true), None, Some(true), None, Some(false), Some(false)], "{key}");
        assert_eq!(error_code(&results[2]), Some(Code::InvalidArgument));
        assert_eq!(error_code(&results[4]), Some(Code::InvalidArgument));
        let Some(Outcome::Error(error)) = &results[4].result else { unreachable!() };
        assert!(error.message.contains("exceeds the limit 3"), "{}", error.message);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_above_the_item_limit_is_refused_whole_and_charges_nothing() {
    let cluster = start().await;
    let mut rl = client(&cluster, 0).await;
    let checks = (0..101).map(|i| check("tenant", &format!("t{i}"))).collect();
    let status = rl.check_batch(CheckBatchRequest { checks }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("at most 100 checks, this one has 101"), "{}", status.message());
    let empty = rl.check_batch(CheckBatchRequest { checks: Vec::new() }).await.unwrap().into_inner();
    assert!(empty.results.is_empty());
    let after = rl.check(check("tenant", "t0")).await.unwrap().into_inner();
    assert_eq!(after.overall.unwrap().remaining, 49, "the refused batch charged nothing");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_forwards_a_batch_in_one_call_and_one_log_entry() {
    let cluster = start().await;
    let (leader, follower) = cluster.leader_and_follower();
    let mut rl = client(&cluster, follower).await;
    let before = commit_index(&cluster, leader).await;
    let checks = (0..100).map(|i| check("tenant", &format!("one-entry-{i}"))).collect();
    let results = rl.check_batch(CheckBatchRequest { checks }).await.unwrap().into_inner().results;
    assert!(results.iter().all(|r| allowed(r) == Some(true)));
    let entries = commit_index(&cluster, leader).await - before;
    // One entry for the batch; the leader may fold (empty) load signals into one more meanwhile.
    assert!((1..=2).contains(&entries), "{entries} log entries for one forwarded batch");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_answers_every_message_by_id_and_refuses_oversized_ones() {
    let cluster = start().await;
    let (_, follower) = cluster.leader_and_follower();
    let mut rl = client(&cluster, follower).await;
    let (send, outbound) = tokio::sync::mpsc::channel(16);
    let messages = futures::stream::unfold(outbound, |mut outbound| async move {
        outbound.recv().await.map(|message| (message, outbound))
    });
    let mut answers = rl.check_stream(messages).await.unwrap().into_inner();
    for id in 1..=3u64 {
        let checks = (0..2).map(|_| check("user", "streamed")).collect();
        send.send(CheckStreamRequest { id, checks }).await.unwrap();
    }
    let too_many = (0..101).map(|_| check("user", "streamed")).collect();
    send.send(CheckStreamRequest { id: 9, checks: too_many }).await.unwrap();
    let mut got: Vec<CheckStreamResponse> = Vec::new();
    while got.len() < 4 {
        got.push(answers.message().await.unwrap().unwrap());
    }
    got.sort_by_key(|a| a.id);
    assert_eq!(got.iter().map(|a| a.id).collect::<Vec<_>>(), [1, 2, 3, 9]);
    let oversized = got.pop().unwrap();
    assert!(oversized.results.is_empty());
    assert_eq!(oversized.error.as_ref().map(|e| Code::from_i32(e.code)), Some(Code::InvalidArgument));
    // Six checks of one key limited to three: exactly three allowed, whatever order the messages were decided in.
    let allowed_count = got.iter().flat_map(|a| &a.results).filter(|r| allowed(r) == Some(true)).count();
    assert_eq!(allowed_count, 3);
    drop(send);
    assert!(answers.message().await.unwrap().is_none(), "the stream ends when the client ends it");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_from_every_node_admit_exactly_the_limit() {
    // Invariant 2: strict decisions never over-admit, however they arrive.
    let cluster = start().await;
    let mut tasks = Vec::new();
    for node in 0..3 {
        let mut rl = client(&cluster, node).await;
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0;
            for _ in 0..4 {
                let checks = (0..10).map(|_| check("tenant", "shared")).collect();
                let results = rl.check_batch(CheckBatchRequest { checks }).await.unwrap().into_inner().results;
                admitted += results.iter().filter(|r| allowed(r) == Some(true)).count();
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    assert_eq!(admitted, 50, "120 checks of a key limited to 50");
    cluster.shutdown().await;
}
