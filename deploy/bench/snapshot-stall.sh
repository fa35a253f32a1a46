#!/bin/sh
# Do snapshots stall checks? Fills a fresh `quorate dev` cluster with about a million sliding-window keys (1 h,
# 60 buckets), then runs 16 callers of unary strict checks over them for 15 s each: without snapshots; with one
# node snapshotting at a time (`quorate snapshot` on nodes 1, 2, 3, ... each started when the last one finished,
# so a snapshot is being built throughout); and with all three nodes snapshotting together every 2 s (as on one
# box where LogsSinceLast fires on every node at the same index). It prints the latency summaries, the snapshot
# timings from the node log and the peak RSS. Needs a release build (`cargo build --release -p quorate-cli`);
# takes ~3.5 min.
#
#   deploy/bench/snapshot-stall.sh [data-dir]
set -eu
Q=${QUORATE:-target/release/quorate}
DIR=${1:-/tmp/quorate-snapshot-stall}
E=127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
rm -rf "$DIR"; mkdir -p "$DIR"
printf '[policies.big]\nalgorithm = "sliding_window"\nlimit = 1000000000\nperiod = "1h"\n\n[[rules]]\ndimension = "api_key"\npolicy = "big"\n' > "$DIR/policies.toml"
"$Q" dev --data-dir "$DIR/data" --policies "$DIR/policies.toml" > "$DIR/dev.log" 2>&1 &
DEV=$!
trap 'kill $DEV 2>/dev/null' EXIT
sleep 5
if ! kill -0 $DEV 2>/dev/null; then echo "quorate dev exited (ports 7101-7403 taken?):"; tail -3 "$DIR/dev.log"; exit 1; fi
"$Q" bench --endpoints $E --mode batch --batch 1000 --keys 1000000 --duration 30 --warmup 0 --concurrency 8 --key-prefix k > /dev/null
# Start from a purged log, as a cluster that has been running does: the fill left 3,000 entries of 1,000 checks,
# and a snapshot keeps the last 1,000 entries behind it, so snapshot, add 1,000+ small entries, snapshot again.
for n in 1 2 3; do "$Q" snapshot --endpoint 127.0.0.1:730$n > /dev/null; done
"$Q" bench --endpoints $E --keys 1000000 --duration 5 --warmup 0 --concurrency 16 --key-prefix k > /dev/null
for n in 1 2 3; do "$Q" snapshot --endpoint 127.0.0.1:730$n > /dev/null; done
sleep 5
B="$Q bench --endpoints $E --keys 1000000 --duration 15 --concurrency 16 --key-prefix k"
echo "== without snapshots"; $B
( n=1; while :; do "$Q" snapshot --endpoint 127.0.0.1:730$n > /dev/null 2>&1 || true; n=$((n % 3 + 1)); done ) &
ROTATING=$!
echo "== with one node at a time building a snapshot"; $B
kill $ROTATING 2>/dev/null || true; wait $ROTATING 2>/dev/null || true
sleep 15 # the last snapshot finishes
( for i in 1 2 3 4 5 6; do sleep 2; for n in 1 2 3; do "$Q" snapshot --endpoint 127.0.0.1:730$n > /dev/null 2>&1 & done; wait; done ) &
SNAPSHOTS=$!
( for i in $(seq 1 30); do ps -o rss= -p $DEV; sleep 0.5; done | sort -n | tail -1 > "$DIR/peak-rss" ) &
SAMPLER=$!
echo "== with snapshots on every node every 2 s"; $B
wait $SNAPSHOTS $SAMPLER
echo "peak RSS of the three nodes: $(cat "$DIR/peak-rss") KiB"
grep "built snapshot" "$DIR/dev.log" | tail -3 | sed 's/.*snapshot=/snapshot=/'
