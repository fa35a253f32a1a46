"""Fake Quorate nodes: grpc.aio servers on 127.0.0.1:0 in the test's event loop.

A :class:`FakeNode` answers ``Check`` with a handler (a fixed response, a gRPC error, a delay), each check of a
``CheckBatch`` with the same handler (a gRPC error becomes that item's ``ItemError``) unless a ``batch_handler``
answers the whole call, ``ReturnLeases`` with an empty answer, ``Admin.Status`` with what
:meth:`FakeNode.set_status` set (by default: no leader known), and records every call's request, metadata and
peer, so that tests can assert where calls went and what they carried.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
import grpc.aio

from quorate._proto.quorate.v1 import admin_pb2, admin_pb2_grpc, rate_limiter_pb2, rate_limiter_pb2_grpc

pb = rate_limiter_pb2
SECOND = 1_000_000_000


def limit(
    policy: str,
    allowed: bool,
    limit: int,
    remaining: int,
    reset_ns: int,
    retry_ns: int,
    window_ns: int = 60 * SECOND,
) -> pb.LimitStatus:
    """One limit's status as a node reports it."""
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


def response(status: pb.LimitStatus) -> pb.CheckResponse:
    """A one-limit ``Check`` answer."""
    return pb.CheckResponse(allowed=status.allowed, overall=status, limits=[status], policy_version=1)


def allowed() -> pb.CheckResponse:
    return response(limit("agent", True, 200, 199, 300_000_000, 0))


@dataclass
class Call:
    """One call a fake node received."""

    method: str
    request: object
    metadata: dict[str, str]
    peer: str


Handler = Callable[[pb.CheckRequest], "pb.CheckResponse | tuple[grpc.StatusCode, str]"]
BatchHandler = Callable[[pb.CheckBatchRequest], "pb.CheckBatchResponse | tuple[grpc.StatusCode, str] | None"]


@dataclass
class FakeNode:
    """A node answering every ``Check`` through ``handler`` after ``delay`` seconds."""

    handler: Handler
    delay: float = 0.0
    #: Answers a whole ``CheckBatch`` call if set and it returns something (else each check goes to ``handler``).
    batch_handler: BatchHandler | None = None
    calls: list[Call] = field(default_factory=list)
    status: admin_pb2.StatusResponse = field(default_factory=admin_pb2.StatusResponse)
    port: int = 0
    server: grpc.aio.Server | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def count(self, method: str = "Check") -> int:
        return sum(1 for call in self.calls if call.method == method)

    def connections(self) -> int:
        """Distinct client connections seen (peer addresses)."""
        return len({call.peer for call in self.calls})

    def last(self, method: str = "Check") -> Call:
        return [call for call in self.calls if call.method == method][-1]

    def requests(self, method: str = "Check") -> list[object]:
        return [call.request for call in self.calls if call.method == method]

    def batches(self) -> list[list[pb.CheckRequest]]:
        """The checks of every ``CheckBatch`` call, in arrival order."""
        return [list(request.checks) for request in self.requests("CheckBatch")]  # type: ignore[attr-defined]

    def set_status(self, node_id: int, leader_id: int, members: Sequence[tuple[int, str]]) -> None:
        self.status = admin_pb2.StatusResponse(
            node_id=node_id,
            leader_id=leader_id,
            role="leader" if node_id == leader_id else "follower",
            members=[admin_pb2.Member(id=i, addr=addr, voter=True) for i, addr in members],
        )

    async def start(self) -> FakeNode:
        server = grpc.aio.server()
        rate_limiter_pb2_grpc.add_RateLimiterServicer_to_server(_Limiter(self), server)
        admin_pb2_grpc.add_AdminServicer_to_server(_Admin(self), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self.server = server
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=None)
            self.server = None

    def record(self, method: str, request: object, context: grpc.aio.ServicerContext) -> None:
        metadata = {key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)}
        self.calls.append(Call(method, request, metadata, context.peer()))


class _Limiter(rate_limiter_pb2_grpc.RateLimiterServicer):  # type: ignore[misc]
    def __init__(self, node: FakeNode) -> None:
        self.node = node

    async def Check(self, request: pb.CheckRequest, context: grpc.aio.ServicerContext) -> pb.CheckResponse:
        self.node.record("Check", request, context)
        if self.node.delay:
            await asyncio.sleep(self.node.delay)
        answer = self.node.handler(request)
        if isinstance(answer, tuple):
            await context.abort(*answer)
        return answer

    async def CheckBatch(
        self, request: pb.CheckBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckBatchResponse:
        self.node.record("CheckBatch", request, context)
        if self.node.delay:
            await asyncio.sleep(self.node.delay)
        if self.node.batch_handler is not None:
            whole = self.node.batch_handler(request)
            if isinstance(whole, tuple):
                await context.abort(*whole)
            if whole is not None:
                return whole
        results = []
        for check in request.checks:
            answer = self.node.handler(check)
            if isinstance(answer, tuple):
                code, message = answer
                results.append(pb.CheckResult(error=pb.ItemError(code=code.value[0], message=message)))
            else:
                results.append(pb.CheckResult(decision=answer))
        return pb.CheckBatchResponse(results=results)

    async def ReturnLeases(
        self, request: pb.ReturnLeasesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReturnLeasesResponse:
        self.node.record("ReturnLeases", request, context)
        return pb.ReturnLeasesResponse()

    async def Refund(self, request: pb.RefundRequest, context: grpc.aio.ServicerContext) -> pb.RefundResponse:
        self.node.record("Refund", request, context)
        answer = self.node.handler(pb.CheckRequest(descriptors=request.descriptors))
        if isinstance(answer, tuple):
            await context.abort(*answer)
        return pb.RefundResponse()

    async def ReportLoad(
        self, request: pb.ReportLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportLoadResponse:
        self.node.record("ReportLoad", request, context)
        return pb.ReportLoadResponse(load=request.value)


class _Admin(admin_pb2_grpc.AdminServicer):  # type: ignore[misc]
    def __init__(self, node: FakeNode) -> None:
        self.node = node

    async def Status(self, request: admin_pb2.StatusRequest, context: grpc.aio.ServicerContext) -> object:
        self.node.record("Status", request, context)
        return self.node.status


def dead_addr() -> str:
    """An address where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def elect(nodes: Sequence[FakeNode], leader: int) -> None:
    """Makes ``nodes[leader]`` the leader in the status answers of every node."""
    members = [(i + 1, node.addr) for i, node in enumerate(nodes)]
    for i, node in enumerate(nodes):
        node.set_status(i + 1, leader + 1, members)
