//! Envoy's rate limit service v3 (`envoy.service.ratelimit.v3.RateLimitService`) on every node.
//!
//! Envoy's `envoy.filters.http.ratelimit` filter sends a `RateLimitRequest` of descriptors; each becomes one
//! Quorate descriptor ([`mapping`]), the whole request one atomic check through the same path as `Check`
//! (validation, forwarding to the leader, one batch entry), and the decision a `RateLimitResponse`
//! ([`response`]). Unlike Envoy's reference service, which counts each descriptor on its own, Quorate charges all
//! descriptors of a request or none. `docs/envoy.md` has the mapping and an Envoy config.
//!
//! - [`EnvoyRateLimitService`]: the gRPC service.
//! - [`mapping`]: request to check command; [`MappingError`] for malformed requests.
//! - [`response`]: decision to response and X-RateLimit headers.

pub mod mapping;
pub mod response;
mod service;

pub use mapping::MappingError;
pub use service::EnvoyRateLimitService;
