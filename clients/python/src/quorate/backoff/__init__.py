"""Agent-side backoff: how long to wait before retrying an HTTP request that was rate limited or failed.

For the callers of rate-limited APIs (agents calling an API behind Quorate, or any API that answers ``429``):

- :class:`Backoff`: per request, turns a response's status and headers into a wait: ``Retry-After`` (seconds or
  an HTTP-date), else the ``RateLimit`` header's ``t=``, else exponential backoff with :class:`Jitter`; stops
  after ``max_attempts`` or past the ``max_elapsed`` deadline;
- :func:`retry` and :func:`aretry`: blocking and async loops around any call returning a response with
  ``status_code`` and ``headers`` (httpx, requests);
- :func:`retry_after`, :func:`ratelimit_reset`: the header parsers on their own.

Example with httpx::

    import httpx
    from quorate.backoff import Backoff, aretry

    backoff = Backoff(max_attempts=5, max_elapsed=90)
    async with httpx.AsyncClient(base_url="https://api.example.com") as http:
        response = await aretry(
            lambda: http.post("/v1/chat", json={"prompt": "hi"}),
            backoff,
            retry_exceptions=(httpx.TransportError,),
        )
"""

from __future__ import annotations

from .hints import HeadersLike, ratelimit_reset, retry_after
from .policy import (
    DEFAULT_BASE_DELAY,
    DEFAULT_HINT_JITTER,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_DELAY,
    DEFAULT_MAX_ELAPSED,
    Backoff,
    Jitter,
    is_retryable,
)
from .retrying import ResponseLike, aretry, retry

__all__ = [
    "DEFAULT_BASE_DELAY",
    "DEFAULT_HINT_JITTER",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_ELAPSED",
    "Backoff",
    "HeadersLike",
    "Jitter",
    "ResponseLike",
    "aretry",
    "is_retryable",
    "ratelimit_reset",
    "retry",
    "retry_after",
]
