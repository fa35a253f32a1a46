"""Retry loops around any HTTP call: blocking (:func:`retry`) and async (:func:`aretry`).

``send`` is a function making one request and returning a response with ``status_code`` and ``headers``
(httpx, requests, or anything shaped like them). Each loop uses a :meth:`~quorate.backoff.Backoff.fresh` copy of
the given backoff, so one configured ``Backoff`` can serve every request. When retrying stops, the last response
is returned (a success, a final error, or the last rate-limited one); a transport error listed in
``retry_exceptions`` is retried with exponential backoff and raised again once retrying stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from .policy import Backoff


class ResponseLike(Protocol):
    """What the loops read of a response."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""

    @property
    def headers(self) -> Any:
        """The response headers (a mapping or ``(name, value)`` pairs)."""


R = TypeVar("R", bound=ResponseLike)


def retry(
    send: Callable[[], R],
    backoff: Backoff | None = None,
    *,
    retry_exceptions: tuple[type[BaseException], ...] = (),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> R:
    """Calls ``send`` until its response needs no retry or ``backoff`` says stop; returns the last response.

    >>> import httpx  # doctest: +SKIP
    >>> with httpx.Client() as http:  # doctest: +SKIP
    ...     response = retry(lambda: http.get(url), Backoff(max_attempts=4), retry_exceptions=(httpx.TransportError,))
    """
    policy = (backoff or Backoff()).fresh()
    while True:
        try:
            response = send()
        except retry_exceptions:
            delay = policy.next_error_delay(clock())
            if delay is None:
                raise
        else:
            delay = policy.next_delay(response.status_code, response.headers, clock())
            if delay is None:
                return response
        sleep(delay)


async def aretry(
    send: Callable[[], Awaitable[R]],
    backoff: Backoff | None = None,
    *,
    retry_exceptions: tuple[type[BaseException], ...] = (),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> R:
    """Awaits ``send()`` until its response needs no retry or ``backoff`` says stop; returns the last response.

    >>> async with httpx.AsyncClient() as http:  # doctest: +SKIP
    ...     response = await aretry(lambda: http.post(url, json=body), Backoff(max_elapsed=60))
    """
    policy = (backoff or Backoff()).fresh()
    while True:
        try:
            response = await send()
        except retry_exceptions:
            delay = policy.next_error_delay(clock())
            if delay is None:
                raise
        else:
            delay = policy.next_delay(response.status_code, response.headers, clock())
            if delay is None:
                return response
        await sleep(delay)


__all__ = ["ResponseLike", "aretry", "retry"]
