//! A Rust client for Quorate that keeps deciding while nodes fail, and a tower middleware for HTTP servers.
//!
//! - [`Client`] ([`client`](crate::Client)): checks, peeks and refunds sent to the leader (learnt from
//!   `Admin.Status`), retried on another node within a deadline; one reused channel per node.
//! - [`FailureMode`]: what a check returns when the cluster is unreachable: an error (`Closed`, the default),
//!   allow (`Open`), or a per-key token bucket in this process (`Local`, see [`LocalLimit`]).
//! - [`Decision`]: allowed, limit, remaining, reset and retry-after as [`Duration`](std::time::Duration)s, every
//!   limit checked, whether it is degraded and its [`Source`]; [`ClientError`] for everything else.
//! - [`Descriptors`]: the request facts a check is made of (`api_key`, `ip`, `agent_id`, any other dimension).
//! - [`leases`]: with [`ClientBuilder::leases`], checks of hot keys decided in-process from quota the cluster
//!   leased to this client.
//! - [`middleware`]: [`RateLimitLayer`](middleware::RateLimitLayer), answering 429 with `Retry-After` and the
//!   `RateLimit` headers, 503 when the cluster is unreachable and fail-closed.
//! - [`endpoint`]: endpoint addresses as operators type them, and channels to them.
//! - [`backoff`]: for the callers of a rate-limited API: how long to wait, from `Retry-After`, `RateLimit` or
//!   exponential backoff with jitter; also a `tower::retry::Policy`.
//!
//! # Example
//!
//! Check a request directly, then put the same client in front of an HTTP service (any framework built on
//! tower and `http`: axum, hyper, tonic):
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::net::Ipv4Addr;
//! use std::time::Duration;
//!
//! use http::{Request, Response};
//! use quorate_client::middleware::RateLimitLayer;
//! use quorate_client::{Client, Descriptors, FailureMode, LocalLimit, Source};
//! use tower::{ServiceBuilder, service_fn};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder(["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"])
//!     .deadline(Duration::from_secs(2))
//!     .failure_mode(FailureMode::Local(LocalLimit::new(60, Duration::from_secs(60))))
//!     .build()?;
//!
//! let descriptors = Descriptors::new().api_key("agent_42").ip(Ipv4Addr::new(203, 0, 113, 7));
//! let decision = client.check(&descriptors, 1).await?;
//! if decision.allowed {
//!     println!("allowed, {:?} left (from {:?})", decision.remaining(), decision.source);
//! } else {
//!     println!("denied: retry in {:?}", decision.retry_after());
//! }
//! assert!(decision.source == Source::Cluster || decision.degraded);
//!
//! // The same client (cheap to clone) as middleware.
//! let service = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(client.clone()).skip_path("/health"))
//!     .service(service_fn(|_request: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("hello")))
//!     }));
//! # drop(service);
//! # Ok(())
//! # }
//! ```

mod caller;
mod client;
mod coalesce;
mod config;
mod decision;
mod descriptors;
mod error;
mod fallback;
mod routing;
mod security;

pub mod backoff;
pub mod endpoint;
pub mod headers;
pub mod leases;
pub mod middleware;

pub use client::Client;
pub use config::{
    ClientBuilder, DEFAULT_CALL_TIMEOUT, DEFAULT_COALESCE_MAX_BATCH, DEFAULT_COALESCE_MAX_INFLIGHT,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_DEADLINE, DEFAULT_LEADER_REFRESH, FailureMode,
};
pub use decision::{Decision, LimitDecision, Source};
pub use descriptors::{AGENT_ID, API_KEY, Descriptor, Descriptors, IP};
pub use error::ClientError;
pub use fallback::{DEFAULT_LOCAL_MAX_KEYS, LOCAL_POLICY, LocalLimit};
pub use security::{BearerToken, Credentials, NodeChannel, Tls};
