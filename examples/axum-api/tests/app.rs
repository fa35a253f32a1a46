//! The example API against a real one-node Quorate cluster started in this process with the sample tier
//! policies: tiers by key prefix, the headers of allowed and denied requests, exempt paths, and a 503 when the
//! cluster is unreachable. Requests go through the router with `oneshot`, carrying the `ConnectInfo` that
//! `axum::serve` would add.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use axum_api_example::app;
use quorate_client::Client;
use quorate_node::clock::SystemClock;
use quorate_node::config::LocalAddrs;
use quorate_node::{NodeConfig, NodeHandle, start_node};
use serde_json::{Value, json};
use tower::ServiceExt;

/// One node on a free port of 127.0.0.1, with its data in a temporary directory.
struct Cluster {
    node: NodeHandle,
    url: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the node and polls until it leads and has installed the sample policies.
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::local(1, LocalAddrs::any_port(), dir.path().join("node1"), BTreeMap::new());
        config.bootstrap = true;
        // The sample tiers are adaptive: a busy machine would tighten them. Counts here must be exact.
        config.sample_system = false;
        let node = start_node(config, Arc::new(SystemClock::new())).await.unwrap();
        let ready = async {
            loop {
                if node.leader() == Some(1) && node.is_ready() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), ready).await.expect("the node did not become ready");
        let url = format!("http://{}", node.local_addr());
        Cluster { node, url, _dir: dir }
    }

    fn app(&self) -> Router {
        app(Client::new([self.url.as_str()]).unwrap())
    }

    async fn shutdown(self) {
        self.node.shutdown().await.unwrap();
    }
}

/// An address where nothing listens (the OS picked it free; the node binds it right after).
async fn free_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    listener.local_addr().unwrap()
}

/// Builds `GET path` with `headers`, from peer 192.0.2.10.
fn request(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::builder().uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 10], 40_000))));
    request
}

/// Sends a request through the router, returning status, headers and body.
async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, axum::body::to_bytes(body, 1 << 20).await.unwrap())
}

/// Sends `GET path` with `headers` from peer 192.0.2.10.
async fn get(app: &Router, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Bytes) {
    send(app, request(path, headers)).await
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn a_default_key_gets_60_per_minute_then_a_429_with_retry_after() {
    let cluster = Cluster::start().await;
    let app = cluster.app();

    let (status, headers, body) = get(&app, "/v1/chat?prompt=hi", &[("x-api-key", "user_1")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["reply"], "You said: hi");
    assert_eq!(header(&headers, "x-ratelimit-limit"), Some("60"));
    assert_eq!(header(&headers, "x-ratelimit-remaining"), Some("59"));
    assert_eq!(header(&headers, "ratelimit-policy"), Some(r#""default";q=60;w=60"#));
    assert_eq!(header(&headers, "retry-after"), None);

    // Spend what is left in one request (its cost declared in x-cost) instead of 59 more.
    let (status, headers, _) = get(&app, "/v1/chat", &[("x-api-key", "user_1"), ("x-cost", "59")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&headers, "ratelimit"), Some(r#""default";r=0;t=60"#));

    // The bucket refills one unit a second: a request costing 30 waits about 30 s. (A cost of 30 rather than 1
    // keeps this exact however slowly the machine runs.)
    let (status, headers, body) = get(&app, "/v1/chat", &[("x-api-key", "user_1"), ("x-cost", "30")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let retry_after: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!((29..=30).contains(&retry_after), "retry-after {retry_after}");
    let message = format!("rate limit exceeded (policy default); retry in {retry_after} s");
    let expected = json!({ "error": "rate_limit_exceeded", "message": message, "retry_after": retry_after });
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
    assert_eq!(header(&headers, "x-ratelimit-limit"), Some("60"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn tiers_follow_the_api_key_prefix_and_requests_without_a_key_are_limited_per_ip() {
    let cluster = Cluster::start().await;
    let app = cluster.app();
    for (key, policy) in [("agent_42", r#""agent";q=200;w=60"#), ("user_7", r#""default";q=60;w=60"#)] {
        let (status, headers, _) = get(&app, "/v1/chat", &[("x-api-key", key)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "ratelimit-policy"), Some(policy), "{key}");
    }
    // The headers show the most restrictive limit: from one address, the per-IP 600/min is tighter than an admin
    // key's 1000/min, so the admin tier shows only on a request without a peer address.
    let (_, headers, _) = get(&app, "/v1/chat", &[("x-api-key", "admin_ops")]).await;
    assert_eq!(header(&headers, "ratelimit-policy"), Some(r#""per_ip";q=600;w=60"#));
    let mut no_peer = request("/v1/chat", &[("x-api-key", "admin_ops")]);
    no_peer.extensions_mut().clear();
    let (_, headers, _) = send(&app, no_peer).await;
    assert_eq!(header(&headers, "ratelimit"), Some(r#""admin";r=998;t=1"#));
    // Three requests from 192.0.2.10 so far, now a fourth with no key: only the per-IP limit applies. (Its reset
    // is 60 or 61 s: the sliding window frees units a whole one-second bucket at a time.)
    let (status, headers, _) = get(&app, "/v1/chat", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "ratelimit").unwrap().starts_with(r#""per_ip";r=596;t="#));
    cluster.shutdown().await;
}

#[tokio::test]
async fn health_and_docs_are_never_limited() {
    let cluster = Cluster::start().await;
    let app = cluster.app();
    for path in ["/health", "/docs", "/health", "/docs"] {
        let (status, headers, _) = get(&app, path, &[("x-api-key", "user_9"), ("x-cost", "60")]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header(&headers, "x-ratelimit-limit"), None, "{path}");
    }
    // None of them was charged to the key.
    let (_, headers, _) = get(&app, "/v1/chat", &[("x-api-key", "user_9")]).await;
    assert_eq!(header(&headers, "x-ratelimit-remaining"), Some("59"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_cluster_gets_a_503_because_the_example_fails_closed() {
    let dead = free_addr().await;
    let client = Client::builder([dead.to_string()]).deadline(Duration::from_millis(300)).build().unwrap();
    let (status, headers, body) = get(&app(client), "/v1/chat", &[("x-api-key", "user_1")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"], "rate_limiter_unavailable");
}
