//! Bounded input on the public listener: a request that does not decode is INVALID_ARGUMENT, one over the
//! service's size limit RESOURCE_EXHAUSTED (tonic's own answers would be INTERNAL and OUT_OF_RANGE), and neither
//! disturbs the node.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use quorate_proto::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use quorate_proto::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use quorate_proto::envoy::service::ratelimit::v3::RateLimitRequest;
use quorate_proto::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{CheckRequest, CheckResponse, Descriptor, StatusResponse};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::Cluster;

const POLICIES: &str = r#"
[policies.per_user]
algorithm = "token_bucket"
limit = 5
period = "1h"

[[rules]]
dimension = "user"
policy = "per_user"
"#;

fn check(value: String) -> CheckRequest {
    let descriptor = Descriptor { dimension: "user".into(), value, policy: String::new() };
    CheckRequest { descriptors: vec![descriptor], cost: 1, peek: false, lease: None }
}

/// Sends `message` (of another type) to `RateLimiter/Check`, as a buggy or hostile client would.
async fn check_with_wrong_message(channel: Channel, message: StatusResponse) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<StatusResponse, CheckResponse>::default();
    let path = http::uri::PathAndQuery::from_static("/quorate.v1.RateLimiter/Check");
    grpc.unary(tonic::Request::new(message), path, codec).await.unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_are_client_errors() {
    let cluster = Cluster::start(POLICIES, |_, _| {}).await;
    cluster.wait_until_ready().await;
    let (leader, _) = cluster.leader_and_follower();

    // Field 1 of a CheckRequest is a repeated message; a varint there does not decode.
    let garbage = StatusResponse { node_id: 7, ..Default::default() };
    let status = check_with_wrong_message(cluster.channel(leader).await, garbage).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("not a valid protobuf message"), "{}", status.message());

    // 9 MB is over the RateLimiter limit (max_batch_items x 8 KiB = 8 MB by default).
    let mut client = RateLimiterClient::new(cluster.channel(leader).await);
    let status = client.check(check("x".repeat(9 << 20))).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("larger than this method accepts"), "{}", status.message());

    // Envoy's requests are small: 100 KB of descriptors is refused.
    let entry = Entry { key: "user".into(), value: "y".repeat(100 << 10) };
    let descriptor = RateLimitDescriptor { entries: vec![entry], ..Default::default() };
    let request = RateLimitRequest { domain: "quorate".into(), descriptors: vec![descriptor], hits_addend: 1 };
    let mut envoy = RateLimitServiceClient::new(cluster.channel(leader).await);
    let status = envoy.should_rate_limit(request).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // The node is unharmed: a normal check on the same connection is decided.
    let decided = client.check(check("alice".into())).await.unwrap().into_inner();
    assert!(decided.allowed);
    cluster.shutdown().await;
}
