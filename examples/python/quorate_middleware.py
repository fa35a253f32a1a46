"""Rate-limit a FastAPI/Starlette app with a Quorate cluster over gRPC.

- ``QuorateClient``: one gRPC channel per cluster node, shared by every request; ``check`` sends
  ``RateLimiter.Check`` with a deadline and fails over to the next node when one answers UNAVAILABLE.
- ``QuorateMiddleware``: a pure ASGI middleware. For each request it builds descriptors (``api_key`` from
  ``x-api-key``, ``ip`` from the client address, ``agent_id`` from ``x-agent-id``), checks them, and then either
  calls the app and adds the rate-limit headers, or answers itself:

  ======================================  ====================================================================
  outcome                                 response
  ======================================  ====================================================================
  allowed                                 the app's response plus ``X-RateLimit-Limit/Remaining/Reset`` and
                                          ``RateLimit-Policy: "<policy>";q=<limit>;w=<window s>``,
                                          ``RateLimit: "<policy>";r=<remaining>;t=<reset s>`` (IETF draft-10)
  denied                                  429, the headers above, ``Retry-After``, body
                                          ``{"error":"rate_limit_exceeded","message":...,"retry_after":N}``
  cluster unreachable                     503 ``rate_limiter_unavailable`` with ``Retry-After: 1`` (fail
                                          closed), or the app's response without headers if ``fail_open``
  key table full (RESOURCE_EXHAUSTED)     503 ``rate_limiter_unavailable``
  request refused (INVALID_ARGUMENT...)   500 ``rate_limiter_error``
  ======================================  ====================================================================

Seconds are rounded up everywhere, and ``Retry-After`` is at least 1: a client told to wait less than needed
comes back too early and is denied again. The answers match the Rust middleware (``quorate_client::middleware``).

The stubs are generated from ``proto/`` into ``gen/`` (see the README); ``gen`` is put on ``sys.path`` here so
that the generated ``from quorate.v1 import ...`` lines resolve.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parent / "gen"))
try:
    from quorate.v1 import rate_limiter_pb2 as pb
    from quorate.v1 import rate_limiter_pb2_grpc as pb_grpc
except ImportError as error:  # pragma: no cover - a setup step was skipped
    raise ImportError(
        "the gRPC stubs are missing: run `python -m grpc_tools.protoc -I ../../proto --python_out=gen "
        "--grpc_python_out=gen quorate/v1/rate_limiter.proto` in examples/python"
    ) from error

log = logging.getLogger("quorate")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The cluster refuses descriptor values outside 1..=256 bytes; such header values are left out instead.
MAX_VALUE_BYTES = 256

# gRPC waits up to 2 minutes between reconnects to a node that was down; a restarted node should be used again
# within a second.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class QuorateUnavailable(Exception):
    """Raised when no node of the cluster answered the check in time."""


@dataclass(frozen=True)
class Decision:
    """The cluster's answer to one check: whether it is allowed, and the most restrictive limit."""

    allowed: bool
    overall: pb.LimitStatus | None


class QuorateClient:
    """Checks requests against a Quorate cluster, failing over between its nodes.

    ``endpoints`` are ``host:port`` strings (any node: followers forward to the leader). ``timeout`` bounds a
    whole check in seconds, failover included. Channels are opened on first use, in the running event loop,
    and reused by every request in that loop; ``close`` them on shutdown.
    """

    def __init__(self, endpoints: Sequence[str] | str, timeout: float = 2.5) -> None:
        if isinstance(endpoints, str):
            endpoints = endpoints.split(",")
        self.endpoints = [e.strip().removeprefix("http://") for e in endpoints if e.strip()]
        if not self.endpoints:
            raise ValueError("at least one endpoint is needed")
        if timeout <= 0:
            raise ValueError("timeout must be more than zero")
        self.timeout = timeout
        self._stubs: dict[str, pb_grpc.RateLimiterStub] = {}
        self._channels: list[grpc.aio.Channel] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # The node that answered last is asked first.
        self._preferred = 0

    def _stub(self, endpoint: str) -> pb_grpc.RateLimiterStub:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A grpc.aio channel belongs to the event loop it was opened in; a new loop (another TestClient, a
            # restarted worker) needs new channels. The old ones went with their loop.
            self._stubs.clear()
            self._channels.clear()
            self._loop = loop
        stub = self._stubs.get(endpoint)
        if stub is None:
            channel = grpc.aio.insecure_channel(endpoint, options=CHANNEL_OPTIONS)
            self._channels.append(channel)
            stub = self._stubs[endpoint] = pb_grpc.RateLimiterStub(channel)
        return stub

    async def check(self, descriptors: Iterable[tuple[str, str]], cost: int = 1) -> Decision:
        """Checks (and if allowed, charges) a request costing ``cost`` units.

        Raises ``QuorateUnavailable`` if no node answered before the timeout, and ``grpc.aio.AioRpcError`` for
        any other error (INVALID_ARGUMENT for bad descriptors, RESOURCE_EXHAUSTED for a full key table).
        A node answering UNAVAILABLE may still have committed the check: retrying elsewhere may charge it twice,
        which only ever denies more, never admits more.
        """
        request = pb.CheckRequest(
            descriptors=[pb.Descriptor(dimension=d, value=v) for d, v in descriptors], cost=max(cost, 1)
        )
        deadline = time.monotonic() + self.timeout
        last = "no node was tried"
        for attempt in range(len(self.endpoints)):
            index = (self._preferred + attempt) % len(self.endpoints)
            endpoint = self.endpoints[index]
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                response = await self._stub(endpoint).Check(request, timeout=left)
            except grpc.aio.AioRpcError as error:
                last = f"{endpoint}: {error.code().name}: {error.details()}"
                if error.code() == grpc.StatusCode.UNAVAILABLE:
                    log.debug("quorate node unavailable, trying the next: %s", last)
                    continue
                if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    break
                raise
            self._preferred = index
            overall = response.overall if response.HasField("overall") else None
            return Decision(allowed=response.allowed, overall=overall)
        raise QuorateUnavailable(last)

    async def close(self) -> None:
        """Closes every channel."""
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        self._stubs.clear()


def secs_ceil(ns: int) -> int:
    """Whole seconds in ``ns`` nanoseconds, rounded up."""
    return -(-ns // 1_000_000_000)


def sf_string(value: str) -> str:
    """Encodes a policy name as a structured-field string (RFC 8941): ``"`` and ``\\`` escaped, anything that
    is not visible ASCII replaced by ``?``."""
    out = []
    for c in value:
        if c in '"\\':
            out.append("\\" + c)
        elif " " <= c <= "~":
            out.append(c)
        else:
            out.append("?")
    return '"' + "".join(out) + '"'


def rate_limit_headers(overall: pb.LimitStatus | None) -> dict[str, str]:
    """The ``X-RateLimit-*`` trio and the draft-10 ``RateLimit-Policy``/``RateLimit`` fields for a limit."""
    if overall is None:
        return {}
    policy = sf_string(overall.policy)
    reset = secs_ceil(overall.reset_after_ns)
    return {
        "X-RateLimit-Limit": str(overall.limit),
        "X-RateLimit-Remaining": str(overall.remaining),
        "X-RateLimit-Reset": str(reset),
        "RateLimit-Policy": f"{policy};q={overall.limit};w={secs_ceil(overall.window_ns)}",
        "RateLimit": f"{policy};r={overall.remaining};t={reset}",
    }


def too_many_requests(overall: pb.LimitStatus | None) -> JSONResponse:
    """The 429 for a denial."""
    retry_after = max(secs_ceil(overall.retry_after_ns) if overall else 1, 1)
    if overall is not None and overall.policy:
        message = f"rate limit exceeded (policy {overall.policy}); retry in {retry_after} s"
    else:
        message = f"rate limit exceeded; retry in {retry_after} s"
    headers = rate_limit_headers(overall) | {"Retry-After": str(retry_after)}
    body = {"error": "rate_limit_exceeded", "message": message, "retry_after": retry_after}
    return JSONResponse(body, status_code=429, headers=headers)


def unavailable(message: str) -> JSONResponse:
    """The 503 when no decision could be made."""
    body = {"error": "rate_limiter_unavailable", "message": message, "retry_after": 1}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


def client_ip(peer: str | None, forwarded_for: list[str], trusted: Sequence[IpNetwork]) -> str | None:
    """The client's address: the peer, or if the peer is a trusted proxy, the right-most address of
    ``X-Forwarded-For`` that is not one (entries to its left can be forged by the client)."""

    def parse(text: str) -> IpAddress | None:
        text = text.strip()
        if text.startswith("[") and "]" in text:  # [v6]:port
            text = text[1 : text.index("]")]
        elif text.count(":") == 1:  # v4:port
            text = text.split(":")[0]
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return None
        mapped = getattr(ip, "ipv4_mapped", None)
        return mapped or ip

    def is_trusted(ip: IpAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in trusted)

    current = parse(peer) if peer else None
    if current is None:
        return None
    if not is_trusted(current):
        return str(current)
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = parse(hop)
        if ip is None:  # a trusted proxy wrote garbage: stop at that proxy
            return str(current)
        current = ip
        if not is_trusted(ip):
            break
    return str(current)


class QuorateMiddleware:
    """ASGI middleware that checks each HTTP request with a ``QuorateClient`` (see the module docs).

    - ``skip_paths``: paths never checked; each exempts itself and everything below it (``/docs`` exempts
      ``/docs/x``, not ``/docsx``);
    - ``trusted_proxies``: CIDR ranges of reverse proxies whose ``X-Forwarded-For`` is believed;
    - ``cost_header``: a header holding the request's cost (a positive integer; absent or invalid means 1);
    - ``fail_open``: let requests through unchecked while the cluster is unreachable (default: answer 503).

    A request with no API key, agent id or address is counted under ``ip = unknown``, so leaving out
    identification never escapes limiting.
    """

    def __init__(
        self,
        app: ASGIApp,
        client: QuorateClient,
        skip_paths: Iterable[str] = (),
        trusted_proxies: Iterable[str] = (),
        api_key_header: str = "x-api-key",
        agent_id_header: str = "x-agent-id",
        cost_header: str | None = None,
        fail_open: bool = False,
    ) -> None:
        self.app = app
        self.client = client
        self.skip_paths = [p.rstrip("/") or "/" for p in skip_paths]
        self.trusted_proxies = [ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies]
        self.api_key_header = api_key_header.lower().encode()
        self.agent_id_header = agent_id_header.lower().encode()
        self.cost_header = cost_header.lower().encode() if cost_header else None
        self.fail_open = fail_open

    def skips(self, path: str) -> bool:
        """True if ``path`` is a skipped path or below one."""
        return any(path == p or path.startswith(p if p.endswith("/") else p + "/") for p in self.skip_paths)

    def identify(self, scope: Scope) -> tuple[list[tuple[str, str]], int]:
        """The descriptors and cost of a request."""
        headers: dict[bytes, list[str]] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name.lower(), []).append(value.decode("latin-1"))

        def usable(name: bytes) -> str | None:
            value = headers.get(name, [""])[0].strip()
            return value if 0 < len(value.encode()) <= MAX_VALUE_BYTES else None

        descriptors = []
        if key := usable(self.api_key_header):
            descriptors.append(("api_key", key))
        peer = scope.get("client")
        if ip := client_ip(peer[0] if peer else None, headers.get(b"x-forwarded-for", []), self.trusted_proxies):
            descriptors.append(("ip", ip))
        if agent := usable(self.agent_id_header):
            descriptors.append(("agent_id", agent))
        if not descriptors:
            descriptors.append(("ip", "unknown"))
        cost = 1
        if self.cost_header and (text := usable(self.cost_header)) and text.isdigit():
            cost = max(int(text), 1)
        return descriptors, cost

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.skips(scope["path"]):
            await self.app(scope, receive, send)
            return
        descriptors, cost = self.identify(scope)
        try:
            decision = await self.client.check(descriptors, cost)
        except QuorateUnavailable as error:
            if self.fail_open:
                log.warning("rate limiter unreachable, failing open: %s", error)
                await self.app(scope, receive, send)
            else:
                log.warning("rate limiter unreachable, answering 503 (fail closed): %s", error)
                await unavailable("the rate limiter could not be reached; retry shortly")(scope, receive, send)
            return
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                log.warning("rate limiter at capacity, answering 503: %s", error.details())
                response = unavailable("the rate limiter is at capacity; retry shortly")
            else:
                log.error("rate limiter refused the check (%s), answering 500: %s", error.code().name, error.details())
                body = {"error": "rate_limiter_error", "message": "the rate limiter could not decide on this request"}
                response = JSONResponse(body, status_code=500)
            await response(scope, receive, send)
            return
        if not decision.allowed:
            await too_many_requests(decision.overall)(scope, receive, send)
            return
        extra = rate_limit_headers(decision.overall)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["Decision", "QuorateClient", "QuorateMiddleware", "QuorateUnavailable"]
