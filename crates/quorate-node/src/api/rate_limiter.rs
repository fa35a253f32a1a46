//! `quorate.v1.RateLimiter`: Check, CheckBatch, CheckStream, Refund and ReportLoad, as thin adapters over the
//! check pipeline.

use std::time::Duration;

use quorate_core::adaptive::{PPM, fraction_to_ppm, milli_from_f64};
use quorate_core::plan::{Check, Cost, Refund};
use quorate_core::policy::Descriptor;
use quorate_core::{CoreError, Nanos};
use quorate_proto::v1::rate_limiter_server::RateLimiter;
use quorate_proto::v1::{
    self as pb, CheckBatchRequest, CheckBatchResponse, CheckRequest, CheckResponse, CheckStreamRequest, RefundRequest,
    RefundResponse, ReportLoadRequest, ReportLoadResponse,
};
use tonic::{Request, Response, Status, Streaming};

use super::check_stream::{self, AnswerStream};
use super::status;
use crate::check::{Pipeline, Verdict};
use crate::error::CheckError;
use crate::load::LoadReporter;

/// The longest a reported signal may ask to stay valid.
const MAX_SIGNAL_TTL: Duration = Duration::from_secs(3_600);

/// The public decision API of one node.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiterService {
    pipeline: Pipeline,
    load: LoadReporter,
    limits: BulkLimits,
}

/// How much one `CheckBatch` call or one `CheckStream` may carry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BulkLimits {
    /// Most checks per batch call or stream message.
    pub(crate) max_items: usize,
    /// Most checks in flight per stream.
    pub(crate) max_stream_checks: usize,
}

impl RateLimiterService {
    /// Serves decisions through `pipeline` and load reports through `load`, bulk calls within `limits`.
    pub(crate) fn new(pipeline: Pipeline, load: LoadReporter, limits: BulkLimits) -> Self {
        RateLimiterService { pipeline, load, limits }
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

/// The validated check a wire request asks for: a cost of 0 counts as 1.
pub(crate) fn check_from_wire(wire: CheckRequest) -> Check {
    Check {
        descriptors: descriptors(wire.descriptors),
        cost: Cost::at_least_one(wire.cost),
        peek: wire.peek,
        overrides: Vec::new(),
    }
}

/// The wire result of one check of a batch or stream message.
pub(crate) fn check_result(verdict: &Result<Verdict, CheckError>) -> pb::CheckResult {
    let result = match verdict {
        Ok(verdict) => pb::check_result::Result::Decision(check_response(verdict)),
        Err(error) => pb::check_result::Result::Error(status::item_error(error)),
    };
    pb::CheckResult { result: Some(result) }
}

/// The wire response of a verdict.
pub(crate) fn check_response(verdict: &Verdict) -> CheckResponse {
    let limits: Vec<pb::LimitStatus> = verdict
        .limits()
        .map(|(planned, limit)| pb::LimitStatus {
            policy: planned.name(&verdict.policies).into_owned(),
            key: planned.key.to_string(),
            allowed: limit.decision.allowed,
            limit: limit.decision.limit,
            base_limit: limit.base_limit,
            remaining: limit.decision.remaining,
            reset_after_ns: limit.decision.reset_after,
            retry_after_ns: limit.decision.retry_after,
            window_ns: planned.window(&verdict.policies),
        })
        .collect();
    CheckResponse {
        allowed: verdict.allowed(),
        overall: verdict.overall().and_then(|i| limits.get(i).cloned()),
        limits,
        degraded: verdict.degraded,
        policy_version: verdict.policies.version(),
    }
}

#[tonic::async_trait]
impl RateLimiter for RateLimiterService {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let check = check_from_wire(request.into_inner());
        let verdict = self.pipeline.check(&check).await.map_err(|e| status::from_check(&e))?;
        Ok(Response::new(check_response(&verdict)))
    }

    async fn check_batch(&self, request: Request<CheckBatchRequest>) -> Result<Response<CheckBatchResponse>, Status> {
        let wire = request.into_inner();
        if wire.checks.len() > self.limits.max_items {
            let message =
                format!("a batch carries at most {} checks, this one has {}", self.limits.max_items, wire.checks.len());
            return Err(status::from_check(&invalid(message)));
        }
        let checks: Vec<Check> = wire.checks.into_iter().map(check_from_wire).collect();
        let results = self.pipeline.check_many(&checks).await.iter().map(check_result).collect();
        Ok(Response::new(CheckBatchResponse { results }))
    }

    type CheckStreamStream = AnswerStream;

    async fn check_stream(
        &self,
        request: Request<Streaming<CheckStreamRequest>>,
    ) -> Result<Response<AnswerStream>, Status> {
        let BulkLimits { max_items, max_stream_checks } = self.limits;
        let answers = check_stream::serve(self.pipeline.clone(), request.into_inner(), max_items, max_stream_checks);
        Ok(Response::new(answers))
    }

    async fn report_load(&self, request: Request<ReportLoadRequest>) -> Result<Response<ReportLoadResponse>, Status> {
        let wire = request.into_inner();
        let (ppm, ttl) = self.scale_report(&wire).map_err(|e| status::from_check(&e))?;
        self.load.report(wire.name, ppm, ttl).await.map_err(|e| status::from_check(&e))?;
        Ok(Response::new(ReportLoadResponse { load: f64::from(ppm) / f64::from(PPM) }))
    }

    async fn refund(&self, request: Request<RefundRequest>) -> Result<Response<RefundResponse>, Status> {
        let wire = request.into_inner();
        let amount = Cost::new(wire.amount)
            .ok_or_else(|| invalid("amount must be at least 1"))
            .map_err(|e| status::from_check(&e))?;
        let refund = Refund { descriptors: descriptors(wire.descriptors), amount };
        self.pipeline.refund(&refund).await.map_err(|e| status::from_check(&e))?;
        Ok(Response::new(RefundResponse {}))
    }
}

fn invalid(message: impl Into<String>) -> CheckError {
    CheckError::Invalid(CoreError::InvalidRequest(message.into()))
}

impl RateLimiterService {
    /// Scales a reported reading to ppm and its time to live, validating both.
    fn scale_report(&self, wire: &ReportLoadRequest) -> Result<(u32, Nanos), CheckError> {
        if wire.name.is_empty() || wire.name.len() > 128 {
            return Err(invalid("name must be 1 to 128 bytes"));
        }
        if wire.name.contains('@') {
            return Err(invalid("names with '@' are reserved for the nodes' own samples"));
        }
        if !wire.value.is_finite() {
            return Err(invalid("value must be a finite number"));
        }
        let policies = self.pipeline.policies()?;
        let adaptive = policies.adaptive();
        let ppm = match adaptive.scales.get(&wire.name) {
            Some(scale) => scale.to_ppm(milli_from_f64("value", wire.value).map_err(CheckError::Invalid)?),
            None => fraction_to_ppm("value", wire.value).map_err(|e| {
                invalid(format!(
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
