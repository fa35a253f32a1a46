"""The local fallback limiter, with time passed in: its stated bound (at most `limit` per `period` per key in one
process), atomic multi-descriptor checks, peeks, and the key cap. The same cases as the Rust `fallback.rs` tests."""

from __future__ import annotations

from quorate import Descriptor, LocalLimit, Source
from quorate.fallback import LocalLimiter

S = 1_000_000_000
KEY = (Descriptor("api_key", "k"),)


def limiter(limit: int, period: float, max_keys: int = 10) -> LocalLimiter:
    return LocalLimiter(LocalLimit(limit=limit, period=period, max_keys=max_keys))


def test_bucket_admits_a_full_burst_then_denies_with_the_time_until_one_unit_refills() -> None:
    bucket = limiter(3, 3.0)
    start = 1_000 * S
    assert [bucket.check(KEY, 1, False, start).remaining for _ in range(3)] == [2, 1, 0]
    denied = bucket.check(KEY, 1, False, start)
    assert (denied.allowed, denied.source, denied.degraded, denied.policy) == (False, Source.FALLBACK, True, "local")
    assert (denied.retry_after_ns, denied.overall and denied.overall.reset_after_ns) == (S, 3 * S)
    assert not bucket.check(KEY, 1, False, start + S - 1).allowed
    assert bucket.check(KEY, 1, False, start + S).allowed


def test_one_process_admits_at_most_the_limit_per_period_plus_its_first_burst() -> None:
    bucket = limiter(10, 60.0)
    # Ten tries a second for 600 s: the burst of 10 at once, then one unit refilled every 6 s (at 6 s, 12 s, ...,
    # 594 s): 10 + 99, never more than the limit per period plus one burst.
    admitted = sum(bucket.check(KEY, 1, False, tenth * S // 10).allowed for tenth in range(600 * 10))
    assert admitted == 10 + 99


def test_a_denied_multi_descriptor_check_charges_no_bucket() -> None:
    bucket = limiter(1, 60.0)
    ip = Descriptor("ip", "127.0.0.1")
    assert bucket.check(KEY, 1, False, 0).allowed
    assert not bucket.check((*KEY, ip), 1, False, 0).allowed
    # The ip bucket was not charged by the denied check.
    assert bucket.check((ip,), 1, False, 0).allowed


def test_peek_evaluates_without_charging() -> None:
    bucket = limiter(1, 60.0)
    assert bucket.check(KEY, 1, True, 0).allowed
    assert bucket.check(KEY, 1, True, 0).allowed
    assert bucket.check(KEY, 1, False, 0).allowed
    assert not bucket.check(KEY, 1, True, 0).allowed


def test_a_full_table_evicts_fresh_buckets_and_denies_new_keys_when_none_is_fresh() -> None:
    bucket = limiter(10, 10.0, max_keys=2)
    assert bucket.check((Descriptor("api_key", "a"),), 1, False, 0).allowed
    assert bucket.check((Descriptor("api_key", "b"),), 1, False, 0).allowed
    third = bucket.check((Descriptor("api_key", "c"),), 1, False, 0)
    assert not third.allowed and third.retry_after_ns == 10 * S
    # One second later both buckets are full again and can be evicted.
    assert bucket.check((Descriptor("api_key", "c"),), 1, False, S).allowed
    assert len(bucket) == 1


def test_a_cost_above_the_limit_is_denied_and_charges_nothing() -> None:
    bucket = limiter(5, 5.0)
    assert not bucket.check(KEY, 6, False, 0).allowed
    assert bucket.check(KEY, 5, False, 0).allowed
