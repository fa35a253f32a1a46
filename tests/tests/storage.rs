//! Storage faults with real `quorate serve` processes.
//!
//! - A follower whose disk fills: its Raft stops on the failed write, and `quorate serve` exits at once with an
//!   error naming the cause (so that systemd restarts it) instead of staying up as a node that can decide
//!   nothing; the other two keep deciding. The follower's data directory is a 16 MiB tmpfs in a mount namespace
//!   of its own (`unshare -m`), filled from inside that namespace; needs root, and is skipped (saying why)
//!   elsewhere.
//! - A follower whose snapshot file is damaged, and one whose database went back in time, refuse to start with
//!   an error naming the file and the way out, and rejoin under new ids as that error says, with no quota lost.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use quorate_tests::{Cluster, Nodes, call, check, cli};

const READY: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_disk_fills_exits_with_the_cause_and_the_others_go_on() {
    if !Command::new("unshare").args(["-m", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("skipping: cannot create a mount namespace here (needs root and util-linux's unshare)");
        return;
    }
    // Node 3 runs on its own 16 MiB tmpfs from the start; node 1 bootstraps and leads.
    let script =
        "mkdir -p '{data}' && exec unshare -m sh -c \"mount -t tmpfs -o size=16m tmpfs '{data}' && exec {serve}\"";
    let mut cluster = Cluster::start_wrapped(3, 3, script);
    let leader = cluster.wait_ready(READY).await.unwrap();
    let full = 3;
    let writer = if leader == full { 1 } else { leader };
    let data = cluster.dir().join(format!("node{full}"));
    let pid = cluster.pid(full).unwrap().to_string();
    let filled = Command::new("nsenter")
        .args(["-t", &pid, "-m", "sh", "-c"])
        .arg(format!("dd if=/dev/zero of='{}/filler' bs=64k 2>/dev/null; true", data.display()))
        .status()
        .unwrap();
    assert!(filled.success());

    // Writes through another node reach node 3, whose log append fails.
    let mut client = cluster.client(writer);
    let start = Instant::now();
    let mut i = 0;
    let exit = loop {
        if let Some(status) = cluster.exited(full) {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "node {full} with a full disk is still running");
        let _ = call(&mut client, check("agent", &format!("fill-{i}"), 1)).await;
        i += 1;
    };
    let log = cluster.log(full);
    assert!(!exit.success(), "it must exit with an error for its supervisor to restart it");
    assert!(log.contains("Raft stopped on this node") && log.contains("No space left"), "{log}");

    // The other two still decide.
    let decided = call(&mut client, check("user", "after-the-disk-filled", 1)).await.unwrap();
    assert!(decided.allowed);
}

/// Copies sled's files of a data directory (not the watermark nor the snapshot file): a backup of the database.
fn copy_database(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "raft.watermark" || name == "snapshot.qrs" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_database(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// Starts node `id` again and expects it to refuse: exits with an error naming `file` and the way out.
fn assert_refuses_to_start(cluster: &mut Cluster, id: u64, file: &str, problem: &str) {
    cluster.restart(id);
    let exit = cluster.wait_exit(id, Duration::from_secs(20));
    let log = cluster.log(id);
    assert!(exit.is_some_and(|s| !s.success()), "node {id} started on a damaged directory:\n{log}");
    let refusal = log.find("is damaged").map(|at| &log[at..]).unwrap_or_default();
    assert!(refusal.contains(file) && refusal.contains(problem), "{log}");
    assert!(refusal.contains(&format!("quorate members remove --id {id}")) && refusal.contains("new id"), "{log}");
}

/// Replaces member `old` by a new node `new` on a fresh directory, as the refusal says.
fn rejoin_under_a_new_id(cluster: &mut Cluster, leader: u64, old: u64, new: u64) {
    let admin = cluster.admin_addr(leader);
    let (ok, _, stderr) = cli(&["members", "remove", "--id", &old.to_string(), "--endpoint", &admin]);
    assert!(ok, "{stderr}");
    cluster.add_process(new);
    let (public, peer) = (cluster.addr(new), cluster.peer_addr(new));
    let (ok, _, stderr) =
        cli(&["members", "add", "--id", &new.to_string(), "--public", &public, "--peer", &peer, "--endpoint", &admin]);
    assert!(ok, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_rolled_back_followers_refuse_to_start_and_rejoin_under_new_ids() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(READY).await.unwrap();
    let (a, b) = match leader {
        1 => (2, 3),
        2 => (1, 3),
        _ => (1, 2),
    };
    let mut client = cluster.client(leader);
    for _ in 0..4 {
        assert!(call(&mut client, check("user", "spent", 1)).await.unwrap().allowed);
    }

    // A copy of b's database now, taken while it is stopped.
    let backup = cluster.dir().join("backup");
    assert!(cluster.stop(b, Duration::from_secs(10)));
    copy_database(&cluster.dir().join(format!("node{b}")), &backup);
    cluster.restart(b);
    cluster.wait_ready(READY).await.unwrap();
    // b acknowledges more entries, over more than one watermark interval (50 ms).
    for i in 0..40 {
        call(&mut client, check("user", &format!("filler-{i}"), 1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let applied = cluster.status(leader).await.unwrap().applied_index;
    for id in [a, b] {
        cluster.wait_applied(id, applied, READY).await.unwrap();
    }

    // 1. 4 KiB of garbage in a's snapshot file (the fault that made sled roll back when snapshots were blobs).
    let (ok, _, stderr) = cli(&["snapshot", "--endpoint", &cluster.admin_addr(a)]);
    assert!(ok, "{stderr}");
    assert!(cluster.stop(a, Duration::from_secs(10)));
    let snapshot = cluster.dir().join(format!("node{a}/snapshot.qrs"));
    let mut bytes = std::fs::read(&snapshot).unwrap();
    assert!(bytes.len() > 200, "a snapshot of a few keys is still over 200 bytes");
    let garbage = (bytes.len() - 100).min(4096);
    bytes[100..100 + garbage].fill(0xA5);
    std::fs::write(&snapshot, bytes).unwrap();
    assert_refuses_to_start(&mut cluster, a, "snapshot.qrs", "checksum mismatch");
    rejoin_under_a_new_id(&mut cluster, leader, a, 4);

    // 2. b's database put back to the older copy (as a sled rollback or a restored backup would).
    assert!(cluster.stop(b, Duration::from_secs(10)));
    let data = cluster.dir().join(format!("node{b}"));
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let ours = path.file_name().is_some_and(|n| n == "raft.watermark" || n == "snapshot.qrs");
        if !ours && path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else if !ours {
            std::fs::remove_file(&path).unwrap();
        }
    }
    copy_database(&backup, &data);
    assert_refuses_to_start(&mut cluster, b, "raft.watermark", "went back in time");
    rejoin_under_a_new_id(&mut cluster, leader, b, 5);

    // The cluster of the leader and the two new nodes still knows the 4 spent: 6 more, through a new node.
    cluster.wait_ready(READY).await.unwrap();
    let mut fresh = cluster.client(5);
    let mut allowed = 0;
    for _ in 0..10 {
        allowed += u32::from(call(&mut fresh, check("user", "spent", 1)).await.unwrap().allowed);
    }
    assert_eq!(allowed, 6);
}
