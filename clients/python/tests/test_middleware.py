"""The ASGI middleware in a FastAPI app against fake nodes: exact status, headers and bodies (the Rust middleware's
cases), fail closed / open / local, skipped paths, trusted proxies, identity and cost."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI, Response

from conftest import StartNode
from fakes import SECOND, FakeNode, dead_addr, limit, response
from quorate import AsyncClient, FailureMode, LocalLimit
from quorate.asgi import MissingIdentity, RateLimitMiddleware

pytestmark = pytest.mark.anyio


def make_app(client: AsyncClient, **options: Any) -> FastAPI:
    """A small API behind the middleware; ``app.state.calls`` counts requests that reached it."""
    app = FastAPI()
    app.state.calls = 0
    options.setdefault("skip_paths", ["/health"])
    app.add_middleware(RateLimitMiddleware, client=client, **options)

    @app.get("/v1/chat")
    async def chat() -> dict[str, str]:
        app.state.calls += 1
        return {"reply": "ok"}

    @app.get("/v1/own-headers")
    async def own_headers(response: Response) -> dict[str, str]:
        app.state.calls += 1
        response.headers["x-ratelimit-limit"] = "999"
        response.headers["x-app"] = "kept"
        return {}

    @app.get("/health")
    async def health() -> dict[str, str]:
        app.state.calls += 1
        return {"status": "ok"}

    return app


@asynccontextmanager
async def http(app: FastAPI, peer: str = "203.0.113.9") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def fixed(status: Any) -> Callable[[object], object]:
    return lambda _request: response(status) if not isinstance(status, tuple) else status


def descriptors(node: FakeNode) -> list[tuple[str, str]]:
    return [(d.dimension, d.value) for d in node.last().request.descriptors]  # type: ignore[attr-defined]


def header_list(response: httpx.Response) -> list[tuple[str, str]]:
    return [(name.decode(), value.decode()) for name, value in response.headers.raw]


async def test_allowed_request_passes_through_with_exact_rate_limit_headers(nodes: StartNode) -> None:
    node = await nodes(fixed(limit("agent", True, 200, 150, 1_200_000_000, 0)))
    async with AsyncClient([node.url], discover_leader=False) as client:
        app = make_app(client)
        async with http(app) as api:
            answer = await api.get("/v1/chat", headers={"x-api-key": "agent_42", "x-agent-id": "planner-7"})
    assert (answer.status_code, answer.json(), app.state.calls) == (200, {"reply": "ok"}, 1)
    ratelimit = [(name, value) for name, value in header_list(answer) if "ratelimit" in name]
    assert ratelimit == [
        ("x-ratelimit-limit", "200"),
        ("x-ratelimit-remaining", "150"),
        ("x-ratelimit-reset", "2"),
        ("ratelimit-policy", '"agent";q=200;w=60'),
        ("ratelimit", '"agent";r=150;t=2'),
    ]
    assert "retry-after" not in answer.headers
    assert descriptors(node) == [("api_key", "agent_42"), ("ip", "203.0.113.9"), ("agent_id", "planner-7")]
    assert node.last().request.cost == 1  # type: ignore[attr-defined]


async def test_denied_request_gets_a_429_json_body_and_retry_after_rounded_up_without_reaching_the_app(
    nodes: StartNode,
) -> None:
    node = await nodes(fixed(limit("default", False, 60, 0, 59 * SECOND + 1, 2_100_000_000)))
    async with AsyncClient([node.url], discover_leader=False) as client:
        app = make_app(client)
        async with http(app) as api:
            answer = await api.get("/v1/chat", headers={"x-api-key": "user_1"})
    assert (answer.status_code, app.state.calls) == (429, 0)
    assert header_list(answer) == [
        ("x-ratelimit-limit", "60"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "60"),
        ("ratelimit-policy", '"default";q=60;w=60'),
        ("ratelimit", '"default";r=0;t=60'),
        ("retry-after", "3"),
        ("content-type", "application/json"),
        ("content-length", str(len(answer.content))),
    ]
    # Byte for byte the Rust middleware's body (serde_json, keys in this order, no spaces).
    assert answer.content == (
        b'{"error":"rate_limit_exceeded","message":"rate limit exceeded (policy default); retry in 3 s",'
        b'"retry_after":3}'
    )


@pytest.mark.parametrize("retry_ns", [0, 1, SECOND - 1, SECOND])
async def test_retry_after_is_at_least_one_second(nodes: StartNode, retry_ns: int) -> None:
    node = await nodes(fixed(limit("default", False, 60, 0, SECOND // 2, retry_ns)))
    async with AsyncClient([node.url], discover_leader=False) as client, http(make_app(client)) as api:
        answer = await api.get("/v1/chat", headers={"x-api-key": "k"})
    assert (answer.status_code, answer.headers["retry-after"], answer.json()["retry_after"]) == (429, "1", 1)


async def test_unreachable_cluster_answers_503_with_retry_after_when_failing_closed() -> None:
    async with AsyncClient([dead_addr()], deadline=0.3) as client:
        app = make_app(client)
        async with http(app) as api:
            answer = await api.get("/v1/chat", headers={"x-api-key": "k"})
    assert (answer.status_code, app.state.calls, answer.headers["retry-after"]) == (503, 0, "1")
    assert answer.content == (
        b'{"error":"rate_limiter_unavailable","message":"the rate limiter could not be reached; retry shortly",'
        b'"retry_after":1}'
    )


async def test_unreachable_cluster_passes_requests_through_without_headers_when_failing_open() -> None:
    async with AsyncClient([dead_addr()], deadline=0.2, failure_mode=FailureMode.OPEN) as client:
        app = make_app(client)
        async with http(app) as api:
            answer = await api.get("/v1/chat", headers={"x-api-key": "k"})
    assert (answer.status_code, answer.json(), app.state.calls) == (200, {"reply": "ok"}, 1)
    assert not any("ratelimit" in name for name, _ in header_list(answer))


async def test_unreachable_cluster_is_limited_by_the_local_fallback_when_configured() -> None:
    async with AsyncClient([dead_addr()], deadline=0.2, failure_mode=LocalLimit(2, 60.0)) as client:
        app = make_app(client, limit_by_ip=False)
        async with http(app) as api:
            answers = [await api.get("/v1/chat", headers={"x-api-key": "k"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["ratelimit-policy"] == '"local";q=2;w=60'
    assert answers[2].json()["message"].startswith("rate limit exceeded (policy local)")


async def test_skipped_paths_and_prefixes_bypass_the_check_and_near_misses_do_not(nodes: StartNode) -> None:
    node = await nodes(fixed(limit("default", True, 60, 59, SECOND, 0)))
    async with AsyncClient([node.url], discover_leader=False) as client:
        app = make_app(client, skip_paths=["/health"], skip_prefixes=["/docs"])
        async with http(app) as api:
            assert "x-ratelimit-limit" not in (await api.get("/health")).headers
            await api.get("/docs")
            await api.get("/docs/oauth2-redirect")
            assert node.count() == 0
            assert (await api.get("/healthz")).status_code == 404
            await api.get("/docsx")
    assert node.count() == 2


async def test_forwarded_for_is_honoured_only_when_the_peer_is_a_trusted_proxy(nodes: StartNode) -> None:
    node = await nodes(fixed(limit("per_ip", True, 600, 599, SECOND, 0)))
    forged = {"x-forwarded-for": "6.6.6.6, 198.51.100.7"}
    async with AsyncClient([node.url], discover_leader=False) as client:
        app = make_app(client, trusted_proxies=["10.0.0.0/8"])
        async with http(app, peer="203.0.113.9") as api:
            await api.get("/v1/chat", headers=forged)
        assert descriptors(node) == [("ip", "203.0.113.9")]
        async with http(app, peer="10.0.0.5") as api:
            await api.get("/v1/chat", headers=forged)
        assert descriptors(node) == [("ip", "198.51.100.7")]


async def test_bearer_tokens_identify_and_requests_without_identity_share_one_limit_unless_allowed(
    nodes: StartNode,
) -> None:
    node = await nodes(fixed(limit("per_ip", True, 600, 599, SECOND, 0)))
    async with AsyncClient([node.url], discover_leader=False) as client:
        async with http(make_app(client), peer="testclient") as api:
            await api.get("/v1/chat", headers={"authorization": "Bearer tok_9"})
            assert descriptors(node) == [("api_key", "tok_9")]
            await api.get("/v1/chat")
            assert descriptors(node) == [("ip", "unknown")]
        app = make_app(client, missing_identity=MissingIdentity.ALLOW)
        async with http(app, peer="testclient") as api:
            answer = await api.get("/v1/chat")
    assert (answer.status_code, node.count(), app.state.calls) == (200, 2, 1)


async def test_cost_comes_from_the_cost_header_or_the_cost_function(nodes: StartNode) -> None:
    node = await nodes(fixed(limit("default", True, 1000, 999, SECOND, 0)))
    async with AsyncClient([node.url], discover_leader=False) as client:
        async with http(make_app(client, cost_header="x-cost")) as api:
            await api.get("/v1/chat", headers={"x-api-key": "k", "x-cost": "25"})
            assert node.last().request.cost == 25  # type: ignore[attr-defined]
            await api.get("/v1/chat", headers={"x-api-key": "k", "x-cost": "lots"})
            assert node.last().request.cost == 1  # type: ignore[attr-defined]
        by_path = make_app(client, cost_fn=lambda scope: 10 if scope["path"] == "/v1/chat" else 1)
        async with http(by_path) as api:
            await api.get("/v1/chat", headers={"x-api-key": "k"})
    assert node.last().request.cost == 10  # type: ignore[attr-defined]


async def test_the_clusters_headers_replace_the_apps_own_rate_limit_headers(nodes: StartNode) -> None:
    node = await nodes(fixed(limit("agent", True, 200, 150, SECOND, 0)))
    async with AsyncClient([node.url], discover_leader=False) as client, http(make_app(client)) as api:
        answer = await api.get("/v1/own-headers", headers={"x-api-key": "k"})
    assert answer.headers.get_list("x-ratelimit-limit") == ["200"]
    assert answer.headers["x-app"] == "kept"


async def test_a_request_the_cluster_refuses_as_invalid_gets_a_500_not_an_error(nodes: StartNode) -> None:
    node = await nodes(fixed((grpc.StatusCode.INVALID_ARGUMENT, "descriptor 0 matches no policy rule")))
    async with AsyncClient([node.url], discover_leader=False) as client, http(make_app(client)) as api:
        answer = await api.get("/v1/chat", headers={"x-api-key": "k"})
    assert answer.status_code == 500
    assert json.loads(answer.content) == {
        "error": "rate_limiter_error",
        "message": "the rate limiter could not decide on this request",
    }


async def test_a_full_key_table_gets_a_503(nodes: StartNode) -> None:
    node = await nodes(fixed((grpc.StatusCode.RESOURCE_EXHAUSTED, "key table full")))
    async with AsyncClient([node.url], discover_leader=False) as client, http(make_app(client)) as api:
        answer = await api.get("/v1/chat", headers={"x-api-key": "k"})
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")
    assert answer.json()["message"] == "the rate limiter is at capacity; retry shortly"


async def test_non_http_scopes_pass_through_unchecked(nodes: StartNode) -> None:
    node = await nodes(fixed(limit("agent", True, 200, 150, SECOND, 0)))
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async with AsyncClient([node.url], discover_leader=False) as client:
        middleware = RateLimitMiddleware(app, client)
        await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
        await middleware({"type": "websocket", "path": "/ws", "headers": []}, None, None)  # type: ignore[arg-type]
    assert (seen, node.count()) == (["lifespan", "websocket"], 0)
