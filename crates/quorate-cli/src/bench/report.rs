//! The bench's report: one JSON object with the baseline load generator's field names plus Quorate's own
//! (log entries, checks per entry, server CPU per entry and per decision), and a text summary of it.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::cpu::CpuSpent;
use super::{BenchArgs, Mode, Totals};

/// Log entries committed over an interval, read from the highest `commit_index` among the endpoints.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogDelta {
    pub(super) entries: u64,
    pub(super) seconds: f64,
}

/// CPU the server processes spent over the measured interval.
#[derive(Debug, Clone)]
pub(super) struct ServerCpu {
    /// Seconds of CPU, all servers together; `None` if a process could not be read.
    seconds: Option<f64>,
    /// Over how long, in seconds.
    over: f64,
    /// Per thread name, all servers together, busiest first: (name, CPU seconds).
    threads: Vec<(String, f64)>,
}

impl ServerCpu {
    /// What the processes spent (`None` for one that could not be read) over `over` seconds.
    pub(super) fn new(spent: &[Option<CpuSpent>], over: f64) -> Self {
        let mut seconds = Some(0.0);
        let mut threads: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
        for spent in spent {
            match spent {
                Some(CpuSpent { total, threads: per_thread }) => {
                    seconds = seconds.map(|s| s + total);
                    for (name, t) in per_thread {
                        *threads.entry(name.clone()).or_insert(0.0) += t;
                    }
                }
                None => seconds = None,
            }
        }
        let mut threads: Vec<(String, f64)> = threads.into_iter().collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        ServerCpu { seconds, over, threads }
    }
}

/// Rounds to `decimals` decimal places, for readable JSON.
fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// Assembles the JSON report.
pub(super) fn json(
    args: &BenchArgs,
    addr: &str,
    measured_s: f64,
    totals: &Totals,
    hist: &Histogram<u64>,
    log: Option<LogDelta>,
    cpu: Option<&ServerCpu>,
) -> Value {
    let per_sec = |n: u64| if measured_s > 0.0 { n as f64 / measured_s } else { 0.0 };
    let entries_per_sec = log.filter(|l| l.seconds > 0.0).map(|l| l.entries as f64 / l.seconds);
    // Failed checks never reached the log, so only decided ones count toward the batching figure.
    let decided_per_sec = per_sec(totals.allowed + totals.denied);
    let checks_per_entry = entries_per_sec.filter(|e| *e > 0.0).map(|e| round(decided_per_sec / e, 2));
    let server_cpu = cpu.map(|cpu| {
        let cores = cpu.seconds.filter(|_| cpu.over > 0.0).map(|s| s / cpu.over);
        let per_entry_ms = cores.zip(entries_per_sec).filter(|(_, e)| *e > 0.0).map(|(c, e)| round(c / e * 1e3, 3));
        let per_decision_us = cores.filter(|_| decided_per_sec > 0.0).map(|c| round(c / decided_per_sec * 1e6, 2));
        let threads: Vec<Value> = cpu
            .threads
            .iter()
            .take(8)
            .map(|(name, seconds)| json!({"thread": name, "cores": round(seconds / cpu.over.max(f64::EPSILON), 3)}))
            .collect();
        json!({
            "cores": cores.map(|c| round(c, 3)),
            "ms_per_entry": per_entry_ms,
            "us_per_decision": per_decision_us,
            "threads": threads,
        })
    });
    json!({
        "label": args.label, "target": "quorate", "addr": addr,
        "mode": args.mode, "batch": (args.mode != Mode::Unary).then_some(args.batch),
        "inflight": (args.mode == Mode::Stream).then_some(args.inflight),
        "concurrency": args.concurrency, "connections": args.concurrency, "keys": args.keys,
        "dist": args.dist, "zipf_s": (args.dist == super::Distribution::Zipf).then_some(args.zipf_s),
        "dimension": args.dimension, "policy": args.policy, "cost": args.cost,
        "warmup_s": args.warmup, "duration_s": round(measured_s, 3),
        "total_checks": totals.total, "checks_per_sec": round(per_sec(totals.total), 1),
        "calls": totals.calls, "calls_per_sec": round(per_sec(totals.calls), 1),
        "allowed": totals.allowed, "denied": totals.denied, "errors": totals.errors,
        "leased": totals.leased,
        "leased_share": (totals.allowed + totals.denied > 0)
            .then(|| round(totals.leased as f64 / (totals.allowed + totals.denied) as f64, 4)),
        "errors_by_endpoint": totals.errors_by_endpoint,
        "first_error": totals.first_error,
        "latency_us": {
            "p50": hist.value_at_quantile(0.50), "p90": hist.value_at_quantile(0.90),
            "p99": hist.value_at_quantile(0.99), "p999": hist.value_at_quantile(0.999),
            "max": hist.max(), "mean": round(hist.mean(), 1), "count": hist.len(),
        },
        "log_entries": log.map(|l| l.entries),
        "log_entries_per_sec": entries_per_sec.map(|e| round(e, 1)),
        "checks_per_entry": checks_per_entry,
        "server_cpu": server_cpu,
    })
}

/// Formats the JSON report for a human: throughput, outcomes, latency percentiles in µs and ms, batching, CPU.
pub(super) fn text(r: &Value) -> String {
    let latency = |q: &str| {
        let us = r["latency_us"][q].as_u64().unwrap_or(0);
        format!("{q} {us} µs ({:.3} ms)", us as f64 / 1000.0)
    };
    let mode = match (&r["mode"], &r["batch"]) {
        (Value::String(mode), Value::Number(batch)) => format!("{mode} of {batch}"),
        (Value::String(mode), _) => mode.clone(),
        _ => String::new(),
    };
    let mut out = format!(
        "{} checks in {} s: {} checks/s ({} callers, {mode}, {} {} keys, {})\n",
        r["total_checks"],
        r["duration_s"],
        r["checks_per_sec"],
        r["concurrency"],
        r["keys"],
        r["dist"].as_str().unwrap_or(""),
        r["addr"].as_str().unwrap_or(""),
    );
    out += &format!(
        "allowed {}, denied {}, errors {}; decided from leases {} ({})\n",
        r["allowed"],
        r["denied"],
        r["errors"],
        r["leased"],
        r["leased_share"].as_f64().map_or("-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
    );
    if let Some(error) = r["first_error"].as_str() {
        out += &format!("first error: {error}\n");
    }
    if let Some(by_endpoint) = r["errors_by_endpoint"].as_object().filter(|m| !m.is_empty()) {
        let parts: Vec<String> = by_endpoint.iter().map(|(e, n)| format!("{e} {n}")).collect();
        out += &format!("errors by endpoint: {}\n", parts.join(", "));
    }
    let percentiles: Vec<String> = ["p50", "p90", "p99", "p999", "max"].into_iter().map(latency).collect();
    out += &format!("latency per call: {}\n", percentiles.join(", "));
    match (&r["log_entries_per_sec"], &r["checks_per_entry"]) {
        (Value::Number(e), Value::Number(c)) => out += &format!("raft log: {e} entries/s, {c} checks per entry\n"),
        (Value::Number(e), _) => out += &format!("raft log: {e} entries/s\n"),
        _ => out += "raft log: commit index unavailable\n",
    }
    if let Some(cpu) = r["server_cpu"].as_object() {
        out += &format!(
            "server cpu: {} cores, {} ms per entry, {} µs per decision\n",
            cpu["cores"], cpu["ms_per_entry"], cpu["us_per_decision"]
        );
    }
    out
}
