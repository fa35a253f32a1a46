//! [`Caller`]: one closed-loop caller of the bench, in unary, batch or stream mode.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quorate_client::endpoint::connect_lazy;
use quorate_client::{Credentials, NodeChannel};
use quorate_proto::v1::check_result::Result as Outcome;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{CheckBatchRequest, CheckRequest, CheckResult, CheckStreamRequest, Descriptor};
use tokio::sync::mpsc;
use tonic::Streaming;

use super::keys::KeyPicker;
use super::{BenchArgs, Mode, Totals, new_histogram};
use crate::grpc::status_line;

/// Time allowed to connect to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first pause after a failed call; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// The longest pause after failed calls: a dead endpoint costs a few calls a second, not a spinning core.
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// One check's decision as the bench counts it.
#[derive(Debug, Clone, Copy)]
struct Decided {
    allowed: bool,
    /// Decided by the node from its leases, with no log entry.
    leased: bool,
}

/// What one call (or stream message) came back with: a decision or an error per check, or a failed call.
type Answer = Result<Vec<Option<Decided>>, String>;

/// One closed-loop caller with its own connection.
pub(super) struct Caller {
    args: Arc<BenchArgs>,
    credentials: Credentials,
    urls: Vec<String>,
    endpoint: usize,
    client: RateLimiterClient<NodeChannel>,
    picker: KeyPicker,
    hist: Histogram<u64>,
    totals: Totals,
    failures: u32,
}

impl Caller {
    /// A caller for `urls`, starting at `urls[endpoint]`, drawing keys with `picker`.
    pub(super) fn new(
        args: Arc<BenchArgs>,
        credentials: Credentials,
        urls: Vec<String>,
        endpoint: usize,
        picker: KeyPicker,
    ) -> anyhow::Result<Self> {
        let client = client(&urls[endpoint], &credentials, &args)?;
        Ok(Caller {
            args,
            credentials,
            urls,
            endpoint,
            client,
            picker,
            hist: new_histogram()?,
            totals: Totals::default(),
            failures: 0,
        })
    }

    /// Calls until `end`, recording what started after `warm_end`.
    pub(super) async fn run(mut self, warm_end: Instant, end: Instant) -> anyhow::Result<(Totals, Histogram<u64>)> {
        match self.args.mode {
            Mode::Unary | Mode::Batch => {
                while Instant::now() < end {
                    let started = Instant::now();
                    let answer = self.call().await;
                    self.record(started, Instant::now(), warm_end, answer).await;
                }
            }
            Mode::Stream => self.stream(warm_end, end).await,
        }
        Ok((self.totals, self.hist))
    }

    fn request(&mut self) -> CheckRequest {
        let args = &self.args;
        let value = format!("{}{}", args.key_prefix, self.picker.next());
        let policy = args.policy.clone().unwrap_or_default();
        let descriptor = Descriptor { dimension: args.dimension.clone(), value, policy };
        CheckRequest { descriptors: vec![descriptor], cost: args.cost, peek: false, lease: None }
    }

    fn requests(&mut self) -> Vec<CheckRequest> {
        (0..self.args.batch).map(|_| self.request()).collect()
    }

    /// One unary or batch call.
    async fn call(&mut self) -> Answer {
        let timeout = Duration::from_millis(self.args.timeout_ms);
        let timed_out = || format!("DEADLINE_EXCEEDED: no answer within {} ms", timeout.as_millis());
        match self.args.mode {
            Mode::Batch => {
                let request = CheckBatchRequest { checks: self.requests() };
                match tokio::time::timeout(timeout, self.client.check_batch(request)).await {
                    Ok(Ok(response)) => Ok(response.into_inner().results.iter().map(decided).collect()),
                    Ok(Err(status)) => Err(status_line(&status)),
                    Err(_) => Err(timed_out()),
                }
            }
            _ => {
                let request = self.request();
                match tokio::time::timeout(timeout, self.client.check(request)).await {
                    Ok(Ok(response)) => {
                        let response = response.into_inner();
                        Ok(vec![Some(Decided { allowed: response.allowed, leased: response.leased })])
                    }
                    Ok(Err(status)) => Err(status_line(&status)),
                    Err(_) => Err(timed_out()),
                }
            }
        }
    }

    /// Keeps `--inflight` messages in flight on one stream, reopening it (on the next endpoint) if it breaks.
    async fn stream(&mut self, warm_end: Instant, end: Instant) {
        let timeout = Duration::from_millis(self.args.timeout_ms);
        while Instant::now() < end {
            let (send, outbound) = mpsc::channel::<CheckStreamRequest>(self.args.inflight);
            let requests = futures::stream::unfold(outbound, |mut o| async move { o.recv().await.map(|m| (m, o)) });
            let mut answers: Streaming<_> =
                match tokio::time::timeout(timeout, self.client.check_stream(requests)).await {
                    Ok(Ok(response)) => response.into_inner(),
                    Ok(Err(status)) => {
                        let now = Instant::now();
                        self.record(now, now, warm_end, Err(status_line(&status))).await;
                        continue;
                    }
                    Err(_) => continue,
                };
            let mut in_flight: BTreeMap<u64, Instant> = BTreeMap::new();
            let mut next_id = 0u64;
            loop {
                while in_flight.len() < self.args.inflight && Instant::now() < end {
                    next_id += 1;
                    let message = CheckStreamRequest { id: next_id, checks: self.requests() };
                    in_flight.insert(next_id, Instant::now());
                    if send.send(message).await.is_err() {
                        break;
                    }
                }
                if in_flight.is_empty() {
                    return;
                }
                let answer = match tokio::time::timeout(timeout, answers.message()).await {
                    Ok(Ok(Some(answer))) => answer,
                    failed => {
                        // The stream broke, ended or stalled: its messages in flight failed; open a new one.
                        let message = match failed {
                            Ok(Err(status)) => status_line(&status),
                            Err(_) => {
                                format!("DEADLINE_EXCEEDED: no answer on the stream within {} ms", timeout.as_millis())
                            }
                            _ => "UNAVAILABLE: the stream ended".to_owned(),
                        };
                        for started in std::mem::take(&mut in_flight).into_values() {
                            self.record(started, Instant::now(), warm_end, Err(message.clone())).await;
                        }
                        break;
                    }
                };
                let Some(started) = in_flight.remove(&answer.id) else { break };
                let result = match answer.error {
                    Some(error) => Err(format!("{}: {}", error.code, error.message)),
                    None => Ok(answer.results.iter().map(decided).collect()),
                };
                self.record(started, Instant::now(), warm_end, result).await;
            }
        }
    }

    /// Counts one call's checks (if it started after the warmup) and its latency; after a failed call, backs off
    /// and moves to the next endpoint.
    async fn record(&mut self, started: Instant, done: Instant, warm_end: Instant, answer: Answer) {
        let endpoint = self.urls[self.endpoint].clone();
        let measured = started >= warm_end;
        if measured {
            self.totals.calls += 1;
            self.totals.last_done = Some(done);
        }
        let checks = match &answer {
            Ok(results) => results.clone(),
            Err(_) => vec![None; if self.args.mode == Mode::Unary { 1 } else { self.args.batch }],
        };
        if measured {
            self.totals.total += checks.len() as u64;
            for check in &checks {
                match check {
                    Some(decided) => {
                        if decided.allowed {
                            self.totals.allowed += 1;
                        } else {
                            self.totals.denied += 1;
                        }
                        self.totals.leased += u64::from(decided.leased);
                    }
                    None => {
                        self.totals.errors += 1;
                        *self.totals.errors_by_endpoint.entry(endpoint.clone()).or_insert(0) += 1;
                    }
                }
            }
        }
        match answer {
            Ok(_) => {
                self.failures = 0;
                if measured {
                    let micros = u64::try_from((done - started).as_nanos().div_ceil(1_000)).unwrap_or(u64::MAX);
                    self.hist.saturating_record(micros.max(1));
                }
            }
            Err(message) => {
                if measured {
                    self.totals.first_error.get_or_insert(message);
                }
                self.failures += 1;
                let pause = FIRST_BACKOFF.saturating_mul(1 << self.failures.min(8)).min(MAX_BACKOFF);
                tokio::time::sleep(pause).await;
                self.endpoint = (self.endpoint + 1) % self.urls.len();
                if let Ok(client) = client(&self.urls[self.endpoint], &self.credentials, &self.args) {
                    self.client = client;
                }
            }
        }
    }
}

fn client(url: &str, credentials: &Credentials, args: &BenchArgs) -> anyhow::Result<RateLimiterClient<NodeChannel>> {
    let timeout = Duration::from_millis(args.timeout_ms);
    Ok(RateLimiterClient::new(connect_lazy(url, credentials, CONNECT_TIMEOUT, Some(timeout))?))
}

/// The decision of one check of a batch or stream answer, `None` for a check that got an error.
fn decided(result: &CheckResult) -> Option<Decided> {
    match &result.result {
        Some(Outcome::Decision(decision)) => Some(Decided { allowed: decision.allowed, leased: decision.leased }),
        _ => None,
    }
}
