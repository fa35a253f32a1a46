"""The HTTP headers an API server sends for a :class:`~quorate.Decision`.

The de-facto ``X-RateLimit-*`` trio, the IETF draft-10 ``RateLimit-Policy`` / ``RateLimit`` structured fields, and
``Retry-After`` on a denial. One definition for every place that shows them (the ASGI middleware, your own
handlers); it is the Python twin of ``quorate_client::headers`` in Rust, and both are tested against the same
cases (``clients/testdata/rate_limit_headers.json``). Seconds are rounded up everywhere: a client told to wait
less than needed comes back too early and is denied again.

>>> from quorate import Decision, LimitDecision, Source
>>> limit = LimitDecision("agent", "api_key=agent_42", True, 200, 200, 195, 1_500_000_000, 0, 60_000_000_000)
>>> rate_limit_headers(Decision.local(Source.CLUSTER, True, [limit]))  # doctest: +NORMALIZE_WHITESPACE
[('X-RateLimit-Limit', '200'), ('X-RateLimit-Remaining', '195'), ('X-RateLimit-Reset', '2'),
 ('RateLimit-Policy', '"agent";q=200;w=60'), ('RateLimit', '"agent";r=195;t=2')]
"""

from __future__ import annotations

from .decision import NANOS_PER_SECOND, Decision

#: The overall limit in force (the effective one when adaptive limits tightened it).
X_RATELIMIT_LIMIT = "X-RateLimit-Limit"
#: Units left under the overall limit.
X_RATELIMIT_REMAINING = "X-RateLimit-Remaining"
#: Whole seconds until the overall limit is fresh again.
X_RATELIMIT_RESET = "X-RateLimit-Reset"
#: ``RateLimit-Policy`` (draft-ietf-httpapi-ratelimit-headers-10): the policy's quota ``q`` and window ``w``.
RATELIMIT_POLICY = "RateLimit-Policy"
#: ``RateLimit`` (draft-10): remaining quota ``r`` and seconds ``t`` until it is restored.
RATELIMIT = "RateLimit"
#: ``Retry-After`` (RFC 9110): whole seconds to wait after a denial.
RETRY_AFTER = "Retry-After"


def rate_limit_headers(decision: Decision) -> list[tuple[str, str]]:
    """Returns the rate-limit headers for ``decision``, in sending order.

    Nothing if no limit applied (a fail-open decision); ``Retry-After`` (at least 1: "0" would invite an
    immediate retry that is denied again) only on a denial.
    """
    overall = decision.overall
    if overall is None:
        return []
    policy = sf_string(overall.policy)
    reset = secs_ceil(overall.reset_after_ns)
    headers = [
        (X_RATELIMIT_LIMIT, str(overall.limit)),
        (X_RATELIMIT_REMAINING, str(overall.remaining)),
        (X_RATELIMIT_RESET, str(reset)),
        (RATELIMIT_POLICY, f"{policy};q={overall.limit};w={secs_ceil(overall.window_ns)}"),
        (RATELIMIT, f"{policy};r={overall.remaining};t={reset}"),
    ]
    if not decision.allowed:
        headers.append((RETRY_AFTER, str(retry_after_secs(decision))))
    return headers


def retry_after_secs(decision: Decision) -> int:
    """Returns the whole seconds a denied client should wait: the decision's retry-after rounded up, at least 1."""
    return max(secs_ceil(decision.retry_after_ns), 1)


def secs_ceil(nanos: int) -> int:
    """Whole seconds in ``nanos`` nanoseconds, rounded up."""
    return -(-nanos // NANOS_PER_SECOND)


def sf_string(text: str) -> str:
    """Encodes ``text`` as a structured-field string (RFC 8941 §3.3.3).

    ``\\`` and ``"`` are escaped; characters an sf-string cannot carry (control, non-ASCII) become ``?``, so the
    result is always a valid header value.
    """
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append("?")
    out.append('"')
    return "".join(out)


__all__ = [
    "RATELIMIT",
    "RATELIMIT_POLICY",
    "RETRY_AFTER",
    "X_RATELIMIT_LIMIT",
    "X_RATELIMIT_REMAINING",
    "X_RATELIMIT_RESET",
    "rate_limit_headers",
    "retry_after_secs",
    "secs_ceil",
    "sf_string",
]
