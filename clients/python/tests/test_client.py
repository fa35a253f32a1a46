"""The clients against fake nodes: where calls go (leader, failover), what is retried and what is raised typed,
channel reuse, deadlines, failure modes, the token metadata, and the blocking client. A real cluster losing its
leader is in ``test_cluster.py``."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import grpc
import pytest

from conftest import StartNode
from fakes import allowed, dead_addr, elect, limit, response
from quorate import (
    AsyncClient,
    CheckItem,
    Client,
    ClientClosed,
    Decision,
    FailureMode,
    InvalidArgument,
    LocalLimit,
    PermissionDenied,
    ResourceExhausted,
    RpcError,
    Source,
    Timeout,
    Unauthenticated,
    Unavailable,
)

pytestmark = pytest.mark.anyio

KEY = {"api_key": "agent_42"}


def answer_allowed(_request: object) -> object:
    return allowed()


async def test_checks_go_straight_to_the_leader_named_by_status(nodes: StartNode) -> None:
    follower, leader = await nodes(answer_allowed), await nodes(answer_allowed)
    elect([follower, leader], 1)
    async with AsyncClient([follower.url, leader.url]) as client:
        for _ in range(5):
            assert (await client.check(KEY)).allowed
        assert client.leader == leader.url
    assert (follower.count(), leader.count()) == (0, 5)


async def test_one_channel_per_node_is_reused_by_every_call(nodes: StartNode) -> None:
    leader = await nodes(answer_allowed)
    elect([leader], 0)
    async with AsyncClient([leader.url]) as client:
        for _ in range(10):
            await client.check(KEY)
            await client.peek(KEY)
        await client.check_many([KEY] * 20)
    assert leader.count() == 20
    assert [len(batch) for batch in leader.batches()] == [20]
    assert leader.connections() == 1


async def test_decisions_carry_the_nodes_answer(nodes: StartNode) -> None:
    node = await nodes(lambda _: response(limit("default", False, 60, 0, 59_000_000_001, 2_100_000_000)))
    async with AsyncClient([node.url], discover_leader=False) as client:
        decision = await client.check({"api_key": "user_1", "ip": "203.0.113.9"}, cost=3)
    assert (decision.allowed, decision.source, decision.degraded) == (False, Source.CLUSTER, False)
    assert (decision.policy, decision.limit, decision.remaining) == ("default", 60, 0)
    assert decision.retry_after == pytest.approx(2.1) and decision.retry_after_ns == 2_100_000_000
    assert decision.window == 60.0 and decision.policy_version == 1
    request = node.last().request
    assert [(d.dimension, d.value) for d in request.descriptors] == [("api_key", "user_1"), ("ip", "203.0.113.9")]
    assert (request.cost, request.peek) == (3, False)


async def test_refused_connections_fail_over_to_a_live_node(nodes: StartNode) -> None:
    live = await nodes(answer_allowed)
    async with AsyncClient([dead_addr(), live.url], discover_leader=False) as client:
        start = time.monotonic()
        for _ in range(3):
            assert (await client.check(KEY)).allowed
        assert time.monotonic() - start < 1.0
    assert live.count() == 3


async def test_unavailable_answers_are_retried_on_another_node(nodes: StartNode) -> None:
    no_quorum = await nodes(lambda _: (grpc.StatusCode.UNAVAILABLE, "no quorum"))
    other = await nodes(answer_allowed)
    elect([no_quorum, other], 0)
    async with AsyncClient([no_quorum.url, other.url]) as client:
        assert (await client.check(KEY)).allowed
    assert (no_quorum.count(), other.count()) == (1, 1)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.INTERNAL, RpcError),
    ],
)
async def test_final_statuses_are_raised_typed_without_retry(
    nodes: StartNode, code: grpc.StatusCode, error: type[Exception]
) -> None:
    # Also in fail-open mode: a refused token is a misconfiguration to surface, not an outage to admit through.
    refusing = await nodes(lambda _: (code, "descriptor 0 matches no policy rule"))
    other = await nodes(answer_allowed)
    elect([refusing, other], 0)
    async with AsyncClient([refusing.url, other.url], failure_mode=FailureMode.OPEN) as client:
        with pytest.raises(error) as raised:
            await client.check(KEY)
    assert "descriptor 0 matches no policy rule" in str(raised.value)
    assert not raised.value.unreachable  # type: ignore[attr-defined]
    assert type(raised.value) is error
    # The two auth errors are RpcErrors too, with the code, for callers that branch on it.
    if issubclass(error, RpcError):
        assert isinstance(raised.value, RpcError) and raised.value.code == code
    assert (refusing.count(), other.count()) == (1, 0)


async def test_a_timed_out_check_is_not_retried_by_default_because_it_may_have_been_charged(nodes: StartNode) -> None:
    slow = await nodes(answer_allowed, delay=2.0)
    other = await nodes(answer_allowed)
    elect([slow, other], 0)
    async with AsyncClient([slow.url, other.url], call_timeout=0.2) as client:
        with pytest.raises(Timeout) as raised:
            await client.check(KEY)
    assert raised.value.endpoint == slow.url and raised.value.unreachable
    assert other.count() == 0


async def test_timed_out_peeks_are_retried_and_checks_too_when_enabled(nodes: StartNode) -> None:
    slow = await nodes(answer_allowed, delay=2.0)
    other = await nodes(answer_allowed)
    elect([slow, other], 0)
    async with AsyncClient([slow.url, other.url], call_timeout=0.2) as client:
        assert (await client.peek(KEY)).allowed
    async with AsyncClient([slow.url, other.url], call_timeout=0.2, retry_timed_out_checks=True) as client:
        assert (await client.check(KEY)).allowed
    assert other.count() == 2


async def test_an_unreachable_cluster_fails_closed_within_the_deadline() -> None:
    async with AsyncClient([dead_addr(), dead_addr()], deadline=0.4, call_timeout=0.1) as client:
        start = time.monotonic()
        with pytest.raises(Unavailable) as raised:
            await client.check(KEY)
        elapsed = time.monotonic() - start
    assert raised.value.attempts >= 2 and raised.value.unreachable
    assert 0.4 <= elapsed < 2.0, elapsed


async def test_an_unreachable_cluster_fails_open_with_a_degraded_allow_without_limits() -> None:
    async with AsyncClient([dead_addr()], deadline=0.2, failure_mode="open") as client:
        decision = await client.check(KEY)
    assert (decision.allowed, decision.degraded, decision.source) == (True, True, Source.FAIL_OPEN)
    assert (decision.limit, decision.overall, decision.retry_after) == (None, None, 0.0)


async def test_an_unreachable_cluster_is_limited_per_key_by_the_local_fallback() -> None:
    local = LocalLimit(limit=3, period=60.0)
    async with AsyncClient([dead_addr()], deadline=0.2, failure_mode=local) as client:
        decisions = [await client.check(KEY) for _ in range(4)]
        other_key = await client.check({"api_key": "other"})
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert {(d.source, d.degraded, d.policy) for d in decisions} == {(Source.FALLBACK, True, "local")}
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    # One unit refills every 20 s; the checks themselves took part of that (each waited out its 0.2 s deadline).
    assert 18.0 < decisions[-1].retry_after <= 20.0
    assert other_key.allowed


async def test_the_failure_mode_never_hides_invalid_requests(nodes: StartNode) -> None:
    refusing = await nodes(lambda _: (grpc.StatusCode.INVALID_ARGUMENT, "bad"))
    async with AsyncClient([refusing.url], failure_mode=LocalLimit(10, 60.0), discover_leader=False) as client:
        with pytest.raises(InvalidArgument):
            await client.check(KEY)


async def test_invalid_requests_fail_before_any_call(nodes: StartNode) -> None:
    node = await nodes(answer_allowed)
    async with AsyncClient([node.url], discover_leader=False) as client:
        with pytest.raises(InvalidArgument):
            await client.check({})
        with pytest.raises(InvalidArgument):
            await client.refund(KEY, 0)
        with pytest.raises(InvalidArgument):
            await client.check(KEY, cost=-1)
        assert node.calls == []
        await client.refund(KEY, 5)
        assert await client.report_load("db_pool_utilization", 0.5, ttl=10) == 0.5
    assert (node.last("Refund").request.amount, node.last("ReportLoad").request.ttl_ms) == (5, 10_000)


async def test_a_node_that_goes_away_is_replaced_by_the_next_one(nodes: StartNode) -> None:
    first, second = await nodes(answer_allowed), await nodes(answer_allowed)
    elect([first, second], 0)
    async with AsyncClient([first.url, second.url]) as client:
        await client.check(KEY)
        assert client.leader == first.url
        second.set_status(2, 2, [(1, first.addr), (2, second.addr)])
        await first.stop()
        start = time.monotonic()
        for _ in range(3):
            assert (await client.check(KEY)).allowed
        assert time.monotonic() - start < 2.0
        assert client.leader == second.url
    assert second.count() == 3


async def test_a_refund_is_retried_when_it_was_never_sent_but_not_after_unavailable(nodes: StartNode) -> None:
    # The live node names a dead one as leader: the refund cannot connect there, is never sent, and is retried.
    live = await nodes(answer_allowed)
    live.set_status(2, 1, [(1, dead_addr()), (2, live.addr)])
    async with AsyncClient([live.url]) as client:
        await client.refund(KEY, 3)
    assert live.count("Refund") == 1

    # A node that answers UNAVAILABLE may have applied it: refunding twice would over-admit, so no retry.
    no_quorum = await nodes(lambda _: (grpc.StatusCode.UNAVAILABLE, "no quorum committed the request"))
    other = await nodes(answer_allowed)
    elect([no_quorum, other], 0)
    async with AsyncClient([no_quorum.url, other.url]) as client:
        with pytest.raises(Unavailable) as raised:
            await client.refund(KEY, 3)
    assert raised.value.attempts == 1
    assert (no_quorum.count("Refund"), other.count("Refund")) == (1, 0)


async def test_a_client_given_one_seed_fails_over_to_the_members_it_learnt(nodes: StartNode) -> None:
    seed, leader, third = await nodes(answer_allowed), await nodes(answer_allowed), await nodes(answer_allowed)
    elect([seed, leader, third], 1)
    async with AsyncClient([seed.url]) as client:
        await client.check(KEY)
        assert client.leader == leader.url
        # The seed and the leader die; the third node, which the client was never given, takes over.
        third.set_status(3, 3, [(1, seed.addr), (2, leader.addr), (3, third.addr)])
        await seed.stop()
        await leader.stop()
        assert (await client.check(KEY)).allowed
        assert client.leader == third.url
    assert third.count() == 1


async def test_a_leader_named_by_a_follower_that_has_not_noticed_its_death_is_not_cached(nodes: StartNode) -> None:
    leader, follower = await nodes(answer_allowed), await nodes(answer_allowed)
    elect([leader, follower], 0)
    async with AsyncClient([leader.url, follower.url]) as client:
        assert (await client.check(KEY)).allowed
        assert client.leader == leader.url
        await leader.stop()
        # The follower still names the dead node as leader (no election yet): the check is answered through the
        # rotation, and the stale leader is not cached.
        assert (await client.check(KEY)).allowed
        assert client.leader is None
        # Once the follower leads, the next discovery (after the gap) finds it.
        elect([leader, follower], 1)
        await anyio.sleep(0.15)
        assert (await client.check(KEY)).allowed
        assert client.leader == follower.url
    assert follower.count() == 2


async def test_check_many_returns_each_requests_decision_or_error_in_order(nodes: StartNode) -> None:
    def by_key(request: object) -> object:
        value = request.descriptors[0].value  # type: ignore[attr-defined]
        if value == "bad":
            return (grpc.StatusCode.INVALID_ARGUMENT, "no rule for bad")
        return response(limit(value, value != "denied", 10, 5, 1, 0 if value != "denied" else 7))

    node = await nodes(by_key)
    checks = [{"api_key": "a"}, CheckItem({"api_key": "bad"}, cost=2), CheckItem({"api_key": "denied"}), {}]
    async with AsyncClient([node.url], discover_leader=False) as client:
        results = await client.check_many(checks)
    assert isinstance(results[0], Decision) and results[0].allowed and results[0].policy == "a"
    assert isinstance(results[1], InvalidArgument)
    assert isinstance(results[2], Decision) and not results[2].allowed
    assert isinstance(results[3], InvalidArgument)
    # One CheckBatch call carried the three requests that have descriptors, in order; no lone Check was made.
    assert node.count("Check") == 0
    [batch] = node.batches()
    assert [(check.descriptors[0].value, check.cost, check.peek) for check in batch] == [
        ("a", 1, False),
        ("bad", 2, False),
        ("denied", 1, False),
    ]


async def test_every_call_carries_the_bearer_token(nodes: StartNode) -> None:
    node = await nodes(answer_allowed)
    elect([node], 0)
    async with AsyncClient([node.url], token="s3cret-token") as client:
        await client.check(KEY)
        await client.refund(KEY, 1)
        await client.report_load("llm_latency_p95_ms", 800)
        await client.status()
    methods = {call.method for call in node.calls}
    assert methods == {"Status", "Check", "Refund", "ReportLoad"}
    assert {call.metadata.get("authorization") for call in node.calls} == {"Bearer s3cret-token"}


async def test_the_token_comes_from_a_file_or_the_environment_and_none_means_no_header(
    nodes: StartNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = await nodes(answer_allowed)
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    monkeypatch.setenv("QUORATE_TOKEN", "from-env")
    async with AsyncClient([node.url], token_file=token_file, discover_leader=False) as client:
        await client.check(KEY)
    assert node.last().metadata.get("authorization") == "Bearer from-file"
    async with AsyncClient([node.url], discover_leader=False) as client:
        await client.check(KEY)
    assert node.last().metadata.get("authorization") == "Bearer from-env"
    monkeypatch.delenv("QUORATE_TOKEN")
    async with AsyncClient([node.url], discover_leader=False) as client:
        await client.check(KEY)
    assert "authorization" not in node.last().metadata


async def test_a_closed_client_refuses_calls() -> None:
    client = AsyncClient([dead_addr()])
    await client.close()
    with pytest.raises(ClientClosed):
        await client.check(KEY)


async def test_the_blocking_client_behaves_like_the_async_one(nodes: StartNode) -> None:
    follower, leader = await nodes(answer_allowed), await nodes(answer_allowed)
    elect([follower, leader], 1)
    # The blocking calls run in a worker thread, so that this loop keeps serving the fake nodes.
    with Client([follower.url, leader.url], token="t") as client:
        decision = await anyio.to_thread.run_sync(client.check, KEY)
        many = await anyio.to_thread.run_sync(lambda: client.check_many([KEY, KEY, {}]))
        assert client.leader == leader.url
    assert decision.allowed and decision.source is Source.CLUSTER
    assert [type(result).__name__ for result in many] == ["Decision", "Decision", "InvalidArgument"]
    assert (follower.count(), leader.count()) == (0, 1)
    assert (follower.batches(), [len(batch) for batch in leader.batches()]) == ([], [2])
    assert leader.last().metadata["authorization"] == "Bearer t"
    with pytest.raises(ClientClosed):
        client.check(KEY)


async def test_the_blocking_client_fails_closed_and_open_like_the_async_one() -> None:
    with Client([dead_addr()], deadline=0.2) as closed, pytest.raises(Unavailable):
        await anyio.to_thread.run_sync(closed.check, KEY)
    with Client([dead_addr()], deadline=0.2, failure_mode=FailureMode.OPEN) as open_:
        decision = await anyio.to_thread.run_sync(open_.check, KEY)
    assert (decision.allowed, decision.source) == (True, Source.FAIL_OPEN)
