"""``check_many`` against fake nodes: ``CheckBatch`` calls of at most ``max_batch`` checks, each item's result or
error mapped exactly as a lone check's, in order; items answered ``UNAVAILABLE`` sent again alone; the failure mode
per item when the cluster is unreachable; leader-aware routing and failover of the batch calls."""

from __future__ import annotations

import anyio
import grpc
import pytest

from conftest import StartNode
from fakes import dead_addr, elect, limit, pb, response
from quorate import (
    AsyncClient,
    CheckItem,
    Client,
    Decision,
    FailureMode,
    InvalidArgument,
    InvalidConfig,
    LocalLimit,
    QuorateError,
    ResourceExhausted,
    RpcError,
    Source,
    Unavailable,
)

pytestmark = pytest.mark.anyio


def by_value(request: pb.CheckRequest) -> pb.CheckResponse | tuple[grpc.StatusCode, str]:
    """Answers each check by its first descriptor's value: ``bad`` invalid, ``full`` a full table, ``boom`` an
    internal error, ``denied`` a denial, ``busy`` unavailable; anything else allowed, under a policy named after
    the value."""
    value = request.descriptors[0].value
    errors = {
        "bad": (grpc.StatusCode.INVALID_ARGUMENT, "no rule for bad"),
        "full": (grpc.StatusCode.RESOURCE_EXHAUSTED, "key table full"),
        "boom": (grpc.StatusCode.INTERNAL, "boom"),
        "busy": (grpc.StatusCode.UNAVAILABLE, "no quorum yet"),
    }
    if value in errors:
        return errors[value]
    denied = value == "denied"
    return response(limit(value, not denied, 10, 0 if denied else 5, 1_000, 7_000 if denied else 0))


def policies(results: list[Decision | QuorateError]) -> list[str | None]:
    return [result.policy if isinstance(result, Decision) else type(result).__name__ for result in results]


async def test_each_item_gets_what_a_lone_check_would_have_got_in_order(nodes: StartNode) -> None:
    node = await nodes(by_value)
    items = [
        {"api_key": "a"},
        {"api_key": "bad"},
        CheckItem({"api_key": "denied"}, cost=3),
        {"api_key": "full"},
        {},
        {"api_key": "boom"},
        CheckItem({"api_key": "b"}, cost=-1),
        {"api_key": "c"},
    ]
    async with AsyncClient([node.url], discover_leader=False) as client:
        many = await client.check_many(items)
        lone: list[Decision | QuorateError] = []
        for item in items:
            descriptors, cost = (item.descriptors, item.cost) if isinstance(item, CheckItem) else (item, 1)
            try:
                lone.append(await client.check(descriptors, cost))
            except QuorateError as error:
                lone.append(error)
    assert policies(many) == [
        "a",
        "InvalidArgument",
        "denied",
        "ResourceExhausted",
        "InvalidArgument",
        "RpcError",
        "InvalidArgument",
        "c",
    ]
    for got, want in zip(many, lone, strict=True):
        assert type(got) is type(want)
        if isinstance(got, Decision):
            assert got == want
        else:
            assert str(got) == str(want)
    assert isinstance(many[1], InvalidArgument) and many[1].message == "no rule for bad"
    assert isinstance(many[3], ResourceExhausted) and many[3].message == "key table full"
    assert isinstance(many[5], RpcError) and many[5].code == grpc.StatusCode.INTERNAL
    denied = many[2]
    assert isinstance(denied, Decision) and not denied.allowed and denied.retry_after_ns == 7_000
    # The two requests the client refused itself (no descriptor, a negative cost) were never sent.
    [batch] = node.batches()
    assert [(check.descriptors[0].value, check.cost) for check in batch] == [
        ("a", 1),
        ("bad", 1),
        ("denied", 3),
        ("full", 1),
        ("boom", 1),
        ("c", 1),
    ]


@pytest.mark.parametrize(("count", "max_batch", "sizes"), [(600, None, [256, 256, 88]), (10, 3, [3, 3, 3, 1])])
async def test_batches_carry_at_most_max_batch_checks_and_results_keep_their_order(
    nodes: StartNode, count: int, max_batch: int | None, sizes: list[int]
) -> None:
    node = await nodes(by_value)
    options = {} if max_batch is None else {"max_batch": max_batch}
    items = [{"api_key": f"k{i}"} for i in range(count)]
    async with AsyncClient([node.url], discover_leader=False, **options) as client:  # type: ignore[arg-type]
        results = await client.check_many(items)
    assert policies(results) == [f"k{i}" for i in range(count)]
    assert sorted(len(batch) for batch in node.batches()) == sorted(sizes)
    sent = sorted((check.descriptors[0].value for batch in node.batches() for check in batch), key=lambda v: int(v[1:]))
    assert sent == [f"k{i}" for i in range(count)]
    assert node.count("Check") == 0


async def test_max_batch_must_be_at_least_one() -> None:
    with pytest.raises(InvalidConfig) as raised:
        AsyncClient(["127.0.0.1:7101"], max_batch=0)
    assert raised.value.field == "max_batch"


async def test_an_item_answered_unavailable_is_sent_again_alone(nodes: StartNode) -> None:
    # Alone, "busy" is decided (under a policy named busy-alone); inside a batch it is UNAVAILABLE (by_value).
    node = await nodes(lambda _request: response(limit("busy-alone", True, 10, 4, 1_000, 0)))

    def batch(request: pb.CheckBatchRequest) -> pb.CheckBatchResponse:
        results = []
        for check in request.checks:
            answer = by_value(check)
            if isinstance(answer, tuple):
                results.append(pb.CheckResult(error=pb.ItemError(code=answer[0].value[0], message=answer[1])))
            else:
                results.append(pb.CheckResult(decision=answer))
        return pb.CheckBatchResponse(results=results)

    node.batch_handler = batch
    async with AsyncClient([node.url], discover_leader=False) as client:
        results = await client.check_many([{"api_key": "a"}, {"api_key": "busy"}, CheckItem({"api_key": "b"}, 2)])
    assert policies(results) == ["a", "busy-alone", "b"]
    [again] = node.requests("Check")
    assert (again.descriptors[0].value, again.cost, again.peek) == ("busy", 1, False)  # type: ignore[attr-defined]


async def test_an_item_still_unavailable_alone_follows_the_failure_mode(nodes: StartNode) -> None:
    node = await nodes(by_value)
    async with AsyncClient([node.url], discover_leader=False, deadline=0.3) as closed:
        [a, busy] = await closed.check_many([{"api_key": "a"}, {"api_key": "busy"}])
    assert isinstance(a, Decision) and isinstance(busy, Unavailable)
    async with AsyncClient([node.url], discover_leader=False, deadline=0.3, failure_mode="open") as open_:
        [a, busy] = await open_.check_many([{"api_key": "a"}, {"api_key": "busy"}])
    assert isinstance(busy, Decision) and (busy.allowed, busy.source, busy.degraded) == (True, Source.FAIL_OPEN, True)


async def test_an_unreachable_cluster_decides_each_item_by_the_failure_mode() -> None:
    items = [{"api_key": "a"}, {"api_key": "a"}, {"api_key": "a"}, {"api_key": "b"}, {}]
    async with AsyncClient([dead_addr()], deadline=0.3) as closed:
        results = await closed.check_many(items)
    assert [type(r).__name__ for r in results] == ["Unavailable"] * 4 + ["InvalidArgument"]
    async with AsyncClient([dead_addr()], deadline=0.3, failure_mode=FailureMode.OPEN) as open_:
        results = await open_.check_many(items)
    assert [(r.allowed, r.source) for r in results if isinstance(r, Decision)] == [(True, Source.FAIL_OPEN)] * 4
    async with AsyncClient([dead_addr()], deadline=0.3, failure_mode=LocalLimit(2, 60.0)) as local:
        results = await local.check_many(items)
    decisions = [r for r in results if isinstance(r, Decision)]
    # The fallback buckets decide in item order: a, a allowed, the third a denied, b allowed.
    assert [(d.allowed, d.source, d.policy) for d in decisions] == [
        (True, Source.FALLBACK, "local"),
        (True, Source.FALLBACK, "local"),
        (False, Source.FALLBACK, "local"),
        (True, Source.FALLBACK, "local"),
    ]
    assert isinstance(results[4], InvalidArgument)


async def test_batches_go_to_the_leader_and_fail_over_like_a_check(nodes: StartNode) -> None:
    follower, leader, third = await nodes(by_value), await nodes(by_value), await nodes(by_value)
    elect([follower, leader, third], 1)
    async with AsyncClient([follower.url, leader.url, third.url]) as client:
        assert policies(await client.check_many([{"api_key": "a"}])) == ["a"]
        assert (len(follower.batches()), len(leader.batches())) == (0, 1)
        # The leader now answers whole batches UNAVAILABLE (e.g. it lost its quorum): retried on another node.
        leader.batch_handler = lambda _request: (grpc.StatusCode.UNAVAILABLE, "not the leader")
        elect([follower, leader, third], 2)
        assert policies(await client.check_many([{"api_key": "b"}, {"api_key": "c"}])) == ["b", "c"]
    assert len(leader.batches()) == 2
    assert len(follower.batches()) + len(third.batches()) == 1


async def test_a_batch_answered_with_the_wrong_number_of_results_is_an_error_for_each(nodes: StartNode) -> None:
    node = await nodes(by_value)
    node.batch_handler = lambda _request: pb.CheckBatchResponse(results=[])
    async with AsyncClient([node.url], discover_leader=False) as client:
        results = await client.check_many([{"api_key": "a"}, {"api_key": "b"}, {}])
    assert [type(r).__name__ for r in results] == ["RpcError", "RpcError", "InvalidArgument"]
    assert isinstance(results[0], RpcError) and results[0].code == grpc.StatusCode.INTERNAL


async def test_a_batch_refused_as_a_whole_gives_each_item_the_error(nodes: StartNode) -> None:
    node = await nodes(by_value)
    node.batch_handler = lambda _request: (grpc.StatusCode.INVALID_ARGUMENT, "a batch carries at most 1 checks")
    async with AsyncClient([node.url], discover_leader=False) as client:
        results = await client.check_many([{"api_key": "a"}, {"api_key": "b"}])
    assert all(isinstance(r, InvalidArgument) and "at most 1" in r.message for r in results)
    assert len(node.batches()) == 1


async def test_peeks_go_in_batches_too_and_a_lease_mode_client_sends_no_lease_with_them(nodes: StartNode) -> None:
    node = await nodes(by_value)
    async with AsyncClient([node.url], discover_leader=False, leases=True) as client:
        await client.check_many([{"api_key": "a"}] * 3, peek=True)
        await client.check_many([{"api_key": "a"}] * 3)
    assert [[(c.peek, c.HasField("lease")) for c in batch] for batch in node.batches()] == [
        [(True, False)] * 3,
        [(False, False)] * 3,
    ]


async def test_the_blocking_client_sends_batches_too(nodes: StartNode) -> None:
    node = await nodes(by_value)
    with Client([node.url], discover_leader=False, max_batch=2) as client:
        results = await anyio.to_thread.run_sync(
            lambda: client.check_many([{"api_key": "a"}, {"api_key": "bad"}, {"api_key": "c"}])
        )
    assert policies(results) == ["a", "InvalidArgument", "c"]
    assert sorted(len(batch) for batch in node.batches()) == [1, 2]
