"""ASGI middleware that rate-limits HTTP requests with a Quorate cluster, for FastAPI, Starlette or any ASGI app.

:class:`RateLimitMiddleware` builds descriptors for each HTTP request, checks them with an
:class:`~quorate.AsyncClient`, and then either calls the app or answers itself, exactly as the Rust middleware
(``quorate_client::middleware``) does. It is plain ASGI: no dependency on Starlette.

What identifies a request
-------------------------

- ``api_key``: the ``x-api-key`` header, else ``Authorization: Bearer <token>``;
- ``ip``: the peer address (the ASGI scope's ``client``); when the peer is a trusted proxy, the client is the
  right-most address of ``X-Forwarded-For`` that is not a trusted proxy (entries to its left can be forged);
- ``agent_id``: the ``x-agent-id`` header;
- anything else through ``descriptors_fn``. A request with none of these is counted under ``ip = unknown``.

The cost is 1, or read from ``cost_header`` / ``cost_fn``. ``skip_paths`` / ``skip_prefixes`` (health checks,
docs) are never checked, nor are non-HTTP scopes (websockets, lifespan).

What it answers
---------------

======================================================  =============================================================
outcome                                                 response
======================================================  =============================================================
allowed                                                 the app's response, plus ``X-RateLimit-Limit``,
                                                        ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` (seconds,
                                                        rounded up), ``RateLimit-Policy: "<policy>";q=<limit>;w=<s>``
                                                        and ``RateLimit: "<policy>";r=<remaining>;t=<reset s>``
denied                                                  ``429``, the headers above, ``Retry-After`` (seconds, rounded
                                                        up, at least 1), body ``{"error":"rate_limit_exceeded",
                                                        "message":...,"retry_after":<s>}``
cluster unreachable and failing closed; key table full  ``503``, ``Retry-After: 1``, body
                                                        ``{"error":"rate_limiter_unavailable",...}``
request refused by the cluster (bad descriptors)        ``500``, body ``{"error":"rate_limiter_error",...}``
======================================================  =============================================================

With :attr:`~quorate.FailureMode.OPEN` an unreachable cluster lets requests through without headers; with a
:class:`~quorate.LocalLimit` the local fallback decides (policy ``local``).

Example::

    from fastapi import FastAPI
    from quorate import AsyncClient
    from quorate.asgi import RateLimitMiddleware

    client = AsyncClient(["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"])
    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, client=client, skip_paths=["/health"], trusted_proxies=["10.0.0.0/8"])
"""

from __future__ import annotations

from .identity import IpRange, MissingIdentity
from .middleware import Checker, RateLimitMiddleware

__all__ = ["Checker", "IpRange", "MissingIdentity", "RateLimitMiddleware"]
