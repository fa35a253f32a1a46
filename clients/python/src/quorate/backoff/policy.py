"""``Backoff``: retry timing for one request; counts attempts and time, and turns responses into waits.

:meth:`Backoff.next_delay` reads a response's status and headers and says whether to retry and after how long:

1. ``Retry-After`` (delta-seconds or an HTTP-date) if present: the server knows best;
2. else the ``RateLimit`` header's ``t`` (seconds until the exhausted limit resets);
3. else exponential backoff from ``base_delay``, capped at ``max_delay``, with :class:`Jitter`.

A server's hint is never shortened (retrying before it would only be denied again); it is lengthened by up to
``hint_jitter`` so that clients told the same time do not all return at once. Retrying stops after
``max_attempts`` requests, or when the wait would end past ``max_elapsed`` (the deadline) from the first failure.
The same rules and defaults as the Rust client's ``backoff`` module.
"""

from __future__ import annotations

import enum
import math
import random
import time
from collections.abc import Callable

from .hints import HeadersLike, ratelimit_reset, retry_after

#: Default first backoff delay in seconds.
DEFAULT_BASE_DELAY = 0.2
#: Default cap of one exponential delay (server hints are not capped: see ``max_elapsed``).
DEFAULT_MAX_DELAY = 30.0
#: Default number of requests, the first included.
DEFAULT_MAX_ATTEMPTS = 5
#: Default time budget from the first failure: two minutes cover the common one-minute windows.
DEFAULT_MAX_ELAPSED = 120.0
#: Default fraction by which a server's hint may be lengthened.
DEFAULT_HINT_JITTER = 0.1


class Jitter(enum.Enum):
    """How exponential delays are randomised (AWS's "Exponential Backoff And Jitter" names)."""

    #: Exactly the exponential delay.
    NONE = "none"
    #: Uniform in ``[0, delay]``: spreads retries most, the default.
    FULL = "full"
    #: Uniform in ``[delay / 2, delay]``: never retries too early by more than half.
    EQUAL = "equal"


def is_retryable(status: int) -> bool:
    """The statuses retried by default: rate limited (429) and the gateway/availability errors a retry may fix."""
    return status in (429, 502, 503, 504)


class Backoff:
    """Retry timing for one request.

    >>> Backoff(hint_jitter=0).next_delay(429, {"Retry-After": "7"}, now=0.0)  # the server's hint
    7.0
    >>> backoff = Backoff(jitter=Jitter.NONE, base_delay=0.1, max_attempts=3)
    >>> backoff.next_delay(503, {}, now=0.0), backoff.next_delay(503, {}, now=0.0), backoff.next_delay(503, {}, now=0.0)
    (0.1, 0.2, None)

    Randomness comes from a private ``random.Random`` (seeded with ``seed`` if given) or from ``rng``, a callable
    returning numbers in ``[0, 1)`` (others are clamped), so that tests are exact. One ``Backoff`` counts one
    request's attempts: use :meth:`fresh` (the retry helpers do) for each new request.
    """

    def __init__(
        self,
        *,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_elapsed: float = DEFAULT_MAX_ELAPSED,
        jitter: Jitter = Jitter.FULL,
        hint_jitter: float = DEFAULT_HINT_JITTER,
        retry_on: Callable[[int], bool] = is_retryable,
        rng: Callable[[], float] | None = None,
        seed: int | None = None,
    ) -> None:
        for name, value in (("base_delay", base_delay), ("max_delay", max_delay), ("max_elapsed", max_elapsed)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of seconds, at least 0, not {value!r}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (1 means never retry)")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.max_elapsed = max_elapsed
        self.jitter = jitter
        self.hint_jitter = min(max(hint_jitter, 0.0), 1.0) if math.isfinite(hint_jitter) else 0.0
        self.retry_on = retry_on
        self._seed = seed
        self._custom_rng = rng
        self._random = random.Random(seed)
        self._attempts = 0
        self._started: float | None = None

    @property
    def attempts(self) -> int:
        """How many failed attempts have been counted."""
        return self._attempts

    def fresh(self) -> Backoff:
        """Returns a backoff with the same settings and no attempts counted, for a new request.

        A custom ``rng`` is shared; the built-in generator is derived from this one's, so seeded runs stay
        reproducible while two requests do not jitter in lockstep.
        """
        return Backoff(
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            max_attempts=self.max_attempts,
            max_elapsed=self.max_elapsed,
            jitter=self.jitter,
            hint_jitter=self.hint_jitter,
            retry_on=self.retry_on,
            rng=self._custom_rng,
            seed=self._random.getrandbits(64),
        )

    def reset(self) -> None:
        """Forgets attempts and elapsed time, for reuse on a new request."""
        self._attempts = 0
        self._started = None

    def next_delay(self, status: int, headers: HeadersLike, now: float | None = None) -> float | None:
        """Returns the seconds to wait before retrying after a response with ``status`` and ``headers``, or
        ``None`` to stop: the status is not retryable (success included), or attempts or time are used up.

        ``now`` is the wall-clock time in seconds since the epoch (default ``time.time()``), for HTTP-dates and
        the time budget.
        """
        if not self.retry_on(status):
            return None
        now = time.time() if now is None else now
        hint = retry_after(headers, now)
        if hint is None:
            hint = ratelimit_reset(headers, status == 429)
        return self._schedule(now, hint)

    def next_error_delay(self, now: float | None = None) -> float | None:
        """Returns the seconds to wait before retrying after a transport error (no response), or ``None`` to stop."""
        return self._schedule(time.time() if now is None else now, None)

    def _schedule(self, now: float, hint: float | None) -> float | None:
        """Counts a failed attempt and picks the wait: the server's hint (lengthened by jitter) or exponential."""
        if self._started is None:
            self._started = now
        self._attempts += 1
        if self._attempts >= self.max_attempts:
            return None
        if hint is not None:
            delay = hint + hint * self.hint_jitter * self._draw()
        else:
            exponential = min(self.base_delay * 2 ** min(self._attempts - 1, 31), self.max_delay)
            if self.jitter is Jitter.NONE:
                delay = exponential
            elif self.jitter is Jitter.FULL:
                delay = exponential * self._draw()
            else:
                delay = exponential / 2 + exponential / 2 * self._draw()
        elapsed = max(0.0, now - self._started)
        return delay if elapsed + delay <= self.max_elapsed else None

    def _draw(self) -> float:
        if self._custom_rng is None:
            return self._random.random()
        value = self._custom_rng()
        return min(max(value, 0.0), 1.0) if math.isfinite(value) else 0.0

    def __repr__(self) -> str:
        return (
            f"Backoff(base_delay={self.base_delay}, max_delay={self.max_delay}, max_attempts={self.max_attempts}, "
            f"max_elapsed={self.max_elapsed}, jitter={self.jitter}, attempts={self._attempts})"
        )


__all__ = [
    "DEFAULT_BASE_DELAY",
    "DEFAULT_HINT_JITTER",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_ELAPSED",
    "Backoff",
    "Jitter",
    "is_retryable",
]
