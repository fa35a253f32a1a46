//! `quorate check`: asks the cluster for one decision and shows it as an operator and as an API server would
//! see it.
//!
//! The check goes through quorate-client: to the leader if one is known, failing over to the other endpoints
//! when a node cannot be reached or answers `UNAVAILABLE`, within the timeout. The HTTP headers shown are the ones
//! an API server should send for this decision (quorate-client's headers module): the `X-RateLimit-*` trio and
//! the IETF draft-10 structured fields.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use anyhow::bail;
use quorate_client::headers::rate_limit_headers;
use quorate_client::{Client, Decision, Descriptor, Descriptors, LimitDecision};
use serde_json::{Value, json};

use crate::credentials::CredentialArgs;
use crate::output;

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
    /// Token and TLS files for a secured cluster.
    #[command(flatten)]
    pub credentials: CredentialArgs,
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

/// Sends the check and prints the decision.
///
/// # Errors
///
/// Returns an error if the arguments are invalid, no node answered within the timeout, or the cluster refused
/// the check (the message is the cluster's).
pub async fn run(args: CheckArgs) -> anyhow::Result<()> {
    let descriptors = build_descriptors(&args)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let client = Client::builder(args.endpoints.iter().cloned())
        .credentials(args.credentials.credentials()?)
        .connect_timeout(timeout)
        .call_timeout(timeout)
        .deadline(timeout)
        .build()?;
    let cost = args.cost.max(1);
    let decision = match args.peek {
        true => client.peek(&descriptors, cost).await?,
        false => client.check(&descriptors, cost).await?,
    };
    match args.json {
        true => output::println(decision_json(&decision))?,
        false => output::print(format_decision(&decision))?,
    }
    Ok(())
}

/// Builds the descriptors in the order given, `--policy-for` overrides applied by dimension.
fn build_descriptors(args: &CheckArgs) -> anyhow::Result<Descriptors> {
    for over in &args.policy_for {
        if !args.descriptors.iter().any(|d| d.name == over.name) {
            bail!("--policy-for {}={}: no --descriptor has dimension {:?}", over.name, over.value, over.name);
        }
    }
    let descriptors = args.descriptors.iter().fold(Descriptors::new(), |all, d| {
        let descriptor = Descriptor::new(d.name.clone(), d.value.clone());
        match args.policy_for.iter().rev().find(|over| over.name == d.name) {
            Some(over) => all.push(descriptor.with_policy(over.value.clone())),
            None => all.push(descriptor),
        }
    });
    Ok(descriptors)
}

/// Formats a duration as seconds with three decimals.
fn secs3(duration: Duration) -> String {
    format!("{:.3}s", duration.as_secs_f64())
}

/// Formats one limit's line: policy, key, limit (and base limit if adaptive tightening changed it), remaining,
/// reset and retry-after.
fn format_limit(s: &LimitDecision) -> String {
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
        secs3(s.reset_after),
        secs3(s.retry_after)
    )
}

/// Formats a decision for a human: verdict, overall limit, each limit, degraded flag and the HTTP headers.
fn format_decision(r: &Decision) -> String {
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
        secs3(overall.reset_after),
        secs3(overall.retry_after)
    );
    for limit in &r.limits {
        let _ = writeln!(out, "  {}", format_limit(limit));
    }
    let _ = writeln!(out, "headers:");
    if !r.allowed {
        let _ = writeln!(out, "  HTTP/1.1 429 Too Many Requests");
    }
    for (name, value) in rate_limit_headers(r) {
        let _ = writeln!(out, "  {name}: {value}");
    }
    out
}

/// Nanoseconds of a duration, saturating, for the JSON fields named after the proto's `*_ns` fields.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Converts one limit's decision to JSON with the proto field names.
fn limit_json(s: &LimitDecision) -> Value {
    json!({
        "policy": s.policy, "key": s.key, "allowed": s.allowed, "limit": s.limit, "base_limit": s.base_limit,
        "remaining": s.remaining, "reset_after_ns": nanos(s.reset_after), "retry_after_ns": nanos(s.retry_after),
        "window_ns": nanos(s.window),
    })
}

/// Converts a decision to one JSON object with the proto field names (`overall` is null if no limit applied).
fn decision_json(r: &Decision) -> Value {
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
    use quorate_proto::v1::{CheckResponse, LimitStatus};

    use super::*;

    const NANOS_PER_SEC: u64 = 1_000_000_000;

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
            credentials: CredentialArgs::default(),
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
        let descriptors = build_descriptors(&args(&["api_key=agent_42", "ip=10.0.0.1"], &["ip=strict"])).unwrap();
        let policies: Vec<Option<&str>> = descriptors.iter().map(|d| d.policy.as_deref()).collect();
        assert_eq!(policies, [None, Some("strict")]);
        assert!(build_descriptors(&args(&["api_key=agent_42"], &["ip=strict"])).is_err());
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
            ..Default::default()
        };
        let decision = Decision::from(&r);
        let text = format_decision(&decision);
        assert!(text.starts_with("DENIED (policy version 3)\ndegraded: decided without a quorum\n"));
        assert!(text.contains("overall: limit=80 remaining=0 reset=2.500s retry_after=1.000s\n"));
        assert!(text.contains("  denied policy=free key=api_key=agent_42 limit=80 (base 100) remaining=0"));
        assert!(text.contains("  HTTP/1.1 429 Too Many Requests\n  X-RateLimit-Limit: 80\n"));
        assert!(text.ends_with("  Retry-After: 1\n"));
        let json = decision_json(&decision);
        assert_eq!(
            (json["overall"]["base_limit"].clone(), json["overall"]["reset_after_ns"].clone()),
            (json!(100), json!(2_500_000_000u64))
        );
    }
}
