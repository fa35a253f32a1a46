//! A follower whose disk fills: its Raft stops on the failed write, and `quorate serve` exits at once with an
//! error naming the cause (so that systemd restarts it) instead of staying up as a node that can decide nothing;
//! the other two keep deciding. The follower's data directory is a 16 MiB tmpfs in a mount namespace of its own
//! (`unshare -m`), filled from inside that namespace; needs root, and is skipped (saying why) elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use quorate_tests::{Cluster, Nodes, call, check};

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
