//! `quorate.v1.RateLimiter`: Check, CheckBatch, CheckStream, Refund and ReportLoad, as thin adapters over the
//! check pipeline.

use std::time::Duration;

use quorate_core::adaptive::{PPM, fraction_to_ppm, milli_from_f64};
use quorate_core::plan::{Check, Cost, PlannedLimit, Refund};
use quorate_core::policy::{Descriptor, MAX_DESCRIPTORS, PolicySet};
use quorate_core::{CoreError, Decision, Nanos};
use quorate_proto::v1::rate_limiter_server::RateLimiter;
use quorate_proto::v1::{
    self as pb, CheckBatchRequest, CheckBatchResponse, CheckRequest, CheckResponse, CheckStreamRequest, RefundRequest,
    RefundResponse, ReportLoadRequest, ReportLoadResponse, ReturnLeasesRequest, ReturnLeasesResponse,
};
use tonic::{Request, Response, Status, Streaming};

use super::check_stream::{self, AnswerStream};
use super::status;
use crate::check::{CheckCall, ClientLease, Pipeline, Verdict};
use crate::command::{CLIENT_HOLDERS, LeaseReturn};
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

/// The validated check a wire request asks for: a cost of 0 counts as 1; a lease request names a client holder.
///
/// # Errors
///
/// [`CheckError::Invalid`] for a lease request whose holder id could name a node (the top bit must be set).
pub(crate) fn check_from_wire(wire: CheckRequest) -> Result<CheckCall, CheckError> {
    let check = Check {
        descriptors: descriptors(wire.descriptors),
        cost: Cost::at_least_one(wire.cost),
        peek: wire.peek,
        overrides: Vec::new(),
    };
    let client_lease = match wire.lease {
        Some(lease) if lease.units > 0 => {
            if lease.returns.len() > MAX_DESCRIPTORS {
                return Err(invalid(format!(
                    "a lease request gives back at most {MAX_DESCRIPTORS} leases (one per descriptor), this one {}",
                    lease.returns.len()
                )));
            }
            let returns = lease.returns.iter().map(|r| LeaseReturn { lease: r.lease_id, unused: r.unused }).collect();
            Some(ClientLease { holder: client_holder(lease.holder)?, want: lease.units, returns })
        }
        _ => None,
    };
    Ok(CheckCall { check, client_lease })
}

/// A client's holder id, which must have the top bit set so that it never names a node's leases.
fn client_holder(holder: u64) -> Result<u64, CheckError> {
    if holder < CLIENT_HOLDERS {
        return Err(invalid(format!("lease holder {holder} is not a client holder id: its top bit must be set")));
    }
    Ok(holder)
}

/// Decides the checks of one batch call or stream message: each valid one through the pipeline, together, each
/// invalid one with its own error; results in order.
pub(crate) async fn decide_all(pipeline: &Pipeline, wire: Vec<CheckRequest>) -> Vec<pb::CheckResult> {
    let mut results: Vec<Option<pb::CheckResult>> = Vec::with_capacity(wire.len());
    let mut calls = Vec::with_capacity(wire.len());
    for check in wire {
        match check_from_wire(check) {
            Ok(call) => {
                calls.push(call);
                results.push(None);
            }
            Err(error) => results.push(Some(check_result(&Err(error)))),
        }
    }
    let mut verdicts = pipeline.check_many(calls).await.into_iter();
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                let verdict = verdicts.next().unwrap_or_else(|| Err(CheckError::Internal("no verdict".to_owned())));
                check_result(&verdict)
            })
        })
        .collect()
}

/// The wire result of one check of a batch or stream message.
pub(crate) fn check_result(verdict: &Result<Verdict, CheckError>) -> pb::CheckResult {
    let result = match verdict {
        Ok(verdict) => pb::check_result::Result::Decision(check_response(verdict)),
        Err(error) => pb::check_result::Result::Error(status::item_error(error)),
    };
    pb::CheckResult { result: Some(result) }
}

/// The wire status of one limit's decision.
fn limit_status(verdict: &Verdict, planned: &PlannedLimit, base_limit: u64, decision: &Decision) -> pb::LimitStatus {
    pb::LimitStatus {
        policy: planned.name(&verdict.policies).into_owned(),
        key: planned.key.to_string(),
        allowed: decision.allowed,
        limit: decision.limit,
        base_limit,
        remaining: decision.remaining,
        reset_after_ns: decision.reset_after,
        retry_after_ns: decision.retry_after,
        window_ns: planned.window(&verdict.policies),
    }
}

/// The wire response of a verdict.
pub(crate) fn check_response(verdict: &Verdict) -> CheckResponse {
    let limits: Vec<pb::LimitStatus> = verdict
        .limits()
        .map(|(planned, limit)| limit_status(verdict, planned, limit.base_limit, &limit.decision))
        .collect();
    let grants = verdict
        .grants
        .iter()
        .filter_map(|grant| {
            let planned = verdict.plan.limits.get(grant.limit)?;
            let base_limit = planned.base_limit(&verdict.policies);
            Some(pb::LeaseGrant {
                lease_id: grant.lease,
                descriptor: u32::from(planned.descriptor),
                units: grant.units,
                valid_for_ns: grant.valid_for,
                status: Some(limit_status(verdict, planned, base_limit, &grant.decision)),
            })
        })
        .collect();
    CheckResponse {
        allowed: verdict.allowed(),
        overall: verdict.overall().and_then(|i| limits.get(i).cloned()),
        limits,
        degraded: verdict.degraded,
        policy_version: verdict.policies.version(),
        leased: verdict.leased,
        grants,
    }
}

#[tonic::async_trait]
impl RateLimiter for RateLimiterService {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let call = check_from_wire(request.into_inner()).map_err(|e| status::from_check(&e))?;
        let mut verdicts = self.pipeline.check_many(vec![call]).await;
        let verdict = verdicts.pop().unwrap_or_else(|| Err(CheckError::Internal("no verdict".to_owned())));
        Ok(Response::new(check_response(&verdict.map_err(|e| status::from_check(&e))?)))
    }

    async fn check_batch(&self, request: Request<CheckBatchRequest>) -> Result<Response<CheckBatchResponse>, Status> {
        let wire = request.into_inner();
        if wire.checks.len() > self.limits.max_items {
            let message =
                format!("a batch carries at most {} checks, this one has {}", self.limits.max_items, wire.checks.len());
            return Err(status::from_check(&invalid(message)));
        }
        let results = decide_all(&self.pipeline, wire.checks).await;
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

    async fn return_leases(
        &self,
        request: Request<ReturnLeasesRequest>,
    ) -> Result<Response<ReturnLeasesResponse>, Status> {
        let wire = request.into_inner();
        let holder = client_holder(wire.holder).map_err(|e| status::from_check(&e))?;
        let returns = wire.returns.iter().map(|r| LeaseReturn { lease: r.lease_id, unused: r.unused }).collect();
        self.pipeline.return_leases(holder, returns).await.map_err(|e| status::from_check(&e))?;
        Ok(Response::new(ReturnLeasesResponse {}))
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
    /// Scales a reported reading to ppm and its time to live under the policy set in force.
    fn scale_report(&self, wire: &ReportLoadRequest) -> Result<(u32, Nanos), CheckError> {
        scale_report(wire, &*self.pipeline.policies()?)
    }
}

/// Scales a reported reading to ppm and its time to live under `policies`, validating both.
///
/// # Errors
///
/// [`CheckError::Invalid`] for a bad name or a value that is not a number in range.
fn scale_report(wire: &ReportLoadRequest, policies: &PolicySet) -> Result<(u32, Nanos), CheckError> {
    if wire.name.is_empty() || wire.name.len() > 128 {
        return Err(invalid("name must be 1 to 128 bytes"));
    }
    if wire.name.contains('@') {
        return Err(invalid("names with '@' are reserved for the nodes' own samples"));
    }
    if !wire.value.is_finite() {
        return Err(invalid("value must be a finite number"));
    }
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

#[cfg(test)]
mod fuzz;
