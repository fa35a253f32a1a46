//! `quorate status`: one table of the whole cluster, as every member reports itself.
//!
//! The first reachable endpoint names the members; each member is then asked directly (in parallel, each call
//! bounded by a short timeout) so that lagging, partitioned or dead nodes show up as such rather than as the first
//! node's possibly stale view of them.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::anyhow;
use futures::future::join_all;
use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::{StatusRequest, StatusResponse};
use serde_json::{Value, json};

use quorate_client::Credentials;
use quorate_client::endpoint::{self, connect};

use crate::credentials::CredentialArgs;
use crate::grpc::status_line;
use crate::output;

/// Arguments of `quorate status`, which shows every member's view of the cluster in one table.
#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// Node to ask first, as host:port or http://host:port. Repeat or comma-separate to give fallbacks, tried in
    /// order until one answers; the members it lists are then asked directly.
    #[arg(long = "endpoint", visible_alias = "endpoints", required = true, value_name = "ADDR")]
    pub endpoints: Vec<String>,
    /// Prints a JSON array (one object per node) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Milliseconds allowed per node (connect and answer); a slower node is shown as unreachable.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub timeout_ms: u64,
    /// Token and TLS files for a secured cluster.
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

/// One row of the cluster table: a node and what it said about itself, or why it could not be asked.
#[derive(Debug, Clone)]
struct NodeRow {
    id: u64,
    addr: String,
    status: Result<StatusResponse, String>,
}

/// Asks the cluster for its status and prints the table (or JSON).
///
/// # Errors
///
/// Returns an error if the endpoints are invalid or none of them answers. Unreachable members are not errors:
/// they are rows of the table.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let credentials = args.credentials.credentials()?;
    let urls = endpoint::normalize_all(&args.endpoints, credentials.uses_tls())?;
    let credentials = &credentials;
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut first = None;
    let mut last_failure = anyhow!("no endpoint tried");
    for url in &urls {
        match ask(url, credentials, timeout).await {
            Ok(status) => {
                first = Some((url.clone(), status));
                break;
            }
            Err(err) => last_failure = err.context(format!("asking {url}")),
        }
    }
    let Some((first_url, first)) = first else {
        return Err(last_failure.context(format!("none of {} endpoint(s) answered", urls.len())));
    };
    let asks = first.members.iter().map(|m| async move {
        let status = match endpoint::normalize_for(&m.addr, credentials.uses_tls()) {
            Ok(url) => ask(&url, credentials, timeout).await.map_err(|e| short_reason(&e)),
            Err(e) => Err(e.to_string()),
        };
        NodeRow { id: m.id, addr: m.addr.clone(), status }
    });
    let mut rows = join_all(asks).await;
    // A node that is not (yet) a member, e.g. one started but never added, still reports itself.
    if !rows.iter().any(|r| r.id == first.node_id) {
        let addr = if first.addr.is_empty() { first_url } else { first.addr.clone() };
        rows.push(NodeRow { id: first.node_id, addr, status: Ok(first.clone()) });
    }
    rows.sort_by_key(|r| r.id);
    if args.json {
        let array: Vec<Value> = rows.iter().map(|r| row_json(r, first.leader_id)).collect();
        output::println(Value::Array(array))?;
    } else {
        output::print(format_args!("{}{}", format_table(&rows, first.leader_id, first.term), format_load(&first)))?;
    }
    Ok(())
}

/// Asks one node for its status, connect and call together bounded by `timeout`.
async fn ask(url: &str, credentials: &Credentials, timeout: Duration) -> anyhow::Result<StatusResponse> {
    let call = async {
        let mut client = AdminClient::new(connect(url, credentials, timeout, Some(timeout)).await?);
        let response = client.status(StatusRequest {}).await.map_err(|s| anyhow!("{}", status_line(&s)))?;
        anyhow::Ok(response.into_inner())
    };
    let answer = tokio::time::timeout(timeout, call).await;
    answer.unwrap_or_else(|_| Err(anyhow!("no answer within {} ms", timeout.as_millis())))
}

/// Says briefly why a member could not be asked: the row already shows its address, so only the root cause.
fn short_reason(err: &anyhow::Error) -> String {
    err.root_cause().to_string()
}

/// Formats the cluster table. `*` marks the leader as seen by the node first asked (`leader_id`, 0 if none);
/// each row's ROLE is what that node says about itself, so a disagreement is visible.
fn format_table(rows: &[NodeRow], leader_id: u64, term: u64) -> String {
    const HEADER: [&str; 15] = [
        "", "ID", "ADDR", "ROLE", "TERM", "COMMIT", "APPLIED", "SNAPSHOT", "POLICY", "KEYS", "CPU", "MEM", "LEASES",
        "GRANTS/S", "LEASED",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let marker = if r.id == leader_id && leader_id != 0 { "*" } else { "" };
            let mut cells = vec![marker.to_owned(), r.id.to_string(), r.addr.clone()];
            match &r.status {
                Ok(s) => cells.extend(
                    [role_cell(s)]
                        .into_iter()
                        .chain(
                            [
                                s.term,
                                s.commit_index,
                                s.applied_index,
                                s.snapshot_index,
                                s.policy_version,
                                s.tracked_keys,
                            ]
                            .map(|n| n.to_string()),
                        )
                        .chain([percent(s.cpu), percent(s.memory), s.leases_held.to_string()])
                        .chain([format!("{:.1}", s.lease_grants_per_sec), s.leased_decisions.to_string()]),
                ),
                Err(reason) => cells.push(format!("unreachable: {reason}")),
            }
            cells
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    widths[0] = 1; // the leader marker column keeps its place even when no row is marked
    for row in cells.iter().filter(|row| row.len() == HEADER.len()) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // Unreachable rows end in a free-text reason: only the columns before it take part in the alignment.
    for row in cells.iter().filter(|row| row.len() < HEADER.len()) {
        for (width, cell) in widths.iter_mut().zip(&row[..row.len() - 1]) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(HEADER.map(str::to_owned).to_vec()).chain(cells) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    match leader_id {
        0 => out.push_str("leader: unknown\n"),
        id => {
            let _ = writeln!(out, "leader: node {id} (term {term})");
        }
    }
    out
}

/// Formats a 0..1 fraction as a whole percentage.
fn percent(fraction: f64) -> String {
    format!("{:.0}%", fraction * 100.0)
}

/// Formats the adaptive-load and lease summaries as the node first asked sees them.
fn format_load(first: &StatusResponse) -> String {
    let drivers: Vec<String> = first.drivers.iter().map(|d| format!("{} {}", d.name, percent(d.value))).collect();
    let drivers = if drivers.is_empty() { "none".to_owned() } else { drivers.join(", ") };
    format!(
        "cluster load: {} -> adaptive multiplier {:.2}; signals: {drivers}\nleases outstanding in the cluster: {}\n",
        percent(first.cluster_load),
        first.multiplier,
        first.leases_outstanding
    )
}

/// Converts one row to JSON: the node's status with the proto field names, or `reachable: false` and the error.
/// A node's role as the table shows it: a leader cut off from its quorum says so, and a stopped Raft says why.
fn role_cell(s: &StatusResponse) -> String {
    match (s.role.as_str(), s.has_quorum, s.raft_error.is_empty()) {
        (_, _, false) => format!("stopped ({})", s.raft_error),
        ("leader", false, _) => "leader (no quorum)".to_owned(),
        (role, _, _) => role.to_owned(),
    }
}

fn row_json(r: &NodeRow, leader_id: u64) -> Value {
    match &r.status {
        Ok(s) => json!({
            "id": r.id, "addr": r.addr, "reachable": true, "leader": leader_id != 0 && r.id == leader_id,
            "node_id": s.node_id, "role": s.role, "has_quorum": s.has_quorum, "raft_error": s.raft_error,
            "leader_id": s.leader_id, "term": s.term,
            "commit_index": s.commit_index, "applied_index": s.applied_index, "last_log_index": s.last_log_index,
            "snapshot_index": s.snapshot_index, "policy_version": s.policy_version, "tracked_keys": s.tracked_keys,
            "leases_held": s.leases_held, "lease_grants_per_sec": s.lease_grants_per_sec,
            "leased_decisions": s.leased_decisions, "leases_outstanding": s.leases_outstanding,
            "self_addr": s.addr,
            "members": s.members.iter().map(|m| json!({"id": m.id, "addr": m.addr, "voter": m.voter}))
                .collect::<Vec<_>>(),
        }),
        Err(reason) => json!({
            "id": r.id, "addr": r.addr, "reachable": false, "leader": leader_id != 0 && r.id == leader_id,
            "error": reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use quorate_proto::v1::LoadSignal;

    use super::*;

    fn reachable(id: u64, role: &str, commit: u64) -> NodeRow {
        let status = StatusResponse {
            node_id: id,
            role: role.to_owned(),
            leader_id: 1,
            term: 7,
            commit_index: commit,
            applied_index: commit,
            policy_version: 2,
            tracked_keys: 10_000,
            addr: format!("127.0.0.1:710{id}"),
            cpu: 0.42,
            memory: 0.1,
            leases_held: 3,
            lease_grants_per_sec: 1.5,
            leased_decisions: 700,
            has_quorum: true,
            ..StatusResponse::default()
        };
        NodeRow { id, addr: format!("127.0.0.1:710{id}"), status: Ok(status) }
    }

    #[test]
    fn table_aligns_columns_marks_the_leader_and_shows_unreachable_members() {
        let rows = vec![
            reachable(1, "leader", 1234),
            reachable(2, "follower", 99),
            NodeRow { id: 3, addr: "127.0.0.1:7103".to_owned(), status: Err("connection refused".to_owned()) },
        ];
        let expected = "   ID  ADDR            ROLE      TERM  COMMIT  APPLIED  SNAPSHOT  POLICY  KEYS   CPU  MEM  LEASES  \
                        GRANTS/S  LEASED\n\
                        *  1   127.0.0.1:7101  leader    7     1234    1234     0         2       10000  42%  10%  3       \
                        1.5       700\n   \
                        2   127.0.0.1:7102  follower  7     99      99       0         2       10000  42%  10%  3       \
                        1.5       700\n   \
                        3   127.0.0.1:7103  unreachable: connection refused\n\
                        leader: node 1 (term 7)\n";
        assert_eq!(format_table(&rows, 1, 7), expected);
    }

    #[test]
    fn a_leader_without_quorum_and_a_stopped_raft_say_so() {
        let mut status = StatusResponse { role: "leader".into(), has_quorum: false, ..StatusResponse::default() };
        assert_eq!(role_cell(&status), "leader (no quorum)");
        status.raft_error = "storage error: no space left".into();
        assert_eq!(role_cell(&status), "stopped (storage error: no space left)");
    }

    #[test]
    fn load_line_names_the_multiplier_and_its_drivers() {
        let status = StatusResponse {
            cluster_load: 0.8,
            multiplier: 0.5,
            drivers: vec![LoadSignal { name: "llm_latency".to_owned(), value: 0.8 }],
            ..StatusResponse::default()
        };
        assert_eq!(
            format_load(&status),
            "cluster load: 80% -> adaptive multiplier 0.50; signals: llm_latency 80%\nleases outstanding in the cluster: 0\n"
        );
    }

    #[test]
    fn table_without_leader_marks_nothing() {
        let text = format_table(&[reachable(1, "candidate", 5)], 0, 7);
        assert!(text.lines().nth(1).unwrap().starts_with("   1 "));
        assert!(text.ends_with("leader: unknown\n"));
    }

    #[test]
    fn json_rows_say_whether_the_node_answered() {
        let down = NodeRow { id: 3, addr: "b:1".to_owned(), status: Err("timeout".to_owned()) };
        assert_eq!(
            row_json(&down, 1),
            json!({"id": 3, "addr": "b:1", "reachable": false, "leader": false, "error": "timeout"})
        );
        let up = row_json(&reachable(1, "leader", 5), 1);
        assert_eq!(
            (up["leader"].clone(), up["commit_index"].clone(), up["role"].clone()),
            (json!(true), json!(5), json!("leader"))
        );
    }
}
