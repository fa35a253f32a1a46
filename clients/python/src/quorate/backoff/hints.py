"""Reading a server's wait hint from response headers: ``Retry-After`` and the ``RateLimit`` structured field.

Headers may be any mapping (``httpx.Headers``, ``requests``' case-insensitive dict, a plain ``dict``) or a
sequence of ``(name, value)`` pairs; names are matched case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeAlias

#: Response headers as this module accepts them.
HeadersLike: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]] | Any


def header_values(headers: HeadersLike, name: str) -> list[str]:
    """All values of header ``name`` (case-insensitive), in order."""
    get_list = getattr(headers, "get_list", None)
    if callable(get_list):  # httpx.Headers keeps repeated headers apart
        return [str(value) for value in get_list(name)]
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    wanted = name.lower()
    return [str(value) for key, value in pairs if str(key).lower() == wanted]


def retry_after(headers: HeadersLike, now: float) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait: delta-seconds, or an HTTP-date relative to ``now``
    (seconds since the epoch; a date in the past means 0). ``None`` if the header is absent or malformed.

    >>> retry_after({"Retry-After": "120"}, 0.0)
    120.0
    >>> retry_after({"retry-after": "Sun, 06 Nov 1994 08:50:07 GMT"}, 784_111_777.0)  # 08:49:37
    30.0
    """
    values = header_values(headers, "retry-after")
    if not values:
        return None
    value = values[0].strip()
    if value and value.isascii() and value.isdigit():
        # More digits than a u64 holds is "a very long time" (as in Rust), not a parse error.
        return float(min(int(value), 2**64 - 1))
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if date.tzinfo is None:
        # asctime dates carry no zone; HTTP-dates are always GMT (RFC 9110 §5.6.7).
        date = date.replace(tzinfo=timezone.utc)
    return max(0.0, date.timestamp() - now)


def ratelimit_reset(headers: HeadersLike, too_many_requests: bool) -> float | None:
    """The seconds the ``RateLimit`` header (IETF draft-10, e.g. ``"agent";r=0;t=30``) implies.

    The largest ``t`` among the exhausted items (``r=0``); for a 429, if no item says ``r=0``, the largest ``t`` of
    all (the request was larger than what remains). ``None`` if the header is absent, malformed or names no such
    item.

    >>> ratelimit_reset({"RateLimit": '"per_ip";r=40;t=2, "agent";r=0;t=7'}, False)
    7.0
    """
    exhausted: int | None = None
    largest: int | None = None
    for value in header_values(headers, "ratelimit"):
        for item in split_list(value):
            remaining, reset = item_params(item)
            if reset is None:
                continue
            largest = reset if largest is None else max(largest, reset)
            if remaining == 0:
                exhausted = reset if exhausted is None else max(exhausted, reset)
    seconds = exhausted if exhausted is not None else (largest if too_many_requests else None)
    return float(seconds) if seconds is not None else None


def split_list(value: str) -> list[str]:
    """Splits a structured-field list on the commas outside quoted strings."""
    items: list[str] = []
    start, quoted, escaped = 0, False, False
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append(value[start:i].strip())
            start = i + 1
    items.append(value[start:].strip())
    return items


def item_params(item: str) -> tuple[int | None, int | None]:
    """The integer parameters ``r`` and ``t`` of one list item (``"name";r=0;t=30``), skipping the quoted name."""
    if item.startswith('"'):
        # The end of the quoted name: the first `"` not escaped.
        params, escaped = "", False
        for i, char in enumerate(item[1:], start=1):
            if char == '"' and not escaped:
                params = item[i + 1 :]
                break
            escaped = char == "\\" and not escaped
    else:
        _, _, params = item.partition(";")
    remaining: int | None = None
    reset: int | None = None
    for param in params.split(";"):
        key, equals, raw = param.partition("=")
        if not equals:
            continue
        number = _u64(raw.strip())
        if key.strip() == "r":
            remaining = number
        elif key.strip() == "t":
            reset = number
    return remaining, reset


def _u64(text: str) -> int | None:
    digits = text[1:] if text.startswith("+") else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    value = int(digits)
    return value if value < 2**64 else None


__all__ = ["HeadersLike", "header_values", "item_params", "ratelimit_reset", "retry_after", "split_list"]
