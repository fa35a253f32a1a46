"""Lease mode (``leases=True``): checks of hot keys decided in this process from quota the cluster leased to it.

The Python twin of the Rust client's ``leases.rs``, rule for rule:

- The client has a random 64-bit holder id with the top bit set (the cluster refuses lower ids: they name
  nodes), kept for its lifetime.
- Demand is counted per descriptor in windows as long as the last lease lived (250 ms before any grant): the
  current window and the previous one. A descriptor seen at least twice in a window is hot.
- A check is decided here only if *every* descriptor has a live lease with at least ``cost`` units left, and no
  descriptor appears twice (the cluster refuses such a check). Otherwise it goes to the cluster, and if any of
  its descriptors is hot it asks for ``ceil(seen / 2) * 3 * cost`` units of each lease-enabled limit. The cluster
  grants at most the policy's ``max_share`` of the limit, never from its ``reserve``, only on policies with
  ``lease`` enabled, and only with an allowed check.
- A grant is valid for ``valid_for_ns`` counted from when the check was *sent*, on this process's monotonic clock,
  shortened by 1,000 ppm plus 1 ms for clock drift: the client stops spending before the cluster considers the
  lease over.
- A lease of a check's descriptor that cannot serve the check (expired, or fewer units left than its cost) goes
  back with that check's ask (``LeaseRequest.returns``), so that it stops counting against this holder's share
  before the renewal is granted. Any other lease replaced by a new grant, used up, or expired goes back (its unused
  units) with the next ``ReturnLeases`` call, which the client makes every :data:`RETURN_INTERVAL`;
  :meth:`Leases.take_all` gives every lease back when the client closes. A lease never returned stays charged: it
  can only under-admit.

What a decision from a lease says: ``allowed`` (a lease never denies: when its units run out the check goes to the
cluster, which decides strictly), :attr:`~quorate.Source.LEASE`, not degraded; per limit, ``remaining`` is what
the cluster had left for others when the lease was granted plus what the lease still holds (exact while this
client is the key's only holder, an upper estimate otherwise), ``reset_after`` is the grant's less the time since
the check that asked for it was sent, ``retry_after`` is 0; the policy, limit and window are the cluster's.

Every method takes the time (``time.monotonic_ns()``) as an argument, so the cache is deterministic to test. It is
safe to share between threads: the blocking :class:`~quorate.Client` decides from it in the calling thread while
its event-loop thread adopts grants and takes returns.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ._proto.quorate.v1 import rate_limiter_pb2 as pb
from .decision import Decision, LimitDecision
from .descriptors import Descriptor

#: Clock drift allowed between this process and the cluster, in parts per million.
LEASE_DRIFT_PPM = 1_000
#: Fixed slack in nanoseconds taken off every lease, for the time between the grant and this client learning of it.
LEASE_DRIFT_SLACK_NS = 1_000_000
#: How long demand is counted over (nanoseconds) before any grant says how long leases live.
DEFAULT_WINDOW_NS = 250_000_000
#: The shortest demand window (nanoseconds), however short a grant was.
MIN_WINDOW_NS = 10_000_000
#: A descriptor seen at least this often in one window is worth a lease.
MIN_DEMAND = 2
#: The most descriptors whose demand is tracked; beyond, new descriptors are simply not leased.
MAX_TRACKED = 100_000
#: A descriptor neither leased nor seen for this long (nanoseconds) is forgotten.
FORGET_AFTER_NS = 10_000_000_000
#: Seconds between two calls that give back leases that ran out or expired.
RETURN_INTERVAL = 0.1

_U64_MAX = 2**64 - 1


def usable_ns(valid_for_ns: int) -> int:
    """How long a lease valid for ``valid_for_ns`` may be spent on this process's clock: less 1,000 ppm and 1 ms.

    >>> usable_ns(250_000_000)
    248750000
    """
    margin = valid_for_ns // 1_000_000 * LEASE_DRIFT_PPM + valid_for_ns % 1_000_000 * LEASE_DRIFT_PPM // 1_000_000
    return max(max(valid_for_ns - margin, 0) - LEASE_DRIFT_SLACK_NS, 0)


@dataclass
class _Held:
    """One lease this client holds."""

    lease: int
    left: int
    #: Monotonic nanoseconds after which nothing more may be spent.
    until: int
    #: When the check that asked for it was sent.
    granted: int
    #: The limit as the grant described it (remaining: what others had left).
    status: LimitDecision


@dataclass
class _Demand:
    """How often a descriptor was seen: checks in the current window, and in the previous one."""

    since: int
    current: int = 1
    previous: int = 0

    def note(self, window: int, now: int) -> None:
        """Counts one check at ``now``, windows being ``window`` nanoseconds long."""
        elapsed = now - self.since
        if elapsed >= 2 * window:
            self.since, self.current, self.previous = now, 0, 0
        elif elapsed >= window:
            self.since, self.current, self.previous = now, 0, self.current
        self.current += 1

    @property
    def seen(self) -> int:
        return max(self.current, self.previous)


@dataclass
class _Tracked:
    """What this client knows of one descriptor: its demand, and its lease if it holds one."""

    demand: _Demand
    held: _Held | None = None


class Leases:
    """One client's leases and demand counts; thread-safe."""

    def __init__(self, holder: int | None = None) -> None:
        #: The holder id sent with every lease request and return: random, top bit set.
        self.holder = holder if holder is not None else secrets.randbits(64) | (1 << 63)
        if not (1 << 63) <= self.holder <= _U64_MAX:
            raise ValueError("a client's lease holder id must have its top bit set")
        self._keys: dict[Descriptor, _Tracked] = {}
        self._returns: list[pb.LeaseReturn] = []
        # How long the last grant was valid: the demand window.
        self._window: int | None = None
        self._lock = threading.Lock()

    def try_local(self, descriptors: Sequence[Descriptor], cost: int, now: int) -> Decision | None:
        """Decides a check of ``cost`` units at ``now`` from held leases if every descriptor has a live one with
        enough units, spending from each; counts the demand either way. A check naming one descriptor twice is
        never decided here (the cluster refuses it), and spends nothing."""
        with self._lock:
            window = self._window if self._window is not None else DEFAULT_WINDOW_NS
            covered = bool(descriptors)
            for descriptor in descriptors:
                tracked = self._keys.get(descriptor)
                if tracked is None:
                    if len(self._keys) < MAX_TRACKED:
                        self._keys[descriptor] = _Tracked(_Demand(since=now))
                    covered = False
                    continue
                tracked.demand.note(window, now)
                held = tracked.held
                covered = covered and held is not None and held.until > now and held.left >= cost
            if not covered or len(set(descriptors)) != len(descriptors):
                return None
            limits = []
            for descriptor in descriptors:
                held = self._keys[descriptor].held
                assert held is not None  # covered
                held.left -= cost
                status = held.status
                limits.append(
                    replace(
                        status,
                        allowed=True,
                        remaining=min(status.remaining + held.left, _U64_MAX),
                        reset_after_ns=max(status.reset_after_ns - (now - held.granted), 0),
                        retry_after_ns=0,
                    )
                )
            return Decision.leased(limits)

    def ask(self, descriptors: Sequence[Descriptor], cost: int, now: int) -> pb.LeaseRequest | None:
        """The lease to ask for with a check of ``descriptors`` that goes to the cluster at ``now`` (units per
        lease-enabled limit), or ``None`` if no descriptor is hot.

        Leases of these descriptors that cannot serve the check (expired, or fewer units left than ``cost``) are
        dropped from the cache and go back in the ask's ``returns``: the cluster counts a holder's leases against
        its share until they are returned, so a spent lease left to expire would hold back the renewal for the
        rest of its life. If the check does not reach the cluster, :meth:`requeue` puts them back in line for
        ``ReturnLeases``."""
        with self._lock:
            seen = max((t.demand.seen for d in descriptors if (t := self._keys.get(d)) is not None), default=None)
            if seen is None or seen < MIN_DEMAND:
                return None
            returns = []
            # Each descriptor once: a check naming one twice must not give its lease back twice.
            for descriptor in dict.fromkeys(descriptors):
                tracked = self._keys.get(descriptor)
                if tracked is None or tracked.held is None:
                    continue
                held = tracked.held
                if held.until <= now or held.left < cost:
                    returns.append(pb.LeaseReturn(lease_id=held.lease, unused=held.left))
                    tracked.held = None
        # Demand is counted over the last lease's life: ask for it with half again as headroom.
        units = min(-(-seen // 2) * 3 * max(cost, 1), _U64_MAX)
        return pb.LeaseRequest(holder=self.holder, units=units, returns=returns)

    def adopt(self, descriptors: Sequence[Descriptor], grants: Iterable[pb.LeaseGrant], sent_at: int) -> None:
        """Takes the leases granted with a check of ``descriptors`` sent at ``sent_at``; a lease one replaces goes
        back with the next return."""
        with self._lock:
            for grant in grants:
                if grant.descriptor >= len(descriptors) or not grant.HasField("status"):
                    continue
                descriptor = descriptors[grant.descriptor]
                self._window = max(grant.valid_for_ns, MIN_WINDOW_NS)
                held = _Held(
                    lease=grant.lease_id,
                    left=grant.units,
                    until=sent_at + usable_ns(grant.valid_for_ns),
                    granted=sent_at,
                    status=LimitDecision.from_wire(grant.status),
                )
                tracked = self._keys.get(descriptor)
                if tracked is None:
                    tracked = self._keys[descriptor] = _Tracked(_Demand(since=sent_at))
                old, tracked.held = tracked.held, held
                if old is not None:
                    self._returns.append(pb.LeaseReturn(lease_id=old.lease, unused=old.left))

    def take_returns(self, now: int) -> list[pb.LeaseReturn]:
        """Takes the leases that ran out or expired by ``now`` and the returns queued; forgets descriptors
        neither leased nor seen for 10 s."""
        with self._lock:
            returns, self._returns = self._returns, []
            forget = []
            for descriptor, tracked in self._keys.items():
                held = tracked.held
                if held is not None and (held.until <= now or held.left == 0):
                    returns.append(pb.LeaseReturn(lease_id=held.lease, unused=held.left))
                    tracked.held = None
                if tracked.held is None and now - tracked.demand.since >= FORGET_AFTER_NS:
                    forget.append(descriptor)
            for descriptor in forget:
                del self._keys[descriptor]
            return returns

    def take_all(self) -> list[pb.LeaseReturn]:
        """Takes every lease and every queued return (the client is closing)."""
        with self._lock:
            returns, self._returns = self._returns, []
            for tracked in self._keys.values():
                if tracked.held is not None:
                    returns.append(pb.LeaseReturn(lease_id=tracked.held.lease, unused=tracked.held.left))
                    tracked.held = None
            return returns

    def requeue(self, returns: Iterable[pb.LeaseReturn]) -> None:
        """Puts back returns that were taken but may not have reached the cluster (returns are idempotent)."""
        with self._lock:
            self._returns.extend(returns)

    def held(self, now: int) -> dict[Descriptor, int]:
        """Units left per descriptor in leases live at ``now`` (for tests and diagnostics)."""
        with self._lock:
            return {
                descriptor: tracked.held.left
                for descriptor, tracked in self._keys.items()
                if tracked.held is not None and tracked.held.until > now
            }


__all__ = ["LEASE_DRIFT_PPM", "LEASE_DRIFT_SLACK_NS", "RETURN_INTERVAL", "Leases", "usable_ns"]
