//! Leases with real `quorate serve` processes: three nodes and four API-server clients hold leases of one key
//! while demand runs at twice its limit. What they admit stays within the limit, and is at least 95% of what
//! strict mode admits of a twin key under the same demand at the same time.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use quorate_client::{Client, Descriptors, Source};
use quorate_tests::{Cluster, Nodes, check};
use tokio::task::JoinHandle;

const READY: Duration = Duration::from_secs(20);
/// Both policies: a sliding window of 100 per second (10 buckets); `leased` leases up to 10 units for 250 ms.
const LIMIT: u64 = 100;
const SECONDS: u64 = 10;

/// One allowed check: when it was sent and when its answer arrived (since the start), and whether a lease decided
/// it. The decision was made somewhere in between.
type Allowed = (Duration, Duration, bool);

/// An open-loop caller: `rate` checks per second for the run, each sent on time whatever the others' latency (a
/// slow answer does not thin the demand).
async fn paced<F, Fut>(rate: u64, start: Instant, check: F) -> Vec<Allowed>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<(bool, bool)>> + Send + 'static,
{
    let period = Duration::from_secs(1) / rate as u32;
    let mut next = start;
    let mut pending = tokio::task::JoinSet::new();
    while next < start + Duration::from_secs(SECONDS) {
        tokio::time::sleep_until(next.into()).await;
        next += period;
        let call = check();
        pending.spawn(async move {
            let sent = start.elapsed();
            let answer = call.await;
            answer.filter(|&(allowed, _)| allowed).map(|(_, leased)| (sent, start.elapsed(), leased))
        });
    }
    pending.join_all().await.into_iter().flatten().collect()
}

/// Demand at twice the limit on `dimension = shared`: four API servers (lease mode) at 25 per second each, and a
/// plain caller on each node at 34 per second (the nodes hold leases for them).
fn demand(cluster: &Cluster, dimension: &'static str, start: Instant) -> Vec<JoinHandle<Vec<Allowed>>> {
    let endpoints: Vec<String> = (1..=3).map(|id| cluster.endpoint(id)).collect();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = Client::builder(endpoints.clone()).leases(true).build().unwrap();
        tasks.push(tokio::spawn(async move {
            let key = Descriptors::new().with(dimension, "shared");
            let allowed = paced(25, start, || {
                let (client, key) = (client.clone(), key.clone());
                async move { client.check(&key, 1).await.ok().map(|d| (d.allowed, d.source == Source::Lease)) }
            })
            .await;
            client.close().await.unwrap();
            allowed
        }));
    }
    for id in 1..=3 {
        let client = cluster.client(id);
        tasks.push(tokio::spawn(async move {
            paced(34, start, || {
                let mut client = client.clone();
                async move {
                    let response = client.check(check(dimension, "shared", 1)).await.ok()?.into_inner();
                    Some((response.allowed, response.leased))
                }
            })
            .await
        }));
    }
    tasks
}

async fn collect(tasks: Vec<JoinHandle<Vec<Allowed>>>) -> Vec<Allowed> {
    let mut allowed = Vec::new();
    for task in tasks {
        allowed.extend(task.await.unwrap());
    }
    allowed.sort();
    allowed
}

/// The most allowed checks certainly decided within one second: sent at or after some send time `s` and answered
/// before `s + 1 s`.
fn busiest_second(allowed: &[Allowed]) -> (usize, Duration) {
    let mut busiest = (0, Duration::ZERO);
    for &(from, _, _) in allowed {
        let within = allowed
            .iter()
            .filter(|&&(sent, answered, _)| sent >= from && answered < from + Duration::from_secs(1))
            .count();
        busiest = busiest.max((within, from));
    }
    busiest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_and_four_clients_holding_leases_admit_at_least_95_percent_of_strict_and_never_more() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(READY).await.unwrap();
    let start = Instant::now() + Duration::from_millis(200);
    let leased_tasks = demand(&cluster, "leased", start);
    let strict_tasks = demand(&cluster, "unleased", start);
    let allowed = collect(leased_tasks).await;
    let strict = collect(strict_tasks).await;
    assert!(strict.iter().all(|&(_, _, leased)| !leased), "a policy without leases is never decided from one");
    let leased = allowed.iter().filter(|&&(_, _, leased)| leased).count();
    assert!(leased > 0, "no decision came from a lease");
    // No second holds more than the limit...
    let (most, from) = busiest_second(&allowed);
    assert!(most as u64 <= LIMIT, "{most} admitted within the second from {from:?}");
    // ...so the whole run holds at most the limit for each second it started, counted from the first check sent
    // to the last answer.
    let admitted = allowed.len() as u64;
    let span = allowed.iter().map(|&(_, answered, _)| answered).max().unwrap_or_default()
        - allowed.first().map(|&(sent, _, _)| sent).unwrap_or_default();
    let seconds = span.as_nanos().div_ceil(1_000_000_000) as u64;
    assert!(admitted <= LIMIT * seconds, "admitted {admitted} over {span:?}");
    let strict = strict.len() as u64;
    eprintln!(
        "leases admitted {admitted} ({leased} from leases; busiest second {most}), strict mode {strict}, of {} demanded",
        2 * LIMIT * SECONDS
    );
    assert!(admitted * 100 >= strict * 95, "leases admitted {admitted}, under 95% of strict mode's {strict}");
}
