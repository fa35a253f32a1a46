"""Lease mode (``leases=True``) of both clients against a fake node that grants leases: which checks ask for
leases and which are decided in process, what their decisions and the middleware's headers say, peeks, leases
given back with the ask that renews them, the returns task, ``close()`` giving everything back, and a client
without lease mode never asking."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import anyio
import grpc
import httpx
import pytest
from fastapi import FastAPI

from conftest import StartNode
from fakes import SECOND, FakeNode, dead_addr, limit, pb, response
from quorate import (
    AsyncClient,
    Client,
    ClientClosed,
    Decision,
    Descriptor,
    FailureMode,
    InvalidArgument,
    Source,
    Unavailable,
)
from quorate.asgi import RateLimitMiddleware

pytestmark = pytest.mark.anyio

KEY = {"api_key": "agent_42"}
LIMIT = 200


@dataclass
class LeasingLimit:
    """One key's limit as a node keeps it: checks and grants charge it, returns (with an ask, before the check,
    or by ``ReturnLeases``) give unused units back, once per lease."""

    remaining: int = LIMIT
    valid_for_ns: int = 10 * SECOND
    next_id: int = 0
    granted: dict[int, int] = field(default_factory=dict)
    #: Answers the next this many checks with INVALID_ARGUMENT, applying nothing.
    refuse: int = 0

    def __call__(self, request: pb.CheckRequest) -> pb.CheckResponse | tuple[grpc.StatusCode, str]:
        if self.refuse:
            self.refuse -= 1
            return grpc.StatusCode.INVALID_ARGUMENT, "refused by the test"
        self.give_back(request.lease.returns)
        cost = max(request.cost, 1)
        allowed = self.remaining >= cost
        if allowed and not request.peek:
            self.remaining -= cost
        answer = response(limit("agent", allowed, LIMIT, self.remaining, 30 * SECOND, 0 if allowed else SECOND))
        if allowed and not request.peek and request.HasField("lease") and request.lease.units:
            units = min(request.lease.units, self.remaining)
            self.remaining -= units
            self.next_id += 1
            self.granted[self.next_id] = units
            status = limit("agent", True, LIMIT, self.remaining, 30 * SECOND, 0)
            answer.grants.append(
                pb.LeaseGrant(
                    lease_id=self.next_id, descriptor=0, units=units, valid_for_ns=self.valid_for_ns, status=status
                )
            )
        return answer

    def give_back(self, returns: Iterable[pb.LeaseReturn]) -> None:
        """Applies returns (once each, as the cluster does)."""
        for returned in returns:
            if self.granted.pop(returned.lease_id, None) is not None:
                self.remaining += returned.unused

    def take_back(self, node: FakeNode) -> None:
        """Applies the returns the node received by ``ReturnLeases``."""
        for request in node.requests("ReturnLeases"):
            self.give_back(request.returns)  # type: ignore[attr-defined]


def returns(node: FakeNode) -> list[tuple[int, int]]:
    """The leases given back by ``ReturnLeases`` calls."""
    return sorted(
        (r.lease_id, r.unused)
        for request in node.requests("ReturnLeases")
        for r in request.returns  # type: ignore[attr-defined]
    )


def returned_with_asks(node: FakeNode) -> list[list[tuple[int, int]]]:
    """The leases each ``Check`` gave back with its ask (an empty list for a check without one)."""
    return [
        [(r.lease_id, r.unused) for r in request.lease.returns]  # type: ignore[attr-defined]
        for request in node.requests("Check")
    ]


async def test_hot_keys_ask_for_leases_and_are_then_decided_in_process(nodes: StartNode) -> None:
    key = LeasingLimit()
    node = await nodes(key)
    async with AsyncClient([node.url], discover_leader=False, leases=True) as client:
        assert client.leases
        decisions = [await client.check(KEY) for _ in range(8)]
        holder = client._leases.holder if client._leases else 0
    assert [d.source for d in decisions] == [Source.CLUSTER] * 2 + [Source.LEASE] * 3 + [Source.CLUSTER] + [
        Source.LEASE
    ] * 2
    # Exactly what strict checks would have said: this client is the key's only holder.
    assert [d.remaining for d in decisions] == list(range(199, 191, -1))
    assert all(d.allowed and not d.degraded and d.policy == "agent" and d.limit == LIMIT for d in decisions)
    asks = [(r.HasField("lease"), r.lease.units) for r in node.requests("Check")]  # type: ignore[attr-defined]
    # Seen once: cold, no ask; seen twice: 3 units; seen six times (the lease ran out): ceil(6/2)*3 = 9.
    assert asks == [(False, 0), (True, 3), (True, 9)]
    assert {r.lease.holder for r in node.requests("Check")[1:]} == {holder}  # type: ignore[attr-defined]
    assert holder >= 1 << 63
    # The used-up first lease went back with the ask that renewed it, not later; close() gave back the 7 unused
    # units of the second.
    assert returned_with_asks(node) == [[], [], [(1, 0)]]
    assert returns(node) == [(2, 7)]
    key.take_back(node)
    assert key.remaining == LIMIT - 8


async def test_a_lease_too_small_for_a_check_goes_back_with_its_ask_before_the_renewal(nodes: StartNode) -> None:
    key = LeasingLimit()
    node = await nodes(key)
    async with AsyncClient([node.url], discover_leader=False, leases=True) as client:
        await client.check(KEY)
        await client.check(KEY)
        assert (await client.check(KEY)).source is Source.LEASE
        # 2 units left, the check costs 3: it goes to the cluster and gives the lease back with the ask.
        costly = await client.check(KEY, cost=3)
        assert client._leases is not None
        assert client._leases.held(time.monotonic_ns()) == {Descriptor("api_key", "agent_42"): 18}
    assert (costly.source, costly.remaining) == (Source.CLUSTER, LIMIT - 2 - 1 - 3)
    assert returned_with_asks(node) == [[], [], [(1, 2)]]
    assert [r.lease.units for r in node.requests("Check")] == [0, 3, 18]  # type: ignore[attr-defined]
    # Given back once: close() returns only the renewal.
    assert returns(node) == [(2, 18)]
    key.take_back(node)
    assert key.remaining == LIMIT - 6


async def test_returns_of_a_check_that_fails_go_back_by_return_leases(nodes: StartNode) -> None:
    key = LeasingLimit()
    node = await nodes(key)
    async with AsyncClient([node.url], discover_leader=False, leases=True) as client:
        await client.check(KEY)
        await client.check(KEY)
        assert (await client.check(KEY)).source is Source.LEASE
        key.refuse = 1
        with pytest.raises(InvalidArgument):
            await client.check(KEY, cost=3)
        assert client._leases is not None and client._leases.held(time.monotonic_ns()) == {}
    # The refused check applied nothing, its returns included: ReturnLeases (the returns task's or close()'s)
    # gave the lease back.
    assert returned_with_asks(node)[-1] == [(1, 2)]
    assert returns(node) == [(1, 2)]
    key.take_back(node)
    assert key.remaining == LIMIT - 3


async def test_a_client_without_lease_mode_never_asks(nodes: StartNode) -> None:
    node = await nodes(LeasingLimit())
    async with AsyncClient([node.url], discover_leader=False) as client:
        assert not client.leases
        decisions = [await client.check(KEY) for _ in range(10)]
    assert {d.source for d in decisions} == {Source.CLUSTER}
    assert [r.HasField("lease") for r in node.requests("Check")] == [False] * 10  # type: ignore[attr-defined]
    assert node.count("ReturnLeases") == 0


async def test_peeks_never_spend_from_nor_ask_for_leases(nodes: StartNode) -> None:
    key = LeasingLimit()
    node = await nodes(key)
    async with AsyncClient([node.url], discover_leader=False, leases=True) as client:
        for _ in range(2):
            await client.check(KEY)
        assert client._leases is not None
        held = client._leases.held(time.monotonic_ns())
        peeks = [await client.peek(KEY) for _ in range(3)]
        assert client._leases.held(time.monotonic_ns()) == held
        assert (await client.check(KEY)).source is Source.LEASE
    assert {(p.source, p.remaining) for p in peeks} == {(Source.CLUSTER, 195)}
    peeks_sent = [r for r in node.requests("Check") if r.peek]  # type: ignore[attr-defined]
    assert [r.HasField("lease") for r in peeks_sent] == [False] * 3


async def test_leases_that_expire_go_back_in_the_background_without_close(nodes: StartNode) -> None:
    key = LeasingLimit(valid_for_ns=300_000_000)
    node = await nodes(key)
    async with AsyncClient([node.url], discover_leader=False, leases=True) as client:
        await client.check(KEY)
        await client.check(KEY)
        assert (await client.check(KEY)).source is Source.LEASE
        deadline = time.monotonic() + 2.0
        while not node.count("ReturnLeases") and time.monotonic() < deadline:
            await anyio.sleep(0.02)
        assert returns(node) == [(1, 2)]
        assert client._leases is not None and client._leases.held(time.monotonic_ns()) == {}
        # Expired: the next check goes to the cluster again.
        assert (await client.check(KEY)).source is Source.CLUSTER
    key.take_back(node)


async def test_leases_keep_deciding_while_the_cluster_is_down_and_close_does_not_raise(nodes: StartNode) -> None:
    node = await nodes(LeasingLimit())
    client = AsyncClient([node.url], discover_leader=False, leases=True, deadline=0.3)
    await client.check(KEY)
    await client.check(KEY)
    await node.stop()
    # The lease of 3 units was charged before the cluster went away: spending it needs no call.
    assert [(await client.check(KEY)).source for _ in range(3)] == [Source.LEASE] * 3
    with pytest.raises(Unavailable):
        await client.check(KEY)
    await client.close()
    with pytest.raises(ClientClosed):
        await client.check(KEY)


async def test_leases_do_not_outlive_close_and_a_dead_cluster_does_not_fail_close() -> None:
    client = AsyncClient([dead_addr()], leases=True, deadline=0.2, failure_mode=FailureMode.OPEN)
    assert (await client.check(KEY)).source is Source.FAIL_OPEN
    await client.close()


async def test_the_blocking_client_decides_from_leases_in_the_calling_thread(nodes: StartNode) -> None:
    key = LeasingLimit()
    node = await nodes(key)

    def spend() -> list[Decision]:
        with Client([node.url], discover_leader=False, leases=True) as client:
            assert client.leases
            return [client.check(KEY) for _ in range(8)]

    decisions = await anyio.to_thread.run_sync(spend)
    assert [d.source for d in decisions].count(Source.LEASE) == 5
    assert [d.remaining for d in decisions] == list(range(199, 191, -1))
    assert node.count("Check") == 3
    # The used-up first lease went back with the renewing ask (or by the returns task, if the calling thread was
    # held up past its 100 ms), the second on close.
    with_asks = [r for asked in returned_with_asks(node) for r in asked]
    assert sorted(returns(node) + with_asks) == [(1, 0), (2, 7)]
    with Client([node.url], discover_leader=False, leases=True) as client:
        pass
    with pytest.raises(ClientClosed):
        client.check(KEY)


async def test_the_middleware_answers_leased_decisions_with_exact_headers(nodes: StartNode) -> None:
    node = await nodes(LeasingLimit())
    async with AsyncClient([node.url], discover_leader=False, leases=True) as client:
        app = FastAPI()
        app.add_middleware(RateLimitMiddleware, client=client, limit_by_ip=False)

        @app.get("/v1/chat")
        async def chat() -> dict[str, str]:
            return {"reply": "ok"}

        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
            answers = [await api.get("/v1/chat", headers={"x-api-key": "agent_42"}) for _ in range(8)]
    assert node.count("Check") == 3, "five of the eight were decided from leases"
    assert [a.status_code for a in answers] == [200] * 8
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == [str(n) for n in range(199, 191, -1)]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {"200"}
    assert {a.headers["ratelimit-policy"] for a in answers} == {'"agent";q=200;w=60'}
    # The grant said 30 s to reset: a leased decision counts down from it, rounded up.
    assert {a.headers["x-ratelimit-reset"] for a in answers} == {"30"}
    assert [a.headers["ratelimit"] for a in answers] == [f'"agent";r={n};t=30' for n in range(199, 191, -1)]
    assert all("retry-after" not in a.headers for a in answers)


async def test_a_client_closed_from_a_later_event_loop_still_gives_its_leases_back(nodes: StartNode) -> None:
    node = await nodes(LeasingLimit())
    client = AsyncClient([node.url], discover_leader=False, leases=True)

    async def spend() -> list[Source]:
        return [(await client.check(KEY)).source for _ in range(3)]

    # Two event loops in a worker thread, one after the other (this loop serves the fake node).
    sources = await anyio.to_thread.run_sync(lambda: asyncio.run(spend()))
    await anyio.to_thread.run_sync(lambda: asyncio.run(client.close()))
    assert sources == [Source.CLUSTER, Source.CLUSTER, Source.LEASE]
    assert returns(node) == [(1, 2)]


async def test_the_returns_task_follows_the_client_to_a_later_event_loop(nodes: StartNode) -> None:
    node = await nodes(LeasingLimit(valid_for_ns=300_000_000))
    client = AsyncClient([node.url], discover_leader=False, leases=True)

    async def spend() -> list[Source]:
        return [(await client.check(KEY)).source for _ in range(3)]

    async def peek_then_wait() -> None:
        await client.peek(KEY)
        deadline = time.monotonic() + 2.0
        while not node.count("ReturnLeases") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    assert await anyio.to_thread.run_sync(lambda: asyncio.run(spend())) == [Source.CLUSTER] * 2 + [Source.LEASE]
    # The first loop ended before the lease expired; a call in the next loop takes the returns task along.
    await anyio.to_thread.run_sync(lambda: asyncio.run(peek_then_wait()))
    assert returns(node) == [(1, 2)]
    await anyio.to_thread.run_sync(lambda: asyncio.run(client.close()))
