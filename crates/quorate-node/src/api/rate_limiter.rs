//! `quorate.v1.RateLimiter`: Check and Refund. Any node answers; followers forward to the leader.

use quorate_core::policy::Descriptor;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::rate_limiter_server::RateLimiter;
use quorate_proto::v1::{self as pb, CheckRequest, CheckResponse, RefundRequest, RefundResponse};
use tonic::{Request, Response, Status};

use super::router::{Outcome, Router, forwarded, is_forwarded};
use super::status;
use crate::command::{CheckReply, Command, CommandOutcome, LimitReply};

/// The public decision API of one node.
#[derive(Debug, Clone)]
pub struct RateLimiterService {
    router: Router,
}

impl RateLimiterService {
    /// Serves decisions through `router`.
    pub fn new(router: Router) -> Self {
        RateLimiterService { router }
    }
}

/// Converts the wire descriptors, treating an empty `policy` as "let the rules choose".
fn descriptors(wire: Vec<pb::Descriptor>) -> Vec<Descriptor> {
    wire.into_iter()
        .map(|d| Descriptor {
            dimension: d.dimension,
            value: d.value,
            policy: (!d.policy.is_empty()).then_some(d.policy),
        })
        .collect()
}

fn limit_status(limit: &LimitReply) -> pb::LimitStatus {
    pb::LimitStatus {
        policy: limit.policy.clone(),
        key: limit.key.clone(),
        allowed: limit.decision.allowed,
        limit: limit.decision.limit,
        base_limit: limit.base_limit,
        remaining: limit.decision.remaining,
        reset_after_ns: limit.decision.reset_after,
        retry_after_ns: limit.decision.retry_after,
        window_ns: limit.window,
    }
}

/// The wire response of a decision.
pub(crate) fn check_response(reply: &CheckReply) -> CheckResponse {
    CheckResponse {
        allowed: reply.allowed,
        overall: reply.limits.get(reply.overall).map(limit_status),
        limits: reply.limits.iter().map(limit_status).collect(),
        degraded: false,
        policy_version: reply.policy_version,
    }
}

#[tonic::async_trait]
impl RateLimiter for RateLimiterService {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let was_forwarded = is_forwarded(&request);
        let wire = request.into_inner();
        let cost = wire.cost.max(1);
        let descriptors = descriptors(wire.descriptors.clone());
        let command = Command::Check { descriptors, cost, peek: wire.peek, overrides: Vec::new() };
        self.router.validate_check(&command)?;
        let forward = |channel| {
            let wire = wire.clone();
            async move { RateLimiterClient::new(channel).check(forwarded(wire)).await.map(Response::into_inner) }
        };
        match self.router.execute(command, was_forwarded, forward).await? {
            Outcome::Forwarded(response) => Ok(Response::new(response)),
            Outcome::Local(CommandOutcome::Checked(reply)) => Ok(Response::new(check_response(&reply))),
            Outcome::Local(other) => Err(status::from_outcome(&other)),
        }
    }

    async fn refund(&self, request: Request<RefundRequest>) -> Result<Response<RefundResponse>, Status> {
        let was_forwarded = is_forwarded(&request);
        let wire = request.into_inner();
        if wire.amount == 0 {
            return Err(Status::invalid_argument("amount must be at least 1"));
        }
        let descriptors = descriptors(wire.descriptors.clone());
        self.router.validate(&descriptors, 1)?;
        let command = Command::Refund { descriptors, amount: wire.amount };
        let forward = |channel| {
            let wire = wire.clone();
            async move { RateLimiterClient::new(channel).refund(forwarded(wire)).await.map(Response::into_inner) }
        };
        match self.router.execute(command, was_forwarded, forward).await? {
            Outcome::Forwarded(response) => Ok(Response::new(response)),
            Outcome::Local(CommandOutcome::Refunded) => Ok(Response::new(RefundResponse {})),
            Outcome::Local(other) => Err(status::from_outcome(&other)),
        }
    }
}
