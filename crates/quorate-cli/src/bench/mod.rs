//! `quorate bench`: closed-loop load against a cluster, reported like the baseline load generator
//! (`../shared/bench/loadgen`), so that the two JSON lines can be compared field by field.
//!
//! Each of `--concurrency` callers owns one HTTP/2 connection (endpoints assigned round-robin) and loops in one of
//! three modes: `unary` sends one `Check` and waits; `batch` sends one `CheckBatch` of `--batch` checks and waits;
//! `stream` keeps `--inflight` messages of `--batch` checks in flight on one `CheckStream`. Keys are drawn per
//! check, uniformly or Zipf (`--dist`). Calls started during the warmup are sent but not recorded; latency is per
//! call (per message for streams), throughput counts decisions. A caller whose call fails backs off and moves to
//! the next endpoint, so a dead node costs a few retries, not a spinning core; errors are reported per endpoint.
//!
//! Around the measured interval the highest `commit_index` among the endpoints is read (log entries per second:
//! how many checks the leader groups into one entry) and, for `--server-pid`, the server's CPU time from `/proc`
//! (CPU per log entry and per decision, and the busiest threads).

mod callers;
mod cpu;
mod keys;
mod report;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::join_all;
use hdrhistogram::Histogram;
use quorate_client::Credentials;
use quorate_client::NodeChannel;
use quorate_client::endpoint::{self, connect_lazy};
use quorate_proto::v1::StatusRequest;
use quorate_proto::v1::admin_client::AdminClient;

pub use keys::Distribution;

use crate::credentials::CredentialArgs;
use crate::output;
use callers::Caller;
use cpu::CpuSample;
use keys::KeyPicker;
use report::{LogDelta, ServerCpu};

/// Time allowed for each commit-index poll: a dead node must not hold the report back for long.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// Latencies above this (in µs) are recorded as this value; above any per-request timeout worth using.
const MAX_LATENCY_US: u64 = 60_000_000;

/// How each caller sends its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One `Check` per call.
    Unary,
    /// One `CheckBatch` of `--batch` checks per call.
    Batch,
    /// Messages of `--batch` checks on one `CheckStream` per caller, `--inflight` at a time.
    Stream,
}

/// Arguments of `quorate bench`, which drives closed-loop checks at the cluster and reports throughput and latency.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Nodes to load, as host:port or http://host:port, repeated or comma-separated; connections are spread
    /// round-robin over them.
    #[arg(long = "endpoints", visible_alias = "endpoint", required = true, value_name = "ADDR")]
    pub endpoints: Vec<String>,
    /// Concurrent closed-loop callers, each with its own connection.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// How callers send checks.
    #[arg(long, value_enum, default_value_t = Mode::Unary)]
    pub mode: Mode,
    /// Checks per batch call or stream message (`--mode batch|stream`).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Stream messages each caller keeps in flight (`--mode stream`).
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// Measured seconds, after the warmup.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub duration: f64,
    /// Warmup seconds: traffic is sent but not recorded.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub warmup: f64,
    /// Distinct keys: the descriptor value is `<key-prefix><index>`.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// How keys are drawn.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub dist: Distribution,
    /// Zipf exponent (`--dist zipf`): 1.0 is what `../shared/bench/loadgen` uses.
    #[arg(long, default_value_t = 1.0)]
    pub zipf_s: f64,
    /// Descriptor dimension of every check.
    #[arg(long, default_value = "api_key")]
    pub dimension: String,
    /// Prefix of the descriptor values (use a fresh one per run to start from fresh limiters).
    #[arg(long, default_value = "bench_")]
    pub key_prefix: String,
    /// Checks against this policy instead of the one the rules pick.
    #[arg(long)]
    pub policy: Option<String>,
    /// Units each check costs.
    #[arg(long, default_value_t = 1)]
    pub cost: u64,
    /// Per-call timeout in milliseconds; a call taking longer counts as errors.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub timeout_ms: u64,
    /// Seed of the per-caller key pickers (same seed, same key sequence per caller).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// PIDs of the server processes whose CPU time to report (comma-separated), e.g. `$(pgrep -f 'quorate dev')`.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Prints one JSON line (field names as the baseline load generator's) instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Free-form label copied into the JSON output.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Token and TLS files for a secured cluster.
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

/// Outcome counts of one caller, or of all of them merged.
#[derive(Debug, Default)]
struct Totals {
    /// Decisions asked for (checks sent) in the measured interval.
    total: u64,
    allowed: u64,
    denied: u64,
    /// Decisions a node made from its leases.
    leased: u64,
    errors: u64,
    calls: u64,
    first_error: Option<String>,
    /// Checks that failed, per endpoint they were sent to.
    errors_by_endpoint: BTreeMap<String, u64>,
    last_done: Option<Instant>,
}

impl Totals {
    /// Adds another caller's counts; the earliest-merged first error wins.
    fn merge(&mut self, other: Totals) {
        self.total += other.total;
        self.allowed += other.allowed;
        self.denied += other.denied;
        self.leased += other.leased;
        self.errors += other.errors;
        self.calls += other.calls;
        self.first_error = self.first_error.take().or(other.first_error);
        for (endpoint, errors) in other.errors_by_endpoint {
            *self.errors_by_endpoint.entry(endpoint).or_insert(0) += errors;
        }
        self.last_done = self.last_done.max(other.last_done);
    }
}

/// Runs the benchmark and prints the summary (or one JSON line).
///
/// # Errors
///
/// Returns an error if an argument is out of range or an endpoint is invalid. Failed checks during the run are
/// counted, not returned.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let credentials = args.credentials.credentials()?;
    let (urls, warmup, duration) = validate(&args, &credentials)?;
    let args = Arc::new(args);
    let admins = urls
        .iter()
        .map(|url| connect_lazy(url, &credentials, POLL_TIMEOUT, Some(POLL_TIMEOUT)).map(AdminClient::new))
        .collect::<Result<Vec<_>, _>>()?;
    max_commit_index(&admins).await; // opens the admin connections before the clock starts
    let cdf = Arc::new(match args.dist {
        Distribution::Uniform => Vec::new(),
        Distribution::Zipf => KeyPicker::zipf_cdf(args.keys, args.zipf_s),
    });
    let callers: Vec<Caller> = (0..args.concurrency)
        .map(|i| {
            let picker = KeyPicker::new(args.seed, i as u64, args.keys, cdf.clone());
            Caller::new(args.clone(), credentials.clone(), urls.clone(), i % urls.len(), picker)
        })
        .collect::<anyhow::Result<_>>()?;

    let warm_end = Instant::now() + warmup;
    let end = warm_end + duration;
    let pids = args.server_pid.clone();
    let monitor = tokio::spawn(async move {
        tokio::time::sleep_until(warm_end.into()).await;
        let before =
            (Instant::now(), max_commit_index(&admins).await, pids.iter().map(|&p| CpuSample::read(p)).collect());
        tokio::time::sleep_until(end.into()).await;
        let after =
            (Instant::now(), max_commit_index(&admins).await, pids.iter().map(|&p| CpuSample::read(p)).collect());
        measure(&pids, before, after)
    });
    let tasks: Vec<_> = callers.into_iter().map(|caller| tokio::spawn(caller.run(warm_end, end))).collect();
    let mut hist = new_histogram()?;
    let mut totals = Totals::default();
    for task in tasks {
        let (task_totals, task_hist) = task.await.context("bench caller panicked")??;
        hist.add(&task_hist).context("merging latency histograms")?;
        totals.merge(task_totals);
    }
    let (log, cpu) = monitor.await.context("the monitor panicked")?;
    // Calls in flight at `end` still finish and count, so the interval stretches to the last of them.
    let measured = (totals.last_done.unwrap_or(end).max(end) - warm_end).as_secs_f64();
    let report = report::json(&args, &urls.join(","), measured, &totals, &hist, log, cpu.as_ref());
    match args.json {
        true => output::println(&report)?,
        false => output::print(report::text(&report))?,
    }
    Ok(())
}

type Snapshot = (Instant, Option<u64>, Vec<CpuSample>);

/// The log entries committed and the servers' CPU spent between two snapshots.
fn measure(pids: &[u32], before: Snapshot, after: Snapshot) -> (Option<LogDelta>, Option<ServerCpu>) {
    let seconds = (after.0 - before.0).as_secs_f64();
    let log = match (before.1, after.1) {
        (Some(c0), Some(c1)) => Some(LogDelta { entries: c1.saturating_sub(c0), seconds }),
        _ => None,
    };
    let spent: Vec<_> = before.2.iter().zip(&after.2).map(|(b, a)| b.spent_until(a)).collect();
    let cpu = (!pids.is_empty()).then(|| ServerCpu::new(&spent, seconds));
    (log, cpu)
}

/// Checks the arguments and returns the normalised endpoints, the warmup and the measured duration.
fn validate(args: &BenchArgs, credentials: &Credentials) -> anyhow::Result<(Vec<String>, Duration, Duration)> {
    let urls = endpoint::normalize_all(&args.endpoints, credentials.uses_tls())?;
    let problems = [
        (args.concurrency == 0, "--concurrency must be at least 1"),
        (args.keys == 0, "--keys must be at least 1"),
        (args.batch == 0, "--batch must be at least 1"),
        (args.inflight == 0, "--inflight must be at least 1"),
        (args.timeout_ms == 0, "--timeout-ms must be at least 1"),
        (args.dimension.is_empty(), "--dimension must not be empty"),
        (!(args.zipf_s > 0.0 && args.zipf_s <= 10.0), "--zipf-s must be in (0, 10]"),
        // Written so that NaN fails too; the bounds keep `Instant + Duration` far from overflow.
        (!(args.duration > 0.0 && args.duration <= 86_400.0), "--duration must be in (0, 86400] seconds"),
        (!(0.0..=3_600.0).contains(&args.warmup), "--warmup must be in [0, 3600] seconds"),
    ];
    if let Some((_, problem)) = problems.iter().find(|(bad, _)| *bad) {
        bail!("{problem}");
    }
    Ok((urls, Duration::from_secs_f64(args.warmup), Duration::from_secs_f64(args.duration)))
}

/// Returns an empty latency histogram in µs (1 µs to 60 s, 3 significant digits).
fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("creating the latency histogram")
}

/// Returns the highest `commit_index` any endpoint reports (the leader's is the freshest), or `None` if none
/// answered.
async fn max_commit_index(admins: &[AdminClient<NodeChannel>]) -> Option<u64> {
    let polls = admins.iter().map(|admin| {
        let mut admin = admin.clone();
        async move { admin.status(StatusRequest {}).await.ok().map(|r| r.into_inner().commit_index) }
    });
    join_all(polls).await.into_iter().flatten().max()
}

#[cfg(test)]
mod tests;
