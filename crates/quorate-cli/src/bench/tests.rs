use clap::Parser;
use serde_json::{Value, json};

use super::report::{LogDelta, json as report_json, text as report_text};
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
fn out_of_range_arguments_are_rejected_with_the_flag_name() {
    let (urls, warmup, duration) = validate(&args(&["--warmup", "0.5"]), &Credentials::none()).unwrap();
    assert_eq!(urls, ["http://127.0.0.1:7101", "http://127.0.0.1:7102"]);
    assert_eq!((warmup, duration), (Duration::from_millis(500), Duration::from_secs(10)));
    for (flag, value) in
        [("--concurrency", "0"), ("--keys", "0"), ("--duration", "0"), ("--warmup", "-1"), ("--batch", "0")]
    {
        let err = validate(&args(&[&format!("{flag}={value}")]), &Credentials::none()).unwrap_err().to_string();
        assert!(err.contains(flag), "{err}");
    }
    assert!(validate(&args(&["--duration", "NaN"]), &Credentials::none()).is_err());
    assert!(validate(&args(&["--dist", "zipf", "--zipf-s", "0"]), &Credentials::none()).is_err());
}

#[test]
fn totals_merge_keeps_the_first_error_the_latest_completion_and_errors_per_endpoint() {
    let now = Instant::now();
    let mut a = Totals { total: 2, allowed: 2, last_done: Some(now), ..Totals::default() };
    let later = Some(now + Duration::from_millis(5));
    let mut b =
        Totals { total: 3, denied: 1, errors: 2, first_error: Some("x".into()), last_done: later, ..Totals::default() };
    b.errors_by_endpoint.insert("http://a:1".into(), 2);
    a.merge(b);
    let mut c = Totals { errors: 1, first_error: Some("y".into()), ..Totals::default() };
    c.errors_by_endpoint.insert("http://a:1".into(), 1);
    a.merge(c);
    assert_eq!((a.total, a.allowed, a.denied, a.errors), (5, 2, 1, 3));
    assert_eq!((a.first_error.as_deref(), a.last_done), (Some("x"), later));
    assert_eq!(a.errors_by_endpoint["http://a:1"], 3);
}

#[test]
fn report_uses_loadgen_field_names_and_derives_batching() {
    let mut hist = new_histogram().unwrap();
    for us in 1..=1000 {
        hist.record(us).unwrap();
    }
    let totals =
        Totals { total: 1300, allowed: 1000, denied: 200, leased: 300, errors: 100, calls: 13, ..Totals::default() };
    let log = Some(LogDelta { entries: 50, seconds: 2.0 });
    let bench = args(&["--label", "run1", "--mode", "batch", "--batch", "100"]);
    let r = report_json(&bench, "http://a:1,http://b:2", 2.0, &totals, &hist, log, None);
    assert_eq!(
        (r["label"].clone(), r["target"].clone(), r["mode"].clone()),
        (json!("run1"), json!("quorate"), json!("batch"))
    );
    assert_eq!((r["concurrency"].clone(), r["connections"].clone()), (json!(16), json!(16)));
    assert_eq!(r["checks_per_sec"], 650.0);
    assert_eq!(r["calls_per_sec"], 6.5);
    assert_eq!(r["latency_us"]["p50"], 500);
    assert_eq!(r["latency_us"]["p99"], 990);
    assert_eq!((r["log_entries_per_sec"].clone(), r["checks_per_entry"].clone()), (json!(25.0), json!(24.0)));
    assert_eq!(r["server_cpu"], Value::Null);
    assert_eq!((r["leased"].clone(), r["leased_share"].clone()), (json!(300), json!(0.25)));
    let text = report_text(&r);
    assert!(
        text.starts_with("1300 checks in 2.0 s: 650.0 checks/s (16 callers, batch of 100, 10000 uniform keys"),
        "{text}"
    );
    assert!(text.contains("latency per call: p50 500 µs (0.500 ms), p90 900 µs (0.900 ms)"), "{text}");
    assert!(text.ends_with("raft log: 25.0 entries/s, 24.0 checks per entry\n"), "{text}");
}

#[test]
fn server_cpu_is_reported_per_entry_and_per_decision() {
    let hist = new_histogram().unwrap();
    let totals = Totals { total: 2000, allowed: 2000, ..Totals::default() };
    let threads = vec![("tokio-runtime-w".to_owned(), 0.75), ("quorate-log-flu".to_owned(), 0.25)];
    let cpu = report::ServerCpu::new(&[Some(super::cpu::CpuSpent { total: 1.0, threads })], 2.0);
    let log = Some(LogDelta { entries: 100, seconds: 2.0 });
    let r = report_json(&args(&[]), "a", 2.0, &totals, &hist, log, Some(&cpu));
    // 0.5 cores over 50 entries/s and 1,000 decisions/s.
    assert_eq!(r["server_cpu"]["cores"], 0.5);
    assert_eq!(r["server_cpu"]["ms_per_entry"], 10.0);
    assert_eq!(r["server_cpu"]["us_per_decision"], 500.0);
    assert_eq!(r["server_cpu"]["threads"][0], json!({"thread": "tokio-runtime-w", "cores": 0.375}));
}
