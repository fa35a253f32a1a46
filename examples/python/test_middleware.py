"""The middleware against fake Quorate nodes: gRPC servers on 127.0.0.1:0 in this process answering fixed
CheckResponses. Exact headers, status codes and bodies on allow and deny; 503 when no node listens; failover;
skipped paths; how requests are identified. Run with ``pytest`` (after generating the stubs, see the README).
"""

import socket
from concurrent import futures

import grpc
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from quorate_middleware import QuorateClient, QuorateMiddleware, pb, pb_grpc

SECOND = 1_000_000_000


def limit(policy, allowed, limit, remaining, reset_ns, retry_ns, window_ns=60 * SECOND):
    return pb.LimitStatus(
        policy=policy,
        key=f"api_key={policy}_key",
        allowed=allowed,
        limit=limit,
        base_limit=limit,
        remaining=remaining,
        reset_after_ns=reset_ns,
        retry_after_ns=retry_ns,
        window_ns=window_ns,
    )


def answer(status):
    return pb.CheckResponse(allowed=status.allowed, overall=status, limits=[status], policy_version=1)


class FakeNode(pb_grpc.RateLimiterServicer):
    """A node answering every Check with ``response`` (or failing with ``error``), recording the requests."""

    def __init__(self, response=None, error=None):
        self.response = response
        self.error = error
        self.requests = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_RateLimiterServicer_to_server(self, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{port}"
        self.server.start()

    def Check(self, request, context):
        self.requests.append(request)
        if self.error:
            context.abort(*self.error)
        return self.response

    def descriptors(self):
        return [(d.dimension, d.value) for d in self.requests[-1].descriptors]

    def stop(self):
        self.server.stop(grace=None)


@pytest.fixture
def nodes():
    started = []

    def start(response=None, error=None):
        node = FakeNode(response, error)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


def closed_port_endpoint():
    """An endpoint where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def make_app(endpoints, **options):
    """A two-route app behind the middleware; ``calls`` counts requests that reached the app."""
    client = QuorateClient(endpoints, timeout=1.0)
    app = FastAPI()
    app.state.calls = 0
    options.setdefault("skip_paths", ["/health", "/docs"])
    app.add_middleware(QuorateMiddleware, client=client, **options)

    @app.get("/v1/chat")
    async def chat():
        app.state.calls += 1
        return {"reply": "ok"}

    @app.get("/health")
    async def health():
        app.state.calls += 1
        return {"status": "ok"}

    return app


def http(app, peer="203.0.113.9"):
    return TestClient(app, client=(peer, 40000))


def test_allowed_request_passes_through_with_exact_rate_limit_headers(nodes):
    node = nodes(answer(limit("agent", True, 200, 150, 1_200_000_000, 0)))
    app = make_app([node.endpoint])
    with http(app) as client:
        response = client.get("/v1/chat", headers={"x-api-key": "agent_42", "x-agent-id": "planner-7"})
    assert response.status_code == 200
    assert response.json() == {"reply": "ok"}
    assert app.state.calls == 1
    assert response.headers["x-ratelimit-limit"] == "200"
    assert response.headers["x-ratelimit-remaining"] == "150"
    assert response.headers["x-ratelimit-reset"] == "2"
    assert response.headers["ratelimit-policy"] == '"agent";q=200;w=60'
    assert response.headers["ratelimit"] == '"agent";r=150;t=2'
    assert "retry-after" not in response.headers
    assert node.descriptors() == [("api_key", "agent_42"), ("ip", "203.0.113.9"), ("agent_id", "planner-7")]
    assert node.requests[-1].cost == 1


def test_denied_request_gets_a_429_json_body_and_retry_after_rounded_up_without_reaching_the_app(nodes):
    node = nodes(answer(limit("default", False, 60, 0, 59 * SECOND + 1, 2_100_000_000)))
    app = make_app([node.endpoint])
    with http(app) as client:
        response = client.get("/v1/chat", headers={"x-api-key": "user_1"})
    assert response.status_code == 429
    assert app.state.calls == 0
    assert response.headers["retry-after"] == "3"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-ratelimit-limit"] == "60"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.headers["x-ratelimit-reset"] == "60"
    assert response.headers["ratelimit-policy"] == '"default";q=60;w=60'
    assert response.headers["ratelimit"] == '"default";r=0;t=60'
    assert response.json() == {
        "error": "rate_limit_exceeded",
        "message": "rate limit exceeded (policy default); retry in 3 s",
        "retry_after": 3,
    }


@pytest.mark.parametrize("retry_ns", [0, 1, SECOND - 1, SECOND])
def test_retry_after_is_at_least_one_second(nodes, retry_ns):
    node = nodes(answer(limit("default", False, 60, 0, SECOND // 2, retry_ns)))
    with http(make_app([node.endpoint])) as client:
        response = client.get("/v1/chat", headers={"x-api-key": "k"})
    assert (response.status_code, response.headers["retry-after"], response.json()["retry_after"]) == (429, "1", 1)


def test_closed_port_gets_a_503_when_failing_closed():
    app = make_app([closed_port_endpoint()])
    with http(app) as client:
        response = client.get("/v1/chat", headers={"x-api-key": "k"})
    assert response.status_code == 503
    assert app.state.calls == 0
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "error": "rate_limiter_unavailable",
        "message": "the rate limiter could not be reached; retry shortly",
        "retry_after": 1,
    }


def test_closed_port_passes_requests_through_without_headers_when_failing_open():
    app = make_app([closed_port_endpoint()], fail_open=True)
    with http(app) as client:
        response = client.get("/v1/chat", headers={"x-api-key": "k"})
    assert (response.status_code, response.json(), app.state.calls) == (200, {"reply": "ok"}, 1)
    assert "x-ratelimit-limit" not in response.headers


def test_a_node_that_refuses_connections_is_skipped_for_the_next(nodes):
    node = nodes(answer(limit("default", True, 60, 59, SECOND, 0)))
    with http(make_app([closed_port_endpoint(), node.endpoint])) as client:
        response = client.get("/v1/chat", headers={"x-api-key": "k"})
    assert response.status_code == 200
    assert response.headers["ratelimit"] == '"default";r=59;t=1'


def test_skipped_paths_are_never_checked_and_near_misses_are(nodes):
    node = nodes(answer(limit("default", True, 60, 59, SECOND, 0)))
    with http(make_app([node.endpoint])) as client:
        assert "x-ratelimit-limit" not in client.get("/health").headers
        assert len(node.requests) == 0
        assert client.get("/healthz").status_code == 404
    assert len(node.requests) == 1


def test_forwarded_for_is_believed_only_from_trusted_proxies(nodes):
    node = nodes(answer(limit("per_ip", True, 600, 599, SECOND, 0)))
    app = make_app([node.endpoint], trusted_proxies=["10.0.0.0/8"])
    forged = {"x-forwarded-for": "6.6.6.6, 198.51.100.7"}
    with http(app, peer="203.0.113.9") as client:
        client.get("/v1/chat", headers=forged)
    assert node.descriptors() == [("ip", "203.0.113.9")]
    with http(app, peer="10.0.0.5") as client:
        client.get("/v1/chat", headers=forged)
    assert node.descriptors() == [("ip", "198.51.100.7")]


def test_requests_without_identity_share_one_limit_and_cost_comes_from_the_cost_header(nodes):
    node = nodes(answer(limit("per_ip", True, 600, 599, SECOND, 0)))
    with http(make_app([node.endpoint], cost_header="x-cost"), peer="testclient") as client:
        client.get("/v1/chat")
        assert (node.descriptors(), node.requests[-1].cost) == ([("ip", "unknown")], 1)
        client.get("/v1/chat", headers={"x-api-key": "k", "x-cost": "25"})
        assert (node.descriptors(), node.requests[-1].cost) == ([("api_key", "k")], 25)
        client.get("/v1/chat", headers={"x-api-key": "k", "x-cost": "lots"})
        assert node.requests[-1].cost == 1


def test_a_check_the_cluster_refuses_as_invalid_gets_a_500(nodes):
    node = nodes(error=(grpc.StatusCode.INVALID_ARGUMENT, "descriptor 0 matches no policy rule"))
    with http(make_app([node.endpoint])) as client:
        response = client.get("/v1/chat", headers={"x-api-key": "k"})
    assert response.status_code == 500
    assert response.json()["error"] == "rate_limiter_error"
