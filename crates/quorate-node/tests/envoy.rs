//! Envoy's rate limit service, gRPC health and reflection on an in-process three-node cluster.
//!
//! Nodes run in this test process on 127.0.0.1 with OS-assigned ports, each with its own temp dir; tests talk
//! to them over real gRPC, as Envoy, a load balancer's health check and grpcurl would.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use quorate_node::clock::SystemClock;
use quorate_node::config::LocalAddrs;
use quorate_node::{NodeConfig, start_node};

use quorate_proto::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use quorate_proto::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{Entry, RateLimitOverride};
use quorate_proto::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use quorate_proto::envoy::service::ratelimit::v3::rate_limit_response::{Code, RateLimit};
use quorate_proto::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use quorate_proto::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use quorate_proto::envoy::r#type::v3::RateLimitUnit;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{Cluster, READY_TIMEOUT};

/// Hourly token buckets: nothing refills noticeably while a test runs.
const POLICIES: &str = r#"
unmatched = "reject"

[policies.per_ip]
algorithm = "token_bucket"
limit = 3
period = "1h"

[policies.per_route]
algorithm = "token_bucket"
limit = 100
period = "1h"

[[rules]]
dimension = "remote_address"
policy = "per_ip"

[[rules]]
dimension = "method.path"
policy = "per_route"
"#;

/// Starts three nodes; node `i` adds X-RateLimit headers if `headers[i]`.
async fn start(headers: [bool; 3]) -> Cluster {
    Cluster::start(POLICIES, |id, config| config.envoy.response_headers = headers[id as usize - 1]).await
}

async fn rls(cluster: &Cluster, node: usize) -> RateLimitServiceClient<Channel> {
    RateLimitServiceClient::new(cluster.channel(node).await)
}

/// Waits until every node's health check answers SERVING for the whole server.
async fn wait_until_serving(cluster: &Cluster) {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    for node in 0..cluster.nodes.len() {
        let mut health = HealthClient::new(cluster.channel(node).await);
        while health_of(&mut health, "").await != ServingStatus::Serving {
            assert!(tokio::time::Instant::now() < deadline, "node {node} not SERVING in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn health_of(health: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let request = HealthCheckRequest { service: service.to_owned() };
    let status = health.check(request).await.unwrap().into_inner().status;
    ServingStatus::try_from(status).unwrap()
}

fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries.iter().map(|(k, v)| Entry { key: (*k).into(), value: (*v).into() }).collect(),
        limit: None,
        hits_addend: None,
    }
}

fn request(descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest { domain: "edge".into(), descriptors, hits_addend: 0 }
}

async fn ask(client: &mut RateLimitServiceClient<Channel>, descriptors: Vec<RateLimitDescriptor>) -> RateLimitResponse {
    client.should_rate_limit(request(descriptors)).await.unwrap().into_inner()
}

fn remaining(response: &RateLimitResponse) -> Vec<u32> {
    response.statuses.iter().map(|s| s.limit_remaining).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_and_followers_enforce_one_limit_atomically() {
    let cluster = start([false; 3]).await;
    wait_until_serving(&cluster).await;
    let (leader, follower) = cluster.leader_and_follower();
    let (mut on_leader, mut on_follower) = (rls(&cluster, leader).await, rls(&cluster, follower).await);
    let ip = |v: &str| descriptor(&[("remote_address", v)]);

    let first = ask(&mut on_follower, vec![ip("10.0.0.1")]).await;
    assert_eq!(first.overall_code, Code::Ok as i32);
    let status = &first.statuses[0];
    assert_eq!(
        status.current_limit,
        Some(RateLimit { name: "per_ip".into(), requests_per_unit: 3, unit: Unit::Hour as i32 })
    );
    assert_eq!(status.limit_remaining, 2);
    assert!(status.duration_until_reset.is_some_and(|d| d.seconds > 0));
    assert!(first.response_headers_to_add.is_empty(), "headers are off");
    assert_eq!(remaining(&ask(&mut on_leader, vec![ip("10.0.0.1")]).await), [1]);
    assert_eq!(remaining(&ask(&mut on_follower, vec![ip("10.0.0.1")]).await), [0]);
    let over = ask(&mut on_leader, vec![ip("10.0.0.1")]).await;
    assert_eq!(over.overall_code, Code::OverLimit as i32);
    assert_eq!(over.statuses[0].code, Code::OverLimit as i32);

    // Two descriptors in one request: the exhausted address denies it, and the route is not charged either.
    let route = || descriptor(&[("method", "GET"), ("path", "/v1/chat")]);
    let denied = ask(&mut on_follower, vec![ip("10.0.0.1"), route()]).await;
    assert_eq!(denied.overall_code, Code::OverLimit as i32);
    let codes: Vec<i32> = denied.statuses.iter().map(|s| s.code).collect();
    assert_eq!(codes, [Code::OverLimit as i32, Code::Ok as i32]);
    assert_eq!(remaining(&ask(&mut on_leader, vec![route()]).await), [99], "the denied request charged nothing");

    // Request-level and per-descriptor hits_addend.
    let mut heavy = route();
    heavy.hits_addend = Some(10);
    let mut weighted = request(vec![ip("10.0.0.2"), heavy]);
    weighted.hits_addend = 2;
    let answer = on_follower.should_rate_limit(weighted).await.unwrap().into_inner();
    assert_eq!(remaining(&answer), [1, 89]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_headers_errors_health_and_reflection() {
    // Node 1 adds X-RateLimit headers, nodes 2 and 3 do not.
    let cluster = start([true, false, false]).await;
    wait_until_serving(&cluster).await;
    let (_, follower) = cluster.leader_and_follower();
    let mut client = rls(&cluster, follower).await;

    // A descriptor-level limit override is enforced instead of the rules, even for a key no rule matches.
    let limited = || {
        let mut d = descriptor(&[("generic_key", "")]);
        d.limit = Some(RateLimitOverride { requests_per_unit: 2, unit: RateLimitUnit::Day as i32 });
        d
    };
    for left in [1, 0] {
        let answer = ask(&mut client, vec![limited()]).await;
        assert_eq!((answer.overall_code, remaining(&answer)), (Code::Ok as i32, vec![left]));
    }
    let over = ask(&mut client, vec![limited()]).await;
    assert_eq!(over.overall_code, Code::OverLimit as i32);
    assert_eq!(
        over.statuses[0].current_limit,
        Some(RateLimit { name: "override 2/day".into(), requests_per_unit: 2, unit: Unit::Day as i32 })
    );

    // Headers come from the node Envoy asked, whoever decided.
    for node in 0..3 {
        let mut client = rls(&cluster, node).await;
        let answer = ask(&mut client, vec![descriptor(&[("remote_address", "10.9.9.9")])]).await;
        let headers: Vec<(String, String)> =
            answer.response_headers_to_add.into_iter().map(|h| (h.key, h.value)).collect();
        if node == 0 {
            assert_eq!(headers[0], ("x-ratelimit-limit".into(), "3".into()));
            assert_eq!(headers[1].0, "x-ratelimit-remaining");
            assert_eq!(headers[2].0, "x-ratelimit-reset");
            assert_eq!(headers.len(), 3);
        } else {
            assert!(headers.is_empty(), "node {node} is not configured for headers: {headers:?}");
        }
    }

    // Bad input is INVALID_ARGUMENT, naming the problem.
    let bad = [
        (descriptor(&[("X-Api-Key", "k")]), "lowercase letters"),
        (descriptor(&[("user", "u1")]), "matches no policy rule"),
        (descriptor(&[]), "has no entries"),
    ];
    for (d, expected) in bad {
        let error = client.should_rate_limit(request(vec![d])).await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error:?}");
        assert!(error.message().contains(expected), "{expected}: {}", error.message());
    }

    // Health of every public service.
    let mut health = HealthClient::new(cluster.channel(follower).await);
    for service in ["quorate.v1.RateLimiter", "quorate.v1.Admin", "envoy.service.ratelimit.v3.RateLimitService"] {
        assert_eq!(health_of(&mut health, service).await, ServingStatus::Serving, "{service}");
    }

    let services = list_services(cluster.channel(follower).await).await;
    for service in [
        "envoy.service.ratelimit.v3.RateLimitService",
        "quorate.v1.RateLimiter",
        "quorate.v1.Admin",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(services.iter().any(|s| s == service), "{service} missing from {services:?}");
    }
    let older = list_services_v1alpha(cluster.channel(follower).await).await;
    assert!(older.iter().any(|s| s == "envoy.service.ratelimit.v3.RateLimitService"), "{older:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_cluster_is_not_serving_and_answers_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::local(1, LocalAddrs::any_port(), dir.path().join("n"), BTreeMap::new());
    let node = start_node(config, Arc::new(SystemClock::new())).await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", node.local_addr())).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel.clone());
    assert_eq!(health_of(&mut health, "").await, ServingStatus::NotServing);
    assert_eq!(health_of(&mut health, "envoy.service.ratelimit.v3.RateLimitService").await, ServingStatus::NotServing);
    let error = RateLimitServiceClient::new(channel)
        .should_rate_limit(request(vec![descriptor(&[("remote_address", "10.0.0.1")])]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable, "{error:?}");
    node.shutdown().await.unwrap();
}

/// Lists the services a node advertises through reflection v1.
async fn list_services(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => list.service.into_iter().map(|s| s.name).collect(),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

/// Lists the services a node advertises through reflection v1alpha, which older grpcurl versions use.
async fn list_services_v1alpha(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    match responses.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::ListServicesResponse(list)) => list.service.into_iter().map(|s| s.name).collect(),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}
