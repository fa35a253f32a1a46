"""The package against a real three-node cluster (``quorate serve`` processes started by the fixtures in
``conftest.py``): tiers spend exactly their limits, exact totals from concurrent tasks spread over all nodes, the
middleware's 429 end to end, check_many's batches (each item its own decision or error), reserve-then-settle with
refunds, failover when the node the client talks to is killed with SIGKILL, and 503 when every node is down. Each
test uses keys of its own. Lease mode is in ``test_cluster_leases.py``."""

from __future__ import annotations

import time
import uuid

import anyio
import httpx
import pytest
from fastapi import FastAPI

from cluster import Cluster
from quorate import AsyncClient, CheckItem, Client, Decision, InvalidArgument, Source, Unavailable
from quorate.asgi import RateLimitMiddleware

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]


def fresh(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize(
    ("prefix", "policy", "limit"), [("free_", "free", 10), ("pro_", "pro", 50), ("t_", "team", 30)]
)
async def test_each_tier_admits_exactly_its_limit(cluster: Cluster, prefix: str, policy: str, limit: int) -> None:
    key = {"api_key": fresh(prefix)}
    async with AsyncClient(cluster.endpoints) as client:
        decisions = [await client.check(key) for _ in range(limit + 3)]
    assert [d.allowed for d in decisions] == [True] * limit + [False] * 3
    assert [d.remaining for d in decisions[:limit]] == list(range(limit - 1, -1, -1))
    assert {(d.policy, d.limit, d.source, d.degraded) for d in decisions} == {(policy, limit, Source.CLUSTER, False)}
    assert all(d.retry_after > 0 and d.remaining == 0 for d in decisions[limit:])


async def test_concurrent_tasks_spread_over_all_nodes_admit_exactly_the_limit_in_total(cluster: Cluster) -> None:
    # One client per node, without leader discovery: followers forward, so every node takes part.
    key = {"shared": fresh("run-")}
    clients = [AsyncClient([endpoint], discover_leader=False) for endpoint in cluster.endpoints]
    attempts_per_task = 5
    results: list[Decision] = []

    async def task(client: AsyncClient) -> None:
        for _ in range(attempts_per_task):
            results.append(await client.check(key))

    try:
        async with anyio.create_task_group() as group:
            for i in range(64):
                group.start_soon(task, clients[i % 3])
        after = await clients[0].peek(key)
    finally:
        for client in clients:
            await client.close()
    assert len(results) == 64 * attempts_per_task
    assert sum(d.allowed for d in results) == 200
    # Each allowed decision saw a distinct remaining count: no unit was handed out twice.
    assert sorted(d.remaining for d in results if d.allowed) == list(range(200))
    assert (after.allowed, after.remaining) == (False, 0)


async def test_check_many_spends_exactly_the_limit_across_batches_in_flight_together(cluster: Cluster) -> None:
    key = {"api_key": fresh("free_")}
    # Seven CheckBatch calls of at most four checks, up to three in flight at once.
    async with AsyncClient(cluster.endpoints, max_concurrency=3, max_batch=4) as client:
        results = await client.check_many([key] * 25)
        peek = await client.peek(key)
    assert all(isinstance(result, Decision) for result in results)
    assert sum(result.allowed for result in results if isinstance(result, Decision)) == 10
    assert sorted(r.remaining for r in results if isinstance(r, Decision) and r.allowed) == list(range(10))
    assert (peek.allowed, peek.remaining) == (False, 0)


async def test_check_many_gives_a_bad_item_its_own_error_and_decides_the_others(cluster: Cluster) -> None:
    free, pro = fresh("free_"), fresh("pro_")
    items: list[CheckItem | dict[str, str]] = [
        *[{"api_key": free}] * 6,
        {"nope": "no-rule-for-this"},
        CheckItem({"api_key": pro}, cost=51),
        {},
        CheckItem({"api_key": pro}, cost=5),
        *[{"api_key": free}] * 6,
    ]
    async with AsyncClient(cluster.endpoints) as client:
        results = await client.check_many(items)
        after = [await client.peek({"api_key": key}) for key in (free, pro)]
    kinds = [type(r).__name__ if not isinstance(r, Decision) else r.allowed for r in results]
    assert kinds == [True] * 6 + ["InvalidArgument"] * 3 + [True] + [True] * 4 + [False] * 2
    bad_dimension, too_costly, empty = results[6:9]
    assert isinstance(bad_dimension, InvalidArgument) and "nope" in bad_dimension.message
    assert isinstance(too_costly, InvalidArgument) and "exceeds the limit" in too_costly.message
    assert isinstance(empty, InvalidArgument)
    # One batch, decided in item order: free spends 10 of its 10, pro 5 of its 50 (the bad items charge nothing).
    free_remaining = [r.remaining for r in results[:6] + results[10:] if isinstance(r, Decision)]
    assert free_remaining == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0]
    assert isinstance(results[9], Decision) and (results[9].policy, results[9].remaining) == ("pro", 45)
    assert [(p.policy, p.remaining) for p in after] == [("free", 0), ("pro", 45)]


async def test_the_middleware_admits_up_to_the_limit_then_answers_429_with_the_headers(cluster: Cluster) -> None:
    api_key = fresh("free_")
    async with AsyncClient(cluster.endpoints) as client:
        app = FastAPI()
        app.add_middleware(RateLimitMiddleware, client=client)

        @app.get("/v1/chat")
        async def chat() -> dict[str, str]:
            return {"reply": "ok"}

        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
            answers = [await api.get("/v1/chat", headers={"x-api-key": api_key}) for _ in range(11)]
        peek = await client.peek({"api_key": api_key})

    assert [a.status_code for a in answers] == [200] * 10 + [429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == [str(n) for n in range(9, -1, -1)] + ["0"]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {"10"}
    # w= is the policy's window: one hour.
    assert {a.headers["ratelimit-policy"] for a in answers} == {'"free";q=10;w=3600'}
    denied = answers[-1]
    retry_after = int(denied.headers["retry-after"])
    # The 10 units leave the window with their bucket: an hour plus up to one bucket (1 min) from now.
    assert 3540 <= retry_after <= 3660, retry_after
    assert denied.headers["ratelimit"].startswith('"free";r=0;t=')
    assert denied.json() == {
        "error": "rate_limit_exceeded",
        "message": f"rate limit exceeded (policy free); retry in {retry_after} s",
        "retry_after": retry_after,
    }
    # The denial consumed nothing: a peek still sees zero left, not less.
    assert (peek.allowed, peek.remaining) == (False, 0)


async def test_refunds_give_units_back_and_load_reports_are_accepted(cluster: Cluster) -> None:
    key = {"api_key": fresh("free_")}
    async with AsyncClient(cluster.endpoints) as client:
        # Reserve-then-settle: reserve 8 units, the real cost was 3, give 5 back.
        assert (await client.check(key, cost=8)).remaining == 2
        await client.refund(key, 5)
        assert (await client.check(key, cost=7)).allowed
        assert not (await client.check(key)).allowed
        assert await client.report_load("llm_latency_p95_ms", 0.2, ttl=5) == pytest.approx(0.2)
        status = await client.status()
    assert status.leader_id != 0 and len(status.members) == 3


async def test_the_blocking_client_decides_against_the_cluster(cluster: Cluster) -> None:
    key = {"agent_id": fresh("agent-")}

    def spend() -> list[int | None]:
        with Client(cluster.endpoints) as client:
            return [client.check(key).remaining for _ in range(3)]

    assert await anyio.to_thread.run_sync(spend) == [99, 98, 97]


async def test_checks_fail_over_when_the_node_the_client_talks_to_is_killed(own_cluster: Cluster) -> None:
    agent = {"agent_id": "failover-test"}
    async with AsyncClient(own_cluster.endpoints, deadline=5.0) as client:
        first = await client.check(agent)
        assert (first.allowed, first.source, first.remaining) == (True, Source.CLUSTER, 99)
        assert client.leader is not None
        talked_to = own_cluster.node_of(client.leader)

        own_cluster.kill(talked_to)
        for i in range(10):
            start = time.monotonic()
            decision = await client.check(agent)
            elapsed = time.monotonic() - start
            assert elapsed < 5.0, f"check {i} took {elapsed:.2f} s"
            assert (decision.allowed, decision.source, decision.degraded) == (True, Source.CLUSTER, False)
            # A leader change never refunds quota: the count continues.
            assert decision.remaining == 98 - i
        assert client.leader is not None and own_cluster.node_of(client.leader) != talked_to
    assert own_cluster.wait_ready() != talked_to


async def test_every_node_down_fails_closed_with_a_503_within_the_deadline(own_cluster: Cluster) -> None:
    async with AsyncClient(own_cluster.endpoints, deadline=1.0) as client:
        app = FastAPI()
        app.add_middleware(RateLimitMiddleware, client=client)

        @app.get("/v1/chat")
        async def chat() -> dict[str, str]:
            return {"reply": "ok"}

        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
            assert (await api.get("/v1/chat", headers={"x-api-key": "free_down"})).status_code == 200
            for node in own_cluster.running():
                own_cluster.kill(node)
            start = time.monotonic()
            answer = await api.get("/v1/chat", headers={"x-api-key": "free_down"})
            elapsed = time.monotonic() - start
        with pytest.raises(Unavailable):
            await client.check({"api_key": "free_down"})
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")
    assert answer.json() == {
        "error": "rate_limiter_unavailable",
        "message": "the rate limiter could not be reached; retry shortly",
        "retry_after": 1,
    }
    assert 1.0 <= elapsed < 3.0, elapsed
