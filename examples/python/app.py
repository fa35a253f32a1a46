"""A tiny API rate-limited by a Quorate cluster with the ``quorate`` package: ``uvicorn app:app``.

- ``GET /v1/chat?prompt=...`` pretends to call an LLM; it is rate-limited in the tiers the cluster's rules pick
  by API key prefix (``agent_`` 200/min, ``admin_`` 1000/min, any other key 60/min), per client IP (600/min)
  and per ``x-agent-id`` (200/min); the ``x-cost`` header may declare a request's cost (e.g. expected tokens);
- ``GET /health``, ``/docs`` and ``/openapi.json`` are never limited.

Settings come from the environment: ``QUORATE_ENDPOINTS`` (default ``quorate dev``'s three nodes),
``TRUSTED_PROXIES`` (comma-separated CIDR ranges whose ``X-Forwarded-For`` is believed; default none) and
``QUORATE_FAILURE_MODE``: ``closed`` (default: answer 503 while the cluster is unreachable), ``open`` (let requests
through uncounted) or ``local`` (each API process limits every key to 60/min on its own meanwhile).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from quorate import AsyncClient, FailureMode, FailureModeLike, LocalLimit
from quorate.asgi import RateLimitMiddleware

DEFAULT_ENDPOINTS = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"
FAILURE_MODES: dict[str, FailureModeLike] = {
    "closed": FailureMode.CLOSED,
    "open": FailureMode.OPEN,
    "local": LocalLimit(limit=60, period=60.0),
}

client = AsyncClient(
    os.environ.get("QUORATE_ENDPOINTS", DEFAULT_ENDPOINTS),
    failure_mode=FAILURE_MODES[os.environ.get("QUORATE_FAILURE_MODE", "closed")],
)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    await client.close()


app = FastAPI(title="Quorate example API", lifespan=lifespan)
app.add_middleware(
    RateLimitMiddleware,
    client=client,
    skip_paths=["/health", "/docs", "/openapi.json"],
    trusted_proxies=[p for p in os.environ.get("TRUSTED_PROXIES", "").split(",") if p.strip()],
    cost_header="x-cost",
)


@app.get("/v1/chat")
async def chat(prompt: str = "hello") -> dict[str, object]:
    """Pretends to call an LLM. Only requests the rate limiter allowed get here."""
    words = len(prompt.split())
    return {
        "model": "pretend-llm-1",
        "reply": f"You said: {prompt}",
        "usage": {"prompt_tokens": words, "completion_tokens": words + 3},
    }


@app.get("/health")
async def health() -> dict[str, str]:
    """Answers load balancers; never rate-limited."""
    return {"status": "ok"}
