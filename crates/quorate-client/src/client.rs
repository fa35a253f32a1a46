//! [`Client`]: checks, peeks and refunds against a cluster, leader-aware, retried within a deadline
//! ([`crate::caller`] says what is retried), concurrent checks grouped into batch calls ([`crate::coalesce`]).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::check_result::Result as Outcome;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{
    CheckBatchRequest, CheckRequest, CheckResponse, LeaseReturn, RefundRequest, ReportLoadRequest, ReturnLeasesRequest,
    StatusRequest, StatusResponse,
};
use tokio::time::Instant;
use tonic::Code;

use crate::caller::{Call, Caller};
use crate::coalesce::{Coalescer, send_one};
use crate::config::{ClientBuilder, FailureMode, Settings};
use crate::decision::{Decision, Source};
use crate::descriptors::Descriptors;
use crate::error::ClientError;
use crate::fallback::LocalLimiter;
use crate::leases::Leases;
use crate::routing::Routing;

/// A handle to a Quorate cluster. Cheap to clone: clones share channels, the cached leader, the batching of
/// concurrent checks and the fallback.
///
/// See the [crate docs](crate) for an example.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    caller: Arc<Caller>,
    fallback: Option<LocalLimiter>,
    /// Started on the first check, inside the caller's runtime.
    coalescer: OnceLock<Coalescer>,
    /// This client's leases, in lease mode.
    leases: Option<Arc<Leases>>,
    /// Whether the task returning expired leases runs (started on the first grant).
    returning: OnceLock<()>,
}

impl Client {
    /// Starts building a client for `endpoints` (`host:port` or `http://host:port`; any node of the cluster,
    /// several for failover; comma-separated lists are split).
    pub fn builder<I, S>(endpoints: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientBuilder::new(endpoints)
    }

    /// Creates a client for `endpoints` with the default settings ([`FailureMode::Closed`]).
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::build`]: no endpoint, or an invalid one.
    pub fn new<I, S>(endpoints: I) -> Result<Client, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientBuilder::new(endpoints).build()
    }

    pub(crate) fn from_settings(settings: Settings) -> Client {
        let routing = Arc::new(Routing::new(&settings));
        let fallback = match settings.failure_mode {
            FailureMode::Local(limit) => Some(LocalLimiter::new(limit)),
            FailureMode::Closed | FailureMode::Open => None,
        };
        let leases = settings.leases.then(|| Arc::new(Leases::new()));
        let caller = Arc::new(Caller { settings, routing });
        Client {
            inner: Arc::new(Inner { caller, fallback, coalescer: OnceLock::new(), leases, returning: OnceLock::new() }),
        }
    }

    fn settings(&self) -> &Settings {
        &self.inner.caller.settings
    }

    /// Returns the configured endpoints, normalised to `http://host:port`.
    pub fn endpoints(&self) -> &[String] {
        self.inner.caller.routing.urls()
    }

    /// Returns what checks do while the cluster is unreachable.
    pub fn failure_mode(&self) -> FailureMode {
        self.settings().failure_mode
    }

    /// Returns the URL of the leader this client sends calls to, if it knows one.
    pub fn leader(&self) -> Option<String> {
        self.inner.caller.routing.leader()
    }

    /// Checks a request costing `cost` units (0 counts as 1) against every limit its descriptors resolve to,
    /// and charges them all if every one allows it.
    ///
    /// A denial is `Ok` with `allowed == false`. While the cluster is unreachable, the [`FailureMode`] decides.
    /// Checks made concurrently on one client are sent together in batch calls ([`ClientBuilder::coalesce`]).
    ///
    /// # Errors
    ///
    /// - [`ClientError::InvalidArgument`] if there is no descriptor or the cluster rejects one or the cost;
    /// - [`ClientError::ResourceExhausted`] if the cluster's key table is full;
    /// - [`ClientError::Unavailable`] or [`ClientError::Timeout`] if the cluster is unreachable and the failure
    ///   mode is [`FailureMode::Closed`];
    /// - [`ClientError::Rpc`] for any other gRPC error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call, but a check already sent may still be charged.
    pub async fn check(&self, descriptors: &Descriptors, cost: u64) -> Result<Decision, ClientError> {
        self.decide(descriptors, cost, false).await
    }

    /// Evaluates a request like [`Client::check`] without charging anything: "would this be allowed now?".
    ///
    /// # Errors
    ///
    /// As [`Client::check`].
    pub async fn peek(&self, descriptors: &Descriptors, cost: u64) -> Result<Decision, ClientError> {
        self.decide(descriptors, cost, true).await
    }

    /// Checks many requests in batch calls (at most [`ClientBuilder::coalesce_max_batch`] per call): each is its
    /// own atomic decision, with its own result, in order. The [`FailureMode`] applies to each one the cluster
    /// could not decide.
    ///
    /// # Cancel safety
    ///
    /// As [`Client::check`].
    pub async fn check_many(&self, checks: &[(Descriptors, u64)]) -> Vec<Result<Decision, ClientError>> {
        let max = self.settings().coalesce.max_batch;
        let mut decisions = Vec::with_capacity(checks.len());
        for chunk in checks.chunks(max.max(1)) {
            decisions.extend(self.check_chunk(chunk).await);
        }
        decisions
    }

    async fn check_chunk(&self, chunk: &[(Descriptors, u64)]) -> Vec<Result<Decision, ClientError>> {
        let mut results: Vec<Option<Result<Decision, ClientError>>> = chunk.iter().map(|_| None).collect();
        let mut requests = Vec::new();
        let mut sent = Vec::new();
        for (i, (descriptors, cost)) in chunk.iter().enumerate() {
            match require_descriptors(descriptors) {
                Ok(()) => {
                    requests.push(CheckRequest {
                        descriptors: descriptors.to_wire(),
                        cost: (*cost).max(1),
                        peek: false,
                        lease: None,
                    });
                    sent.push(i);
                }
                Err(error) => results[i] = Some(Err(error)),
            }
        }
        let answer = self
            .inner
            .caller
            .call(Call::Check, |channel| {
                let request = CheckBatchRequest { checks: requests.clone() };
                async move { RateLimiterClient::new(channel).check_batch(request).await.map(|r| r.into_inner().results) }
            })
            .await;
        match answer {
            Ok(answers) if answers.len() == sent.len() => {
                // Items the node could not decide (UNAVAILABLE) are sent again on their own, all at once: each may
                // take up to the deadline.
                let mut again = Vec::new();
                for ((i, answer), request) in sent.into_iter().zip(answers).zip(requests) {
                    let response = match answer.result {
                        Some(Outcome::Decision(decision)) => Ok(decision),
                        Some(Outcome::Error(error)) if error.code == Code::Unavailable as i32 => {
                            again.push((i, request));
                            continue;
                        }
                        Some(Outcome::Error(error)) => {
                            Err(ClientError::from_status(&tonic::Status::new(error.code.into(), error.message)))
                        }
                        None => {
                            Err(ClientError::Rpc { code: Code::Internal, message: "a batch result was empty".into() })
                        }
                    };
                    let (descriptors, cost) = &chunk[i];
                    results[i] = Some(self.settle(response, descriptors, (*cost).max(1), false));
                }
                let mut resent = tokio::task::JoinSet::new();
                for (i, request) in again {
                    let caller = self.inner.caller.clone();
                    resent.spawn(async move { (i, send_one(&caller, request).await) });
                }
                for (i, response) in resent.join_all().await {
                    let (descriptors, cost) = &chunk[i];
                    results[i] = Some(self.settle(response, descriptors, (*cost).max(1), false));
                }
            }
            Ok(answers) => {
                let error = ClientError::Rpc {
                    code: Code::Internal,
                    message: format!("a batch of {} checks was answered with {} results", sent.len(), answers.len()),
                };
                for i in sent {
                    results[i] = Some(Err(error.clone()));
                }
            }
            Err(error) => {
                for i in sent {
                    let (descriptors, cost) = &chunk[i];
                    results[i] = Some(self.settle(Err(error.clone()), descriptors, (*cost).max(1), false));
                }
            }
        }
        let missing =
            || ClientError::Rpc { code: Code::Internal, message: "a check of the batch got no answer".into() };
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(missing()))).collect()
    }

    /// Gives `amount` units back to every limit the descriptors resolve to, e.g. to settle a reservation of LLM
    /// tokens once the real count is known. The failure mode does not apply: a failed refund is returned.
    ///
    /// # Errors
    ///
    /// - [`ClientError::InvalidArgument`] if `amount` is 0, there is no descriptor, or the cluster rejects one;
    /// - [`ClientError::Unavailable`] if no node could be reached, or one answered `UNAVAILABLE` (the refund
    ///   may or may not have been applied: it is not repeated);
    /// - [`ClientError::Timeout`] if the call timed out (likewise not repeated).
    pub async fn refund(&self, descriptors: &Descriptors, amount: u64) -> Result<(), ClientError> {
        if amount == 0 {
            return Err(ClientError::InvalidArgument { message: "amount must be at least 1".to_owned() });
        }
        require_descriptors(descriptors)?;
        let request = RefundRequest { descriptors: descriptors.to_wire(), amount };
        let call = |channel| {
            let request = request.clone();
            async move { RateLimiterClient::new(channel).refund(request).await.map(|_| ()) }
        };
        self.inner.caller.call(Call::Refund, call).await
    }

    /// Returns the status of the first node that answers (role, leader, members, applied index, ...).
    ///
    /// # Errors
    ///
    /// [`ClientError::Unavailable`] if no node answered before the deadline; [`ClientError::Rpc`] otherwise.
    pub async fn status(&self) -> Result<StatusResponse, ClientError> {
        let call = |channel| async move {
            AdminClient::new(channel).status(StatusRequest {}).await.map(tonic::Response::into_inner)
        };
        self.inner.caller.call(Call::Read, call).await
    }

    /// Reports a load signal of the services behind this API server (e.g. `llm_latency_p95_ms`,
    /// `db_pool_utilization`), valid for `ttl` (zero: the cluster's default). The cluster tightens adaptive
    /// policies while the combined load is high. Returns the reading as the cluster scaled it, in `0..=1`.
    ///
    /// Reporting is idempotent (a reading replaces the previous one), so it is retried like a peek.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for a bad name or value; [`ClientError::Unavailable`] if no node answered.
    pub async fn report_load(&self, name: &str, value: f64, ttl: Duration) -> Result<f64, ClientError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let request = ReportLoadRequest { name: name.to_owned(), value, ttl_ms };
        let call = |channel| {
            let request = request.clone();
            async move { RateLimiterClient::new(channel).report_load(request).await.map(|r| r.into_inner().load) }
        };
        self.inner.caller.call(Call::Read, call).await
    }

    async fn decide(&self, descriptors: &Descriptors, cost: u64, peek: bool) -> Result<Decision, ClientError> {
        require_descriptors(descriptors)?;
        let cost = cost.max(1);
        let sent_at = Instant::now();
        let leases = self.inner.leases.as_ref().filter(|_| !peek);
        if let Some(decision) = leases.and_then(|leases| leases.try_local(descriptors, cost, sent_at)) {
            return Ok(decision);
        }
        let lease = leases.and_then(|leases| leases.ask(descriptors, cost, sent_at));
        let request = CheckRequest { descriptors: descriptors.to_wire(), cost, peek, lease };
        let caller = &self.inner.caller;
        let response = match caller.settings.coalesce.enabled {
            true => self.coalescer().check(request, caller).await,
            false => send_one(caller, request).await,
        };
        if let (Some(leases), Ok(response)) = (leases, &response)
            && !response.grants.is_empty()
        {
            leases.adopt(descriptors, &response.grants, sent_at);
            self.start_returning(leases);
        }
        self.settle(response, descriptors, cost, peek)
    }

    /// Gives back every lease this client holds, so that their unused units are free for others at once (in lease
    /// mode; otherwise nothing to do). Call it before the process exits; leases left behind come back as they
    /// expire, or stay charged if the process dies, which only under-admits.
    ///
    /// # Errors
    ///
    /// [`ClientError`] if no node took the return before the deadline.
    pub async fn close(&self) -> Result<(), ClientError> {
        let Some(leases) = &self.inner.leases else { return Ok(()) };
        return_leases(&self.inner.caller, leases.holder(), leases.take_all()).await
    }

    /// Starts, once, the task that gives back leases that ran out or expired, every 100 ms, until the client is
    /// dropped.
    fn start_returning(&self, leases: &Arc<Leases>) {
        self.inner.returning.get_or_init(|| {
            let (caller, leases) = (self.inner.caller.clone(), Arc::downgrade(leases));
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(Duration::from_millis(100));
                loop {
                    ticks.tick().await;
                    let Some(leases) = leases.upgrade() else { return };
                    let returns = leases.take_returns(Instant::now());
                    if !returns.is_empty()
                        && let Err(error) = return_leases(&caller, leases.holder(), returns).await
                    {
                        tracing::debug!(%error, "could not return leases; their unused units stay charged");
                    }
                }
            });
        });
    }

    /// Turns a check's answer into the caller's: the cluster's decision, or the failure mode's when the cluster
    /// could not be reached.
    fn settle(
        &self,
        response: Result<CheckResponse, ClientError>,
        descriptors: &Descriptors,
        cost: u64,
        peek: bool,
    ) -> Result<Decision, ClientError> {
        let error = match response {
            Ok(response) => return Ok(Decision::from_wire(&response)),
            Err(error) if error.is_unreachable() => error,
            Err(error) => return Err(error),
        };
        match (self.settings().failure_mode, &self.inner.fallback) {
            (FailureMode::Open, _) => {
                tracing::debug!(%error, "quorate unreachable: failing open");
                Ok(Decision::local(Source::FailOpen, true, Vec::new()))
            }
            (FailureMode::Local(_), Some(fallback)) => {
                tracing::debug!(%error, "quorate unreachable: deciding with the local fallback");
                Ok(fallback.check(descriptors, cost, peek, Instant::now()))
            }
            _ => Err(error),
        }
    }

    fn coalescer(&self) -> &Coalescer {
        self.inner.coalescer.get_or_init(|| {
            let coalesce = self.settings().coalesce;
            Coalescer::spawn(self.inner.caller.clone(), coalesce.max_batch, coalesce.max_inflight)
        })
    }
}

/// Gives `returns` back to the cluster for `holder`; idempotent, so retried like a read.
async fn return_leases(caller: &Caller, holder: u64, returns: Vec<LeaseReturn>) -> Result<(), ClientError> {
    if returns.is_empty() {
        return Ok(());
    }
    let request = ReturnLeasesRequest { holder, returns };
    let call = |channel| {
        let request = request.clone();
        async move { RateLimiterClient::new(channel).return_leases(request).await.map(|_| ()) }
    };
    caller.call(Call::Read, call).await
}

fn require_descriptors(descriptors: &Descriptors) -> Result<(), ClientError> {
    if descriptors.is_empty() {
        return Err(ClientError::InvalidArgument { message: "a request needs at least one descriptor".to_owned() });
    }
    Ok(())
}
