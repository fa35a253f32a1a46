"""A Python client for Quorate that keeps deciding while nodes fail, an ASGI middleware, and agent backoff.

- :class:`AsyncClient` (grpc.aio) and :class:`Client` (blocking): checks, peeks, refunds and load reports sent
  to the leader (learnt from ``Admin.Status``), retried on another node within a deadline; one channel per node;
  ``check_many`` in ``CheckBatch`` calls; lease mode (``leases=True``) decides hot keys in process.
- :class:`FailureMode` / :class:`LocalLimit`: what a check returns when the cluster is unreachable: an error
  (closed, the default), allow (open), or a per-key token bucket in this process (local).
- :class:`Decision`: allowed, limit, remaining, reset and retry-after, every limit checked, whether it is
  degraded and its :class:`Source`; :class:`QuorateError` and its subclasses for everything else.
- :mod:`quorate.headers`: the ``X-RateLimit-*``, ``RateLimit-Policy``/``RateLimit`` and ``Retry-After`` headers
  of a decision, the same as the Rust client's.
- :mod:`quorate.asgi`: :class:`~quorate.asgi.RateLimitMiddleware` for FastAPI/Starlette, answering 429 with
  ``Retry-After`` and the ``RateLimit`` headers, 503 when the cluster is unreachable and failing closed.
- :mod:`quorate.backoff`: for callers of a rate-limited API: how long to wait, from ``Retry-After``,
  ``RateLimit`` or exponential backoff with jitter; blocking and async retry loops that work with httpx.

Example::

    import quorate

    async with quorate.AsyncClient(["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"]) as client:
        decision = await client.check({"api_key": "agent_42", "ip": "203.0.113.7"})
        if not decision.allowed:
            print(f"denied: retry in {decision.retry_after:.1f} s")
"""

from __future__ import annotations

from .aio import AsyncClient, CheckItem
from .client import Client
from .config import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DEADLINE,
    DEFAULT_LEADER_REFRESH,
    DEFAULT_LOCAL_MAX_KEYS,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_CONCURRENCY,
    FailureMode,
    FailureModeLike,
    LocalLimit,
)
from .decision import Decision, LimitDecision, Source
from .descriptors import AGENT_ID, API_KEY, IP, Descriptor, DescriptorsLike
from .errors import (
    ClientClosed,
    InvalidArgument,
    InvalidConfig,
    PermissionDenied,
    QuorateError,
    ResourceExhausted,
    RpcError,
    Timeout,
    TlsError,
    Unauthenticated,
    Unavailable,
)
from .fallback import LOCAL_POLICY

__version__ = "0.1.0"

__all__ = [
    "AGENT_ID",
    "API_KEY",
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DEADLINE",
    "DEFAULT_LEADER_REFRESH",
    "DEFAULT_LOCAL_MAX_KEYS",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_CONCURRENCY",
    "IP",
    "LOCAL_POLICY",
    "AsyncClient",
    "CheckItem",
    "Client",
    "ClientClosed",
    "Decision",
    "Descriptor",
    "DescriptorsLike",
    "FailureMode",
    "FailureModeLike",
    "InvalidArgument",
    "InvalidConfig",
    "LimitDecision",
    "LocalLimit",
    "PermissionDenied",
    "QuorateError",
    "ResourceExhausted",
    "RpcError",
    "Source",
    "Timeout",
    "TlsError",
    "Unauthenticated",
    "Unavailable",
]
