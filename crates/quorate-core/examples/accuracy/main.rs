//! Accuracy of the four algorithms against an exact per-request sliding log, on a seeded synthetic trace.
//!
//! ```text
//! cargo run --release -p quorate-core --example accuracy -- [--seed N] [--sources N] [--sigma S] [--minutes M]
//!     [--demand D]
//! ```
//!
//! Defaults: seed 1, 20,000 sources, σ = 1, 10 minutes, median demand D = 1 × the limit. Every limiter allows 100
//! per minute: a token bucket (burst 100, refill 100 per minute), a sliding window (the default 60 buckets), the
//! window counter and a fixed window, each over one minute. Each source asks for `100 × D × lognormal(0, σ)`
//! requests per minute as Poisson arrivals, starting at a uniformly random instant of the first minute (real
//! clients do not start on window boundaries) and sending for `minutes`; every request costs 1, and every source
//! meets every limiter as a fresh key.
//!
//! The reference is an exact per-request sliding log: it admits a request iff fewer than 100 were admitted in the
//! last 60 s. Per algorithm, over all requests of all sources, the table shows what it admitted (and the ratio to
//! what the exact log admitted), its wrong allows and wrong denies as a share of all requests, judged on its own
//! admitted history (see `judge.rs`), its worst window (the most admitted in any 60 s span, of any source) and the
//! mean over sources of `|admitted - exact| / exact`. The output is a markdown table, identical for identical
//! arguments.
//!
//! The algorithms run directly on per-key state, as the keyed table runs them (a unit test checks the table
//! decides identically), one source at a time, so memory holds one source's arrivals.

#![allow(missing_docs)]

mod judge;
mod trace;

use std::process::ExitCode;

use quorate_core::policy::DEFAULT_PRECISION;
use quorate_core::{FixedWindow, Limiter, Nanos, SlidingWindow, TokenBucket, WindowCounter, WindowSpan};

use judge::{OwnLog, Tally, Verdicts};
use trace::TraceSpec;

const SECOND: Nanos = 1_000_000_000;
const MINUTE: Nanos = 60 * SECOND;
/// The limit of every limiter, per minute.
const LIMIT: u64 = 100;
/// A minute boundary in late 2026: sources start in the minute after it.
const START: Nanos = 29_916_667 * MINUTE;

const USAGE: &str = "usage: accuracy [--seed N] [--sources N] [--sigma S] [--minutes M] [--demand D]
  --seed N      seed of the synthetic trace (default 1)
  --sources N   number of sources, 1..=1000000 (default 20000)
  --sigma S     σ of each source's lognormal demand factor, 0..=3 (default 1)
  --minutes M   how long every source sends, 1..=1440 (default 10)
  --demand D    median demand as a multiple of the limit, above 0 and up to 100 (default 1)";

/// The validated command line.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Args {
    seed: u64,
    sources: u64,
    sigma: f64,
    minutes: u64,
    demand: f64,
}

impl Default for Args {
    fn default() -> Self {
        Args { seed: 1, sources: 20_000, sigma: 1.0, minutes: 10, demand: 1.0 }
    }
}

impl Args {
    /// Parses and validates the arguments after the program name; `Ok(None)` asks for the usage text.
    fn parse(mut raw: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
        let mut args = Args::default();
        while let Some(flag) = raw.next() {
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            let value = raw.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |reason: &str| format!("invalid {flag} {value:?}: {reason}");
            match flag.as_str() {
                "--seed" => args.seed = value.parse().map_err(|_| bad("not an unsigned integer"))?,
                "--sources" => args.sources = value.parse().map_err(|_| bad("not an unsigned integer"))?,
                "--sigma" => args.sigma = value.parse().map_err(|_| bad("not a number"))?,
                "--minutes" => args.minutes = value.parse().map_err(|_| bad("not an unsigned integer"))?,
                "--demand" => args.demand = value.parse().map_err(|_| bad("not a number"))?,
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        if !(1..=1_000_000).contains(&args.sources) {
            return Err(format!("invalid --sources {}: must be in 1..=1000000", args.sources));
        }
        // σ = 3 already means 90 times the limit's worth of requests on average (exp(σ²/2)).
        if !(0.0..=3.0).contains(&args.sigma) {
            return Err(format!("invalid --sigma {}: must be in 0..=3", args.sigma));
        }
        if !(1..=1_440).contains(&args.minutes) {
            return Err(format!("invalid --minutes {}: must be in 1..=1440", args.minutes));
        }
        if !(args.demand > 0.0 && args.demand <= 100.0) {
            return Err(format!("invalid --demand {}: must be above 0 and at most 100", args.demand));
        }
        Ok(Some(args))
    }
}

/// The limiters compared, all allowing 100 per minute.
fn limiters() -> Vec<Limiter> {
    let limiters: [Result<Limiter, _>; 4] = [
        TokenBucket::new(LIMIT, LIMIT, MINUTE).map(Limiter::from),
        SlidingWindow::new(LIMIT, MINUTE, DEFAULT_PRECISION).map(Limiter::from),
        WindowCounter::new(LIMIT, MINUTE).map(Limiter::from),
        FixedWindow::new(LIMIT, WindowSpan::Every(MINUTE)).map(Limiter::from),
    ];
    // Constant, valid parameters: a failure here is a bug in this program.
    limiters.into_iter().map(|l| l.unwrap_or_else(|e| panic!("{e}"))).collect()
}

/// The outcome of one run: the exact log's tally, then one per limiter.
#[derive(Debug)]
struct Report {
    args: Args,
    exact: Tally,
    rows: Vec<(Limiter, Tally)>,
    /// Sources whose demand is above the limit, and the requests they sent.
    over_sources: u64,
    over_requests: u64,
}

/// Generates the trace one source at a time and judges the exact log and every limiter on it.
fn run(args: Args) -> Report {
    let spec = TraceSpec {
        seed: args.seed,
        median_per_minute: LIMIT as f64 * args.demand,
        sigma: args.sigma,
        start: START,
        phases: MINUTE,
        duration: args.minutes * MINUTE,
    };
    let limiters = limiters();
    let mut exact = Tally::default();
    let mut tallies = vec![Tally::default(); limiters.len()];
    let (mut over_sources, mut over_requests) = (0, 0);
    let (mut arrivals, mut log) = (Vec::new(), OwnLog::default());
    for source in 0..args.sources {
        let demand = spec.source(source, &mut arrivals);
        if demand > LIMIT as f64 {
            over_sources += 1;
            over_requests += arrivals.len() as u64;
        }
        let reference: Verdicts = judge::judge(&arrivals, MINUTE, LIMIT, &mut log, judge::exact_log(LIMIT));
        exact.add(reference, reference.admitted);
        for (limiter, tally) in limiters.iter().zip(&mut tallies) {
            let verdicts = judge::judge(&arrivals, MINUTE, LIMIT, &mut log, judge::decider(limiter));
            tally.add(verdicts, reference.admitted);
        }
    }
    Report { args, exact, rows: limiters.into_iter().zip(tallies).collect(), over_sources, over_requests }
}

/// Renders the report as a markdown table with a one-line summary above it.
fn render(report: &Report) -> String {
    let a = report.args;
    let requests = report.exact.total.requests;
    let share = |n: u64| 100.0 * n as f64 / requests.max(1) as f64;
    let mut out = format!(
        "seed {}, {} sources, σ = {}, median demand {} × limit, {} min, limit {LIMIT}/min: {} requests; demand \
         above the limit for {} sources ({:.1}%), sending {:.1}% of requests; the exact log admits {:.1}%\n\n",
        a.seed,
        grouped(a.sources),
        a.sigma,
        a.demand,
        a.minutes,
        grouped(requests),
        grouped(report.over_sources),
        100.0 * report.over_sources as f64 / a.sources as f64,
        share(report.over_requests),
        share(report.exact.total.admitted),
    );
    out.push_str(
        "| algorithm | admitted | vs exact log | wrong allows | wrong denies | worst 60 s window | mean rate error |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    let exact_admitted = report.exact.total.admitted;
    let rows = std::iter::once(("exact log (reference)", &report.exact))
        .chain(report.rows.iter().map(|(limiter, tally)| (limiter.algorithm_name(), tally)));
    for (name, tally) in rows {
        let t = &tally.total;
        let ratio = 100.0 * (t.admitted as f64 / exact_admitted.max(1) as f64 - 1.0);
        out.push_str(&format!(
            "| {name} | {} | {ratio:+.2}% | {:.3}% | {:.3}% | {} | {:.2}% |\n",
            grouped(t.admitted),
            share(t.wrong_allows),
            share(t.wrong_denies),
            t.worst_window,
            100.0 * tally.mean_rate_error(),
        ));
    }
    out
}

/// Formats `n` with thousands separators.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() -> ExitCode {
    match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => {
            print!("{}", render(&run(args)));
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Args {
        Args { seed: 3, sources: 60, sigma: 1.0, minutes: 3, demand: 1.0 }
    }

    #[test]
    fn a_small_run_keeps_every_algorithm_within_its_bound() {
        let report = run(small());
        let exact = &report.exact.total;
        assert!(exact.requests > 0);
        assert_eq!((exact.wrong_allows, exact.wrong_denies), (0, 0));
        assert!(exact.worst_window <= LIMIT);
        for (limiter, tally) in &report.rows {
            let t = &tally.total;
            assert_eq!(t.requests, exact.requests);
            let bound = match limiter {
                Limiter::SlidingWindow(_) => {
                    assert_eq!(t.wrong_allows, 0);
                    LIMIT
                }
                Limiter::WindowCounter(wc) => wc.max_per_window(),
                // A full burst plus one refill every 600 ms of the other 59.999... s.
                Limiter::TokenBucket(_) => 2 * LIMIT - 1,
                Limiter::FixedWindow(_) => 2 * LIMIT,
            };
            assert!(t.worst_window <= bound, "{}: {}", limiter.algorithm_name(), t.worst_window);
        }
    }

    #[test]
    fn the_same_arguments_print_the_same_table() {
        let table = render(&run(small()));
        assert_eq!(table, render(&run(small())));
        assert!(table.contains("| window_counter |"), "{table}");
        assert_ne!(table, render(&run(Args { seed: 4, ..small() })));
    }

    #[test]
    fn arguments_are_validated_naming_the_flag() {
        let parse = |s: &str| Args::parse(s.split_whitespace().map(String::from));
        assert_eq!(parse(""), Ok(Some(Args::default())));
        assert_eq!(parse("--sigma 0.5 --seed 9"), Ok(Some(Args { sigma: 0.5, seed: 9, ..Args::default() })));
        assert_eq!(parse("--help"), Ok(None));
        assert!(parse("--sigma 4").unwrap_err().contains("--sigma"));
        assert!(parse("--sources 0").unwrap_err().contains("--sources"));
        assert!(parse("--minutes x").unwrap_err().contains("--minutes"));
        assert!(parse("--demand 0").unwrap_err().contains("--demand"));
        assert!(parse("--demand NaN").unwrap_err().contains("--demand"));
        assert!(parse("--seed").unwrap_err().contains("needs a value"));
        assert!(parse("--limit 5").unwrap_err().contains("unknown"));
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(999), "999");
    }
}
