//! Decision cost and memory per key of every algorithm on a table of 1,000,000 keys.
//!
//! `cargo bench -p quorate-core` first prints bytes per tracked key (resident memory growth while filling a table,
//! so allocator and hash-table overhead count), then runs criterion:
//! - `hot`: checks cycling over 64 keys of the full table (state in cache);
//! - `cold`: checks on keys drawn at random from the 1,000,000 (a cache miss or two per decision).
//!
//! Every iteration is a real `LimiterTable::check_one` (or `check`) on the real table, time advancing 1 µs each.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion};
use quorate_core::{
    CalendarUnit, FixedWindow, LimitRef, Limiter, LimiterTable, SlidingWindow, TableConfig, TokenBucket, WindowCounter,
    WindowSpan,
};

const SECOND: u64 = 1_000_000_000;
const MINUTE: u64 = 60 * SECOND;
const T0: u64 = 1_795_000_000 * SECOND;
const KEYS: usize = 1_000_000;
const HOT_KEYS: usize = 64;

fn algorithms() -> Vec<(&'static str, Limiter)> {
    vec![
        ("token_bucket", TokenBucket::new(1_000, 1_000, MINUTE).unwrap().into()),
        ("sliding_window", SlidingWindow::new(1_000, MINUTE, 60).unwrap().into()),
        ("window_counter", WindowCounter::new(1_000, MINUTE).unwrap().into()),
        ("fixed_window", FixedWindow::new(1_000, WindowSpan::Calendar(CalendarUnit::Day)).unwrap().into()),
    ]
}

/// Keys shaped like real descriptors, 19-22 bytes: `api_key=agent_000042`.
fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("api_key=agent_{i:06}")).collect()
}

fn filled(limiter: Limiter, keys: &[String]) -> LimiterTable {
    filled_with(limiter, keys, TableConfig::default().sweep_per_op)
}

fn filled_with(limiter: Limiter, keys: &[String], sweep_per_op: usize) -> LimiterTable {
    let mut table = LimiterTable::new(TableConfig { max_keys: keys.len() + 1, sweep_per_op });
    for key in keys {
        table.check_one(T0, &LimitRef::new(0, limiter, key), 1).unwrap();
    }
    table
}

/// Resident set size in bytes, from /proc (Linux); 0 elsewhere.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A fixed pseudo-random walk over key indexes (xorshift64), so that runs are comparable.
struct Walk {
    state: u64,
    len: u64,
}

impl Walk {
    fn new(len: usize) -> Self {
        Walk { state: 0x2545_f491_4f6c_dd1d, len: len as u64 }
    }

    fn next(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % self.len) as usize
    }
}

fn report_memory(keys: &[String]) {
    println!("memory per tracked key ({} keys of {} bytes, resident-set growth):", keys.len(), keys[0].len());
    // Tables stay alive until the end so that each one's growth is fresh memory, not reused frees.
    let mut alive = Vec::new();
    for (name, limiter) in algorithms() {
        let before = rss();
        let table = filled(limiter, keys);
        let grown = rss().saturating_sub(before);
        println!("  {name:<15} {:>6.1} B/key", grown as f64 / keys.len() as f64);
        alive.push(table);
    }
    println!();
}

fn bench_decisions(c: &mut Criterion, keys: &[String]) {
    let mut group = c.benchmark_group("check_one");
    for (name, limiter) in algorithms() {
        // No per-check sweep here: this isolates the decision itself. `token_bucket/cold_with_sweep` below
        // adds the amortised eviction work of the default configuration.
        let mut table = filled_with(limiter, keys, 0);
        let mut now = T0;
        let mut i = 0usize;
        group.bench_function(format!("{name}/hot"), |b| {
            b.iter(|| {
                now += 1_000;
                i = (i + 1) % HOT_KEYS;
                black_box(table.check_one(now, &LimitRef::new(0, limiter, &keys[i]), 1).unwrap())
            })
        });
        let mut walk = Walk::new(keys.len());
        group.bench_function(format!("{name}/cold"), |b| {
            b.iter(|| {
                now += 1_000;
                let key = &keys[walk.next()];
                black_box(table.check_one(now, &LimitRef::new(0, limiter, key), 1).unwrap())
            })
        });
    }
    // Baseline for the cold rows: picking a random key from the 1,000,000 input strings (two cache misses of
    // the benchmark's own) and hashing it, without touching any table.
    let mut walk = Walk::new(keys.len());
    let hasher = std::hash::RandomState::new();
    group.bench_function("input_only/cold", |b| {
        b.iter(|| black_box(std::hash::BuildHasher::hash_one(&hasher, keys[walk.next()].as_str())))
    });

    let bucket: Limiter = TokenBucket::new(1_000, 1_000, MINUTE).unwrap().into();
    let mut table = filled(bucket, keys);
    let mut now = T0;
    let mut walk = Walk::new(keys.len());
    // Let every key expire once and queue the first due slot, so the bench measures the steady state.
    table.sweep(T0 + MINUTE, 1);
    group.bench_function("token_bucket/cold_with_sweep", |b| {
        b.iter(|| {
            now += 1_000;
            let key = &keys[walk.next()];
            black_box(table.check_one(now, &LimitRef::new(0, bucket, key), 1).unwrap())
        })
    });
    group.finish();

    // The general path: three limits checked atomically (key, ip, agent), as a tiered API request would.
    let mut group = c.benchmark_group("check_multi");
    let window: Limiter = SlidingWindow::new(1_000, MINUTE, 60).unwrap().into();
    let mut table = LimiterTable::new(TableConfig::default());
    let mut now = T0;
    let mut i = 0usize;
    group.bench_function("three_limits/hot", |b| {
        b.iter(|| {
            now += 1_000;
            i = (i + 1) % HOT_KEYS;
            let limits = [
                LimitRef::new(0, bucket, &keys[i]),
                LimitRef::new(1, window, &keys[i + HOT_KEYS]),
                LimitRef::new(2, window, &keys[i + 2 * HOT_KEYS]),
            ];
            black_box(table.check(now, &limits, 1).unwrap())
        })
    });
    group.finish();

    // Snapshot cost: what a Raft snapshot of a 100,000-key table takes to build.
    let small = filled(bucket, &keys[..100_000]);
    c.bench_function("snapshot/token_bucket_100k_keys", |b| {
        b.iter_batched(|| (), |()| black_box(small.snapshot()), BatchSize::SmallInput)
    });
}

fn main() {
    let keys = keys(KEYS);
    if std::env::args().all(|a| a != "--list") {
        report_memory(&keys);
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_decisions(&mut criterion, &keys);
    criterion.final_summary();
}
