"""``Client``: the blocking face of :class:`~quorate.AsyncClient`, for threaded code (WSGI apps, scripts, workers).

A ``Client`` owns an :class:`~quorate.AsyncClient` and a private event loop running in a daemon thread; each call
runs there and blocks the calling thread until it is done. So both clients behave exactly alike (same channels
per node, same retries and failure modes), and a ``Client`` is safe to share between threads. Do not call it from
async code: use :class:`~quorate.AsyncClient` there.

In lease mode a check is first tried against the leases in the calling thread (the lease cache is thread-safe), so
a decision from a lease costs no hop to the loop thread; the task that gives back expired leases runs on the
private loop, like every call.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

from ._proto.quorate.v1 import admin_pb2
from .aio import AsyncClient, CheckItem, _valid_cost
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
)
from .decision import Decision
from .descriptors import DescriptorsLike, normalize
from .errors import ClientClosed, QuorateError

T = TypeVar("T")


class Client:
    """A blocking handle to a Quorate cluster; takes the same arguments as :class:`~quorate.AsyncClient`.

    >>> client = Client(["127.0.0.1:7101", "127.0.0.1:7102"], deadline=1.0)
    >>> client.endpoints
    ('http://127.0.0.1:7101', 'http://127.0.0.1:7102')
    >>> client.close()
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
        self._async = AsyncClient(
            endpoints,
            failure_mode=failure_mode,
            deadline=deadline,
            call_timeout=call_timeout,
            connect_timeout=connect_timeout,
            retry_timed_out_checks=retry_timed_out_checks,
            discover_leader=discover_leader,
            leader_refresh=leader_refresh,
            max_concurrency=max_concurrency,
            max_batch=max_batch,
            leases=leases,
            token=token,
            token_file=token_file,
            ca_cert=ca_cert,
            client_cert=client_cert,
            client_key=client_key,
            tls_server_name=tls_server_name,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="quorate-client", daemon=True)
        self._thread.start()
        # Stops the loop thread if the client is dropped without close().
        self._finalizer = weakref.finalize(self, _stop, self._loop, self._thread)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The configured endpoints, normalised to ``http://host:port`` (``https://`` with TLS)."""
        return self._async.endpoints

    @property
    def failure_mode(self) -> FailureMode | LocalLimit:
        """What checks do while the cluster is unreachable."""
        return self._async.failure_mode

    @property
    def leader(self) -> str | None:
        """The URL of the leader this client sends calls to, if it knows one."""
        return self._async.leader

    @property
    def leases(self) -> bool:
        """True in lease mode: checks of hot keys are decided here from leased quota."""
        return self._async.leases

    def check(self, descriptors: DescriptorsLike, cost: int = 1) -> Decision:
        """Checks and charges a request; see :meth:`AsyncClient.check <quorate.AsyncClient.check>`."""
        leases = self._async._leases
        if leases is None:
            return self._run(self._async.check(descriptors, cost))
        if self._closed:
            raise ClientClosed()
        normalized, cost = normalize(descriptors), _valid_cost(cost)
        sent_at = time.monotonic_ns()
        local = leases.try_local(normalized, cost, sent_at)
        if local is not None:
            return local
        return self._run(self._async._decide(normalized, cost, peek=False, sent_at=sent_at, lease_tried=True))

    def peek(self, descriptors: DescriptorsLike, cost: int = 1) -> Decision:
        """Evaluates a request without charging; see :meth:`AsyncClient.peek <quorate.AsyncClient.peek>`."""
        return self._run(self._async.peek(descriptors, cost))

    def check_many(
        self, checks: Iterable[CheckItem | DescriptorsLike], *, peek: bool = False
    ) -> list[Decision | QuorateError]:
        """Checks many requests in ``CheckBatch`` calls; see
        :meth:`AsyncClient.check_many <quorate.AsyncClient.check_many>`."""
        return self._run(self._async.check_many(list(checks), peek=peek))

    def refund(self, descriptors: DescriptorsLike, amount: int) -> None:
        """Gives units back; see :meth:`AsyncClient.refund <quorate.AsyncClient.refund>`."""
        self._run(self._async.refund(descriptors, amount))

    def report_load(self, name: str, value: float, ttl: float = 0.0) -> float:
        """Reports a load signal; see :meth:`AsyncClient.report_load <quorate.AsyncClient.report_load>`."""
        return self._run(self._async.report_load(name, value, ttl))

    def status(self) -> admin_pb2.StatusResponse:
        """Returns a node's ``Admin.Status``; see :meth:`AsyncClient.status <quorate.AsyncClient.status>`."""
        return self._run(self._async.status())

    def close(self) -> None:
        """Gives back every lease (lease mode), closes the channels and stops the client's thread; later calls
        raise :class:`~quorate.ClientClosed`. A client dropped without ``close()`` cannot give its leases back:
        their units stay charged until their window or bucket moves on."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        asyncio.run_coroutine_threadsafe(self._async.close(), self._loop).result()
        self._finalizer()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(endpoints={list(self.endpoints)!r}, failure_mode={self.failure_mode!r})"

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            work.close()
            raise ClientClosed()
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


__all__ = ["Client"]
