"""The typed answer to a check, from the cluster or from the client's failure mode.

Times are kept as integer nanoseconds, as on the wire, so that headers round exactly; each has a ``float``
seconds property beside it for everything else.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from ._proto.quorate.v1 import rate_limiter_pb2 as pb

NANOS_PER_SECOND = 1_000_000_000


class Source(enum.Enum):
    """Where a :class:`Decision` came from."""

    #: A cluster node decided (it may still be degraded: see :attr:`Decision.degraded`).
    CLUSTER = "cluster"
    #: The cluster was unreachable and the client's local fallback limiter decided.
    FALLBACK = "fallback"
    #: The cluster was unreachable and the client allowed the request without counting it (fail open).
    FAIL_OPEN = "fail_open"
    #: This client decided it from quota the cluster leased to it (lease mode: ``leases=True``); not degraded:
    #: the units were charged by the cluster before they were spent.
    LEASE = "lease"


@dataclass(frozen=True)
class LimitDecision:
    """The decision of one limit: a policy applied to one descriptor's key."""

    #: The policy's name (``"local"`` for the fallback limiter).
    policy: str
    #: The key counted, ``"dimension=value"``.
    key: str
    #: Whether this limit allowed the request.
    allowed: bool
    #: The limit in force, after adaptive tightening.
    limit: int
    #: The configured limit, before adaptive tightening.
    base_limit: int
    #: Units left.
    remaining: int
    #: Nanoseconds until the limit is fresh again (``X-RateLimit-Reset``, ``RateLimit`` ``t=``).
    reset_after_ns: int
    #: Nanoseconds until the same cost would be allowed if nothing else arrives (``Retry-After``); 0 when allowed.
    retry_after_ns: int
    #: The policy's window or refill period in nanoseconds (``RateLimit-Policy`` ``w=``).
    window_ns: int

    @property
    def reset_after(self) -> float:
        """Seconds until the limit is fresh again."""
        return self.reset_after_ns / NANOS_PER_SECOND

    @property
    def retry_after(self) -> float:
        """Seconds until the same cost would be allowed; 0 when allowed."""
        return self.retry_after_ns / NANOS_PER_SECOND

    @property
    def window(self) -> float:
        """The policy's window or refill period in seconds."""
        return self.window_ns / NANOS_PER_SECOND

    @classmethod
    def from_wire(cls, status: pb.LimitStatus) -> LimitDecision:
        """Converts one ``LimitStatus`` of a ``Check`` response."""
        return cls(
            policy=status.policy,
            key=status.key,
            allowed=status.allowed,
            limit=status.limit,
            base_limit=status.base_limit,
            remaining=status.remaining,
            reset_after_ns=status.reset_after_ns,
            retry_after_ns=status.retry_after_ns,
            window_ns=status.window_ns,
        )


@dataclass(frozen=True)
class Decision:
    """The answer to a check: allowed or not, the most restrictive limit and every limit checked.

    The properties (:attr:`limit`, :attr:`remaining`, ...) read :attr:`overall`, the limit to put in response
    headers; they are ``None`` when no limit applies (a fail-open decision).
    """

    #: Whether the request may proceed.
    allowed: bool
    #: Where the decision came from.
    source: Source
    #: True if it was made without a cluster quorum: by a node in degraded mode, or by the client's failure mode
    #: (a decision from a lease is not degraded).
    degraded: bool
    #: The most restrictive limit, if any limit applied.
    overall: LimitDecision | None
    #: One entry per limit checked, in descriptor order.
    limits: tuple[LimitDecision, ...]
    #: The version of the cluster's policy set that decided (0 when the cluster did not decide, as for a decision
    #: from a lease).
    policy_version: int

    @classmethod
    def from_wire(cls, response: pb.CheckResponse) -> Decision:
        """Converts a raw ``Check`` response, e.g. for callers that use the generated stubs directly."""
        return cls(
            allowed=response.allowed,
            source=Source.CLUSTER,
            degraded=response.degraded,
            overall=LimitDecision.from_wire(response.overall) if response.HasField("overall") else None,
            limits=tuple(LimitDecision.from_wire(status) for status in response.limits),
            policy_version=response.policy_version,
        )

    @classmethod
    def leased(cls, limits: Sequence[LimitDecision]) -> Decision:
        """A decision this client made from leased quota: allowed, not degraded (the cluster charged the units
        when it granted them); the overall limit is the one with the fewest units left."""
        return cls(
            allowed=True,
            source=Source.LEASE,
            degraded=False,
            overall=min(limits, key=lambda limit: limit.remaining, default=None),
            limits=tuple(limits),
            policy_version=0,
        )

    @classmethod
    def local(cls, source: Source, allowed: bool, limits: Sequence[LimitDecision]) -> Decision:
        """A decision made by the client alone: fail-open (no limit) or the local fallback (one limit per key)."""
        return cls(
            allowed=allowed,
            source=source,
            degraded=True,
            overall=most_restrictive(limits),
            limits=tuple(limits),
            policy_version=0,
        )

    @property
    def limit(self) -> int | None:
        """The overall limit in force."""
        return self.overall.limit if self.overall else None

    @property
    def remaining(self) -> int | None:
        """Units left under the overall limit."""
        return self.overall.remaining if self.overall else None

    @property
    def reset_after(self) -> float | None:
        """Seconds until the overall limit is fresh again."""
        return self.overall.reset_after if self.overall else None

    @property
    def retry_after(self) -> float:
        """Seconds to wait before the same request could be allowed: 0 when allowed."""
        return self.overall.retry_after if self.overall else 0.0

    @property
    def retry_after_ns(self) -> int:
        """:attr:`retry_after` in nanoseconds."""
        return self.overall.retry_after_ns if self.overall else 0

    @property
    def policy(self) -> str | None:
        """The name of the overall limit's policy."""
        return self.overall.policy if self.overall else None

    @property
    def window(self) -> float | None:
        """The overall limit's window or refill period in seconds."""
        return self.overall.window if self.overall else None


def most_restrictive(limits: Sequence[LimitDecision]) -> LimitDecision | None:
    """The limit to report: a denying one with the longest wait, else the one with the fewest units left.

    Ties are broken as in the Rust client: the last of the denying ones, the first of the others.
    """
    denied = [limit for limit in limits if not limit.allowed]
    if denied:
        return max(reversed(denied), key=lambda limit: limit.retry_after_ns)
    return min(limits, key=lambda limit: limit.remaining, default=None)


__all__ = ["NANOS_PER_SECOND", "Decision", "LimitDecision", "Source", "most_restrictive"]
