"""``AsyncClient``: checks, peeks and refunds against a cluster over grpc.aio, leader-aware, retried within a deadline.

Each node gets one channel, made on first use and shared by every call (a channel that timed out or could not
connect is replaced). Calls go to the leader, learnt from ``Admin.Status``; what is retried on another node is
the Rust client's table (see :mod:`quorate._retry`). While the cluster is unreachable, checks follow the
client's failure mode.

The client's channels belong to the event loop that made its first call. Make one client per event loop, e.g.
in your app's lifespan; a client whose loop has ended may be used from a new loop (it dials afresh).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar, cast

import grpc
import grpc.aio

from . import _retry
from ._channel import NodeChannel, handshake_failure, open_channel, wait_connected
from ._leases import RETURN_INTERVAL, Leases
from ._proto.quorate.v1 import admin_pb2
from ._proto.quorate.v1 import rate_limiter_pb2 as pb
from ._retry import Call, Failure
from ._routing import Member, Routing
from .auth import Security
from .config import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DEADLINE,
    DEFAULT_LEADER_REFRESH,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_CONCURRENCY,
    FailureMode,
    FailureModeLike,
    LocalLimit,
    Settings,
)
from .decision import Decision, Source
from .descriptors import Descriptor, DescriptorsLike, normalize
from .errors import (
    ClientClosed,
    InvalidArgument,
    QuorateError,
    RpcError,
    Timeout,
    TlsError,
    Unavailable,
    from_status,
    status_code,
)
from .fallback import LocalLimiter

log = logging.getLogger("quorate")

#: Seconds a probe may take to learn why a TLS channel failed to connect (it fails at once, unsent).
_HANDSHAKE_PROBE = 0.25

T = TypeVar("T")

_U64_MAX = 2**64 - 1


@dataclass(frozen=True)
class CheckItem:
    """One request of :meth:`AsyncClient.check_many`: its descriptors and cost."""

    descriptors: DescriptorsLike
    #: Units it costs; 0 counts as 1.
    cost: int = 1


class AsyncClient:
    """A handle to a Quorate cluster for asyncio code (FastAPI, Starlette, aiohttp, agents).

    ``endpoints`` are any nodes of the cluster (``host:port``, ``http://host:port`` or ``https://host:port``;
    several for failover; comma-separated strings are split). No connection is opened until the first call.

    Keyword options (the Rust ``ClientBuilder``'s, in seconds):

    - ``failure_mode``: what checks return while the cluster is unreachable: :attr:`FailureMode.CLOSED` (raise;
      the default), :attr:`FailureMode.OPEN` (allow uncounted) or a :class:`~quorate.LocalLimit` (an in-process
      token bucket per key; each process admits at most its limit per period on its own);
    - ``deadline`` (5 s): the longest a whole call may take, retries and leader discovery included;
    - ``call_timeout`` (2.5 s): the longest one attempt on one node may take;
    - ``connect_timeout`` (0.5 s): the longest an attempt waits for a connection;
    - ``retry_timed_out_checks`` (False): retry a charging check whose call timed out (it may be charged twice);
    - ``discover_leader`` (True): ask ``Admin.Status`` for the leader and the members' addresses; turn it off
      behind a load balancer or when the advertised addresses are not reachable from here;
    - ``leader_refresh`` (30 s): re-check a cached leader this old in the background;
    - ``max_concurrency`` (64): calls of one :meth:`check_many` in flight at once;
    - ``max_batch`` (256): the most checks one ``CheckBatch`` call of :meth:`check_many` carries (keep it at or
      under the nodes' ``max_batch_items``, 1,000 by default);
    - ``leases`` (False): lease mode: decide checks of hot keys in this process from quota the cluster leases to
      this client, with no network call while a lease lasts (see :meth:`check`, and :meth:`close`, which gives
      unused units back);
    - ``token`` / ``token_file`` (else ``$QUORATE_TOKEN``): sent as ``authorization: Bearer <token>``;
    - ``ca_cert``, ``client_cert``, ``client_key``, ``tls_server_name``: TLS (mutual with a client pair).

    Raises :class:`~quorate.errors.InvalidConfig` naming a bad option.
    """

    def __init__(
        self,
        endpoints: str | Iterable[str],
        *,
        failure_mode: FailureModeLike = FailureMode.CLOSED,
        deadline: float = DEFAULT_DEADLINE,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry_timed_out_checks: bool = False,
        discover_leader: bool = True,
        leader_refresh: float = DEFAULT_LEADER_REFRESH,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_batch: int = DEFAULT_MAX_BATCH,
        leases: bool = False,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        ca_cert: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        tls_server_name: str | None = None,
    ) -> None:
        tls_asked = any(option is not None for option in (ca_cert, client_cert, client_key, tls_server_name))
        self._settings = Settings.build(
            endpoints,
            tls=tls_asked,
            failure_mode=failure_mode,
            call_timeout=call_timeout,
            deadline=deadline,
            connect_timeout=connect_timeout,
            retry_timed_out_checks=retry_timed_out_checks,
            discover_leader=discover_leader,
            leader_refresh=leader_refresh,
            max_concurrency=max_concurrency,
            max_batch=max_batch,
            leases=leases,
        )
        self._security = Security.build(
            token=token,
            token_file=token_file,
            ca_cert=ca_cert,
            client_cert=client_cert,
            client_key=client_key,
            tls_server_name=tls_server_name,
            https_endpoints=self._settings.tls,
        )
        settings = self._settings
        self._routing: Routing[NodeChannel] = Routing(
            settings.urls,
            connect=lambda url: open_channel(url, settings.target(url), self._security),
            url_of=settings.url_of,
            discover_leader=settings.discover_leader,
            leader_refresh=settings.leader_refresh,
        )
        mode = settings.failure_mode
        self._fallback = LocalLimiter(mode) if isinstance(mode, LocalLimit) else None
        self._leases = Leases() if settings.leases else None
        # The task giving back leases that ran out or expired (lease mode; started on the first grant).
        self._returner: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._discovering = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Replaced channels still closing (calls on them get call_timeout to finish); closed at once by close().
        self._retiring: set[grpc.aio.Channel] = set()
        self._closed = False

    # -- what the client is -------------------------------------------------------------------------------------

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The configured endpoints, normalised to ``http://host:port`` (``https://`` with TLS)."""
        return self._settings.urls

    @property
    def failure_mode(self) -> FailureMode | LocalLimit:
        """What checks do while the cluster is unreachable."""
        return self._settings.failure_mode

    @property
    def leader(self) -> str | None:
        """The URL of the leader this client sends calls to, if it knows one."""
        return self._routing.leader

    @property
    def leases(self) -> bool:
        """True in lease mode: checks of hot keys are decided here from leased quota."""
        return self._leases is not None

    # -- calls --------------------------------------------------------------------------------------------------

    async def check(self, descriptors: DescriptorsLike, cost: int = 1) -> Decision:
        """Checks a request costing ``cost`` units (0 counts as 1) against every limit its descriptors resolve to,
        and charges them all if every one allows it.

        A denial is a :class:`~quorate.Decision` with ``allowed == False``. While the cluster is unreachable, the
        failure mode decides. In lease mode a check whose every descriptor holds a live lease with enough units
        is decided here, with no call (:attr:`~quorate.Source.LEASE`, always allowed); any other goes to the
        cluster and asks for leases of its hot descriptors on the way, giving back with the ask the leases of its
        descriptors that could not serve it (expired, or fewer units left than ``cost``).

        Raises :class:`~quorate.errors.InvalidArgument` (no descriptor; the cluster rejects one or the cost),
        :class:`~quorate.errors.ResourceExhausted` (the cluster's key table is full),
        :class:`~quorate.errors.Unavailable` or :class:`~quorate.errors.Timeout` (cluster unreachable and failing
        closed), :class:`~quorate.errors.RpcError` (any other gRPC error).

        Cancelling the call abandons it, but a check already sent may still be charged.
        """
        return await self._decide(normalize(descriptors), cost, peek=False)

    async def peek(self, descriptors: DescriptorsLike, cost: int = 1) -> Decision:
        """Evaluates a request like :meth:`check` without charging anything: "would this be allowed now?".

        A peek always asks the cluster, also in lease mode (it never spends nor asks for leases).

        Raises as :meth:`check`.
        """
        return await self._decide(normalize(descriptors), cost, peek=True)

    async def check_many(
        self, checks: Iterable[CheckItem | DescriptorsLike], *, peek: bool = False
    ) -> list[Decision | QuorateError]:
        """Checks many requests in ``CheckBatch`` calls; returns one result per request, in order: its decision or
        its error.

        Each item is a :class:`CheckItem` or bare descriptors (cost 1), and is its own atomic decision (one
        request's denial charges nothing of another's). Items go out in batch calls of at most ``max_batch``, at
        most ``max_concurrency`` calls in flight, each sent and retried like one check (leader first, failover
        within the deadline; a batch of peeks like a peek). Each result is what :meth:`check` (or :meth:`peek`)
        would have returned or raised for that request: the same :class:`~quorate.Decision`, the same error
        classes; an item the node answers ``UNAVAILABLE`` on its own is sent again alone, as a lone check would
        have been retried; when a batch call finds the cluster unreachable, the failure mode decides each of its
        requests. Requests with no descriptor or a cost out of range get their
        :class:`~quorate.errors.InvalidArgument` without being sent. Lease mode does not apply: every request
        is decided by the cluster (as in the Rust client).
        """
        items = [item if isinstance(item, CheckItem) else CheckItem(item) for item in checks]
        results: list[Decision | QuorateError | None] = [None] * len(items)
        pending: list[_Pending] = []
        for i, item in enumerate(items):
            try:
                pending.append(_Pending(i, normalize(item.descriptors), _valid_cost(item.cost)))
            except InvalidArgument as error:
                results[i] = error
        size = self._settings.max_batch
        semaphore = asyncio.Semaphore(self._settings.max_concurrency)
        chunks = [pending[start : start + size] for start in range(0, len(pending), size)]
        await asyncio.gather(*(self._check_chunk(chunk, peek, semaphore, results) for chunk in chunks))
        missing = RpcError(grpc.StatusCode.INTERNAL, "a check of the batch got no answer")
        return [missing if result is None else result for result in results]

    async def refund(self, descriptors: DescriptorsLike, amount: int) -> None:
        """Gives ``amount`` units back to every limit the descriptors resolve to, e.g. to settle a reservation of
        LLM tokens once the real count is known. The failure mode does not apply: a failed refund raises.

        Raises :class:`~quorate.errors.InvalidArgument` (``amount`` below 1, no descriptor, or the cluster
        rejects one), :class:`~quorate.errors.Unavailable` (no node reached, or one answered ``UNAVAILABLE``: the
        refund may or may not have been applied and is not repeated), :class:`~quorate.errors.Timeout` (likewise
        not repeated).
        """
        if not 1 <= amount <= _U64_MAX:
            raise InvalidArgument("amount must be at least 1")
        request = pb.RefundRequest(descriptors=_to_wire(normalize(descriptors)), amount=amount)
        metadata = self._security.metadata
        await self._call(
            Call.REFUND, lambda node, budget: node.limiter.Refund(request, timeout=budget, metadata=metadata)
        )

    async def report_load(self, name: str, value: float, ttl: float = 0.0) -> float:
        """Reports a load signal of the services behind this API server (e.g. ``llm_latency_p95_ms``), valid for
        ``ttl`` seconds (0: the cluster's default). Returns the reading as the cluster scaled it, in 0..1.

        Reporting is idempotent (a reading replaces the previous one), so it is retried like a peek.

        Raises :class:`~quorate.errors.InvalidArgument` for a bad name or value,
        :class:`~quorate.errors.Unavailable` if no node answered.
        """
        if ttl < 0:
            raise InvalidArgument("ttl must not be negative")
        request = pb.ReportLoadRequest(name=name, value=value, ttl_ms=min(round(ttl * 1000), _U64_MAX))
        metadata = self._security.metadata
        response = await self._call(
            Call.READ, lambda node, budget: node.limiter.ReportLoad(request, timeout=budget, metadata=metadata)
        )
        return float(cast(pb.ReportLoadResponse, response).load)

    async def status(self) -> admin_pb2.StatusResponse:
        """Returns the ``Admin.Status`` of the first node that answers (role, leader, members, indexes, load).

        Raises :class:`~quorate.errors.Unavailable` if no node answered before the deadline.
        """
        response = await self._call(Call.READ, self._status_call)
        return cast(admin_pb2.StatusResponse, response)

    async def close(self) -> None:
        """Gives back every lease (lease mode) and closes every channel; calls made afterwards raise
        :class:`~quorate.errors.ClientClosed`.

        The leases' unused units go back in one ``ReturnLeases`` call, retried within the deadline; if no node
        takes it, a warning is logged and the units stay charged until their window or bucket moves on (which can
        only under-admit). Closing never raises.
        """
        if self._leases is not None and not self._closed:
            await self._return_all(self._leases)
        self._closed = True
        for task in list(self._tasks):
            _cancel(task)
        channels = [node.channel for node in self._routing.drop_all()] + list(self._retiring)
        self._retiring.clear()
        if self._loop is not None and self._loop is _running_loop():
            await asyncio.gather(*(channel.close() for channel in channels), return_exceptions=True)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient(endpoints={list(self.endpoints)!r}, failure_mode={self.failure_mode!r})"

    # -- the decision path --------------------------------------------------------------------------------------

    async def _decide(
        self,
        descriptors: tuple[Descriptor, ...],
        cost: int,
        *,
        peek: bool,
        sent_at: int | None = None,
        lease_tried: bool = False,
    ) -> Decision:
        """Decides one check or peek: from leases if it can (lease mode, a charging check not tried there yet),
        else with one ``Check`` call (asking for leases of hot descriptors), else by the failure mode.

        ``sent_at`` is when the check was made (monotonic ns; the blocking client passes the time it tried its
        leases), the time grants are counted from."""
        if self._closed:
            raise ClientClosed()
        cost = _valid_cost(cost)
        leases = None if peek else self._leases
        if sent_at is None:
            sent_at = time.monotonic_ns()
        if leases is not None and not lease_tried:
            local = leases.try_local(descriptors, cost, sent_at)
            if local is not None:
                return local
        # The ask carries back this check's leases that cannot serve it (spent, expired or too small).
        ask = leases.ask(descriptors, cost, sent_at) if leases is not None else None
        try:
            response = await self._send_check(descriptors, cost, peek, ask)
        except BaseException as error:
            if leases is not None and ask is not None and ask.returns:
                # They may not have reached the cluster: ReturnLeases takes them (a return is idempotent).
                leases.requeue(ask.returns)
                if not self._closed:
                    self._start_returning(leases)
            if isinstance(error, QuorateError):
                return self._settle(error, descriptors, cost, peek)
            raise
        if leases is not None and response.grants:
            leases.adopt(descriptors, response.grants, sent_at)
            self._start_returning(leases)
        return Decision.from_wire(response)

    async def _send_check(
        self, descriptors: Sequence[Descriptor], cost: int, peek: bool, lease: pb.LeaseRequest | None = None
    ) -> pb.CheckResponse:
        """One ``Check`` call, retried as a check (or as a read for a peek)."""
        request = pb.CheckRequest(descriptors=_to_wire(descriptors), cost=cost, peek=peek)
        if lease is not None:
            request.lease.CopyFrom(lease)
        metadata = self._security.metadata
        response = await self._call(
            Call.READ if peek else Call.CHECK,
            lambda node, budget: node.limiter.Check(request, timeout=budget, metadata=metadata),
        )
        return cast(pb.CheckResponse, response)

    def _settle(self, error: QuorateError, descriptors: Sequence[Descriptor], cost: int, peek: bool) -> Decision:
        """The failure mode's decision for a check the cluster could not be reached for; raises ``error`` if it
        is not an unreachable cluster, or the client fails closed."""
        if not error.unreachable:
            raise error
        mode = self._settings.failure_mode
        if mode is FailureMode.OPEN:
            log.debug("quorate unreachable: failing open: %s", error)
            return Decision.local(Source.FAIL_OPEN, True, [])
        if self._fallback is not None:
            log.debug("quorate unreachable: deciding with the local fallback: %s", error)
            return self._fallback.check(descriptors, cost, peek, time.monotonic_ns())
        raise error

    async def _check_chunk(
        self,
        chunk: list[_Pending],
        peek: bool,
        semaphore: asyncio.Semaphore,
        results: list[Decision | QuorateError | None],
    ) -> None:
        """Decides one batch of :meth:`check_many` with one ``CheckBatch`` call, writing each item's result."""
        request = pb.CheckBatchRequest(
            checks=[pb.CheckRequest(descriptors=_to_wire(p.descriptors), cost=p.cost, peek=peek) for p in chunk]
        )
        metadata = self._security.metadata
        async with semaphore:
            try:
                answer = cast(
                    pb.CheckBatchResponse,
                    await self._call(
                        Call.READ if peek else Call.CHECK,
                        lambda node, budget: node.limiter.CheckBatch(request, timeout=budget, metadata=metadata),
                    ),
                )
            except QuorateError as error:
                for p in chunk:
                    results[p.index] = self._settle_item(error, p, peek)
                return
        if len(answer.results) != len(chunk):
            mismatch = RpcError(
                grpc.StatusCode.INTERNAL,
                f"a batch of {len(chunk)} checks was answered with {len(answer.results)} results",
            )
            for p in chunk:
                results[p.index] = mismatch
            return
        again: list[_Pending] = []
        for p, result in zip(chunk, answer.results, strict=True):
            kind = result.WhichOneof("result")
            if kind == "decision":
                results[p.index] = Decision.from_wire(result.decision)
            elif kind == "error":
                code = status_code(result.error.code)
                if code == grpc.StatusCode.UNAVAILABLE:
                    again.append(p)
                else:
                    results[p.index] = from_status(code, result.error.message)
            else:
                results[p.index] = RpcError(grpc.StatusCode.INTERNAL, "a batch result was empty")

        async def alone(p: _Pending) -> None:
            # As a lone check answered UNAVAILABLE would have been retried (possibly on another node).
            async with semaphore:
                try:
                    response = await self._send_check(p.descriptors, p.cost, peek)
                except QuorateError as error:
                    results[p.index] = self._settle_item(error, p, peek)
                else:
                    results[p.index] = Decision.from_wire(response)

        await asyncio.gather(*(alone(p) for p in again))

    def _settle_item(self, error: QuorateError, p: _Pending, peek: bool) -> Decision | QuorateError:
        try:
            return self._settle(error, p.descriptors, p.cost, peek)
        except QuorateError as final:
            return final

    # -- lease mode ---------------------------------------------------------------------------------------------

    def _start_returning(self, leases: Leases) -> None:
        """Starts (once per event loop) the task that gives back leases that ran out or expired."""
        if self._returner is None or self._returner.done():
            task = asyncio.ensure_future(_return_expired(weakref.ref(self), leases))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._returner = task

    async def _return_leases(self, leases: Leases, returns: list[pb.LeaseReturn]) -> None:
        """One ``ReturnLeases`` call; idempotent, so retried like a read."""
        request = pb.ReturnLeasesRequest(holder=leases.holder, returns=returns)
        metadata = self._security.metadata
        await self._call(
            Call.READ, lambda node, budget: node.limiter.ReturnLeases(request, timeout=budget, metadata=metadata)
        )

    async def _return_all(self, leases: Leases) -> None:
        """Stops the returns task and gives every lease back (the client is closing)."""
        returner, self._returner = self._returner, None
        if returner is not None and not returner.done():
            _cancel(returner)
            if returner.get_loop() is _running_loop():
                # Its returns in flight, if any, are put back for the call below.
                await asyncio.gather(returner, return_exceptions=True)
        returns = leases.take_all()
        if not returns:
            return
        try:
            await self._return_leases(leases, returns)
        except (QuorateError, RuntimeError) as error:
            unused = sum(r.unused for r in returns)
            log.warning("quorate: could not return %d leases (%d units stay charged): %s", len(returns), unused, error)

    async def _call(self, call: Call, attempt: Callable[[NodeChannel, float], Awaitable[object]]) -> object:
        """Runs ``attempt`` on a node, retrying on others within the deadline as :mod:`quorate._retry` says."""
        self._enter_loop()
        settings, routing = self._settings, self._routing
        start = time.monotonic()
        deadline = start + settings.deadline
        self._refresh_if_stale(start)
        attempts, last = 0, "no attempt was made"
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise Unavailable(attempts, now - start, last)
            if routing.needs_discovery(now):
                await self._discover(deadline)
                now = time.monotonic()
                if now >= deadline:
                    continue
            url = routing.next_target(now)
            node = routing.node(url)
            budget = min(settings.call_timeout, deadline - now)
            attempts += 1
            state = await wait_connected(node.channel, min(settings.connect_timeout, budget))
            if state != grpc.ChannelConnectivity.READY:
                failure = Failure.NOT_SENT
                last = f"{url}: not connected ({state.name.lower()})"
                if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE and settings.tls:
                    handshake = await handshake_failure(node.channel, min(_HANDSHAKE_PROBE, budget))
                    if handshake is not None:
                        raise TlsError(url, handshake)
            else:
                try:
                    answer = await attempt(node, budget)
                except grpc.aio.AioRpcError as error:
                    code, details = error.code(), error.details() or ""
                    last = f"{url}: {code.name}: {details}"
                    failure = _retry.classify(code)
                    if failure is Failure.FINAL:
                        raise from_status(code, details) from error
                else:
                    routing.succeeded(url)
                    return answer
            if _retry.drops_channel(failure):
                self._retire(url, node)
            routing.failed(url, time.monotonic())
            if not _retry.may_retry(call, failure, retry_timed_out_checks=settings.retry_timed_out_checks):
                if failure is Failure.TIMED_OUT:
                    raise Timeout(url, budget)
                raise Unavailable(attempts, time.monotonic() - start, last)
            log.debug("quorate call failed (attempt %d): %s; retrying", attempts, last)
            await asyncio.sleep(_retry.pause(attempts, deadline - time.monotonic()))

    # -- leader discovery ---------------------------------------------------------------------------------------

    async def _discover(self, deadline: float) -> None:
        """Asks the nodes, in rotation, which one leads until one knows or ``deadline`` passes; caches the answer.

        If a discovery is already running, returns at once (the caller falls back to the rotation).
        """
        if self._discovering:
            return
        self._discovering = True
        try:
            for url in self._routing.discovery_order(time.monotonic()):
                now = time.monotonic()
                if now >= deadline:
                    break
                node = self._routing.node(url)
                budget = min(self._settings.call_timeout, deadline - now)
                state = await wait_connected(node.channel, min(self._settings.connect_timeout, budget))
                if state != grpc.ChannelConnectivity.READY:
                    self._retire(url, node)
                    self._routing.failed(url, time.monotonic())
                    continue
                try:
                    status = cast(admin_pb2.StatusResponse, await self._status_call(node, budget))
                except grpc.aio.AioRpcError as error:
                    log.debug("leader discovery: status call to %s failed: %s", url, error.code().name)
                    self._retire(url, node)
                    self._routing.failed(url, time.monotonic())
                    continue
                members = [Member(id=member.id, addr=member.addr) for member in status.members]
                if self._routing.learn(url, status.node_id, status.leader_id, members, time.monotonic()):
                    log.debug("leader discovered: node %d at %s", status.leader_id, self._routing.leader)
                    return
            # Only a fruitless discovery holds the next one back; losing a leader that was found asks again at once.
            self._routing.discovery_failed(time.monotonic())
        finally:
            self._discovering = False

    async def _status_call(self, node: NodeChannel, budget: float) -> object:
        return await node.admin.Status(admin_pb2.StatusRequest(), timeout=budget, metadata=self._security.metadata)

    def _refresh_if_stale(self, now: float) -> None:
        """Re-checks an old cached leader in the background, so that calls follow a leadership change that made
        nothing fail."""
        if self._routing.leader_is_stale(now) and not self._discovering:
            self._spawn(self._discover(now + self._settings.call_timeout))

    # -- channels and the event loop ----------------------------------------------------------------------------

    def _enter_loop(self) -> None:
        """Binds the client to the running event loop (its channels live there), or fails clearly."""
        if self._closed:
            raise ClientClosed()
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        if self._loop is not None and self._loop.is_running():
            raise RuntimeError(
                "this quorate AsyncClient is in use by another running event loop; make one client per event loop"
            )
        # The previous loop has ended, and its channels and tasks with it: dial afresh in this one. Leases held
        # stay valid (monotonic time): their returns task moves to this loop.
        self._routing.drop_all()
        self._tasks.clear()
        self._retiring.clear()
        had_returner, self._returner = self._returner is not None, None
        self._loop = loop
        if had_returner and self._leases is not None:
            self._start_returning(self._leases)

    def _retire(self, url: str, node: NodeChannel) -> None:
        """Replaces ``url``'s channel; calls still running on the old one get ``call_timeout`` to finish."""
        if self._routing.drop(url, node):
            self._retiring.add(node.channel)
            self._spawn(self._close_retired(node.channel))

    async def _close_retired(self, channel: grpc.aio.Channel) -> None:
        try:
            await channel.close(grace=self._settings.call_timeout)
        finally:
            self._retiring.discard(channel)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@dataclass(frozen=True)
class _Pending:
    """A request of :meth:`AsyncClient.check_many` to send: its place in the results, descriptors and cost."""

    index: int
    descriptors: tuple[Descriptor, ...]
    cost: int


def _valid_cost(cost: int) -> int:
    """``cost`` as sent (0 counts as 1), or :class:`~quorate.errors.InvalidArgument` if it is no u64."""
    if not 0 <= cost <= _U64_MAX:
        raise InvalidArgument(f"cost must be between 0 and 2^64-1, not {cost}")
    return max(cost, 1)


async def _return_expired(client_ref: weakref.ref[AsyncClient], leases: Leases) -> None:
    """Every :data:`~quorate._leases.RETURN_INTERVAL`, gives back the client's leases that ran out or expired, until
    the client is closed or dropped. A return that fails is logged; its units stay charged (under-admitting only)."""
    while True:
        await asyncio.sleep(RETURN_INTERVAL)
        client = client_ref()
        if client is None or client._closed:
            return
        returns = leases.take_returns(time.monotonic_ns())
        if returns:
            try:
                await client._return_leases(leases, returns)
            except asyncio.CancelledError:
                # The client is closing: it gives these back with the rest.
                leases.requeue(returns)
                raise
            except QuorateError as error:
                log.debug("could not return %d leases; their unused units stay charged: %s", len(returns), error)
        del client


def _to_wire(descriptors: Iterable[Descriptor]) -> list[pb.Descriptor]:
    return [pb.Descriptor(dimension=d.dimension, value=d.value, policy=d.policy or "") for d in descriptors]


def _cancel(task: asyncio.Task[None]) -> None:
    """Cancels ``task`` unless its event loop is closed (a client closed from a later loop than its calls'); a task
    of a loop still running in another thread is cancelled there."""
    loop = task.get_loop()
    if loop.is_closed():
        return
    if loop is _running_loop():
        task.cancel()
    else:
        loop.call_soon_threadsafe(task.cancel)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


__all__ = ["AsyncClient", "CheckItem"]
