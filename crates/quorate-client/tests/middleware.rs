//! The HTTP middleware against fake nodes with scripted decisions: exact headers and bodies, failure modes,
//! skipped paths, and how requests are identified. End-to-end runs against a real cluster are in `cluster.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{FakeNode, dead_addr, limit, response};
use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::BodyExt;
use quorate_client::middleware::{IpRange, MissingIdentity, RateLimitLayer};
use quorate_client::{Client, FailureMode, LocalLimit};
use quorate_proto::v1::CheckRequest;
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt, service_fn};

/// The inner service: answers 200 "ok" and counts its calls.
fn app(
    calls: &Arc<AtomicUsize>,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    let calls = Arc::clone(calls);
    service_fn(move |_request: Request<String>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(String::from("ok"))) }
    })
}

fn client(endpoints: &[&str]) -> Client {
    Client::builder(endpoints.iter().copied()).deadline(Duration::from_millis(500)).build().unwrap()
}

fn request(path: &str, headers: &[(&str, &str)], peer: Option<&str>) -> Request<String> {
    let mut builder = Request::builder().uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(String::new()).unwrap();
    if let Some(peer) = peer {
        request.extensions_mut().insert(SocketAddr::new(peer.parse::<IpAddr>().unwrap(), 40_000));
    }
    request
}

/// Sends one request through `layer` around `app`, returning status, headers as (name, value) and the body.
async fn send(
    layer: &RateLimitLayer,
    calls: &Arc<AtomicUsize>,
    request: Request<String>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let response = layer.layer(app(calls)).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// A fake node that records the last check it received.
async fn recording_node() -> (FakeNode, Arc<Mutex<Option<CheckRequest>>>) {
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    let allowed = response(limit("agent", true, 200, 199, 300_000_000, 0));
    let node = FakeNode::start(
        Arc::new(move |request: &CheckRequest| {
            *record.lock().unwrap() = Some(request.clone());
            Ok(allowed.clone())
        }),
        Duration::ZERO,
    )
    .await;
    (node, seen)
}

fn descriptor_pairs(seen: &Mutex<Option<CheckRequest>>) -> Vec<(String, String)> {
    let request = seen.lock().unwrap().clone().unwrap();
    request.descriptors.into_iter().map(|d| (d.dimension, d.value)).collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(d, v)| (d.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn allowed_response_passes_through_with_exact_rate_limit_headers() {
    let node = FakeNode::answering(response(limit("agent", true, 200, 150, 1_200_000_000, 0))).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(client(&[&node.url]));
    let (status, headers, body) = send(&layer, &calls, request("/v1/chat", &[("x-api-key", "agent_42")], None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ok");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(header(&headers, "x-ratelimit-limit"), Some("200"));
    assert_eq!(header(&headers, "x-ratelimit-remaining"), Some("150"));
    assert_eq!(header(&headers, "x-ratelimit-reset"), Some("2"));
    assert_eq!(header(&headers, "ratelimit-policy"), Some(r#""agent";q=200;w=60"#));
    assert_eq!(header(&headers, "ratelimit"), Some(r#""agent";r=150;t=2"#));
    assert_eq!(header(&headers, "retry-after"), None);
}

#[tokio::test]
async fn denied_request_gets_a_429_json_body_and_retry_after_rounded_up_without_reaching_the_service() {
    let node = FakeNode::answering(response(limit("default", false, 60, 0, 59_000_000_001, 2_100_000_000))).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(client(&[&node.url]));
    let (status, headers, body) = send(&layer, &calls, request("/v1/chat", &[("x-api-key", "k")], None)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(header(&headers, "retry-after"), Some("3"));
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(header(&headers, "x-ratelimit-limit"), Some("60"));
    assert_eq!(header(&headers, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&headers, "x-ratelimit-reset"), Some("60"));
    assert_eq!(header(&headers, "ratelimit-policy"), Some(r#""default";q=60;w=60"#));
    assert_eq!(header(&headers, "ratelimit"), Some(r#""default";r=0;t=60"#));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({
            "error": "rate_limit_exceeded",
            "message": "rate limit exceeded (policy default); retry in 3 s",
            "retry_after": 3,
        })
    );
}

#[tokio::test]
async fn retry_after_is_at_least_one_second() {
    for retry_ns in [0, 1, 999_999_999, 1_000_000_000] {
        let node = FakeNode::answering(response(limit("default", false, 60, 0, 500_000_000, retry_ns))).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = RateLimitLayer::new(client(&[&node.url]));
        let (status, headers, body) = send(&layer, &calls, request("/", &[("x-api-key", "k")], None)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&headers, "retry-after"), Some("1"), "retry_after_ns = {retry_ns}");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["retry_after"], 1);
    }
}

#[tokio::test]
async fn unreachable_cluster_answers_503_with_retry_after_when_failing_closed() {
    let dead = dead_addr().await.to_string();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(client(&[&dead]));
    let (status, headers, body) = send(&layer, &calls, request("/v1/chat", &[("x-api-key", "k")], None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "rate_limiter_unavailable");
    assert_eq!(body["retry_after"], 1);
}

#[tokio::test]
async fn unreachable_cluster_passes_requests_through_when_failing_open() {
    let dead = dead_addr().await.to_string();
    let client =
        Client::builder([dead]).deadline(Duration::from_millis(300)).failure_mode(FailureMode::Open).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(client);
    let (status, headers, body) = send(&layer, &calls, request("/v1/chat", &[("x-api-key", "k")], None)).await;
    assert_eq!((status, body.as_ref()), (StatusCode::OK, b"ok".as_ref()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Nothing was counted, so there is no limit to report.
    assert_eq!(header(&headers, "x-ratelimit-limit"), None);
}

#[tokio::test]
async fn unreachable_cluster_is_limited_by_the_local_fallback_when_configured() {
    let dead = dead_addr().await.to_string();
    let local = FailureMode::Local(LocalLimit::new(2, Duration::from_secs(60)));
    let client = Client::builder([dead]).deadline(Duration::from_millis(200)).failure_mode(local).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(client).limit_by_ip(false);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, headers, _) = send(&layer, &calls, request("/", &[("x-api-key", "k")], None)).await;
        assert_eq!(header(&headers, "ratelimit-policy"), Some(r#""local";q=2;w=60"#));
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test]
async fn skipped_paths_bypass_the_check_and_near_misses_do_not() {
    let node = FakeNode::answering(response(limit("agent", true, 200, 199, 300_000_000, 0))).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(client(&[&node.url])).skip_path("/health").skip_prefix("/docs");
    for path in ["/health", "/docs", "/docs/openapi.json"] {
        let (status, headers, _) = send(&layer, &calls, request(path, &[("x-api-key", "k")], None)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "x-ratelimit-limit"), None, "{path} should not be checked");
    }
    assert_eq!(node.check_count(), 0);
    for path in ["/healthz", "/docsx", "/v1/health"] {
        send(&layer, &calls, request(path, &[("x-api-key", "k")], None)).await;
    }
    assert_eq!(node.check_count(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn forwarded_for_is_honoured_only_when_the_peer_is_a_trusted_proxy() {
    let (node, seen) = recording_node().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(client(&[&node.url])).trusted_proxy("10.0.0.0/8".parse::<IpRange>().unwrap());
    let forged = [("x-forwarded-for", "6.6.6.6, 198.51.100.7")];
    send(&layer, &calls, request("/", &forged, Some("203.0.113.9"))).await;
    assert_eq!(descriptor_pairs(&seen), pairs(&[("ip", "203.0.113.9")]));
    send(&layer, &calls, request("/", &forged, Some("10.0.0.5"))).await;
    assert_eq!(descriptor_pairs(&seen), pairs(&[("ip", "198.51.100.7")]));
}

#[tokio::test]
async fn api_key_header_bearer_token_and_agent_id_become_descriptors() {
    let (node, seen) = recording_node().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(client(&[&node.url]));
    let headers = [("x-api-key", "agent_42"), ("x-agent-id", "planner-7"), ("authorization", "Bearer other")];
    send(&layer, &calls, request("/", &headers, Some("192.0.2.1"))).await;
    let expected = [("api_key", "agent_42"), ("ip", "192.0.2.1"), ("agent_id", "planner-7")];
    assert_eq!(descriptor_pairs(&seen), pairs(&expected));
    send(&layer, &calls, request("/", &[("authorization", "Bearer admin_1")], None)).await;
    assert_eq!(descriptor_pairs(&seen), pairs(&[("api_key", "admin_1")]));
    let custom = RateLimitLayer::new(client(&[&node.url])).api_key_header(Some(HeaderName::from_static("x-key")));
    send(&custom, &calls, request("/", &[("x-key", "k9"), ("x-api-key", "ignored")], None)).await;
    assert_eq!(descriptor_pairs(&seen), pairs(&[("api_key", "k9")]));
}

#[tokio::test]
async fn requests_without_identity_share_one_limit_unless_allowed_through() {
    let (node, seen) = recording_node().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(client(&[&node.url]));
    send(&layer, &calls, request("/", &[], None)).await;
    assert_eq!(descriptor_pairs(&seen), pairs(&[("ip", "unknown")]));
    let lenient = RateLimitLayer::new(client(&[&node.url])).missing_identity(MissingIdentity::Allow);
    let (status, _, _) = send(&lenient, &calls, request("/", &[], None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(node.check_count(), 1);
}

#[tokio::test]
async fn cost_comes_from_the_cost_header_or_the_cost_closure() {
    let (node, seen) = recording_node().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let cost = |seen: &Mutex<Option<CheckRequest>>| seen.lock().unwrap().as_ref().unwrap().cost;
    let layer = RateLimitLayer::new(client(&[&node.url])).cost_header(HeaderName::from_static("x-cost"));
    send(&layer, &calls, request("/", &[("x-api-key", "k"), ("x-cost", "25")], None)).await;
    assert_eq!(cost(&seen), 25);
    send(&layer, &calls, request("/", &[("x-api-key", "k"), ("x-cost", "lots")], None)).await;
    assert_eq!(cost(&seen), 1);
    let by_route =
        RateLimitLayer::new(client(&[&node.url])).cost_fn(|parts| if parts.uri.path() == "/llm" { 10 } else { 1 });
    send(&by_route, &calls, request("/llm", &[("x-api-key", "k")], None)).await;
    assert_eq!(cost(&seen), 10);
}

#[tokio::test]
async fn a_request_the_cluster_refuses_as_invalid_gets_a_500_not_an_error() {
    let node = FakeNode::failing(tonic::Code::InvalidArgument, "descriptor 0 matches no policy rule").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(client(&[&node.url]));
    let (status, _, body) = send(&layer, &calls, request("/", &[("x-api-key", "k")], None)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"], "rate_limiter_error");
    assert_eq!(node.check_count(), 1);
}

#[tokio::test]
async fn a_full_key_table_gets_a_503() {
    let node = FakeNode::failing(tonic::Code::ResourceExhausted, "key table full").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(client(&[&node.url]));
    let (status, headers, _) = send(&layer, &calls, request("/", &[("x-api-key", "k")], None)).await;
    assert_eq!((status, header(&headers, "retry-after")), (StatusCode::SERVICE_UNAVAILABLE, Some("1")));
}

#[tokio::test]
async fn layer_works_in_an_axum_router_reading_connect_info() {
    use axum::extract::ConnectInfo;

    let (node, seen) = recording_node().await;
    let layer = RateLimitLayer::new(client(&[&node.url]))
        .peer_addr_fn(|parts| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()));
    let router = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" })).layer(layer);
    let mut request =
        Request::builder().uri("/hello").header("x-api-key", "agent_1").body(axum::body::Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 4], 1234))));
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "x-ratelimit-limit"), Some("200"));
    assert_eq!(descriptor_pairs(&seen), pairs(&[("api_key", "agent_1"), ("ip", "198.51.100.4")]));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
}

#[tokio::test]
async fn layer_serves_real_http_through_hyper_with_the_peer_from_the_accept_loop() {
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    let (node, seen) = recording_node().await;
    let layer = RateLimitLayer::new(client(&[&node.url]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        let app =
            service_fn(|_request: Request<Incoming>| async { Ok::<_, Infallible>(Response::new(String::from("ok"))) });
        // The accept loop knows the peer: it puts the address in each request for the middleware.
        let service = tower::ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(peer);
                request
            })
            .layer(layer)
            .service(app);
        let connection = hyper::server::conn::http1::Builder::new();
        connection.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).await.unwrap();
    });

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = Request::builder()
        .uri("/v1/chat")
        .header("host", "localhost")
        .header("x-api-key", "agent_7")
        .body(String::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "ratelimit"), Some(r#""agent";r=199;t=1"#));
    assert_eq!(descriptor_pairs(&seen), pairs(&[("api_key", "agent_7"), ("ip", "127.0.0.1")]));
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "ok");
}
