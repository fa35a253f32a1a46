//! [`Client`]: checks, peeks and refunds against a cluster, leader-aware, retried within a deadline.
//!
//! # What is retried
//!
//! Every call has an overall deadline; each attempt gets the smaller of the call timeout and the time left, and
//! goes to the leader if known (see `routing.rs`). Only failures another node (or a moment later) may fix are
//! retried, and only while the retry cannot make the cluster admit more than its limits:
//!
//! | failure of an attempt                               | check           | peek, status | refund |
//! |-----------------------------------------------------|-----------------|--------------|--------|
//! | connection failed (refused, unreachable): not sent  | retry           | retry        | retry  |
//! | `UNAVAILABLE` (node not leader, no quorum, conn lost)| retry (1)      | retry        | no     |
//! | call timed out (`DEADLINE_EXCEEDED`, `CANCELLED`)   | no (2)          | retry        | no     |
//! | `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, other     | no: typed error | no           | no     |
//!
//! (1) A node answers `UNAVAILABLE` when it could not commit in time, and a connection can break after the
//! request left: the first attempt may still commit, so the retry may charge twice. Charging twice only ever
//! denies more, and the protocol asks for this retry. (2) A timed-out check is most likely still in the leader's
//! pipeline; retrying it would usually charge twice, so it fails with [`ClientError::Timeout`] unless
//! [`ClientBuilder::retry_timed_out_checks`] is set. A refund that may have been applied is never repeated:
//! refunding twice would over-admit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{CheckRequest, RefundRequest, ReportLoadRequest, StatusRequest, StatusResponse};
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Channel;

use crate::config::{ClientBuilder, FailureMode, Settings};
use crate::decision::{Decision, Source};
use crate::descriptors::Descriptors;
use crate::error::ClientError;
use crate::fallback::LocalLimiter;
use crate::routing::Routing;

/// The first pause between two attempts; it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause between two attempts: short next to an election (~0.5 s), long enough not to spin.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// A handle to a Quorate cluster. Cheap to clone: clones share channels, the cached leader and the fallback.
///
/// See the [crate docs](crate) for an example.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    routing: Arc<Routing>,
    fallback: Option<LocalLimiter>,
}

/// What is being called, which decides what may be retried (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Check,
    Read,
    Refund,
}

/// How one attempt failed.
enum Failure {
    /// The connection could not be made: the request was never sent.
    NotSent,
    /// `UNAVAILABLE` after the request may have been sent.
    Unavailable,
    /// The attempt timed out after the request was sent.
    TimedOut,
    /// An answer no retry changes.
    Final(ClientError),
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
        Client { inner: Arc::new(Inner { settings, routing, fallback }) }
    }

    /// Returns the configured endpoints, normalised to `http://host:port`.
    pub fn endpoints(&self) -> &[String] {
        self.inner.routing.urls()
    }

    /// Returns what checks do while the cluster is unreachable.
    pub fn failure_mode(&self) -> FailureMode {
        self.inner.settings.failure_mode
    }

    /// Returns the URL of the leader this client sends calls to, if it knows one.
    pub fn leader(&self) -> Option<String> {
        self.inner.routing.leader()
    }

    /// Checks a request costing `cost` units (0 counts as 1) against every limit its descriptors resolve to,
    /// and charges them all if every one allows it.
    ///
    /// A denial is `Ok` with `allowed == false`. While the cluster is unreachable, the [`FailureMode`] decides.
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

    /// Gives `amount` units back to every limit the descriptors resolve to, e.g. to settle a reservation of LLM
    /// tokens once the real count is known. The failure mode does not apply: a failed refund is returned.
    ///
    /// # Errors
    ///
    /// - [`ClientError::InvalidArgument`] if `amount` is 0, there is no descriptor, or the cluster rejects one;
    /// - [`ClientError::Unavailable`] if no node could be reached, or one answered `UNAVAILABLE` (the refund
    ///   may or may not have been applied: it is not repeated, see the module docs);
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
        self.call(Call::Refund, call).await
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
        self.call(Call::Read, call).await
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
        self.call(Call::Read, call).await
    }

    async fn decide(&self, descriptors: &Descriptors, cost: u64, peek: bool) -> Result<Decision, ClientError> {
        require_descriptors(descriptors)?;
        let cost = cost.max(1);
        let request = CheckRequest { descriptors: descriptors.to_wire(), cost, peek };
        let call = |channel| {
            let request = request.clone();
            async move { RateLimiterClient::new(channel).check(request).await.map(tonic::Response::into_inner) }
        };
        let kind = if peek { Call::Read } else { Call::Check };
        let error = match self.call(kind, call).await {
            Ok(response) => return Ok(Decision::from_wire(&response)),
            Err(error) if error.is_unreachable() => error,
            Err(error) => return Err(error),
        };
        match (self.inner.settings.failure_mode, &self.inner.fallback) {
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

    /// Runs `attempt` on a node, retrying on others within the deadline as the module docs describe.
    async fn call<T, F, Fut>(&self, kind: Call, attempt: F) -> Result<T, ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let settings = &self.inner.settings;
        let routing = &self.inner.routing;
        let start = Instant::now();
        let deadline = start + settings.deadline;
        routing.refresh_if_stale(start);
        let mut attempts = 0u32;
        let mut last = String::from("no attempt was made");
        loop {
            if Instant::now() >= deadline {
                return Err(ClientError::Unavailable { attempts, elapsed: start.elapsed(), last });
            }
            if routing.needs_discovery(Instant::now()) {
                routing.discover(deadline).await;
            }
            let now = Instant::now();
            if now >= deadline {
                continue;
            }
            let url = routing.next_target(now);
            let Some(channel) = routing.channel(&url) else {
                routing.failed(&url, true, now);
                last = format!("{url}: not a valid endpoint");
                continue;
            };
            let budget = settings.call_timeout.min(deadline - now);
            attempts += 1;
            let failure = match tokio::time::timeout(budget, attempt(channel)).await {
                Ok(Ok(answer)) => {
                    routing.succeeded(&url);
                    return Ok(answer);
                }
                Ok(Err(status)) => {
                    last = format!("{url}: {:?}: {}", status.code(), status.message());
                    classify(&status)
                }
                Err(_) => {
                    last = format!("{url}: no answer within {budget:?}");
                    Failure::TimedOut
                }
            };
            let retry = match failure {
                Failure::Final(error) => return Err(error),
                Failure::NotSent => true,
                Failure::Unavailable => kind != Call::Refund,
                Failure::TimedOut => kind == Call::Read || (kind == Call::Check && settings.retry_timed_out_checks),
            };
            // A connection that timed out may be dead without knowing it (tonic never revives one that died
            // silently): drop the channel so the next call dials afresh. A refused connect costs nothing to redo.
            routing.failed(&url, matches!(failure, Failure::TimedOut | Failure::NotSent), Instant::now());
            if !retry {
                return Err(match failure {
                    Failure::TimedOut => ClientError::Timeout { endpoint: url, after: budget },
                    _ => ClientError::Unavailable { attempts, elapsed: start.elapsed(), last },
                });
            }
            tracing::debug!(attempt = attempts, %last, "quorate call failed; retrying");
            let pause = FIRST_RETRY_PAUSE.saturating_mul(1 << attempts.min(8)) / 2;
            let pause = pause.min(MAX_RETRY_PAUSE).min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
        }
    }
}

fn require_descriptors(descriptors: &Descriptors) -> Result<(), ClientError> {
    if descriptors.is_empty() {
        return Err(ClientError::InvalidArgument { message: "a request needs at least one descriptor".to_owned() });
    }
    Ok(())
}

/// Sorts a failed attempt's status into what the retry rules need.
fn classify(status: &tonic::Status) -> Failure {
    match status.code() {
        Code::Unavailable if never_sent(status) => Failure::NotSent,
        Code::Unavailable => Failure::Unavailable,
        Code::DeadlineExceeded | Code::Cancelled => Failure::TimedOut,
        _ => Failure::Final(ClientError::from_status(status)),
    }
}

/// True if the status comes from a failed connection attempt (tonic's `ConnectError` in its source chain): the
/// request never left this process.
fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}
