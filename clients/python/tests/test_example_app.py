"""``examples/python/app.py`` keeps working with the package: imported as uvicorn would, against a fake node."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from conftest import StartNode
from fakes import SECOND, limit, response

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "python" / "app.py"


def load_example(monkeypatch: pytest.MonkeyPatch, endpoints: str) -> ModuleType:
    monkeypatch.setenv("QUORATE_ENDPOINTS", endpoints)
    spec = importlib.util.spec_from_file_location("example_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_example_app_limits_chat_and_skips_health(nodes: StartNode, monkeypatch: pytest.MonkeyPatch) -> None:
    node = await nodes(lambda _: response(limit("agent", True, 200, 199, SECOND, 0)))
    example = load_example(monkeypatch, node.url)
    transport = httpx.ASGITransport(app=example.app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        chat = await api.get("/v1/chat", params={"prompt": "hi"}, headers={"x-api-key": "agent_42", "x-cost": "5"})
        health = await api.get("/health")
    await example.client.close()
    assert chat.status_code == 200 and chat.json()["reply"] == "You said: hi"
    assert chat.headers["ratelimit"] == '"agent";r=199;t=1'
    assert (health.status_code, "ratelimit" in health.headers) == (200, False)
    assert node.count() == 1 and node.last().request.cost == 5  # type: ignore[attr-defined]
