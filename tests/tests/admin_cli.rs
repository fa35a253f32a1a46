//! The operator commands (`quorate members|policies|snapshot|leader`) against real `quorate serve` processes.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use quorate_tests::{Cluster, Nodes, TEST_POLICIES, cli};
use serde_json::Value;

const READY: Duration = Duration::from_secs(20);

use cli as quorate;

fn json(args: &[&str]) -> Value {
    let (ok, stdout, stderr) = quorate(args);
    assert!(ok, "quorate {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("quorate {args:?} printed no JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_manage_members_policies_snapshots_and_the_leader_from_the_cli() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(READY).await.unwrap();
    let admin = |id: u64| cluster.admin_endpoint(id).trim_start_matches("http://").to_owned();
    let first = admin(1);

    let members = json(&["members", "list", "--endpoint", &first, "--json"]);
    assert_eq!(members.as_array().unwrap().len(), 3);
    assert_eq!(members.as_array().unwrap().iter().filter(|m| m["leader"] == true).count(), 1);

    // Policies: read, refuse a bad file with the field named, diff and apply a change with --yes.
    assert_eq!(json(&["policies", "get", "--endpoint", &first, "--json"])["version"], 1);
    let bad = cluster.dir().join("bad.toml");
    std::fs::write(&bad, "[policies.x]\nalgorithm = \"token_bucket\"\nlimit = 0\nperiod = \"1m\"\n").unwrap();
    let (ok, _, stderr) = quorate(&["policies", "validate", bad.to_str().unwrap()]);
    assert!(!ok && stderr.contains("limit"), "{stderr}");
    let next = cluster.dir().join("next.toml");
    std::fs::write(&next, TEST_POLICIES.replace("limit = 10\n", "limit = 12\n")).unwrap();
    let (ok, diff, _) = quorate(&["policies", "diff", next.to_str().unwrap(), "--endpoint", &first]);
    assert!(ok && diff.contains("-limit = 10") && diff.contains("+limit = 12"), "{diff}");
    let (ok, _, stderr) = quorate(&["policies", "set", next.to_str().unwrap(), "--endpoint", &first]);
    assert!(!ok && stderr.contains("--yes"), "without a terminal, set must ask for --yes: {stderr}");
    let applied = json(&["policies", "set", next.to_str().unwrap(), "--endpoint", &first, "--yes", "--json"]);
    assert_eq!(applied["version"], 2);

    // A snapshot on a follower, then that follower takes the lead.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let snapshot = json(&["snapshot", "--endpoint", &admin(follower), "--json"]);
    assert!(snapshot["snapshot_index"].as_u64().unwrap() >= 1);
    let elected = json(&["leader", "elect", "--endpoint", &admin(follower), "--json"]);
    assert_eq!(elected["leader_id"], follower);
    // The others learn of it with the next heartbeat.
    let asked = std::time::Instant::now();
    while json(&["leader", "--endpoint", &first, "--json"])["leader_id"] != follower {
        assert!(asked.elapsed() < Duration::from_secs(5), "node 1 never named node {follower} the leader");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A fourth node joins as a voter and leaves again.
    cluster.add_process(4);
    let (public, peer) = (cluster.addr(4), cluster.peer_addr(4));
    let added =
        json(&["members", "add", "--id", "4", "--public", &public, "--peer", &peer, "--endpoint", &first, "--json"]);
    let four = added.as_array().unwrap().iter().find(|m| m["id"] == 4).cloned().unwrap();
    assert_eq!(four["voter"], true);
    let removed = json(&["members", "remove", "--id", "4", "--endpoint", &first, "--json"]);
    assert!(removed.as_array().unwrap().iter().all(|m| m["id"] != 4), "{removed}");
    let (ok, _, stderr) = quorate(&["members", "remove", "--id", "9", "--endpoint", &first]);
    assert!(!ok && stderr.contains("not a member"), "{stderr}");
}
