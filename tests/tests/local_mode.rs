//! The `local` degraded mode's bound with real processes, real disks and real network partitions (Linux network
//! namespaces): whatever the sequence of partitions and restarts, a node admits at most its share (limit / N) of a
//! key per window on its own, and the cluster at most the limit through the log — so at most twice the limit in
//! all. Three cases, each on its own key of the `shared` policy (30 per hour, `on_no_quorum = "local"`):
//!
//! 1. the key is spent strictly, then each node in turn is cut off (a quorum present throughout);
//! 2. the key is spent strictly, then all three nodes are cut off from each other;
//! 3. one follower is cut off for good and killed with SIGKILL and restarted twice while cut off: it replays what
//!    it spent alone from its disk instead of starting from a fresh share (it used to admit a fresh share per run).
//!
//! Needs root (namespaces, veths, a bridge; `ip` from iproute2). Where namespaces cannot be created the test says
//! so and passes without running.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use quorate_tests::{NetnsCluster, Nodes, check};

const NODES: u64 = 3;
const LIMIT: u64 = 30;
const SHARE: u64 = LIMIT / NODES;
const READY: Duration = Duration::from_secs(20);
/// The node's check deadline: how long a check waits for a quorum before its degraded decision.
const CHECK_DEADLINE: &str = "500ms";
/// How long each cut lasts: well past the grace period (twice the 600 ms election timeout) before a cut-off node
/// spends locally.
const CUT: Duration = Duration::from_secs(4);
/// Callers per node while a node is cut off.
const CALLERS: usize = 4;

/// What the checks of one key got: admitted strictly, and admitted alone per node.
#[derive(Debug, Default)]
struct Admitted {
    strict: u64,
    alone: BTreeMap<u64, u64>,
}

impl Admitted {
    fn add(&mut self, other: Admitted) {
        self.strict += other.strict;
        for (node, count) in other.alone {
            *self.alone.entry(node).or_default() += count;
        }
    }

    fn total(&self) -> u64 {
        self.strict + self.alone.values().sum::<u64>()
    }
}

/// Checks `key` on each of `nodes` from [`CALLERS`] callers each, back to back, for `span`.
async fn hammer(cluster: &NetnsCluster, nodes: &[u64], key: &str, span: Duration) -> Admitted {
    let until = Instant::now() + span;
    let mut tasks = Vec::new();
    for &node in nodes {
        for _ in 0..CALLERS {
            let mut client = cluster.client(node);
            let key = key.to_owned();
            tasks.push(tokio::spawn(async move {
                let mut admitted = Admitted::default();
                while Instant::now() < until {
                    let call = client.check(check("shared", &key, 1));
                    match tokio::time::timeout(Duration::from_secs(2), call).await {
                        Ok(Ok(response)) => {
                            let response = response.into_inner();
                            match (response.allowed, response.degraded) {
                                (true, false) => admitted.strict += 1,
                                (true, true) => *admitted.alone.entry(node).or_default() += 1,
                                (false, _) => {}
                            }
                        }
                        // UNAVAILABLE, a refused connection while the node restarts, a timeout: no decision.
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                admitted
            }));
        }
    }
    let mut all = Admitted::default();
    for task in tasks {
        all.add(task.await.unwrap());
    }
    all
}

/// Spends `key` to its limit strictly, through node 1.
async fn spend(cluster: &NetnsCluster, key: &str) -> u64 {
    let mut client = cluster.client(1);
    let mut spent = 0;
    for _ in 0..LIMIT * 2 {
        let response = client.check(check("shared", key, 1)).await.unwrap().into_inner();
        assert!(!response.degraded, "the cluster is whole: {response:?}");
        spent += u64::from(response.allowed);
    }
    assert_eq!(spent, LIMIT);
    spent
}

fn assert_within_shares(case: &str, admitted: &Admitted) {
    assert!(admitted.strict <= LIMIT, "{case}: {} admitted strictly > {LIMIT}", admitted.strict);
    for (node, &alone) in &admitted.alone {
        assert!(alone <= SHARE, "{case}: node {node} admitted {alone} alone > its share {SHARE}");
    }
    assert!(admitted.total() <= 2 * LIMIT, "{case}: {} admitted in all", admitted.total());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_shares_hold_across_successive_partitions_and_restarts() {
    let mut cluster = match NetnsCluster::start(NODES, CHECK_DEADLINE) {
        Ok(cluster) => cluster,
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    cluster.wait_ready(READY).await.unwrap();

    // 1. Spent strictly, then each node cut off in turn.
    let mut turns = Admitted { strict: spend(&cluster, "turns").await, ..Admitted::default() };
    for node in 1..=NODES {
        cluster.isolate(node);
        turns.add(hammer(&cluster, &[1, 2, 3], "turns", CUT).await);
        cluster.heal(node);
        cluster.wait_ready(READY).await.unwrap();
    }
    assert_within_shares("cut off in turn", &turns);
    assert_eq!(turns.alone.len(), NODES as usize, "every node spent alone once cut off: {turns:?}");

    // 2. Spent strictly, then all three apart.
    let mut apart = Admitted { strict: spend(&cluster, "apart").await, ..Admitted::default() };
    for node in 1..=NODES {
        cluster.isolate(node);
    }
    apart.add(hammer(&cluster, &[1, 2, 3], "apart", CUT).await);
    for node in 1..=NODES {
        cluster.heal(node);
    }
    let leader = cluster.wait_ready(READY).await.unwrap();
    assert_within_shares("all apart", &apart);
    assert_eq!(apart.alone.len(), NODES as usize, "every node spent alone: {apart:?}");

    // 3. A follower cut off for good, killed and restarted twice while cut off.
    let follower = (1..=NODES).find(|&id| id != leader).unwrap();
    cluster.isolate(follower);
    let mut restarts = hammer(&cluster, &[follower], "restarts", CUT).await;
    for _ in 0..2 {
        cluster.kill(follower);
        cluster.restart(follower);
        restarts.add(hammer(&cluster, &[follower], "restarts", CUT + Duration::from_secs(1)).await);
    }
    cluster.heal(follower);
    cluster.wait_ready(READY).await.unwrap();
    assert_within_shares("restarted while cut off", &restarts);
    assert_eq!(
        restarts.alone.get(&follower).copied(),
        Some(SHARE),
        "the follower spent its whole share once, and nothing more after two restarts: {restarts:?}\n{}",
        cluster.log(follower)
    );
    eprintln!("cut off in turn: {turns:?}\nall apart: {apart:?}\nrestarted while cut off: {restarts:?}");
}
