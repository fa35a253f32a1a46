//! `quorate check`: sends one Check and shows the decision as an operator and as an API server would see it.
//!
//! Endpoints are tried in order; the next one is used only when a node cannot be reached or answers
//! `UNAVAILABLE` (no quorum within its deadline). Any other gRPC error is final. The HTTP headers shown are the ones
//! an API server should send for this decision: the `X-RateLimit-*` trio and the IETF draft-10 structured fields.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail};
use quorate_client::Decision;
use quorate_client::headers::rate_limit_headers;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{CheckRequest, CheckResponse, Descriptor, LimitStatus};
use serde_json::{Value, json};
use tonic::Code;

use super::connect::{connect, endpoint_list, status_line};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Arguments of `quorate check`, which sends one check and shows the decision with its HTTP rate-limit headers.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// Node to ask, as host:port or http://host:port. Repeat or comma-separate to give fallbacks, tried in order
    /// when a node is unreachable or answers UNAVAILABLE.
    #[arg(long = "endpoint", visible_alias = "endpoints", required = true, value_name = "ADDR")]
    pub endpoints: Vec<String>,
    /// A request dimension as dimension=value (e.g. api_key=agent_42); repeat for a multi-limit check.
    #[arg(long = "descriptor", short = 'd', required = true, value_name = "DIMENSION=VALUE")]
    pub descriptors: Vec<Pair>,
    /// Checks a dimension against the named policy instead of the one the rules pick, as dimension=policy.
    #[arg(long = "policy-for", value_name = "DIMENSION=POLICY")]
    pub policy_for: Vec<Pair>,
    /// Units this request costs (requests, LLM tokens, cents).
    #[arg(long, default_value_t = 1)]
    pub cost: u64,
    /// Evaluates the check without consuming anything.
    #[arg(long)]
    pub peek: bool,
    /// Prints the response as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Milliseconds allowed for connecting to a node and for its answer.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub timeout_ms: u64,
}

/// A `name=value` command-line pair, split at the first `=` (so the value may contain `=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The part before the first `=`: a dimension.
    pub name: String,
    /// The part after the first `=`.
    pub value: String,
}

impl FromStr for Pair {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (name, value) =
            raw.split_once('=').ok_or_else(|| format!("{raw:?} has no '=': expected dimension=value"))?;
        if name.trim().is_empty() {
            return Err(format!("{raw:?} has an empty dimension: expected dimension=value"));
        }
        Ok(Pair { name: name.trim().to_owned(), value: value.to_owned() })
    }
}

/// Sends the check to the first endpoint that answers and prints the decision.
///
/// # Errors
///
/// Returns an error if the arguments are invalid or no endpoint could be reached. A gRPC error (including
/// `UNAVAILABLE` from the last endpoint) is returned as exactly `<CODE>: <message>`, which `main` prints as
/// `error: <CODE>: <message>`.
pub async fn run(args: CheckArgs) -> anyhow::Result<()> {
    let urls = endpoint_list(&args.endpoints)?;
    let request = build_request(&args)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut last_failure = anyhow!("no endpoint tried");
    let mut last_unavailable = None;
    // A failed endpoint is announced as a warning only once the next one is tried: the last failure is the error.
    for (i, url) in urls.iter().enumerate() {
        if i > 0 {
            eprintln!("warning: {last_failure:#}; trying {url}");
        }
        let channel = match connect(url, timeout, timeout).await {
            Ok(channel) => channel,
            Err(err) => {
                last_failure = err;
                last_unavailable = None;
                continue;
            }
        };
        match RateLimiterClient::new(channel).check(request.clone()).await {
            Ok(response) => {
                let response = response.into_inner();
                if args.json {
                    println!("{}", response_json(&response));
                } else {
                    print!("{}", format_decision(&response));
                }
                return Ok(());
            }
            // UNAVAILABLE means this node could not reach a quorum (or the connection broke): another may.
            Err(status) if status.code() == Code::Unavailable => {
                last_failure = anyhow!("{url}: {}", status_line(&status));
                last_unavailable = Some(status);
            }
            Err(status) => return Err(anyhow!("{}", status_line(&status))),
        }
    }
    match last_unavailable {
        Some(status) => Err(anyhow!("{}", status_line(&status))),
        None => Err(last_failure.context(format!("none of {} endpoint(s) answered", urls.len()))),
    }
}

/// Builds the request: descriptors in the order given, `--policy-for` overrides applied by dimension.
fn build_request(args: &CheckArgs) -> anyhow::Result<CheckRequest> {
    let mut descriptors: Vec<Descriptor> = args
        .descriptors
        .iter()
        .map(|d| Descriptor { dimension: d.name.clone(), value: d.value.clone(), policy: String::new() })
        .collect();
    for over in &args.policy_for {
        let mut matched = false;
        for d in descriptors.iter_mut().filter(|d| d.dimension == over.name) {
            d.policy.clone_from(&over.value);
            matched = true;
        }
        if !matched {
            bail!("--policy-for {}={}: no --descriptor has dimension {:?}", over.name, over.value, over.name);
        }
    }
    let cost = u64::max(args.cost, 1);
    Ok(CheckRequest { descriptors, cost, peek: args.peek })
}

/// Formats nanoseconds as seconds with three decimals.
fn secs3(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / NANOS_PER_SEC as f64)
}

/// Formats one limit's line: policy, key, limit (and base limit if adaptive tightening changed it), remaining,
/// reset and retry-after.
fn format_limit(s: &LimitStatus) -> String {
    let mut limit = s.limit.to_string();
    if s.base_limit != s.limit {
        let _ = write!(limit, " (base {})", s.base_limit);
    }
    let verdict = if s.allowed { "allowed" } else { "denied" };
    format!(
        "{verdict} policy={} key={} limit={limit} remaining={} reset={} retry={}",
        s.policy,
        s.key,
        s.remaining,
        secs3(s.reset_after_ns),
        secs3(s.retry_after_ns)
    )
}

/// Formats a decision for a human: verdict, overall limit, each limit, degraded flag and the HTTP headers.
fn format_decision(r: &CheckResponse) -> String {
    let mut out = String::new();
    let verdict = if r.allowed { "ALLOWED" } else { "DENIED" };
    let _ = writeln!(out, "{verdict} (policy version {})", r.policy_version);
    if r.degraded {
        let _ = writeln!(out, "degraded: decided without a quorum");
    }
    let Some(overall) = &r.overall else {
        let _ = writeln!(out, "no limit applies to these descriptors");
        return out;
    };
    let _ = writeln!(
        out,
        "overall: limit={} remaining={} reset={} retry_after={}",
        overall.limit,
        overall.remaining,
        secs3(overall.reset_after_ns),
        secs3(overall.retry_after_ns)
    );
    for limit in &r.limits {
        let _ = writeln!(out, "  {}", format_limit(limit));
    }
    let _ = writeln!(out, "headers:");
    if !r.allowed {
        let _ = writeln!(out, "  HTTP/1.1 429 Too Many Requests");
    }
    for (name, value) in rate_limit_headers(&Decision::from(r)) {
        let _ = writeln!(out, "  {name}: {value}");
    }
    out
}

/// Converts one limit status to JSON with the proto field names.
fn limit_json(s: &LimitStatus) -> Value {
    json!({
        "policy": s.policy, "key": s.key, "allowed": s.allowed, "limit": s.limit, "base_limit": s.base_limit,
        "remaining": s.remaining, "reset_after_ns": s.reset_after_ns, "retry_after_ns": s.retry_after_ns,
        "window_ns": s.window_ns,
    })
}

/// Converts a response to one JSON object with the proto field names (`overall` is null if no limit applied).
fn response_json(r: &CheckResponse) -> Value {
    json!({
        "allowed": r.allowed,
        "overall": r.overall.as_ref().map(limit_json),
        "limits": r.limits.iter().map(limit_json).collect::<Vec<_>>(),
        "degraded": r.degraded,
        "policy_version": r.policy_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(policy: &str, limit: u64, remaining: u64, reset_ns: u64, retry_ns: u64) -> LimitStatus {
        LimitStatus {
            policy: policy.to_owned(),
            key: "api_key=agent_42".to_owned(),
            allowed: retry_ns == 0,
            limit,
            base_limit: limit,
            remaining,
            reset_after_ns: reset_ns,
            retry_after_ns: retry_ns,
            window_ns: 60 * NANOS_PER_SEC,
        }
    }

    fn args(descriptors: &[&str], policy_for: &[&str]) -> CheckArgs {
        CheckArgs {
            endpoints: vec!["127.0.0.1:7101".to_owned()],
            descriptors: descriptors.iter().map(|d| d.parse().unwrap()).collect(),
            policy_for: policy_for.iter().map(|d| d.parse().unwrap()).collect(),
            cost: 0,
            peek: true,
            json: false,
            timeout_ms: 1000,
        }
    }

    #[test]
    fn descriptors_split_at_the_first_equals_sign() {
        assert_eq!("api_key=a=b".parse::<Pair>().unwrap(), Pair { name: "api_key".into(), value: "a=b".into() });
        assert_eq!("ip=".parse::<Pair>().unwrap(), Pair { name: "ip".into(), value: String::new() });
        assert!("api_key".parse::<Pair>().unwrap_err().contains("no '='"));
        assert!("=x".parse::<Pair>().unwrap_err().contains("empty dimension"));
    }

    #[test]
    fn policy_overrides_apply_by_dimension_and_unknown_dimensions_are_rejected() {
        let request = build_request(&args(&["api_key=agent_42", "ip=10.0.0.1"], &["ip=strict"])).unwrap();
        assert_eq!(request.descriptors[0].policy, "");
        assert_eq!(request.descriptors[1].policy, "strict");
        assert_eq!(request.cost, 1);
        assert!(request.peek);
        assert!(build_request(&args(&["api_key=agent_42"], &["ip=strict"])).is_err());
    }

    #[test]
    fn human_output_shows_verdict_limits_and_429() {
        let mut s = status("free", 80, 0, 2_500_000_000, 1_000_000_000);
        s.base_limit = 100;
        let r = CheckResponse {
            allowed: false,
            overall: Some(s.clone()),
            limits: vec![s],
            degraded: true,
            policy_version: 3,
        };
        let text = format_decision(&r);
        assert!(text.starts_with("DENIED (policy version 3)\ndegraded: decided without a quorum\n"));
        assert!(text.contains("overall: limit=80 remaining=0 reset=2.500s retry_after=1.000s\n"));
        assert!(text.contains("  denied policy=free key=api_key=agent_42 limit=80 (base 100) remaining=0"));
        assert!(text.contains("  HTTP/1.1 429 Too Many Requests\n  X-RateLimit-Limit: 80\n"));
        assert!(text.ends_with("  Retry-After: 1\n"));
        assert_eq!(response_json(&r)["overall"]["base_limit"], 100);
    }
}
