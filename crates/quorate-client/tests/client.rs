//! The client against fake nodes: where calls go (leader, failover), what is retried and what is returned typed,
//! connection reuse, deadlines and failure modes. A real cluster losing its leader is in `cluster.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{FakeNode, dead_addr, limit, response};
use quorate_client::{Client, ClientError, Descriptors, FailureMode, LocalLimit, Source};
use tonic::Code;

fn allowed() -> quorate_proto::v1::CheckResponse {
    response(limit("agent", true, 200, 199, 300_000_000, 0))
}

fn key() -> Descriptors {
    Descriptors::new().api_key("agent_42")
}

/// Makes `leader` the leader in the status answers of every node in `nodes`.
fn elect(nodes: &[&FakeNode], leader: usize) {
    let members: Vec<(u64, std::net::SocketAddr)> =
        nodes.iter().enumerate().map(|(i, n)| (i as u64 + 1, n.addr)).collect();
    for (i, node) in nodes.iter().enumerate() {
        node.set_status(i as u64 + 1, leader as u64 + 1, &members);
    }
}

#[tokio::test]
async fn checks_go_straight_to_the_leader_named_by_status() {
    let follower = FakeNode::answering(allowed()).await;
    let leader = FakeNode::answering(allowed()).await;
    elect(&[&follower, &leader], 1);
    let client = Client::new([follower.url.clone(), leader.url.clone()]).unwrap();
    for _ in 0..5 {
        assert!(client.check(&key(), 1).await.unwrap().allowed);
    }
    assert_eq!(client.leader(), Some(leader.url.clone()));
    assert_eq!((follower.check_count(), leader.check_count()), (0, 5));
}

#[tokio::test]
async fn one_connection_per_node_is_reused_across_calls_and_clones() {
    let leader = FakeNode::answering(allowed()).await;
    elect(&[&leader], 0);
    let client = Client::new([leader.url.clone()]).unwrap();
    let clone = client.clone();
    for _ in 0..10 {
        client.check(&key(), 1).await.unwrap();
        clone.peek(&key(), 1).await.unwrap();
    }
    assert_eq!(leader.check_count(), 20);
    assert_eq!(leader.connection_count(), 1);
}

#[tokio::test]
async fn refused_connections_fail_over_to_a_live_node() {
    let dead = dead_addr().await.to_string();
    let live = FakeNode::answering(allowed()).await;
    let client = Client::builder([dead.as_str(), live.url.as_str(), dead.as_str()]).build().unwrap();
    for _ in 0..4 {
        let decision = client.check(&key(), 1).await.unwrap();
        assert_eq!(decision.source, Source::Cluster);
    }
    assert_eq!(live.check_count(), 4);
}

#[tokio::test]
async fn unavailable_answers_are_retried_on_another_node() {
    let no_quorum = FakeNode::failing(Code::Unavailable, "no quorum committed the request").await;
    let live = FakeNode::answering(allowed()).await;
    // The unreachable-quorum node claims to lead, so the first attempt goes to it.
    elect(&[&no_quorum, &live], 0);
    let client = Client::new([no_quorum.url.clone(), live.url.clone()]).unwrap();
    assert!(client.check(&key(), 1).await.unwrap().allowed);
    assert_eq!((no_quorum.check_count(), live.check_count()), (1, 1));
}

#[tokio::test]
async fn invalid_argument_and_resource_exhausted_are_returned_typed_without_retry() {
    for (code, expected) in [
        (Code::InvalidArgument, ClientError::InvalidArgument { message: "bad".into() }),
        (Code::ResourceExhausted, ClientError::ResourceExhausted { message: "bad".into() }),
    ] {
        let refusing = FakeNode::failing(code, "bad").await;
        let other = FakeNode::answering(allowed()).await;
        elect(&[&refusing, &other], 0);
        let client = Client::new([refusing.url.clone(), other.url.clone()]).unwrap();
        assert_eq!(client.check(&key(), 1).await.unwrap_err(), expected);
        assert_eq!((refusing.check_count(), other.check_count()), (1, 0));
    }
}

#[tokio::test]
async fn a_timed_out_check_is_not_retried_by_default_because_it_may_have_been_charged() {
    let slow = FakeNode::start(Arc::new(|_| Ok(allowed())), Duration::from_secs(2)).await;
    let other = FakeNode::answering(allowed()).await;
    elect(&[&slow, &other], 0);
    let client = Client::builder([slow.url.clone(), other.url.clone()])
        .call_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let error = client.check(&key(), 1).await.unwrap_err();
    assert!(matches!(&error, ClientError::Timeout { endpoint, .. } if *endpoint == slow.url), "{error:?}");
    assert_eq!(other.check_count(), 0);
}

#[tokio::test]
async fn timed_out_peeks_are_retried_and_checks_too_when_enabled() {
    let slow = FakeNode::start(Arc::new(|_| Ok(allowed())), Duration::from_secs(2)).await;
    let other = FakeNode::answering(allowed()).await;
    elect(&[&slow, &other], 0);
    let default = Client::builder([slow.url.clone(), other.url.clone()]).call_timeout(Duration::from_millis(200));
    assert!(default.clone().build().unwrap().peek(&key(), 1).await.unwrap().allowed);
    let retrying = default.retry_timed_out_checks(true).build().unwrap();
    assert!(retrying.check(&key(), 1).await.unwrap().allowed);
    assert_eq!(other.check_count(), 2);
}

#[tokio::test]
async fn an_unreachable_cluster_fails_closed_within_the_deadline() {
    let (a, b) = (dead_addr().await.to_string(), dead_addr().await.to_string());
    let client = Client::builder([a, b]).deadline(Duration::from_millis(400)).call_timeout(Duration::from_millis(100));
    let client = client.build().unwrap();
    let start = Instant::now();
    let error = client.check(&key(), 1).await.unwrap_err();
    let elapsed = start.elapsed();
    assert!(matches!(error, ClientError::Unavailable { attempts, .. } if attempts >= 2), "{error:?}");
    assert!(error.is_unreachable());
    assert!(elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn an_unreachable_cluster_fails_open_with_a_degraded_allow() {
    let client = Client::builder([dead_addr().await.to_string()])
        .deadline(Duration::from_millis(200))
        .failure_mode(FailureMode::Open);
    let decision = client.build().unwrap().check(&key(), 1).await.unwrap();
    assert!(decision.allowed && decision.degraded);
    assert_eq!((decision.source, decision.limit()), (Source::FailOpen, None));
}

#[tokio::test]
async fn an_unreachable_cluster_is_limited_per_key_by_the_local_fallback() {
    let local = FailureMode::Local(LocalLimit::new(3, Duration::from_secs(60)));
    let client =
        Client::builder([dead_addr().await.to_string()]).deadline(Duration::from_millis(200)).failure_mode(local);
    let client = client.build().unwrap();
    let mut allowed = Vec::new();
    for _ in 0..4 {
        let decision = client.check(&key(), 1).await.unwrap();
        assert_eq!((decision.source, decision.degraded, decision.policy()), (Source::Fallback, true, Some("local")));
        allowed.push(decision.allowed);
    }
    assert_eq!(allowed, [true, true, true, false]);
    // Another key has its own bucket.
    assert!(client.check(&Descriptors::new().api_key("other"), 1).await.unwrap().allowed);
}

#[tokio::test]
async fn invalid_requests_fail_before_any_call() {
    let node = FakeNode::answering(allowed()).await;
    let client = Client::new([node.url.clone()]).unwrap();
    assert!(matches!(client.check(&Descriptors::new(), 1).await, Err(ClientError::InvalidArgument { .. })));
    assert!(matches!(client.refund(&key(), 0).await, Err(ClientError::InvalidArgument { .. })));
    assert_eq!(node.check_count(), 0);
    client.refund(&key(), 5).await.unwrap();
    assert_eq!(client.report_load("db_pool_utilization", 0.5, Duration::from_secs(10)).await.unwrap(), 0.5);
}

#[tokio::test]
async fn a_node_that_goes_away_is_replaced_by_the_next_one() {
    let first = FakeNode::answering(allowed()).await;
    let second = FakeNode::answering(allowed()).await;
    elect(&[&first, &second], 0);
    let client = Client::new([first.url.clone(), second.url.clone()]).unwrap();
    client.check(&key(), 1).await.unwrap();
    assert_eq!(client.leader(), Some(first.url.clone()));
    second.set_status(2, 2, &[(1, first.addr), (2, second.addr)]);
    first.stop().await;
    let start = Instant::now();
    for _ in 0..3 {
        assert!(client.check(&key(), 1).await.unwrap().allowed);
    }
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    assert_eq!(second.check_count(), 3);
    assert_eq!(client.leader(), Some(second.url.clone()));
}

#[tokio::test]
async fn a_follower_still_naming_a_leader_that_just_failed_is_not_believed() {
    let first = FakeNode::answering(allowed()).await;
    let second = FakeNode::answering(allowed()).await;
    elect(&[&first, &second], 0);
    let client = Client::new([first.url.clone(), second.url.clone()]).unwrap();
    client.check(&key(), 1).await.unwrap();
    assert_eq!(client.leader(), Some(first.url.clone()));
    // The leader dies; the follower has not noticed and still names it.
    let dead = first.url.clone();
    first.stop().await;
    for _ in 0..3 {
        assert!(client.check(&key(), 1).await.unwrap().allowed);
    }
    assert_eq!(second.check_count(), 3);
    assert_ne!(client.leader(), Some(dead), "the dead leader came back from a stale status");
}

#[tokio::test]
async fn a_refund_is_retried_when_it_was_never_sent_but_not_after_unavailable() {
    // The live node names a dead one as leader: the refund is refused there, never sent, and retried.
    let dead = dead_addr().await;
    let live = FakeNode::answering(allowed()).await;
    live.set_status(2, 1, &[(1, dead), (2, live.addr)]);
    let client = Client::new([live.url.clone()]).unwrap();
    client.refund(&key(), 3).await.unwrap();
    assert_eq!(live.check_count(), 1);

    // A node that answers UNAVAILABLE may have applied it: refunding twice would over-admit, so no retry.
    let no_quorum = FakeNode::failing(Code::Unavailable, "no quorum committed the request").await;
    let other = FakeNode::answering(allowed()).await;
    elect(&[&no_quorum, &other], 0);
    let client = Client::new([no_quorum.url.clone(), other.url.clone()]).unwrap();
    assert!(matches!(client.refund(&key(), 3).await, Err(ClientError::Unavailable { attempts: 1, .. })));
    assert_eq!((no_quorum.check_count(), other.check_count()), (1, 0));
}

#[tokio::test]
async fn a_custom_connector_makes_each_nodes_channel_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let node = FakeNode::answering(allowed()).await;
    elect(&[&node], 0);
    let made = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&made);
    let client = Client::builder([node.url.clone()])
        .connector(move |endpoint| {
            counter.fetch_add(1, Ordering::SeqCst);
            endpoint.connect_lazy()
        })
        .build()
        .unwrap();
    for _ in 0..3 {
        client.check(&key(), 1).await.unwrap();
    }
    assert_eq!((made.load(Ordering::SeqCst), node.check_count()), (1, 3));
}

#[tokio::test]
async fn a_client_given_one_seed_fails_over_to_the_members_it_learnt() {
    let (seed, leader, third) = (
        FakeNode::answering(allowed()).await,
        FakeNode::answering(allowed()).await,
        FakeNode::answering(allowed()).await,
    );
    elect(&[&seed, &leader, &third], 1);
    let client = Client::new([seed.url.clone()]).unwrap();
    client.check(&key(), 1).await.unwrap();
    assert_eq!(client.leader(), Some(leader.url.clone()));

    // The seed and the leader die; the third node, which the client was never given, takes over.
    third.set_status(3, 3, &[(1, seed.addr), (2, leader.addr), (3, third.addr)]);
    seed.stop().await;
    leader.stop().await;
    assert!(client.check(&key(), 1).await.unwrap().allowed);
    assert_eq!(third.check_count(), 1);
    assert_eq!(client.leader(), Some(third.url.clone()));
}

/// Answers each check by its key: `bad` keys are INVALID_ARGUMENT, others allowed with the key as the policy name.
fn by_key() -> crate::support::CheckFn {
    Arc::new(|request: &quorate_proto::v1::CheckRequest| {
        let value = &request.descriptors[0].value;
        if value.starts_with("bad") {
            return Err(tonic::Status::invalid_argument(format!("{value} is refused")));
        }
        Ok(response(limit(value, true, 200, 199, 0, 0)))
    })
}

#[tokio::test]
async fn concurrent_checks_go_out_together_in_batch_calls_and_each_gets_its_own_answer() {
    // A slow node: while the first calls are in flight, the other checks queue and are sent together.
    let leader = FakeNode::start(by_key(), Duration::from_millis(50)).await;
    elect(&[&leader], 0);
    let client = Client::new([leader.url.clone()]).unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            let value = if i == 17 { "bad_17".to_owned() } else { format!("k{i}") };
            tokio::spawn(async move { (i, client.check(&Descriptors::new().api_key(value), 1).await) })
        })
        .collect();
    for task in tasks {
        let (i, answer) = task.await.unwrap();
        match (i, answer) {
            (17, Err(ClientError::InvalidArgument { message })) => assert_eq!(message, "bad_17 is refused"),
            (i, Ok(decision)) => assert_eq!(decision.policy(), Some(format!("k{i}").as_str())),
            (i, other) => panic!("check {i}: {other:?}"),
        }
    }
    let unary = leader.check_count() - leader.batched.load(std::sync::atomic::Ordering::SeqCst);
    let batches = leader.batches.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(leader.check_count(), 50, "every check reached the node exactly once");
    assert!(batches >= 1 && unary + batches <= 6, "{unary} lone calls and {batches} batches for 50 checks");
}

#[tokio::test]
async fn without_coalescing_every_check_is_its_own_call() {
    let leader = FakeNode::start(by_key(), Duration::from_millis(20)).await;
    elect(&[&leader], 0);
    let client = Client::builder([leader.url.clone()]).coalesce(false).build().unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.check(&Descriptors::new().api_key(format!("k{i}")), 1).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().unwrap().allowed);
    }
    assert_eq!(leader.batches.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(leader.check_count(), 10);
}

#[tokio::test]
async fn check_many_answers_in_order_with_errors_of_their_own_and_splits_into_batches() {
    let leader = FakeNode::start(by_key(), Duration::ZERO).await;
    elect(&[&leader], 0);
    let client = Client::builder([leader.url.clone()]).coalesce_max_batch(4).build().unwrap();
    let checks: Vec<(Descriptors, u64)> = (0..10)
        .map(|i| (Descriptors::new().api_key(if i == 3 { "bad_3".to_owned() } else { format!("k{i}") }), 1))
        .chain([(Descriptors::new(), 1)])
        .collect();
    let answers = client.check_many(&checks).await;
    assert_eq!(answers.len(), 11);
    for (i, answer) in answers.iter().enumerate() {
        match (i, answer) {
            (3, Err(ClientError::InvalidArgument { .. })) | (10, Err(ClientError::InvalidArgument { .. })) => {}
            (i, Ok(decision)) => assert_eq!(decision.policy(), Some(format!("k{i}").as_str())),
            (i, other) => panic!("check {i}: {other:?}"),
        }
    }
    // 10 valid checks in batches of at most 4; the one without descriptors never left the client.
    assert_eq!(leader.batches.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(leader.check_count(), 10);
}

#[tokio::test]
async fn an_unreachable_cluster_gives_each_check_of_a_batch_the_failure_mode() {
    let dead = dead_addr().await.to_string();
    let client = Client::builder([dead.as_str()])
        .deadline(Duration::from_millis(200))
        .failure_mode(FailureMode::Local(LocalLimit::new(2, Duration::from_secs(60))))
        .build()
        .unwrap();
    let checks: Vec<(Descriptors, u64)> = (0..3).map(|_| (key(), 1)).collect();
    let answers: Vec<bool> = client.check_many(&checks).await.into_iter().map(|a| a.unwrap().allowed).collect();
    assert_eq!(answers, [true, true, false], "the local fallback admits its limit of 2");
}
