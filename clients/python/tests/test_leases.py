"""The lease cache of lease mode (``quorate._leases``) on its own, with the time passed in: demand and ask sizing,
all-or-none decisions across descriptors, duplicates, expiry with the drift margin, what a leased decision says,
and which leases go back when (with the next ask, with ``ReturnLeases``, or on close). The same cases as the Rust
client's ``leases.rs`` tests, and more."""

from __future__ import annotations

import threading

import pytest

from quorate import Decision, Descriptor, Source
from quorate._leases import (
    DEFAULT_WINDOW_NS,
    FORGET_AFTER_NS,
    MAX_TRACKED,
    Leases,
    usable_ns,
)
from quorate._proto.quorate.v1 import rate_limiter_pb2 as pb

MS = 1_000_000
SECOND = 1_000_000_000
A = (Descriptor("api_key", "a"),)
P = (Descriptor("agent_id", "p"),)
BOTH = (*A, *P)


def grant(
    descriptor: int,
    units: int,
    remaining: int,
    *,
    lease_id: int = 7,
    valid_for_ns: int = 250 * MS,
    policy: str = "agent",
    reset_ns: int = SECOND,
) -> pb.LeaseGrant:
    return pb.LeaseGrant(
        lease_id=lease_id,
        descriptor=descriptor,
        units=units,
        valid_for_ns=valid_for_ns,
        status=pb.LimitStatus(
            policy=policy,
            key="api_key=a",
            allowed=True,
            limit=200,
            base_limit=200,
            remaining=remaining,
            reset_after_ns=reset_ns,
            retry_after_ns=0,
            window_ns=60 * SECOND,
        ),
    )


def returned(leases: Leases, now: int) -> list[tuple[int, int]]:
    return [(r.lease_id, r.unused) for r in leases.take_returns(now)]


def test_the_holder_id_is_random_with_the_top_bit_set() -> None:
    holders = {Leases().holder for _ in range(20)}
    assert len(holders) == 20
    assert all(1 << 63 <= holder < 1 << 64 for holder in holders)
    with pytest.raises(ValueError):
        Leases(holder=5)


def test_a_cold_key_takes_no_lease_and_a_key_seen_twice_asks_for_that_and_half_again() -> None:
    leases = Leases()
    assert leases.try_local(A, 1, 0) is None
    assert leases.ask(A, 1, 0) is None, "seen once: cold"
    assert leases.try_local(A, 1, 1) is None
    ask = leases.ask(A, 1, 1)
    assert ask is not None and (ask.holder, ask.units) == (leases.holder, 3)
    # ceil(seen / 2) * 3 * cost: seen 3 -> 6, seen 4 -> 6, seen 5 -> 9; the cost multiplies.
    sizes = []
    for now in (2, 3, 4):
        leases.try_local(A, 1, now)
        sizes.append([getattr(leases.ask(A, cost, now), "units", None) for cost in (1, 2)])
    assert sizes == [[6, 12], [6, 12], [9, 18]]
    # A check of several descriptors asks by the hottest of them; a cost of 0 asks as 1.
    leases.try_local(P, 1, 5)
    assert getattr(leases.ask(BOTH, 0, 5), "units", None) == 9


def test_demand_counts_the_current_and_previous_window_and_cools_down() -> None:
    leases = Leases()
    window = DEFAULT_WINDOW_NS
    for now in (0, 1, 2, 3):
        leases.try_local(A, 1, now)
    assert getattr(leases.ask(A, 1, 3), "units", None) == 6
    # One window later: the previous window's 4 still count.
    leases.try_local(A, 1, window)
    assert getattr(leases.ask(A, 1, window), "units", None) == 6
    # Two windows after that one started, nothing recent: seen once, cold again.
    leases.try_local(A, 1, 3 * window)
    assert leases.ask(A, 1, 3 * window) is None


def test_the_demand_window_follows_how_long_the_last_grant_lived() -> None:
    leases = Leases()
    leases.try_local(A, 1, 0)
    leases.adopt(A, [grant(0, 0, 100, valid_for_ns=SECOND)], 0)
    for now in (1, 2, 3):
        leases.try_local(A, 1, now)
    # 500 ms later is still the same one-second window (the default would have started a new one after 250 ms).
    leases.try_local(A, 1, 500 * MS)
    assert getattr(leases.ask(A, 1, 500 * MS), "units", None) == 9


def test_a_lease_decides_locally_until_its_units_or_its_time_run_out() -> None:
    leases = Leases()
    leases.try_local(A, 1, 0)
    leases.try_local(A, 1, 0)
    leases.adopt(A, [grant(0, 3, 150)], 0)
    first = leases.try_local(A, 1, 0)
    assert first is not None
    assert (first.allowed, first.source, first.degraded, first.policy_version) == (True, Source.LEASE, False, 0)
    assert first.remaining == 152, "others' 150 plus the lease's 2 left"
    assert leases.try_local(A, 2, 0) is not None
    assert leases.try_local(A, 1, 0) is None, "the units ran out"
    # The spent lease goes back with the next ask, not when it expires nor when a new grant replaces it.
    renew = leases.ask(A, 1, 0)
    assert renew is not None and [(r.lease_id, r.unused) for r in renew.returns] == [(7, 0)]
    leases.adopt(A, [grant(0, 5, 100, lease_id=8)], 0)
    assert leases.try_local(A, 1, 249 * MS) is None, "expired, drift margin included"
    # The second lease expired with 5 unused.
    assert returned(leases, 249 * MS) == [(8, 5)]


def test_expiry_counts_from_when_the_check_was_sent_less_1000_ppm_and_1_ms() -> None:
    assert usable_ns(250 * MS) == 250 * MS - 250_000 - MS
    assert usable_ns(60 * SECOND) == 60 * SECOND - 60 * MS - MS
    assert usable_ns(MS // 2) == 0
    assert usable_ns(0) == 0
    leases = Leases()
    sent_at = 1_000 * SECOND
    leases.adopt(A, [grant(0, 10, 100)], sent_at)
    last_usable = sent_at + 250 * MS - 250_000 - MS - 1
    assert leases.try_local(A, 1, last_usable) is not None
    assert leases.try_local(A, 1, last_usable + 1) is None
    assert leases.held(last_usable) == {A[0]: 9}
    assert leases.held(last_usable + 1) == {}
    # An expired lease goes back with the units it did not spend.
    assert returned(leases, last_usable) == []
    assert returned(leases, last_usable + 1) == [(7, 9)]


def test_a_leased_decision_reports_remaining_reset_and_the_tightest_limit() -> None:
    leases = Leases()
    leases.adopt(
        BOTH,
        [
            grant(0, 10, 150, lease_id=1, policy="agent", reset_ns=2 * SECOND, valid_for_ns=SECOND),
            grant(1, 4, 20, lease_id=2, policy="per_agent", reset_ns=900 * MS, valid_for_ns=SECOND),
        ],
        0,
    )
    decision = leases.try_local(BOTH, 2, 300 * MS)
    assert isinstance(decision, Decision)
    assert [
        (limit.policy, limit.remaining, limit.reset_after_ns, limit.retry_after_ns) for limit in decision.limits
    ] == [
        ("agent", 158, 1_700 * MS, 0),
        ("per_agent", 22, 600 * MS, 0),
    ]
    assert all(limit.allowed for limit in decision.limits)
    # The overall limit is the one with the fewest units left; reset never goes below zero.
    assert decision.policy == "per_agent" and decision.remaining == 22 and decision.retry_after == 0.0
    assert leases.try_local(BOTH, 1, 1_200 * MS) is None, "expired by then"
    leases.adopt(A, [grant(0, 10, 150, valid_for_ns=5 * SECOND, reset_ns=SECOND, lease_id=3)], 0)
    decision = leases.try_local(A, 1, 3 * SECOND)
    assert decision is not None and decision.overall is not None and decision.overall.reset_after_ns == 0


def test_a_check_is_local_only_if_every_descriptor_is_leased_with_enough_units() -> None:
    leases = Leases()
    leases.adopt(A, [grant(0, 10, 100)], 0)
    assert leases.try_local(BOTH, 1, 0) is None, "P holds no lease"
    assert leases.held(0) == {A[0]: 10}, "nothing was spent from A's lease"
    leases.adopt(P, [grant(0, 2, 100, lease_id=9)], 0)
    assert leases.try_local(BOTH, 3, 0) is None, "P's lease has 2 units, the check costs 3"
    assert leases.held(0) == {A[0]: 10, P[0]: 2}
    assert leases.try_local(BOTH, 2, 0) is not None
    assert leases.held(0) == {A[0]: 8, P[0]: 0}
    assert leases.try_local(A, 8, 0) is not None
    assert leases.try_local(A, 1, 0) is None


def test_a_descriptor_named_twice_goes_to_the_cluster_and_spends_nothing() -> None:
    leases = Leases()
    twice = (*A, *A)
    leases.adopt(A, [grant(0, 1, 100)], 0)
    assert leases.try_local(twice, 1, 0) is None
    assert leases.try_local(A, 1, 0) is not None, "the unit is still there"
    assert leases.try_local(A, 1, 0) is None
    # The same dimension and value naming another policy is another descriptor.
    other = (*A, Descriptor("api_key", "a", policy="other"))
    leases.adopt(other, [grant(0, 5, 100, lease_id=2), grant(1, 5, 100, lease_id=3)], 0)
    assert leases.try_local(other, 1, 0) is not None


def test_grants_for_descriptors_the_check_does_not_have_or_without_status_are_ignored() -> None:
    leases = Leases()
    leases.adopt(A, [grant(1, 10, 100), pb.LeaseGrant(lease_id=3, descriptor=0, units=10, valid_for_ns=SECOND)], 0)
    assert leases.held(0) == {}
    assert leases.take_all() == []


def test_replaced_exhausted_and_expired_leases_go_back_and_live_ones_stay() -> None:
    leases = Leases()
    leases.adopt(A, [grant(0, 5, 100, lease_id=1)], 0)
    leases.adopt(P, [grant(0, 2, 100, lease_id=2, valid_for_ns=SECOND)], 0)
    leases.try_local(A, 2, 0)
    # Replacing A's lease queues the old one's 3 unused units.
    leases.adopt(A, [grant(0, 4, 100, lease_id=3, valid_for_ns=10 * SECOND)], 10 * MS)
    assert returned(leases, 20 * MS) == [(1, 3)]
    # P's lease used up: returned with 0 unused even though its time is not over.
    leases.try_local(P, 2, 30 * MS)
    assert returned(leases, 40 * MS) == [(2, 0)]
    assert returned(leases, 50 * MS) == [], "A's new lease lives on"
    assert returned(leases, 10 * SECOND) == [(3, 4)]
    assert returned(leases, 11 * SECOND) == []


def test_leases_that_cannot_serve_a_check_go_back_with_its_ask_once_and_others_stay() -> None:
    # The cluster counts a holder's leases against its share until they come back: a spent lease left for the
    # returns task (or for its expiry) would hold back the renewal the ask is for.
    leases = Leases()
    for now in (0, 1):
        leases.try_local(BOTH, 1, now)
    leases.adopt(A, [grant(0, 5, 100, lease_id=1)], 0)
    leases.adopt(P, [grant(0, 2, 100, lease_id=2)], 0)
    other = (Descriptor("api_key", "b"),)
    leases.adopt(other, [grant(0, 0, 100, lease_id=3)], 0)
    assert leases.try_local(BOTH, 3, 2) is None, "P's lease has 2 units, the check costs 3"
    ask = leases.ask(BOTH, 3, 2)
    # Seen three times (the checks at 0, 1 and 2), at a cost of 3: ceil(3 / 2) * 3 * 3.
    assert ask is not None and ask.units == 18
    # P's lease is too small and goes back; A's still has enough and stays; B is not in the check.
    assert [(r.lease_id, r.unused) for r in ask.returns] == [(2, 2)]
    assert leases.held(2) == {A[0]: 5, other[0]: 0}
    # Given back with the ask, it is not given back again; B's used-up lease goes to the returns task.
    assert returned(leases, 3) == [(3, 0)]
    # An expired lease goes back with the next ask, even one with units left.
    expired = 250 * MS
    leases.try_local(A, 1, expired)
    again = leases.ask((*A, *A), 1, expired)
    assert again is not None and [(r.lease_id, r.unused) for r in again.returns] == [(1, 5)], "once, not twice"
    assert leases.held(expired) == {}
    assert returned(leases, expired) == []


def test_returns_of_an_ask_that_did_not_reach_the_cluster_are_requeued_for_return_leases() -> None:
    leases = Leases()
    leases.try_local(A, 1, 0)
    leases.try_local(A, 1, 0)
    leases.adopt(A, [grant(0, 1, 100)], 0)
    assert leases.try_local(A, 1, 0) is not None
    ask = leases.ask(A, 1, 0)
    assert ask is not None and len(ask.returns) == 1
    leases.requeue(ask.returns)
    assert returned(leases, 0) == [(7, 0)]


def test_close_takes_every_lease_and_every_queued_return() -> None:
    leases = Leases()
    leases.adopt(A, [grant(0, 5, 100, lease_id=1)], 0)
    leases.adopt(A, [grant(0, 6, 100, lease_id=2)], 0)
    leases.adopt(P, [grant(0, 7, 100, lease_id=3)], 0)
    leases.try_local(P, 1, 0)
    assert sorted((r.lease_id, r.unused) for r in leases.take_all()) == [(1, 5), (2, 6), (3, 6)]
    assert leases.take_all() == []
    assert leases.try_local(A, 1, 0) is None, "nothing is held after close"
    leases.requeue([pb.LeaseReturn(lease_id=4, unused=1)])
    assert [(r.lease_id, r.unused) for r in leases.take_all()] == [(4, 1)]


def test_descriptors_neither_leased_nor_seen_for_ten_seconds_are_forgotten() -> None:
    leases = Leases()
    leases.try_local(A, 1, 0)
    leases.try_local(A, 1, 1)
    leases.take_returns(FORGET_AFTER_NS - 1)
    assert leases.ask(A, 1, FORGET_AFTER_NS - 1) is not None
    leases.take_returns(FORGET_AFTER_NS)
    assert leases.ask(A, 1, FORGET_AFTER_NS) is None, "forgotten: cold again"


def test_demand_is_tracked_for_at_most_max_tracked_descriptors() -> None:
    leases = Leases()
    for i in range(MAX_TRACKED):
        leases.try_local((Descriptor("k", str(i)),), 1, 0)
    extra = (Descriptor("k", "extra"),)
    leases.try_local(extra, 1, 0)
    leases.try_local(extra, 1, 0)
    assert leases.ask(extra, 1, 0) is None
    # Grants are adopted all the same.
    leases.adopt(extra, [grant(0, 2, 100)], 0)
    assert leases.try_local(extra, 1, 0) is not None


def test_threads_deciding_at_once_never_spend_more_than_the_lease_holds() -> None:
    leases = Leases()
    leases.adopt(A, [grant(0, 1_000, 0, valid_for_ns=3_600 * SECOND)], 0)
    counts = [0] * 8

    def spend(slot: int) -> None:
        for _ in range(400):
            if leases.try_local(A, 1, 1) is not None:
                counts[slot] += 1

    threads = [threading.Thread(target=spend, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 1_000
    assert leases.held(1) == {A[0]: 0}
