//! An axum API whose callers are rate-limited by a Quorate cluster, in tiers chosen by their API key.
//!
//! - [`app`]: the router (`GET /v1/chat`, `GET /health`, `GET /docs`) behind the rate-limit layer;
//! - [`rate_limit_layer`]: how requests are identified and which paths are exempt;
//! - `main.rs`: reads the environment, builds the [`Client`], serves (see it for how to run the example).
//!
//! The tiers are not in this code: the cluster's rules pick a policy per descriptor (`deploy/policies.toml`:
//! keys starting `agent_` get 200/min, `admin_` 1000/min, any other key 60/min; every client IP 600/min; every
//! `x-agent-id` 200/min), and a request passes only if all of its limits allow it.
//!
//! # Example
//!
//! ```no_run
//! use axum_api_example::app;
//! use quorate_client::Client;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"])?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // The peer address (`ConnectInfo`) is what the `ip` descriptor is made of.
//! let service = app(client).into_make_service_with_connect_info::<std::net::SocketAddr>();
//! axum::serve(listener, service).await?;
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query};
use axum::http::HeaderName;
use axum::routing::get;
use axum::{Json, Router};
use quorate_client::Client;
use quorate_client::middleware::RateLimitLayer;
use serde::Deserialize;
use serde_json::{Value, json};

/// The header a caller may use to declare what a request costs, e.g. the LLM tokens it expects to spend
/// (a positive integer; absent or invalid means 1). Declaring more only costs the caller quota; a cost above
/// the caller's whole limit can never pass and is refused by the cluster (answered 500 `rate_limiter_error`).
pub const COST_HEADER: HeaderName = HeaderName::from_static("x-cost");

/// Builds the API: `/v1/chat` is rate-limited, `/health` and `/docs` are not.
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so that each request carries its peer
/// address; without it, requests are identified by their API key and agent id only.
pub fn app(client: Client) -> Router {
    Router::new()
        .route("/v1/chat", get(chat))
        .route("/health", get(health))
        .route("/docs", get(docs))
        .layer(rate_limit_layer(client))
}

/// Builds the rate-limit layer: the `api_key` descriptor from `x-api-key` (or `Authorization: Bearer`), `ip`
/// from the peer address, `agent_id` from `x-agent-id`; the cost from [`COST_HEADER`]; `/health` and
/// `/docs/...` exempt.
///
/// Behind a reverse proxy, add `.trusted_proxy("10.0.0.0/8".parse::<IpRange>()?)` so the client address is
/// read from `X-Forwarded-For`; only addresses appended by trusted proxies are believed.
pub fn rate_limit_layer(client: Client) -> RateLimitLayer {
    RateLimitLayer::new(client)
        .peer_addr_fn(|parts| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()))
        .cost_header(COST_HEADER)
        .skip_path("/health")
        .skip_prefix("/docs")
}

/// The query of `GET /v1/chat`.
#[derive(Debug, Deserialize)]
struct ChatQuery {
    prompt: Option<String>,
}

/// Pretends to call an LLM. Only requests the rate limiter allowed get here.
async fn chat(Query(query): Query<ChatQuery>) -> Json<Value> {
    let prompt = query.prompt.unwrap_or_else(|| String::from("hello"));
    let words = u64::try_from(prompt.split_whitespace().count()).unwrap_or(u64::MAX);
    Json(json!({
        "model": "pretend-llm-1",
        "reply": format!("You said: {prompt}"),
        "usage": { "prompt_tokens": words, "completion_tokens": words.saturating_add(3) },
    }))
}

/// Answers load balancers; never rate-limited.
async fn health() -> &'static str {
    "ok"
}

/// Describes the API; never rate-limited.
async fn docs() -> &'static str {
    concat!(
        "GET /v1/chat?prompt=...   rate-limited; send x-api-key (agent_* 200/min, admin_* 1000/min, others 60/min),\n",
        "                          optionally x-agent-id (200/min per agent) and x-cost (units this request costs)\n",
        "GET /health               not rate-limited\n",
        "GET /docs                 this text, not rate-limited\n",
        "\n",
        "Allowed responses carry X-RateLimit-Limit/Remaining/Reset, RateLimit-Policy and RateLimit.\n",
        "A denied request gets 429 with Retry-After (seconds); 503 means the rate limiter is unreachable.\n",
    )
}
