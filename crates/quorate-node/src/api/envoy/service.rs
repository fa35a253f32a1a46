//! [`EnvoyRateLimitService`]: `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` on every node.

use quorate_proto::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use quorate_proto::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use quorate_proto::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::{Request, Response, Status};

use super::mapping::map_request;
use super::response::{rate_limit_headers, response};
use crate::api::router::{Outcome, Router, forwarded, is_forwarded};
use crate::api::status;
use crate::command::CommandOutcome;
use crate::config::EnvoyConfig;

/// Envoy's rate limit service, answered with Quorate's replicated limits.
///
/// Any node answers: a follower forwards the request to the leader, like `Check`. Bad input is
/// INVALID_ARGUMENT; every other failure is UNAVAILABLE, so that Envoy's `failure_mode_deny` decides.
#[derive(Debug, Clone)]
pub struct EnvoyRateLimitService {
    router: Router,
    config: EnvoyConfig,
}

impl EnvoyRateLimitService {
    /// Serves Envoy's rate limit service through `router`, as `config` says.
    pub fn new(router: Router, config: EnvoyConfig) -> Self {
        EnvoyRateLimitService { router, config }
    }

    async fn decide(&self, request: Request<RateLimitRequest>) -> Result<RateLimitResponse, Status> {
        let was_forwarded = is_forwarded(&request);
        let wire = request.into_inner();
        let command = map_request(&wire).map_err(|e| status::from_mapping(&e))?;
        self.router.validate_check(&command)?;
        let forward = |channel| {
            let wire = wire.clone();
            async move {
                RateLimitServiceClient::new(channel).should_rate_limit(forwarded(wire)).await.map(Response::into_inner)
            }
        };
        let mut answer = match self.router.execute(&command, was_forwarded, forward).await? {
            Outcome::Forwarded(answer) => answer,
            Outcome::Local(CommandOutcome::Checked(reply)) => response(&reply, wire.descriptors.len()),
            Outcome::Local(other) => return Err(status::from_outcome(&other)),
        };
        // The node Envoy called decides about headers, also when the leader answered.
        answer.response_headers_to_add =
            if self.config.response_headers { rate_limit_headers(&answer.statuses) } else { Vec::new() };
        Ok(answer)
    }
}

#[tonic::async_trait]
impl RateLimitService for EnvoyRateLimitService {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        self.decide(request).await.map(Response::new).map_err(status::for_envoy)
    }
}
