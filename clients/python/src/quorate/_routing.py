"""Where the next call goes: one channel per endpoint, the cached leader, and nodes recently seen failing.

Checks go to the leader when it is known (a follower would forward them: one more hop), else round-robin over
the configured endpoints and the members learnt from ``Admin.Status``, skipping any that failed within
:data:`DOWN_COOLDOWN`. The leader is learnt from ``Status`` (its ``leader_id`` and that member's address),
forgotten on any failure of a call sent to it, and re-checked in the background once it is older than the leader
refresh. The same rules as the Rust client's ``routing.rs``.

This module holds state only, no IO: the client makes the calls and reports what happened. It is used from the
client's event loop alone, so it needs no lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

#: Seconds a node that failed is passed over while others are available.
DOWN_COOLDOWN = 1.0

#: The least seconds after a discovery that found no leader before the next one (an election in progress must
#: not turn every check into an extra ``Status`` round).
DISCOVERY_GAP = 0.1

Node = TypeVar("Node")


@dataclass
class _Leader:
    url: str
    learnt: float


@dataclass(frozen=True)
class Member:
    """A cluster member as ``Status`` lists it."""

    id: int
    addr: str


class Routing(Generic[Node]):
    """Channels (as ``Node`` handles made by ``connect``), leader and failure marks of one client."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        connect: Callable[[str], Node],
        url_of: Callable[[str], str | None],
        discover_leader: bool,
        leader_refresh: float,
    ) -> None:
        self._urls = tuple(urls)
        self._connect = connect
        self._url_of = url_of
        self._discover_leader = discover_leader
        self._leader_refresh = leader_refresh
        self._nodes: dict[str, Node] = {}
        self._down_until: dict[str, float] = {}
        self._leader: _Leader | None = None
        self._last_discovery: float | None = None
        # Members' addresses learnt from Status that were not configured: fallbacks if the configured ones die.
        self._learnt: tuple[str, ...] = ()
        # Where the round-robin over endpoints starts next.
        self._next = 0

    @property
    def urls(self) -> tuple[str, ...]:
        """The configured endpoints, normalised."""
        return self._urls

    @property
    def leader(self) -> str | None:
        """The cached leader's URL, if any."""
        return self._leader.url if self._leader else None

    def node(self, url: str) -> Node:
        """The handle of ``url``'s channel, made on first use and reused afterwards."""
        node = self._nodes.get(url)
        if node is None:
            node = self._nodes[url] = self._connect(url)
        return node

    def drop(self, url: str, node: Node) -> bool:
        """Forgets ``node`` as ``url``'s channel, so that the next call dials afresh; returns True if it was still
        the current one (the caller then closes it). A channel another task already replaced is left alone."""
        if self._nodes.get(url) is not node:
            return False
        del self._nodes[url]
        return True

    def drop_all(self) -> list[Node]:
        """Forgets every channel and returns them for the caller to close."""
        nodes = list(self._nodes.values())
        self._nodes.clear()
        return nodes

    def next_target(self, now: float) -> str:
        """Picks the node for the next attempt.

        The leader unless it failed recently, else the next endpoint (configured or learnt) that has not, else
        (all failed recently) the one that failed longest ago.
        """
        if self._leader is not None and self._is_up(self._leader.url, now):
            return self._leader.url
        candidates = self._candidates()
        start, self._next = self._next, self._next + 1
        rotation = [candidates[(start + i) % len(candidates)] for i in range(len(candidates))]
        for url in rotation:
            if self._is_up(url, now):
                return url
        return min(rotation, key=lambda url: self._down_until.get(url, 0.0))

    def failed(self, url: str, now: float) -> None:
        """Records a failed attempt on ``url``: passed over for a while, and no longer the leader."""
        self._down_until[url] = now + DOWN_COOLDOWN
        if self._leader is not None and self._leader.url == url:
            self._leader = None

    def succeeded(self, url: str) -> None:
        """Records a successful call on ``url``."""
        self._down_until.pop(url, None)

    def needs_discovery(self, now: float) -> bool:
        """True if no leader is cached, discovery is on and no fruitless discovery ran within the gap."""
        return (
            self._discover_leader
            and self._leader is None
            and (self._last_discovery is None or now - self._last_discovery >= DISCOVERY_GAP)
        )

    def leader_is_stale(self, now: float) -> bool:
        """True (once per refresh period) if the cached leader is older than the leader refresh."""
        if self._leader is None or now - self._leader.learnt < self._leader_refresh:
            return False
        # Restart the clock now, so that one refresh runs per period even if it finds no leader.
        self._leader.learnt = now
        return True

    def discovery_order(self, now: float) -> list[str]:
        """Endpoints in rotation order, those not failing first: a dead node must not use up the discovery's time
        while a live one could answer."""
        candidates = self._candidates()
        shift = self._next % len(candidates)
        rotated = candidates[shift:] + candidates[:shift]
        return sorted(rotated, key=lambda url: not self._is_up(url, now))

    def learn(self, reached: str, node_id: int, leader_id: int, members: Iterable[Member], now: float) -> bool:
        """Takes in one node's ``Status`` answer; returns True if it named a leader this client can reach.

        The latest membership replaces the previous one (removed nodes stop being tried). The node reached is
        known to be reachable at ``reached``; any other leader at its advertised address, unless a call to that
        address failed within :data:`DOWN_COOLDOWN` (the answer is then taken as stale: no leader).
        """
        members = tuple(members)
        learnt = []
        for member in members:
            url = self._url_of(member.addr)
            if url is not None and url not in self._urls and url not in learnt:
                learnt.append(url)
        self._learnt = tuple(learnt)
        if leader_id == 0:
            return False
        if node_id == leader_id:
            leader_url: str | None = reached
        else:
            addr = next((member.addr for member in members if member.id == leader_id), None)
            leader_url = self._url_of(addr) if addr is not None else None
        if leader_url is None:
            return False
        # A follower that names a leader this client saw fail within the cooldown has most likely not noticed its
        # death yet (it lasts until the election timeout): caching it would keep a dead leader until the cooldown
        # ends while checks take the rotation. Ask on (or again after the discovery gap) instead.
        if leader_url != reached and not self._is_up(leader_url, now):
            return False
        self._leader = _Leader(url=leader_url, learnt=now)
        return True

    def discovery_failed(self, now: float) -> None:
        """Records a discovery that found no leader: the next waits :data:`DISCOVERY_GAP`."""
        self._last_discovery = now

    def _candidates(self) -> list[str]:
        return [*self._urls, *self._learnt]

    def _is_up(self, url: str, now: float) -> bool:
        until = self._down_until.get(url)
        return until is None or until <= now


__all__ = ["DISCOVERY_GAP", "DOWN_COOLDOWN", "Member", "Routing"]
