//! Envoy's rate limit service v3 (`envoy.service.ratelimit.v3.RateLimitService`) on every node.
//!
//! Envoy's `envoy.filters.http.ratelimit` filter sends a `RateLimitRequest` of descriptors; each becomes one
//! Quorate descriptor ([`mapping`]), the whole request one atomic check through the check pipeline like
//! `Check`, and the verdict a `RateLimitResponse` ([`response`]). Unlike Envoy's reference service, which counts
//! each descriptor on its own, Quorate charges all descriptors of a request or none. `docs/envoy.md` has the
//! mapping and an Envoy config.
//!
//! - [`EnvoyRateLimitService`]: the gRPC service, a thin adapter.
//! - [`mapping`]: request to [`Check`](quorate_core::plan::Check); [`MappingError`] for malformed requests.
//! - [`response`]: verdict to response and X-RateLimit headers.

pub(crate) mod mapping;
pub(crate) mod response;
mod service;

pub(crate) use mapping::MappingError;
pub(crate) use service::EnvoyRateLimitService;
