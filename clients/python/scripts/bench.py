#!/usr/bin/env python3
"""Closed-loop load from Python, one JSON line per run: the package's AsyncClient, the seed's Redis recipe driven
with redis.asyncio, and a FastAPI app with and without RateLimitMiddleware.

    bench.py client     --endpoints 127.0.0.1:7101,... --concurrency 16 --duration 10
    bench.py redis      --port 6399 --concurrency 16 --duration 10
    bench.py middleware --url http://127.0.0.1:8011/v1/chat --concurrency 16 --duration 10
    bench.py asgi       --endpoints ... --duration 10       (one request at a time through ASGI, in process)
    bench.py app        --endpoints ... --port 8011 [--no-limit]    (the app the middleware run drives; uvicorn)

Each run: N asyncio tasks send, wait, record, for --warmup then --duration seconds, over --keys uniform keys;
latencies of the measured part go into the percentiles. ``scripts/bench.sh`` runs one sitting of all of them.
The redis recipe is the seed's sorted-set sliding window command for command (``../shared/bench``'s
``loadgen``): MULTI; ZREMRANGEBYSCORE key 0 now-window; ZCARD key; ZADD key now now; EXPIRE key window; EXEC, then
ZRANGE key 0 0 WITHSCORES when denied.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[int], Awaitable[bool]]


async def closed_loop(send: Send, concurrency: int, warmup: float, duration: float, keys: int) -> dict[str, Any]:
    """Runs ``concurrency`` closed loops of ``send(key_index)``; returns throughput and latency figures."""
    latencies: list[float] = []
    outcomes = {"allowed": 0, "denied": 0, "errors": 0}
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + duration

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        while True:
            sent = time.perf_counter()
            if sent >= stop:
                return
            try:
                allowed = await send(rng.randrange(keys))
                outcome = "allowed" if allowed else "denied"
            except Exception:  # counted, not hidden: the error count is part of the result
                outcome = "errors"
            done = time.perf_counter()
            if sent >= measure_from:
                latencies.append(done - sent)
                outcomes[outcome] += 1

    await asyncio.gather(*(worker(seed) for seed in range(concurrency)))
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e6, 1) if latencies else 0.0

    return {
        "concurrency": concurrency,
        "keys": keys,
        "duration_s": duration,
        "requests": len(latencies),
        "per_sec": round(len(latencies) / duration, 1),
        **outcomes,
        "latency_us": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
    }


async def bench_client(args: argparse.Namespace) -> dict[str, Any]:
    from quorate import AsyncClient

    prefix = f"pybench{time.time_ns()}_"
    async with AsyncClient(args.endpoints.split(",")) as client:
        await client.check({"api_key": f"{prefix}warm"})

        async def send(key: int) -> bool:
            return (await client.check({"api_key": f"{prefix}{key}"})).allowed

        result = await closed_loop(send, args.concurrency, args.warmup, args.duration, args.keys)
        leader = client.leader
    return {"target": "quorate-python-asyncclient", "leader": leader, **result}


async def bench_redis(args: argparse.Namespace) -> dict[str, Any]:
    import redis.asyncio as redis

    limit, window = args.limit, args.window
    pool = redis.ConnectionPool(host="127.0.0.1", port=args.port, max_connections=args.concurrency)
    conn = redis.Redis(connection_pool=pool)
    await conn.flushall()

    async def send(key: int) -> bool:
        name = f"rl:{key}"
        now = time.time()
        async with conn.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, 0, now - window)
            pipe.zcard(name)
            pipe.zadd(name, {str(now): now})
            pipe.expire(name, window)
            _, count, _, _ = await pipe.execute()
        if count >= limit:
            await conn.zrange(name, 0, 0, withscores=True)
            return False
        return True

    try:
        result = await closed_loop(send, args.concurrency, args.warmup, args.duration, args.keys)
    finally:
        await conn.aclose()
        await pool.aclose()
    return {"target": "redis-sliding-python", **result}


async def bench_middleware(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as http:

        async def send(key: int) -> bool:
            response = await http.get(args.url, headers={"x-api-key": f"admin_bench_{key}"})
            if response.status_code not in (200, 429):
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            return response.status_code == 200

        result = await closed_loop(send, args.concurrency, args.warmup, args.duration, args.keys)
    return {"target": f"http {args.label}", **result}


async def bench_asgi(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Requests through the ASGI stack in this process (no HTTP server, no sockets), one at a time: a FastAPI app
    without the middleware, with it deciding against the cluster, and with it given an in-process decision (the
    middleware's own code: identity, headers, response wrapping)."""
    import httpx
    from fastapi import FastAPI

    from quorate import AsyncClient, Decision, DescriptorsLike, LimitDecision, Source
    from quorate.asgi import RateLimitMiddleware
    from quorate.asgi.middleware import Checker

    class InProcess:
        """Answers every check at once with an allowed decision."""

        async def check(self, descriptors: DescriptorsLike, cost: int = 1) -> Decision:
            limit = LimitDecision("admin", "api_key=k", True, 1000, 1000, 999, 60_000_000, 0, 60_000_000_000)
            return Decision(True, Source.CLUSTER, False, limit, (limit,), 1)

    def make_app(client: Checker | None) -> FastAPI:
        app = FastAPI()
        if client is not None:
            app.add_middleware(RateLimitMiddleware, client=client, limit_by_ip=False)

        @app.get("/v1/chat")
        async def chat() -> dict[str, str]:
            return {"reply": "ok"}

        return app

    results = []
    clients: tuple[tuple[str, Checker | None], ...]
    async with AsyncClient(args.endpoints.split(",")) as cluster:
        clients = (
            ("FastAPI", None),
            ("FastAPI + RateLimitMiddleware (quorate dev)", cluster),
            ("FastAPI + RateLimitMiddleware (in-process decision)", InProcess()),
        )
        for label, client in clients:
            transport = httpx.ASGITransport(app=make_app(client), client=("198.51.100.7", 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:

                async def send(key: int, http: httpx.AsyncClient = http) -> bool:
                    response = await http.get("/v1/chat", headers={"x-api-key": f"admin_asgi_{key}"})
                    if response.status_code not in (200, 429):
                        raise RuntimeError(f"HTTP {response.status_code}")
                    return response.status_code == 200

                result = await closed_loop(send, 1, args.warmup, args.duration, args.keys)
            results.append({"target": f"asgi {label}", **result})
    return results


def serve_app(args: argparse.Namespace) -> None:
    """Serves the benchmark app with uvicorn: one route, with or without the middleware."""
    import uvicorn
    from fastapi import FastAPI

    from quorate import AsyncClient
    from quorate.asgi import RateLimitMiddleware

    app = FastAPI()
    if not args.no_limit:
        # Identity from the API key only: every request comes from 127.0.0.1, whose per-IP tier would deny.
        client = AsyncClient(args.endpoints.split(","))
        app.add_middleware(RateLimitMiddleware, client=client, limit_by_ip=False)

    @app.get("/v1/chat")
    async def chat() -> dict[str, str]:
        return {"reply": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("client", "redis", "middleware", "asgi"):
        sub = commands.add_parser(name)
        sub.add_argument("--concurrency", type=int, default=16)
        sub.add_argument("--duration", type=float, default=10.0)
        sub.add_argument("--warmup", type=float, default=2.0)
        sub.add_argument("--keys", type=int, default=10_000)
        if name in ("client", "asgi"):
            sub.add_argument("--endpoints", default="127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103")
        if name == "redis":
            sub.add_argument("--port", type=int, default=6399)
            sub.add_argument("--limit", type=int, default=1_000_000)
            sub.add_argument("--window", type=int, default=60)
        if name == "middleware":
            sub.add_argument("--url", required=True)
            sub.add_argument("--label", default="")
    app = commands.add_parser("app")
    app.add_argument("--endpoints", default="127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103")
    app.add_argument("--port", type=int, default=8011)
    app.add_argument("--no-limit", action="store_true", help="serve the app without the middleware")
    args = parser.parse_args(argv)
    if args.command == "app":
        serve_app(args)
        return 0
    if args.command == "asgi":
        for row in asyncio.run(bench_asgi(args)):
            print(json.dumps(row), flush=True)
        return 0
    run = {"client": bench_client, "redis": bench_redis, "middleware": bench_middleware}[args.command]
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
