//! Cluster behaviour with real `quorate serve` processes on 127.0.0.1: exact enforcement across nodes, a killed
//! leader, a full restart, membership changes and a follower catching up. Each test owns its processes and temp
//! dir. Partition tests with network namespaces live in `partition.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use quorate_proto::v1::{AddLearnerRequest, ChangeMembershipRequest};
use quorate_tests::{Cluster, Nodes, call, check};
use tonic::Code;

const READY: Duration = Duration::from_secs(20);

/// Invariant 2: a limit of 10 admits exactly 10, whichever nodes the checks arrive at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_enforcement_across_all_three_nodes() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(READY).await.unwrap();
    let mut clients: Vec<_> = (1..=3).map(|id| cluster.client(id)).collect();
    let mut allowed = 0;
    for i in 0..30 {
        let response = call(&mut clients[i % 3], check("user", "alice", 1)).await.unwrap();
        if response.allowed {
            allowed += 1;
        }
        let overall = response.overall.unwrap();
        assert_eq!(overall.limit, 10);
        assert_eq!(overall.remaining, 10u64.saturating_sub(i as u64 + 1));
    }
    assert_eq!(allowed, 10);
}

/// Invariant 2 across a leader crash: over the whole client-side history at most `limit` is admitted, every call
/// gets a decision or a clear UNAVAILABLE, and a new leader serves within a few election timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_never_over_admits() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(READY).await.unwrap();
    let mut clients: Vec<_> = (1..=3).map(|id| (id, cluster.client(id))).collect();
    let (mut allowed, mut denied, mut unavailable) = (0, 0, 0);
    let mut killed_at = None;
    let mut first_after_kill = None;
    for i in 0..240 {
        if i == 20 {
            cluster.kill(leader);
            killed_at = Some(Instant::now());
        }
        let (id, client) = &mut clients[i % 3];
        if *id == leader && killed_at.is_some() {
            continue;
        }
        match call(client, check("agent", "planner-7", 1)).await {
            Ok(response) => {
                if killed_at.is_some() && first_after_kill.is_none() {
                    first_after_kill = killed_at.map(|t| t.elapsed());
                }
                if response.allowed { allowed += 1 } else { denied += 1 }
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "only UNAVAILABLE is acceptable: {status}");
                assert!(!status.message().is_empty());
                unavailable += 1;
            }
        }
    }
    assert!(allowed <= 50, "admitted {allowed} > limit 50 (denied {denied}, unavailable {unavailable})");
    assert!(allowed >= 40, "only {allowed} admitted: the surviving nodes stopped serving");
    let recovered = first_after_kill.expect("no decision after the leader was killed");
    assert!(recovered < Duration::from_secs(10), "first decision {recovered:?} after the kill");
}

/// Invariant 2 across a full restart: spend 4 of 10, kill all three nodes, start them again: exactly 6 more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_never_refunds_quota() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready(READY).await.unwrap();
    let mut client = cluster.client(2);
    for _ in 0..4 {
        assert!(call(&mut client, check("user", "bob", 1)).await.unwrap().allowed);
    }
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    cluster.wait_ready(READY).await.unwrap();
    let mut client = cluster.client(3);
    let mut allowed = 0;
    for _ in 0..10 {
        if call(&mut client, check("user", "bob", 1)).await.unwrap().allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 6);
}

/// Membership: add a fourth node, then remove an original one, while checks flow; no quota is lost or gained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_keep_the_state() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(READY).await.unwrap();
    let mut client = cluster.client(leader);
    let mut allowed = 0;
    for _ in 0..5 {
        allowed += u32::from(call(&mut client, check("agent", "a1", 1)).await.unwrap().allowed);
    }
    cluster.add_process(4);
    let mut admin = cluster.admin(2);
    admin
        .add_learner(AddLearnerRequest { node_id: 4, addr: cluster.addr(4), peer_addr: cluster.peer_addr(4) })
        .await
        .unwrap();
    for _ in 0..5 {
        allowed += u32::from(call(&mut client, check("agent", "a1", 1)).await.unwrap().allowed);
    }
    admin.change_membership(ChangeMembershipRequest { voters: vec![1, 2, 3, 4] }).await.unwrap();
    let remove = if leader == 1 { 2 } else { 1 };
    let voters: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|&v| v != remove).collect();
    let changed = admin.change_membership(ChangeMembershipRequest { voters }).await.unwrap().into_inner();
    assert_eq!(changed.members.iter().filter(|m| m.voter).count(), 3);
    assert!(changed.members.iter().all(|m| m.id != remove || !m.voter));
    cluster.kill(remove);
    // Node 4 serves (forwarding if it is not the leader) and sees the 10 already spent.
    let mut fourth = cluster.client(4);
    cluster.wait_applied(4, changed.log_index, READY).await.unwrap();
    for _ in 0..60 {
        allowed += u32::from(call(&mut fourth, check("agent", "a1", 1)).await.unwrap().allowed);
    }
    assert_eq!(allowed, 50);
}

/// A follower that was down while the log moved on (and was compacted into a snapshot) catches up and then
/// enforces what the others admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start_with(3, 20);
    let leader = cluster.wait_ready(READY).await.unwrap();
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    cluster.kill(follower);
    let mut client = cluster.client(leader);
    for i in 0..120 {
        call(&mut client, check("user", &format!("u{}", i % 12), 1)).await.unwrap();
    }
    let leader_status = cluster.status(leader).await.unwrap();
    assert!(leader_status.snapshot_index > 0, "the leader should have snapshotted: {leader_status:?}");
    cluster.restart(follower);
    let caught_up = cluster.wait_applied(follower, leader_status.applied_index, READY).await.unwrap();
    assert_eq!(caught_up.tracked_keys, leader_status.tracked_keys);
    // Kill the old leader: the survivors, including the caught-up follower, still deny the spent keys.
    cluster.kill(leader);
    cluster.wait_ready(READY).await.unwrap();
    let mut client = cluster.client(follower);
    let response = call(&mut client, check("user", "u3", 1)).await.unwrap();
    assert!(!response.allowed, "u3 spent its 10 before the follower came back");
}
