//! [`EnvoyRateLimitService`]: `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` on every node.

use quorate_proto::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use quorate_proto::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::{Request, Response, Status};

use super::mapping::map_request;
use super::response::{rate_limit_headers, response};
use crate::api::status;
use crate::check::Pipeline;
use crate::config::EnvoyConfig;

/// Envoy's rate limit service, answered with Quorate's replicated limits.
///
/// Any node answers, through the same pipeline as `Check`. Bad input is INVALID_ARGUMENT; every other failure
/// is UNAVAILABLE, so that Envoy's `failure_mode_deny` decides.
#[derive(Debug, Clone)]
pub(crate) struct EnvoyRateLimitService {
    pipeline: Pipeline,
    config: EnvoyConfig,
}

impl EnvoyRateLimitService {
    /// Serves Envoy's rate limit service through `pipeline`, as `config` says.
    pub(crate) fn new(pipeline: Pipeline, config: EnvoyConfig) -> Self {
        EnvoyRateLimitService { pipeline, config }
    }
}

#[tonic::async_trait]
impl RateLimitService for EnvoyRateLimitService {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let wire = request.into_inner();
        let check = map_request(&wire).map_err(|e| status::from_mapping(&e))?;
        let verdict = self.pipeline.check(check).await.map_err(|e| status::for_envoy(status::from_check(&e)))?;
        let mut answer = response(&verdict, wire.descriptors.len());
        if self.config.response_headers {
            answer.response_headers_to_add = rate_limit_headers(&answer.statuses);
        }
        Ok(Response::new(answer))
    }
}
