"""Lease mode against a real three-node cluster (the ``agent`` and ``admin`` tiers of ``cluster.py`` are
lease-enabled sliding windows): decisions from leases happen, concurrent tasks never admit more than the limit,
spent leases are renewed at once (they go back with the ask), ``close()`` gives unused units back (a strict peek
sees them), expired leases come back without ``close()``, the middleware's headers and the blocking client; and
without lease mode nothing is decided from a lease."""

from __future__ import annotations

import time
import uuid

import anyio
import httpx
import pytest
from fastapi import FastAPI

from cluster import Cluster
from quorate import AsyncClient, Client, Decision, DescriptorsLike, Source
from quorate.asgi import RateLimitMiddleware

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]

LIMIT = 200


def fresh(prefix: str) -> dict[str, str]:
    return {"api_key": f"{prefix}{uuid.uuid4().hex[:12]}"}


async def strict_remaining(cluster: Cluster, key: DescriptorsLike) -> int | None:
    """What a strict peek (a client without lease mode) sees left."""
    async with AsyncClient(cluster.endpoints) as plain:
        return (await plain.peek(key)).remaining


def held_units(client: AsyncClient) -> int:
    assert client._leases is not None
    return sum(client._leases.held(time.monotonic_ns()).values())


async def spend_concurrently(client: AsyncClient, key: DescriptorsLike, tasks: int, each: int) -> list[Decision]:
    decisions: list[Decision] = []

    async def task() -> None:
        for _ in range(each):
            decisions.append(await client.check(key))

    async with anyio.create_task_group() as group:
        for _ in range(tasks):
            group.start_soon(task)
    return decisions


async def test_concurrent_tasks_spending_the_whole_limit_from_leases_never_admit_more(cluster: Cluster) -> None:
    key = fresh("agent_")
    client = AsyncClient(cluster.endpoints, leases=True)
    try:
        decisions = await spend_concurrently(client, key, tasks=32, each=10)
        before = await strict_remaining(cluster, key)
    finally:
        await client.close()
    after = await strict_remaining(cluster, key)
    admitted = sum(d.allowed for d in decisions)
    leased = sum(d.source is Source.LEASE for d in decisions)
    assert len(decisions) == 320
    assert leased > 0, "no decision came from a lease"
    assert all(d.allowed for d in decisions if d.source is Source.LEASE)
    assert not any(d.degraded for d in decisions)
    assert admitted <= LIMIT, f"admitted {admitted} > {LIMIT}"
    # At most one holder's share (10% of the limit) can be left unspent in leases when the demand stops.
    assert admitted >= LIMIT - LIMIT // 10, f"only {admitted} admitted"
    # Once closed, every unit not admitted is back: a strict peek sees exactly the rest of the limit.
    assert after == LIMIT - admitted
    assert before is not None and before <= after


async def test_a_spent_lease_goes_back_with_the_ask_so_its_renewal_is_granted_at_once(cluster: Cluster) -> None:
    # The cluster counts a holder's leases against its share (10% of the limit here) until they come back. A spent
    # lease left for the returns task (every 100 ms) held back the renewals: about 115 of these 300 checks were
    # leased before the client gave spent leases back with the next ask; now every renewal is granted.
    key = fresh("agent_")
    async with AsyncClient(cluster.endpoints, leases=True) as client:
        decisions = [await client.check(key) for _ in range(300)]
    leased = sum(d.source is Source.LEASE for d in decisions)
    # One sequential holder spends every unit it is granted before it asks again: exactly the limit is admitted.
    assert sum(d.allowed for d in decisions) == LIMIT
    assert not any(d.degraded for d in decisions)
    assert leased >= 150, f"only {leased} of 300 decisions came from leases"
    assert await strict_remaining(cluster, key) == 0


async def test_close_gives_unused_units_back_where_a_strict_peek_sees_them(cluster: Cluster) -> None:
    key = fresh("agent_")
    client = AsyncClient(cluster.endpoints, leases=True)
    try:
        decisions = [await client.check(key) for _ in range(6)]
        held = held_units(client)
        before = await strict_remaining(cluster, key)
    finally:
        await client.close()
    after = await strict_remaining(cluster, key)
    # Cold, then hot (a lease of 3 asked with the second check), three from it, then a lease of ceil(6/2)*3 = 9.
    assert [d.source for d in decisions] == [Source.CLUSTER] * 2 + [Source.LEASE] * 3 + [Source.CLUSTER]
    assert [d.remaining for d in decisions] == [199, 198, 197, 196, 195, 194]
    assert held == 9
    assert (before, after) == (LIMIT - 6 - 9, LIMIT - 6)


async def test_expired_leases_come_back_without_close(cluster: Cluster) -> None:
    # The admin tier's leases live 250 ms; the client's returns task gives them back every 100 ms.
    key = fresh("admin_")
    async with AsyncClient(cluster.endpoints, leases=True) as client:
        decisions = [await client.check(key) for _ in range(6)]
        assert any(d.source is Source.LEASE for d in decisions)
        deadline = time.monotonic() + 3.0
        while (remaining := await strict_remaining(cluster, key)) != 1000 - 6 and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert remaining == 1000 - 6
        assert held_units(client) == 0


async def test_without_lease_mode_nothing_is_decided_from_a_lease(cluster: Cluster) -> None:
    key = fresh("agent_")
    async with AsyncClient(cluster.endpoints) as client:
        assert not client.leases and client._leases is None
        decisions = await spend_concurrently(client, key, tasks=16, each=16)
    assert {d.source for d in decisions} == {Source.CLUSTER}
    assert sum(d.allowed for d in decisions) <= LIMIT


async def test_the_middleware_with_a_lease_mode_client_sends_exact_headers(cluster: Cluster) -> None:
    api_key = fresh("agent_")["api_key"]
    sources: list[Source] = []
    async with AsyncClient(cluster.endpoints, leases=True) as client:

        class Recording:
            async def check(self, descriptors: DescriptorsLike, cost: int = 1) -> Decision:
                decision = await client.check(descriptors, cost)
                sources.append(decision.source)
                return decision

        app = FastAPI()
        app.add_middleware(RateLimitMiddleware, client=Recording(), limit_by_ip=False)

        @app.get("/v1/chat")
        async def chat() -> dict[str, str]:
            return {"reply": "ok"}

        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
            answers = [await api.get("/v1/chat", headers={"x-api-key": api_key}) for _ in range(8)]
    assert sources.count(Source.LEASE) == 5
    assert [a.status_code for a in answers] == [200] * 8
    # Leased or not, each answer says what a strict check would have: this client is the key's only holder.
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == [str(n) for n in range(199, 191, -1)]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {"200"}
    assert {a.headers["ratelimit-policy"] for a in answers} == {'"agent";q=200;w=3600'}
    assert [a.headers["ratelimit"].split(";t=")[0] for a in answers] == [f'"agent";r={n}' for n in range(199, 191, -1)]
    assert all("retry-after" not in a.headers for a in answers)


async def test_the_blocking_client_decides_from_leases_and_gives_them_back_on_close(cluster: Cluster) -> None:
    key = fresh("agent_")

    def spend() -> list[Decision]:
        with Client(cluster.endpoints, leases=True) as client:
            return [client.check(key) for _ in range(8)]

    decisions = await anyio.to_thread.run_sync(spend)
    assert [d.source for d in decisions].count(Source.LEASE) == 5
    assert [d.remaining for d in decisions] == list(range(199, 191, -1))
    assert await strict_remaining(cluster, key) == LIMIT - 8
