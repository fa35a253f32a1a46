//! Tower middleware that rate-limits HTTP requests with a Quorate cluster, for axum, hyper or any tower stack.
//!
//! [`RateLimitLayer`] wraps a service in [`RateLimit`]. For each request it builds descriptors, checks them with
//! a [`Client`](crate::Client), and then either calls the inner service or answers itself. Denials are
//! responses, not errors: the inner service's error type is kept (an `Infallible` service stays `Infallible`).
//!
//! # What identifies a request
//!
//! - `api_key`: the `x-api-key` header ([`RateLimitLayer::api_key_header`]), else `Authorization: Bearer`;
//! - `ip`: the peer address, found as a [`SocketAddr`](std::net::SocketAddr) (or [`IpAddr`](std::net::IpAddr))
//!   in the request extensions. A hyper accept loop inserts the `SocketAddr` it accepted; with axum, use
//!   [`RateLimitLayer::peer_addr_fn`] to read `ConnectInfo<SocketAddr>`. When the peer is a
//!   [trusted proxy](RateLimitLayer::trusted_proxy), the client is the right-most address of `X-Forwarded-For`
//!   that is not a trusted proxy (entries to its left can be forged by the client);
//! - `agent_id`: the `x-agent-id` header ([`RateLimitLayer::agent_id_header`]);
//! - anything else through [`RateLimitLayer::descriptors_fn`]. A request with none of these is counted under
//!   `ip = unknown` ([`MissingIdentity`]).
//!
//! The cost is 1, or read from [`RateLimitLayer::cost_header`] or [`RateLimitLayer::cost_fn`]. Paths given to
//! [`RateLimitLayer::skip_path`] / [`RateLimitLayer::skip_prefix`] (health checks, docs) are never checked.
//!
//! # What it answers
//!
//! | outcome | response |
//! |---|---|
//! | allowed | the inner response, plus `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds, rounded up), `RateLimit-Policy: "<policy>";q=<limit>;w=<window s>` and `RateLimit: "<policy>";r=<remaining>;t=<reset s>` (IETF draft-10) |
//! | denied | `429`, the headers above, `Retry-After` (seconds, rounded up, at least 1), body `{"error":"rate_limit_exceeded","message":...,"retry_after":<s>}` |
//! | cluster unreachable, [`FailureMode::Closed`](crate::FailureMode::Closed); key table full | `503`, `Retry-After: 1`, body `{"error":"rate_limiter_unavailable",...}` |
//! | request refused by the cluster (misconfigured descriptors) | `500`, body `{"error":"rate_limiter_error",...}` |
//!
//! With [`FailureMode::Open`](crate::FailureMode::Open) an unreachable cluster lets requests through without
//! headers; with [`FailureMode::Local`](crate::FailureMode::Local) the local fallback decides (policy `local`).
//!
//! # Example
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::net::SocketAddr;
//!
//! use http::{Request, Response, StatusCode};
//! use quorate_client::middleware::{IpRange, RateLimitLayer};
//! use quorate_client::{Client, FailureMode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder(["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"])
//!     .failure_mode(FailureMode::Closed)
//!     .build()?;
//! let layer = RateLimitLayer::new(client)
//!     .skip_path("/health")
//!     .skip_prefix("/docs")
//!     .trusted_proxy("10.0.0.0/8".parse::<IpRange>()?);
//! let app = service_fn(|_request: Request<String>| async {
//!     Ok::<_, Infallible>(Response::new(String::from("hello")))
//! });
//! let service = ServiceBuilder::new().layer(layer).service(app);
//!
//! let mut request = Request::builder().uri("/v1/chat").header("x-api-key", "agent_42").body(String::new())?;
//! // What a hyper accept loop puts in each request (axum: see `peer_addr_fn`).
//! request.extensions_mut().insert(SocketAddr::from(([203, 0, 113, 7], 50_000)));
//! let response = service.oneshot(request).await?;
//! if response.status() == StatusCode::TOO_MANY_REQUESTS {
//!     println!("retry after {:?}", response.headers().get("retry-after"));
//! }
//! # Ok(())
//! # }
//! ```

mod body;
mod future;
mod identity;
mod layer;
mod response;
mod service;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use identity::{InvalidIpRange, IpRange};
pub use layer::{DEFAULT_AGENT_ID_HEADER, DEFAULT_API_KEY_HEADER, MissingIdentity, RateLimitLayer};
pub use service::RateLimit;
