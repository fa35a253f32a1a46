#!/usr/bin/env bash
# One sitting of the Python performance tables in clients/python/README.md, all on this machine:
#   - a release `quorate dev` (three nodes in one process, fresh data dir) and a private redis-server
#     (127.0.0.1:6399, no persistence);
#   - the package's AsyncClient at each concurrency (bench.py client), `quorate bench` (the Rust client) at the
#     same concurrency for reference, and the seed's Redis sorted-set recipe from redis.asyncio (bench.py redis);
#   - a FastAPI app served by uvicorn without and with RateLimitMiddleware, driven over HTTP (bench.py middleware),
#     and the same app driven in process through ASGI, one request at a time (bench.py asgi).
# Prints one JSON line per run (also kept in $OUT). Everything started here listens on 127.0.0.1 and is stopped by
# its PID at exit.
#
#   clients/python/scripts/bench.sh [CONCURRENCY ...]        default: 16 64
#
# Env: DURATION (10), WARMUP (2), HTTP_CONCURRENCY ("1 16"), OUT (default a temp file), QUORATE_PY_VENV (a venv
# with `pip install ./clients/python[bench]`; made under the target dir if missing).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$repo"
concs=("$@"); [ ${#concs[@]} -gt 0 ] || concs=(16 64)
DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}; HTTP_CONCURRENCY=${HTTP_CONCURRENCY:-"1 16"}
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
OUT=${OUT:-$(mktemp /tmp/quorate-py-bench.XXXXXX.jsonl)}
venv=${QUORATE_PY_VENV:-$target/py-bench-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet "$repo/clients/python[bench]"
fi
py="$venv/bin/python"
bench="$repo/clients/python/scripts/bench.py"
cargo build --release --bin quorate
quorate="$target/release/quorate"
command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }

data=$(mktemp -d /tmp/quorate-py-bench-data.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
"$quorate" dev --data-dir "$data/dev" >"$data/dev.log" 2>&1 &
pids+=("$!")
redis-server --port 6399 --bind 127.0.0.1 --save '' --appendonly no >"$data/redis.log" 2>&1 &
pids+=("$!")
endpoints=127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
for _ in $(seq 200); do grep -q "quorate dev: " "$data/dev.log" && break; sleep 0.1; done
grep -q "quorate dev: " "$data/dev.log" || { cat "$data/dev.log" >&2; exit 1; }
for _ in $(seq 100); do redis-cli -p 6399 ping >/dev/null 2>&1 && break; sleep 0.1; done

run() { "$@" | tee -a "$OUT"; }
for c in "${concs[@]}"; do
  run "$py" "$bench" client --endpoints "$endpoints" --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP"
  printf '{"target":"quorate-bench-rust","concurrency":%s,"result":' "$c" | tee -a "$OUT"
  "$quorate" bench --endpoints "$endpoints" --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" \
    --keys 10000 --key-prefix "rsbench$(date +%s%N)_" --json | tr -d '\n' | tee -a "$OUT"
  printf '}\n' | tee -a "$OUT"
  run "$py" "$bench" redis --port 6399 --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP"
done

"$py" "$bench" app --endpoints "$endpoints" --port 8011 --no-limit >"$data/app-plain.log" 2>&1 &
pids+=("$!")
"$py" "$bench" app --endpoints "$endpoints" --port 8012 >"$data/app-limited.log" 2>&1 &
pids+=("$!")
for port in 8011 8012; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
for c in $HTTP_CONCURRENCY; do
  run "$py" "$bench" middleware --url http://127.0.0.1:8011/v1/chat --label "FastAPI" \
    --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP"
  run "$py" "$bench" middleware --url http://127.0.0.1:8012/v1/chat --label "FastAPI + RateLimitMiddleware" \
    --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP"
done
run "$py" "$bench" asgi --endpoints "$endpoints" --duration "$DURATION" --warmup "$WARMUP"
echo "results: $OUT" >&2
