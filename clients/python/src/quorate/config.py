"""Client settings: endpoints, timeouts, retries and the failure mode, validated once into :class:`Settings`.

Defaults are named constants whose comments say why; :meth:`Settings.build` checks every value once, so a client
never meets a zero timeout or an empty endpoint list at call time. The names and defaults are those of the Rust
client's ``ClientBuilder`` (seconds here, ``Duration`` there).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from .errors import InvalidConfig

#: Seconds one call to one node may take. Above a node's default check deadline (2 s), so that a node which
#: cannot reach a quorum answers ``UNAVAILABLE`` (safe to retry elsewhere) before the client gives up.
DEFAULT_CALL_TIMEOUT = 2.5
#: Seconds a whole call may take, retries included: one slow call plus a failover (an election takes at most
#: ~0.8 s with the default Raft timeouts).
DEFAULT_DEADLINE = 5.0
#: Seconds to establish a connection: a refused connection fails at once, this bounds connects to a host that is
#: gone.
DEFAULT_CONNECT_TIMEOUT = 0.5
#: Seconds after which a cached leader is re-checked in the background (leadership can move without any call
#: failing, e.g. after a partition heals; a stale leader only costs a forwarding hop).
DEFAULT_LEADER_REFRESH = 30.0
#: How many calls of one :meth:`~quorate.AsyncClient.check_many` are in flight at once (its ``CheckBatch`` calls,
#: and the lone re-sends of checks a batch answered ``UNAVAILABLE``).
DEFAULT_MAX_CONCURRENCY = 64
#: The most checks one ``CheckBatch`` call of :meth:`~quorate.AsyncClient.check_many` carries: the Rust client's
#: ``coalesce_max_batch``, well under a node's default ``max_batch_items`` (1,000).
DEFAULT_MAX_BATCH = 256
#: How many keys the local fallback tracks by default: about 100 bytes each, so ~10 MB at most.
DEFAULT_LOCAL_MAX_KEYS = 100_000


class FailureMode(enum.Enum):
    """What a check returns when the cluster cannot be reached within the deadline.

    Applies to checks and peeks that would fail with an error whose :attr:`~quorate.QuorateError.unreachable`
    is true. Invalid requests and a full key table raise in every mode, and a refund always raises its error (the
    client cannot know where a charge went). For the local fallback pass a :class:`LocalLimit` instead.
    """

    #: Fail closed (the default): the check raises; the middleware answers 503. Nothing is ever over-admitted.
    CLOSED = "closed"
    #: Fail open: the request is allowed without being counted (:attr:`~quorate.Source.FAIL_OPEN`, degraded).
    #: Admission is unbounded while the cluster is unreachable.
    OPEN = "open"


@dataclass(frozen=True)
class LocalLimit:
    """The local fallback: a token bucket per key held in this process, used while the cluster is unreachable.

    Its bound: each API-server process admits at most ``limit`` units per ``period`` per key on its own (plus a
    full burst of ``limit`` when its bucket is fresh), so a fleet of N processes admits up to N times that while
    the cluster is unreachable. Decisions have :attr:`~quorate.Source.FALLBACK`, ``degraded=True`` and policy
    ``"local"``.
    """

    #: Units per period per key; at least 1.
    limit: int
    #: The refill period in seconds; more than zero.
    period: float
    #: The most keys tracked at once; a new key beyond it is denied while no tracked bucket is fresh.
    max_keys: int = DEFAULT_LOCAL_MAX_KEYS


#: What the ``failure_mode`` option accepts.
FailureModeLike: TypeAlias = FailureMode | LocalLimit | Literal["closed", "open"]


@dataclass(frozen=True)
class Settings:
    """Validated client settings (see :class:`~quorate.AsyncClient` for what each means)."""

    urls: tuple[str, ...]
    tls: bool
    failure_mode: FailureMode | LocalLimit
    call_timeout: float
    deadline: float
    connect_timeout: float
    retry_timed_out_checks: bool
    discover_leader: bool
    leader_refresh: float
    max_concurrency: int
    max_batch: int = DEFAULT_MAX_BATCH
    leases: bool = False

    @classmethod
    def build(
        cls,
        endpoints: str | Iterable[str],
        *,
        tls: bool,
        failure_mode: FailureModeLike,
        call_timeout: float,
        deadline: float,
        connect_timeout: float,
        retry_timed_out_checks: bool,
        discover_leader: bool,
        leader_refresh: float,
        max_concurrency: int,
        max_batch: int = DEFAULT_MAX_BATCH,
        leases: bool = False,
    ) -> Settings:
        """Validates every setting.

        ``tls`` says whether channels use TLS (the client asks for it with TLS options); an ``https://`` endpoint
        also turns it on. Raises :class:`~quorate.errors.InvalidConfig` naming the setting.
        """
        raw = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        parts = [piece.strip() for entry in raw for piece in entry.split(",") if piece.strip()]
        if not parts:
            raise InvalidConfig("endpoints", "no endpoint given")
        secure = tls or any(part.startswith("https://") for part in parts)
        if secure and any(part.startswith("http://") for part in parts):
            raise InvalidConfig("endpoints", "mixes http:// and TLS (https:// or TLS options); use one for all nodes")
        urls: list[str] = []
        for part in parts:
            url = endpoint_url(part, "https" if secure else "http")
            if url not in urls:
                urls.append(url)
        for field, value in (
            ("call_timeout", call_timeout),
            ("deadline", deadline),
            ("connect_timeout", connect_timeout),
            ("leader_refresh", leader_refresh),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidConfig(field, f"must be a number of seconds more than zero, not {value!r}")
        if max_concurrency < 1:
            raise InvalidConfig("max_concurrency", "must be at least 1")
        if max_batch < 1:
            raise InvalidConfig("max_batch", "must be at least 1")
        return cls(
            urls=tuple(urls),
            tls=secure,
            failure_mode=_failure_mode(failure_mode),
            call_timeout=float(call_timeout),
            deadline=float(deadline),
            connect_timeout=float(connect_timeout),
            retry_timed_out_checks=retry_timed_out_checks,
            discover_leader=discover_leader,
            leader_refresh=float(leader_refresh),
            max_concurrency=max_concurrency,
            max_batch=max_batch,
            leases=bool(leases),
        )

    def target(self, url: str) -> str:
        """The gRPC target (``host:port``) of a normalised endpoint URL."""
        return url.split("://", 1)[1]

    def url_of(self, addr: str) -> str | None:
        """The normalised URL of a member's advertised address (``host:port``), or ``None`` if it is not one."""
        scheme = "https" if self.tls else "http"
        try:
            url = endpoint_url(addr, scheme)
        except InvalidConfig:
            return None
        return url if url.startswith(f"{scheme}://") else None


def endpoint_url(raw: str, default_scheme: str = "http") -> str:
    """Normalises one endpoint to ``http://host:port`` or ``https://host:port`` (a trailing ``/`` is dropped);
    ``host:port`` takes ``default_scheme``.

    >>> endpoint_url("127.0.0.1:7101")
    'http://127.0.0.1:7101'

    Raises :class:`~quorate.errors.InvalidConfig` (field ``endpoints``) naming the endpoint if it has another
    scheme, a path, or no port.
    """
    text = raw.strip().rstrip("/")

    def bad(reason: str) -> InvalidConfig:
        return InvalidConfig("endpoints", f"{raw!r} {reason}")

    scheme, sep, authority = text.partition("://")
    if not sep:
        scheme, authority = default_scheme, text
    if scheme not in ("http", "https"):
        raise bad("uses a scheme other than http or https")
    if not authority:
        raise bad("is empty")
    if "/" in authority:
        raise bad("has a path; expected host:port")
    host, colon, port = authority.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise bad("has no port; expected host:port")
    if host.startswith("[") != host.endswith("]"):
        raise bad("has an unbalanced IPv6 bracket")
    return f"{scheme}://{authority}"


def _failure_mode(mode: FailureModeLike) -> FailureMode | LocalLimit:
    if isinstance(mode, LocalLimit):
        if mode.limit < 1:
            raise InvalidConfig("failure_mode", "the local limit must be at least 1")
        if not (math.isfinite(mode.period) and mode.period > 0):
            raise InvalidConfig("failure_mode", "the local period must be more than zero")
        if mode.max_keys < 1:
            raise InvalidConfig("failure_mode", "the local key capacity must be at least 1")
        return mode
    if isinstance(mode, FailureMode):
        return mode
    try:
        return FailureMode(mode)
    except ValueError:
        raise InvalidConfig(
            "failure_mode", f"must be FailureMode.CLOSED, FailureMode.OPEN or a LocalLimit, not {mode!r}"
        ) from None


__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DEADLINE",
    "DEFAULT_LEADER_REFRESH",
    "DEFAULT_LOCAL_MAX_KEYS",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_CONCURRENCY",
    "FailureMode",
    "FailureModeLike",
    "LocalLimit",
    "Settings",
    "endpoint_url",
]
