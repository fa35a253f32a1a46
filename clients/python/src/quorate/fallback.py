"""The in-process fallback limiter behind :class:`~quorate.LocalLimit`.

One token bucket per descriptor key, held in this client only: while the cluster is unreachable, each API-server
process admits at most ``limit`` per ``period`` per key (plus a full burst when its bucket is fresh), so a fleet
of N processes admits up to N times the limit. Buckets are GCRA (one theoretical arrival time per key, integer
nanoseconds), checked atomically across a request's descriptors like the cluster does: all charged or none. Fresh
buckets are evicted when the table is full; if it is still full, new keys are denied (never unbounded). The same
arithmetic as the Rust client's ``fallback.rs``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from .config import LocalLimit
from .decision import NANOS_PER_SECOND, Decision, LimitDecision, Source
from .descriptors import Descriptor

#: The policy name reported by fallback decisions.
LOCAL_POLICY = "local"


@dataclass(frozen=True)
class _Evaluation:
    key: str
    allowed: bool
    new_tat: int
    decision: LimitDecision


class LocalLimiter:
    """Token buckets keyed by ``"dimension=value"``; safe to share between threads and tasks."""

    def __init__(self, limit: LocalLimit) -> None:
        self._limit = limit
        self._period_ns = max(1, round(limit.period * NANOS_PER_SECOND))
        # Theoretical arrival time per key, in the caller's monotonic nanoseconds.
        self._buckets: dict[str, int] = {}
        self._lock = threading.Lock()

    def check(self, descriptors: Sequence[Descriptor], cost: int, peek: bool, now_ns: int) -> Decision:
        """Decides a request of ``cost`` units at ``now_ns`` (monotonic); charges every key or none."""
        cost = max(cost, 1)
        with self._lock:
            evaluations: list[_Evaluation] = []
            for descriptor in descriptors:
                key = descriptor.key
                tat = self._buckets.get(key)
                if tat is None and len(self._buckets) >= self._limit.max_keys:
                    self._evict_fresh(now_ns)
                room = len(self._buckets) < self._limit.max_keys
                evaluations.append(self._evaluate(key, tat, room, cost, now_ns))
            allowed = all(evaluation.allowed for evaluation in evaluations)
            if allowed and not peek:
                for evaluation in evaluations:
                    self._buckets[evaluation.key] = evaluation.new_tat
        return Decision.local(Source.FALLBACK, allowed, [evaluation.decision for evaluation in evaluations])

    def _evict_fresh(self, now_ns: int) -> None:
        """Forgets buckets that are full again: a fresh key decides the same."""
        for key in [key for key, tat in self._buckets.items() if tat <= now_ns]:
            del self._buckets[key]

    def _evaluate(self, key: str, tat: int | None, room: bool, cost: int, now_ns: int) -> _Evaluation:
        """GCRA for one key: the request fits if its new arrival time is at most one period ahead of now."""
        limit, period = self._limit.limit, self._period_ns
        # A new key that cannot be tracked is denied: admitting it uncounted would make the fallback unbounded.
        trackable = tat is not None or room
        start = max(tat if tat is not None else now_ns, now_ns)
        new_tat = start + -(-cost * period // limit)
        allowed = trackable and new_tat - now_ns <= period
        if allowed:
            ahead, retry_after = new_tat - now_ns, 0
        elif trackable:
            ahead, retry_after = start - now_ns, max(new_tat - now_ns - period, 0)
        else:
            ahead, retry_after = period, period
        remaining = (period - min(ahead, period)) * limit // period
        decision = LimitDecision(
            policy=LOCAL_POLICY,
            key=key,
            allowed=allowed,
            limit=limit,
            base_limit=limit,
            remaining=remaining,
            reset_after_ns=ahead,
            retry_after_ns=retry_after,
            window_ns=period,
        )
        return _Evaluation(key=key, allowed=allowed, new_tat=new_tat, decision=decision)

    def __len__(self) -> int:
        """The number of keys tracked."""
        with self._lock:
            return len(self._buckets)


__all__ = ["LOCAL_POLICY", "LocalLimiter"]
