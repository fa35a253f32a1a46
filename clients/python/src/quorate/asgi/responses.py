"""What the middleware adds to a response or answers itself, for a decision or a client error.

The rate-limit headers themselves come from :mod:`quorate.headers`. Error bodies are JSON with a stable ``error``
code, byte for byte those of the Rust middleware (``response.rs``); messages never include internal addresses or
keys (the error itself is logged instead).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from .. import headers
from ..decision import Decision
from ..errors import QuorateError, ResourceExhausted

log = logging.getLogger("quorate")

#: ASGI header list: lowercase names and values as bytes.
RawHeaders = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Rejection:
    """A response the middleware sends itself instead of calling the app."""

    status: int
    headers: RawHeaders
    body: bytes


@dataclass(frozen=True)
class Proceed:
    """Call the app and add these headers to its response (replacing any of the same name)."""

    headers: RawHeaders


def verdict(outcome: Decision | QuorateError) -> Proceed | Rejection:
    """Turns a check's outcome into the verdict.

    Allowed passes; denied is a 429; an unreachable cluster (failing closed) or a full key table a 503; any other
    client error (the cluster refused the descriptors) a 500.
    """
    if isinstance(outcome, Decision):
        if outcome.allowed:
            return Proceed(rate_limit_headers(outcome))
        return too_many_requests(outcome)
    if outcome.unreachable:
        log.warning("rate limiter unreachable: answering 503 (fail closed): %s", outcome)
        return unavailable("the rate limiter could not be reached; retry shortly")
    if isinstance(outcome, ResourceExhausted):
        log.warning("rate limiter at capacity: answering 503: %s", outcome)
        return unavailable("the rate limiter is at capacity; retry shortly")
    log.error("rate limiter refused the check: answering 500: %s", outcome)
    body = {"error": "rate_limiter_error", "message": "the rate limiter could not decide on this request"}
    return json_response(500, body, [])


def rate_limit_headers(decision: Decision) -> RawHeaders:
    """The headers of :func:`quorate.headers.rate_limit_headers` in ASGI form."""
    return [
        (name.lower().encode("ascii"), value.encode("ascii")) for name, value in headers.rate_limit_headers(decision)
    ]


def too_many_requests(decision: Decision) -> Rejection:
    """The 429 for a denial: JSON body, the rate-limit headers and ``Retry-After`` (at least 1 s)."""
    retry_after = headers.retry_after_secs(decision)
    policy = decision.policy
    if policy is not None:
        message = f"rate limit exceeded (policy {policy}); retry in {retry_after} s"
    else:
        message = f"rate limit exceeded; retry in {retry_after} s"
    body = {"error": "rate_limit_exceeded", "message": message, "retry_after": retry_after}
    return json_response(429, body, rate_limit_headers(decision))


def unavailable(message: str) -> Rejection:
    """The 503 when no decision could be made: JSON body and ``Retry-After: 1``."""
    body = {"error": "rate_limiter_unavailable", "message": message, "retry_after": 1}
    return json_response(503, body, [(b"retry-after", b"1")])


def json_response(status: int, body: Mapping[str, object], extra: RawHeaders) -> Rejection:
    """A JSON response with ``extra`` headers first, then content type and length."""
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw = [*extra, (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode("ascii"))]
    return Rejection(status=status, headers=raw, body=data)


__all__ = ["Proceed", "RawHeaders", "Rejection", "json_response", "too_many_requests", "unavailable", "verdict"]
