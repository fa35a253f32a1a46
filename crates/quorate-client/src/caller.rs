//! [`Caller`]: one call to the cluster, sent to the leader if known and retried on other nodes within a deadline.
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
//! [`ClientBuilder::retry_timed_out_checks`](crate::ClientBuilder::retry_timed_out_checks) is set. A refund that may have been applied is never repeated:
//! refunding twice would over-admit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tonic::Code;

use crate::config::Settings;
use crate::error::ClientError;
use crate::routing::Routing;
use crate::security::NodeChannel;

/// The first pause between two attempts; it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause between two attempts: short next to an election (~0.5 s), long enough not to spin.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What is being called, which decides what may be retried (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// A check that charges.
    Check,
    /// A peek, a status or a load report: nothing is charged twice by a retry.
    Read,
    /// A refund: never repeated once it may have been sent.
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

/// Sends calls for a client: its settings and its routing (channels, leader), shared by all its clones.
#[derive(Debug)]
pub(crate) struct Caller {
    pub(crate) settings: Settings,
    pub(crate) routing: Arc<Routing>,
}

impl Caller {
    /// Runs `attempt` on a node, retrying on others within the deadline as the module docs describe.
    pub(crate) async fn call<T, F, Fut>(&self, kind: Call, attempt: F) -> Result<T, ClientError>
    where
        F: Fn(NodeChannel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let settings = &self.settings;
        let routing = &self.routing;
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
                    last = format!("{url}: {:?}: {}", status.code(), describe(&status));
                    classify(&status, &url)
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

/// Sorts a failed attempt's status into what the retry rules need.
/// A status's message and what caused it: for a failed connection tonic says only "transport error", the causes
/// say what failed (refused, a certificate the CA did not sign, ...).
fn describe(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn classify(status: &tonic::Status, url: &str) -> Failure {
    if let Some(reason) = tls_failure(status) {
        return Failure::Final(ClientError::Tls { endpoint: url.to_owned(), reason });
    }
    match status.code() {
        Code::Unavailable | Code::Cancelled if never_sent(status) => Failure::NotSent,
        Code::Unavailable => Failure::Unavailable,
        Code::DeadlineExceeded | Code::Cancelled => Failure::TimedOut,
        _ => Failure::Final(ClientError::from_status(status)),
    }
}

/// What rustls said, if the status comes from a failed TLS handshake (a `rustls::Error` in its source chain).
fn tls_failure(status: &tonic::Status) -> Option<String> {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // tokio-rustls reports it inside an io::Error, whose `source` skips the error it wraps.
        let wrapped = error.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref);
        if let Some(tls) = wrapped.and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return Some(tls.to_string());
        }
        source = error.source();
    }
    None
}

/// True if the request never left this process: the connection attempt failed (tonic's `ConnectError` in the
/// status's source chain), or the connection closed while the request still waited in hyper's queue (hyper's
/// "canceled": a node that is shutting down closes its connections once the calls it took are answered, and
/// calls queued behind them were never sent).
fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>()
            || error.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        source = error.source();
    }
    false
}
