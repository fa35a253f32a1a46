//! `quorate bench`: closed-loop load against a cluster, reported like the baseline load generator
//! (`bench/loadgen`), so that the two JSON lines can be compared field by field.
//!
//! Each of `--concurrency` tasks owns one HTTP/2 connection (endpoints assigned round-robin) and loops: pick a key
//! uniformly, send one Check, wait, record. Checks started during the warmup are sent but not recorded; errors are
//! counted but kept out of the latency histogram. Every call is bounded by `--timeout-ms`, so the run ends by
//! itself shortly after warmup + duration. Around the measured interval the highest `commit_index` among the
//! endpoints is read, giving log entries per second: how many checks the leader's batcher groups into one entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::join_all;
use hdrhistogram::Histogram;
use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{CheckRequest, Descriptor, StatusRequest};
use serde_json::{Value, json};
use tonic::transport::Channel;

use quorate_client::endpoint::{self, connect, connect_lazy};

use crate::grpc::status_line;
use crate::output;

/// Time allowed to open each caller's connection before the run starts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for each commit-index poll: a dead node must not hold the report back for long.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// Latencies above this (in µs) are recorded as this value; above any per-request timeout worth using.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Arguments of `quorate bench`, which drives closed-loop checks at the cluster and reports throughput and latency.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Nodes to load, as host:port or http://host:port, repeated or comma-separated; connections are spread
    /// round-robin over them.
    #[arg(long = "endpoints", visible_alias = "endpoint", required = true, value_name = "ADDR")]
    pub endpoints: Vec<String>,
    /// Concurrent closed-loop callers, each with its own connection (requests in flight).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Measured seconds, after the warmup.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub duration: f64,
    /// Warmup seconds: traffic is sent but not recorded.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub warmup: f64,
    /// Distinct keys, picked uniformly: the descriptor value is `<key-prefix><index>`.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
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
    /// Per-check timeout in milliseconds; a check taking longer counts as an error.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub timeout_ms: u64,
    /// Seed of the per-task key pickers (same seed, same key sequence per task).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prints one JSON line (field names as the baseline load generator's) instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Free-form label copied into the JSON output.
    #[arg(long, default_value = "")]
    pub label: String,
}

/// Outcome counts of one task, or of all of them merged.
#[derive(Debug, Default)]
struct Totals {
    total: u64,
    allowed: u64,
    denied: u64,
    errors: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

impl Totals {
    /// Adds another task's counts; the earliest-merged first error wins.
    fn merge(&mut self, other: Totals) {
        self.total += other.total;
        self.allowed += other.allowed;
        self.denied += other.denied;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.last_done = self.last_done.max(other.last_done);
    }
}

/// Log entries committed over an interval, read from the highest `commit_index` among the endpoints.
#[derive(Debug, Clone, Copy)]
struct LogDelta {
    entries: u64,
    seconds: f64,
}

/// A tiny xorshift64 generator: uniform enough to pick keys, no dependency, one per task.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    /// Seeds task `task` from the run seed, mixed by SplitMix64 so that neighbouring tasks differ from the start.
    fn new(seed: u64, task: u64) -> Self {
        let mut z = seed.wrapping_add(task.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z }) // xorshift's state must never be 0
    }

    /// Returns a value in `0..n` (`n >= 1`) by multiply-shift, which avoids modulo's bias toward small values.
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        ((u128::from(x) * u128::from(n)) >> 64) as u64
    }
}

/// Runs the benchmark and prints the summary (or one JSON line).
///
/// # Errors
///
/// Returns an error if an argument is out of range or a connection cannot be opened before the run. Failed checks
/// during the run are counted, not returned.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (urls, warmup, duration) = validate(&args)?;
    let args = Arc::new(args);
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut clients = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        let url = &urls[i % urls.len()];
        clients.push(RateLimiterClient::new(connect(url, CONNECT_TIMEOUT, Some(timeout)).await?));
    }
    let admins = urls
        .iter()
        .map(|url| connect_lazy(url, POLL_TIMEOUT, Some(POLL_TIMEOUT)).map(AdminClient::new))
        .collect::<Result<Vec<_>, _>>()?;
    max_commit_index(&admins).await; // opens the admin connections before the clock starts

    let warm_end = Instant::now() + warmup;
    let end = warm_end + duration;
    let monitor = tokio::spawn(async move {
        tokio::time::sleep_until(warm_end.into()).await;
        let before = (Instant::now(), max_commit_index(&admins).await);
        tokio::time::sleep_until(end.into()).await;
        let after = (Instant::now(), max_commit_index(&admins).await);
        match (before, after) {
            ((t0, Some(c0)), (t1, Some(c1))) => {
                Some(LogDelta { entries: c1.saturating_sub(c0), seconds: (t1 - t0).as_secs_f64() })
            }
            _ => None,
        }
    });
    let tasks: Vec<_> = (0..)
        .zip(clients)
        .map(|(i, client)| tokio::spawn(run_task(client, args.clone(), XorShift::new(args.seed, i), warm_end, end)))
        .collect();
    let mut hist = new_histogram()?;
    let mut totals = Totals::default();
    for task in tasks {
        let (task_totals, task_hist) = task.await.context("bench task panicked")??;
        hist.add(&task_hist).context("merging latency histograms")?;
        totals.merge(task_totals);
    }
    let log = monitor.await.context("commit-index monitor panicked")?;
    // Checks in flight at `end` still finish and count, so the interval stretches to the last of them.
    let measured = (totals.last_done.unwrap_or(end).max(end) - warm_end).as_secs_f64();
    let report = report_json(&args, &urls.join(","), measured, &totals, &hist, log);
    if args.json {
        output::println(&report)?;
    } else {
        output::print(report_text(&report))?;
    }
    Ok(())
}

/// Checks the arguments and returns the normalised endpoints, the warmup and the measured duration.
fn validate(args: &BenchArgs) -> anyhow::Result<(Vec<String>, Duration, Duration)> {
    let urls = endpoint::normalize_all(&args.endpoints)?;
    let problems = [
        (args.concurrency == 0, "--concurrency must be at least 1"),
        (args.keys == 0, "--keys must be at least 1"),
        (args.timeout_ms == 0, "--timeout-ms must be at least 1"),
        (args.dimension.is_empty(), "--dimension must not be empty"),
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

/// One closed-loop caller: checks until `end`, recording what started after `warm_end`.
async fn run_task(
    mut client: RateLimiterClient<Channel>,
    args: Arc<BenchArgs>,
    mut rng: XorShift,
    warm_end: Instant,
    end: Instant,
) -> anyhow::Result<(Totals, Histogram<u64>)> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut hist = new_histogram()?;
    let mut totals = Totals::default();
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        let value = format!("{}{}", args.key_prefix, rng.below(args.keys));
        let policy = args.policy.clone().unwrap_or_default();
        let descriptor = Descriptor { dimension: args.dimension.clone(), value, policy };
        let request = CheckRequest { descriptors: vec![descriptor], cost: args.cost, peek: false };
        let outcome = match tokio::time::timeout(timeout, client.check(request)).await {
            Ok(Ok(response)) => Ok(response.into_inner().allowed),
            Ok(Err(status)) => Err(status_line(&status)),
            Err(_) => Err(format!("DEADLINE_EXCEEDED: no answer within {} ms", args.timeout_ms)),
        };
        let done = Instant::now();
        if started < warm_end {
            continue;
        }
        totals.total += 1;
        totals.last_done = Some(done);
        match outcome {
            Ok(true) => totals.allowed += 1,
            Ok(false) => totals.denied += 1,
            Err(message) => {
                totals.errors += 1;
                totals.first_error.get_or_insert(message);
                continue; // errors stay out of the latency histogram, as in the load generator
            }
        }
        let micros = u64::try_from((done - started).as_nanos().div_ceil(1_000)).unwrap_or(u64::MAX);
        hist.saturating_record(micros.max(1));
    }
    Ok((totals, hist))
}

/// Returns the highest `commit_index` any endpoint reports (the leader's is the freshest), or `None` if none
/// answered.
async fn max_commit_index(admins: &[AdminClient<Channel>]) -> Option<u64> {
    let polls = admins.iter().map(|admin| {
        let mut admin = admin.clone();
        async move { admin.status(StatusRequest {}).await.ok().map(|r| r.into_inner().commit_index) }
    });
    join_all(polls).await.into_iter().flatten().max()
}

/// Rounds to `decimals` decimal places, for readable JSON.
fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// Assembles the JSON report with the load generator's field names, plus Quorate's log-entry figures.
fn report_json(
    args: &BenchArgs,
    addr: &str,
    measured_s: f64,
    totals: &Totals,
    hist: &Histogram<u64>,
    log: Option<LogDelta>,
) -> Value {
    let checks_per_sec = if measured_s > 0.0 { totals.total as f64 / measured_s } else { 0.0 };
    let entries_per_sec = log.filter(|l| l.seconds > 0.0).map(|l| l.entries as f64 / l.seconds);
    // Failed checks never reached the log, so only decided ones count toward the batching figure.
    let decided_per_sec = if measured_s > 0.0 { (totals.allowed + totals.denied) as f64 / measured_s } else { 0.0 };
    let checks_per_entry = entries_per_sec.filter(|e| *e > 0.0).map(|e| round(decided_per_sec / e, 2));
    json!({
        "label": args.label, "target": "quorate", "addr": addr,
        "concurrency": args.concurrency, "connections": args.concurrency, "keys": args.keys,
        "dimension": args.dimension, "policy": args.policy, "cost": args.cost,
        "warmup_s": args.warmup, "duration_s": round(measured_s, 3),
        "total_checks": totals.total, "checks_per_sec": round(checks_per_sec, 1),
        "allowed": totals.allowed, "denied": totals.denied, "errors": totals.errors,
        "first_error": totals.first_error,
        "latency_us": {
            "p50": hist.value_at_quantile(0.50), "p90": hist.value_at_quantile(0.90),
            "p99": hist.value_at_quantile(0.99), "p999": hist.value_at_quantile(0.999),
            "max": hist.max(), "mean": round(hist.mean(), 1), "count": hist.len(),
        },
        "log_entries": log.map(|l| l.entries),
        "log_entries_per_sec": entries_per_sec.map(|e| round(e, 1)),
        "checks_per_entry": checks_per_entry,
    })
}

/// Formats the JSON report for a human: throughput, outcomes, latency percentiles in µs and ms, batching.
fn report_text(r: &Value) -> String {
    let latency = |q: &str| {
        let us = r["latency_us"][q].as_u64().unwrap_or(0);
        format!("{q} {us} µs ({:.3} ms)", us as f64 / 1000.0)
    };
    let mut out = format!(
        "{} checks in {} s: {} checks/s ({} callers, {} keys, {})\n",
        r["total_checks"],
        r["duration_s"],
        r["checks_per_sec"],
        r["concurrency"],
        r["keys"],
        r["addr"].as_str().unwrap_or(""),
    );
    out += &format!("allowed {}, denied {}, errors {}\n", r["allowed"], r["denied"], r["errors"]);
    if let Some(error) = r["first_error"].as_str() {
        out += &format!("first error: {error}\n");
    }
    let percentiles: Vec<String> = ["p50", "p90", "p99", "p999", "max"].into_iter().map(latency).collect();
    out += &format!("latency: {}\n", percentiles.join(", "));
    match (&r["log_entries_per_sec"], &r["checks_per_entry"]) {
        (Value::Number(e), Value::Number(c)) => out += &format!("raft log: {e} entries/s, {c} checks per entry\n"),
        (Value::Number(e), _) => out += &format!("raft log: {e} entries/s\n"),
        _ => out += "raft log: commit index unavailable\n",
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn args(extra: &[&str]) -> BenchArgs {
        let argv = ["quorate", "--endpoints", "127.0.0.1:7101,127.0.0.1:7102"].iter().chain(extra);
        Cli::try_parse_from(argv).unwrap().bench
    }

    #[test]
    fn key_picker_stays_in_range_covers_all_keys_and_differs_per_task() {
        let mut rng = XorShift::new(1, 0);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[usize::try_from(rng.below(10)).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        let firsts: Vec<u64> = (0..4).map(|task| XorShift::new(1, task).below(u64::MAX)).collect();
        assert!(firsts.windows(2).all(|w| w[0] != w[1]));
        assert_eq!(XorShift::new(7, 3).below(1000), XorShift::new(7, 3).below(1000));
        assert_eq!(XorShift::new(7, 3).below(1), 0);
    }

    #[test]
    fn out_of_range_arguments_are_rejected_with_the_flag_name() {
        let (urls, warmup, duration) = validate(&args(&["--warmup", "0.5"])).unwrap();
        assert_eq!(urls, ["http://127.0.0.1:7101", "http://127.0.0.1:7102"]);
        assert_eq!((warmup, duration), (Duration::from_millis(500), Duration::from_secs(10)));
        for (flag, value) in [("--concurrency", "0"), ("--keys", "0"), ("--duration", "0"), ("--warmup", "-1")] {
            let err = validate(&args(&[&format!("{flag}={value}")])).unwrap_err().to_string();
            assert!(err.contains(flag), "{err}");
        }
        assert!(validate(&args(&["--duration", "NaN"])).is_err());
    }

    #[test]
    fn totals_merge_keeps_the_first_error_and_latest_completion() {
        let now = Instant::now();
        let mut a = Totals { total: 2, allowed: 2, last_done: Some(now), ..Totals::default() };
        let later = Some(now + Duration::from_millis(5));
        a.merge(Totals {
            total: 3,
            denied: 1,
            errors: 2,
            first_error: Some("x".into()),
            last_done: later,
            ..Totals::default()
        });
        a.merge(Totals { errors: 1, first_error: Some("y".into()), ..Totals::default() });
        assert_eq!((a.total, a.allowed, a.denied, a.errors), (5, 2, 1, 3));
        assert_eq!((a.first_error.as_deref(), a.last_done), (Some("x"), later));
    }

    #[test]
    fn report_uses_loadgen_field_names_and_derives_batching() {
        let mut hist = new_histogram().unwrap();
        for us in 1..=1000 {
            hist.record(us).unwrap();
        }
        let totals = Totals { total: 1300, allowed: 1000, denied: 200, errors: 100, ..Totals::default() };
        let log = Some(LogDelta { entries: 50, seconds: 2.0 });
        let r = report_json(&args(&["--label", "run1"]), "http://a:1,http://b:2", 2.0, &totals, &hist, log);
        assert_eq!(r["label"], "run1");
        assert_eq!(r["target"], "quorate");
        assert_eq!((r["concurrency"].clone(), r["connections"].clone()), (json!(16), json!(16)));
        assert_eq!(r["checks_per_sec"], 650.0);
        assert_eq!(r["first_error"], Value::Null);
        assert_eq!(r["latency_us"]["p50"], 500);
        assert_eq!(r["latency_us"]["p99"], 990);
        assert_eq!(r["latency_us"]["max"], 1000);
        assert_eq!(r["latency_us"]["count"], 1000);
        assert_eq!(r["latency_us"]["mean"], 500.5);
        assert_eq!((r["log_entries_per_sec"].clone(), r["checks_per_entry"].clone()), (json!(25.0), json!(24.0)));
        let text = report_text(&r);
        assert!(
            text.starts_with("1300 checks in 2.0 s: 650.0 checks/s (16 callers, 10000 keys, http://a:1,http://b:2)\n")
        );
        assert!(text.contains("latency: p50 500 µs (0.500 ms), p90 900 µs (0.900 ms)"), "{text}");
        assert!(text.ends_with("raft log: 25.0 entries/s, 24.0 checks per entry\n"));
        let no_log = report_json(&args(&[]), "a", 2.0, &totals, &hist, None);
        assert_eq!(no_log["checks_per_entry"], Value::Null);
        assert!(report_text(&no_log).ends_with("commit index unavailable\n"));
    }
}
