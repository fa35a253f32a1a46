"""``RateLimitMiddleware``: checks each HTTP request with the cluster before the app sees it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Protocol

from ..decision import Decision
from ..descriptors import DescriptorsLike
from ..errors import QuorateError
from .identity import CostFn, DescriptorsFn, Identity, IpRange, MissingIdentity, PeerFn
from .responses import Proceed, RawHeaders, Rejection, verdict

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Checker(Protocol):
    """What decides for the middleware: :class:`~quorate.AsyncClient`, or a stand-in in tests."""

    async def check(self, descriptors: DescriptorsLike, cost: int = 1) -> Decision:
        """Checks and charges a request; raises :class:`~quorate.QuorateError` when no decision is made."""
        ...


class RateLimitMiddleware:
    """ASGI middleware that checks each HTTP request against a Quorate cluster.

    Allowed requests reach the app (with rate-limit headers added to its response); denied ones get a 429 without
    reaching it. See the :mod:`package docs <quorate.asgi>` for what it reads and answers. Options:

    - ``client``: the :class:`~quorate.AsyncClient` that decides (its failure mode applies);
    - ``api_key_header`` (``x-api-key``; ``None`` stops reading one) and ``bearer_token`` (True: read
      ``Authorization: Bearer <token>`` when the API key header is absent): the ``api_key`` descriptor;
    - ``agent_id_header`` (``x-agent-id``; ``None`` stops reading one): the ``agent_id`` descriptor;
    - ``limit_by_ip`` (True): the client IP as the ``ip`` descriptor; ``trusted_proxies``: CIDR ranges whose
      ``X-Forwarded-For`` is believed; ``peer_fn``: finds the peer another way than the scope's ``client``;
    - ``skip_paths`` (exact paths) and ``skip_prefixes`` (``/docs`` skips ``/docs`` and ``/docs/x``, not
      ``/docsx``): never checked;
    - ``cost_header`` (a positive integer; absent or invalid means 1) or ``cost_fn(scope)``: the request's cost;
    - ``descriptors_fn(scope, descriptors)``: adjusts the descriptors read from a request;
    - ``missing_identity``: what to do with a request that yields no descriptor (default: count it under
      ``ip = unknown``).

    Raises ``ValueError`` for a trusted proxy that is not an address or CIDR range.
    """

    def __init__(
        self,
        app: ASGIApp,
        client: Checker,
        *,
        api_key_header: str | None = "x-api-key",
        bearer_token: bool = True,
        agent_id_header: str | None = "x-agent-id",
        limit_by_ip: bool = True,
        trusted_proxies: Iterable[str | IpRange] = (),
        skip_paths: Iterable[str] = (),
        skip_prefixes: Iterable[str] = (),
        cost_header: str | None = None,
        cost_fn: CostFn | None = None,
        descriptors_fn: DescriptorsFn | None = None,
        peer_fn: PeerFn | None = None,
        missing_identity: MissingIdentity = MissingIdentity.SHARED,
    ) -> None:
        self.app = app
        self.client = client
        self.identity = Identity(
            api_key_header=api_key_header,
            bearer=bearer_token,
            agent_id_header=agent_id_header,
            limit_by_ip=limit_by_ip,
            trusted_proxies=tuple(p if isinstance(p, IpRange) else IpRange(p) for p in trusted_proxies),
            cost_header=cost_header,
            cost_fn=cost_fn,
            descriptors_fn=descriptors_fn,
            peer_fn=peer_fn,
            missing_identity=missing_identity,
        )
        self.skip_paths = frozenset(skip_paths)
        self.skip_prefixes = tuple(skip_prefixes)

    def skips(self, path: str) -> bool:
        """True if ``path`` is exempt: a skipped path, or under a skipped prefix at a segment boundary."""
        if path in self.skip_paths:
            return True
        for prefix in self.skip_prefixes:
            if path.startswith(prefix):
                rest = path[len(prefix) :]
                if not rest or rest.startswith("/") or prefix.endswith("/"):
                    return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.skips(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        identity = self.identity.identify(scope)
        if identity is None:
            await self.app(scope, receive, send)
            return
        descriptors, cost = identity
        outcome: Decision | QuorateError
        try:
            outcome = await self.client.check(descriptors, cost)
        except QuorateError as error:
            outcome = error
        answer = verdict(outcome)
        if isinstance(answer, Rejection):
            await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
            await send({"type": "http.response.body", "body": answer.body})
            return
        await self.app(scope, receive, _adding(answer, send))


def _adding(answer: Proceed, send: Send) -> Send:
    """Wraps ``send`` so that the response start carries the rate-limit headers (the app's own, if any, are
    replaced by the cluster's)."""
    if not answer.headers:
        return send
    names = {name for name, _ in answer.headers}

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept: RawHeaders = [(k, v) for k, v in message.get("headers", ()) if bytes(k).lower() not in names]
            message = {**message, "headers": [*kept, *answer.headers]}
        await send(message)

    return send_with_headers


__all__ = ["ASGIApp", "Checker", "RateLimitMiddleware"]
