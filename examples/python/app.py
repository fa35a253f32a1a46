"""A tiny API rate-limited by a Quorate cluster: ``uvicorn app:app``.

- ``GET /v1/chat?prompt=...`` pretends to call an LLM; it is rate-limited in the tiers the cluster's rules pick
  by API key prefix (``agent_`` 200/min, ``admin_`` 1000/min, any other key 60/min), per client IP (600/min)
  and per ``x-agent-id`` (200/min);
- ``GET /health``, ``/docs`` and ``/openapi.json`` are never limited.

Settings come from the environment: ``QUORATE_ENDPOINTS`` (default ``quorate dev``'s three nodes),
``TRUSTED_PROXIES`` (comma-separated CIDR ranges whose ``X-Forwarded-For`` is believed; default none) and
``QUORATE_FAIL_OPEN=1`` to let requests through while the cluster is unreachable (default: answer 503).
"""

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from quorate_middleware import QuorateClient, QuorateMiddleware

DEFAULT_ENDPOINTS = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"

client = QuorateClient(os.environ.get("QUORATE_ENDPOINTS", DEFAULT_ENDPOINTS))


@asynccontextmanager
async def lifespan(_app: FastAPI):
    yield
    await client.close()


app = FastAPI(title="Quorate example API", lifespan=lifespan)
app.add_middleware(
    QuorateMiddleware,
    client=client,
    skip_paths=["/health", "/docs", "/openapi.json"],
    trusted_proxies=[p for p in os.environ.get("TRUSTED_PROXIES", "").split(",") if p.strip()],
    # Callers may declare a request's cost (e.g. the LLM tokens it expects); absent means 1.
    cost_header="x-cost",
    fail_open=os.environ.get("QUORATE_FAIL_OPEN") == "1",
)


@app.get("/v1/chat")
async def chat(prompt: str = "hello") -> dict:
    """Pretends to call an LLM. Only requests the rate limiter allowed get here."""
    words = len(prompt.split())
    return {
        "model": "pretend-llm-1",
        "reply": f"You said: {prompt}",
        "usage": {"prompt_tokens": words, "completion_tokens": words + 3},
    }


@app.get("/health")
async def health() -> dict:
    """Answers load balancers; never rate-limited."""
    return {"status": "ok"}
