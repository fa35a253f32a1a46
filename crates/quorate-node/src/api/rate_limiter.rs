//! `quorate.v1.RateLimiter`: Check and Refund. Any node answers; followers forward to the leader.

use std::time::Duration;

use quorate_core::Nanos;
use quorate_core::adaptive::{PPM, fraction_to_ppm, milli_from_f64};
use quorate_core::policy::Descriptor;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::rate_limiter_server::RateLimiter;
use quorate_proto::v1::{
    self as pb, CheckRequest, CheckResponse, RefundRequest, RefundResponse, ReportLoadRequest, ReportLoadResponse,
};
use tonic::{Code, Request, Response, Status};

use super::router::{Outcome, Route, Router, forwarded, is_forwarded};
use super::status;
use crate::command::{CheckReply, Command, CommandOutcome, LimitReply};

/// The longest a reported signal may ask to stay valid.
const MAX_SIGNAL_TTL: Duration = Duration::from_secs(3_600);

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
        match self.router.execute(&command, was_forwarded, forward).await {
            Ok(Outcome::Forwarded(response)) => Ok(Response::new(response)),
            Ok(Outcome::Local(CommandOutcome::Checked(reply))) => Ok(Response::new(check_response(&reply))),
            Ok(Outcome::Local(other)) => Err(status::from_outcome(&other)),
            // No quorum within the deadline: each policy's on_no_quorum mode decides (a forwarded request is
            // answered UNAVAILABLE instead, so that the node the client called decides for itself).
            Err(status) if status.code() == Code::Unavailable && !was_forwarded => {
                let Command::Check { descriptors, .. } = &command else { return Err(status) };
                tracing::debug!(reason = %status.message(), "no quorum: degraded decision");
                self.router.decide_degraded(descriptors, cost, wire.peek).map(Response::new)
            }
            Err(status) => Err(status),
        }
    }

    async fn report_load(&self, request: Request<ReportLoadRequest>) -> Result<Response<ReportLoadResponse>, Status> {
        let was_forwarded = is_forwarded(&request);
        let wire = request.into_inner();
        let (ppm, ttl) = self.scale_report(&wire, was_forwarded)?;
        let deadline = self.router.deadline();
        let route =
            tokio::time::timeout(deadline, self.router.route()).await.map_err(|_| status::no_leader(deadline))?;
        match route {
            Route::Local => {
                let now = self.router.clock().now();
                self.router.load().report(&wire.name, ppm, now, ttl).map_err(Status::invalid_argument)?;
            }
            Route::Remote { .. } if was_forwarded => {
                return Err(Status::unavailable("this node is not the leader (the leader just changed); retry"));
            }
            Route::Remote { addr, channel } => {
                if let Err(status) = RateLimiterClient::new(channel).report_load(forwarded(wire)).await {
                    self.router.forget(&addr);
                    return Err(status);
                }
            }
        }
        Ok(Response::new(ReportLoadResponse { load: f64::from(ppm) / f64::from(PPM) }))
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
        match self.router.execute(&command, was_forwarded, forward).await? {
            Outcome::Forwarded(response) => Ok(Response::new(response)),
            Outcome::Local(CommandOutcome::Refunded) => Ok(Response::new(RefundResponse {})),
            Outcome::Local(other) => Err(status::from_outcome(&other)),
        }
    }
}

impl RateLimiterService {
    /// Scales a reported reading to ppm and its time to live, validating both.
    fn scale_report(&self, wire: &ReportLoadRequest, was_forwarded: bool) -> Result<(u32, Nanos), Status> {
        if wire.name.is_empty() || wire.name.len() > 128 {
            return Err(Status::invalid_argument("name must be 1 to 128 bytes"));
        }
        if wire.name.contains('@') && !was_forwarded {
            return Err(Status::invalid_argument("names with '@' are reserved for the nodes' own samples"));
        }
        if !wire.value.is_finite() {
            return Err(Status::invalid_argument("value must be a finite number"));
        }
        let policies = self.router.policies()?;
        let adaptive = policies.adaptive();
        let ppm = match adaptive.scales.get(&wire.name) {
            Some(scale) => {
                scale.to_ppm(milli_from_f64("value", wire.value).map_err(|e| Status::invalid_argument(e.to_string()))?)
            }
            None => fraction_to_ppm("value", wire.value).map_err(|e| {
                Status::invalid_argument(format!(
                    "{e}; report a fraction 0..1, or configure [adaptive.scales.{}] to report raw values",
                    wire.name
                ))
            })?,
        };
        let ttl = match wire.ttl_ms {
            0 => adaptive.signal_ttl,
            ms => Duration::from_millis(ms).min(MAX_SIGNAL_TTL).as_nanos() as Nanos,
        };
        Ok((ppm, ttl))
    }
}
