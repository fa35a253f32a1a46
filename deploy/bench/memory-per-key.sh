#!/bin/sh
# Resident memory per tracked key and per node, for each algorithm, as the node process sees it: fills a fresh
# `quorate dev` cluster with about a million keys through CheckBatch and reads the RSS after the fill, after a
# snapshot on every node (log purged) and after a restart (state restored from the snapshot). Needs a release
# build (`cargo build --release -p quorate-cli`); takes ~10 min.
#
#   deploy/bench/memory-per-key.sh [data-dir]
set -eu
Q=${QUORATE:-target/release/quorate}
DIR=${1:-/tmp/quorate-memory-per-key}
E=127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
DEV=
up() {
  "$Q" dev --data-dir "$DIR/data" --policies "$DIR/policies.toml" >> "$DIR/dev.log" 2>&1 &
  DEV=$!
  for i in $(seq 1 100); do
    if ! kill -0 "$DEV" 2>/dev/null; then echo "quorate dev exited (ports 7101-7403 taken?):"; tail -3 "$DIR/dev.log"; exit 1; fi
    sleep 2
    if "$Q" status --endpoint http://127.0.0.1:7101 2>/dev/null | grep -c follower | grep -q 2; then return; fi
  done
}
down() { kill "$DEV"; wait "$DEV" 2>/dev/null || true; }
rss() { ps -o rss= -p "$DEV" | tr -d ' '; }
trap 'kill $DEV 2>/dev/null' EXIT
for algo in token_bucket sliding_window window_counter fixed_window; do
  rm -rf "$DIR"; mkdir -p "$DIR"
  case $algo in
    token_bucket) limits='limit = 100\nperiod = "1h"' ;;  # low enough that keys stay tracked for the run
    fixed_window) limits='limit = 1000000000\nperiod = "1d"' ;;
    *) limits='limit = 1000000000\nperiod = "1h"' ;;
  esac
  printf "[policies.big]\nalgorithm = \"$algo\"\n$limits\n\n[[rules]]\ndimension = \"api_key\"\npolicy = \"big\"\n" > "$DIR/policies.toml"
  up; empty=$(rss)
  "$Q" bench --endpoints $E --mode batch --batch 1000 --keys 1000000 --duration 30 --warmup 0 --concurrency 8 --key-prefix k > /dev/null
  sleep 2; full=$(rss)
  keys=$(curl -s http://127.0.0.1:7401/metrics | grep '^quorate_tracked_keys ' | cut -d' ' -f2)
  for n in 1 2 3; do "$Q" snapshot --endpoint 127.0.0.1:730$n > /dev/null; done
  sleep 2; snapped=$(rss)
  bytes=$(grep "built snapshot" "$DIR/dev.log" | tail -1 | sed 's/.*bytes=\([0-9]*\).*/\1/')
  down; up; sleep 2; restored=$(rss); down
  awk -v a=$algo -v k=$keys -v e=$empty -v f=$full -v s=$snapped -v r=$restored -v b=$bytes 'BEGIN {
    printf "%s keys=%d per key per node: after the fill %.0f B, after a snapshot %.0f B, restored %.0f B; snapshot %.0f B per key\n",
      a, k, (f-e)*1024/k/3, (s-e)*1024/k/3, (r-e)*1024/k/3, b/k }'
done
