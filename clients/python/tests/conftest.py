"""Fixtures: the asyncio backend for anyio-marked tests, fake nodes, and real clusters (plaintext or TLS).

Cluster fixtures need the ``quorate`` binary (see ``cluster.py``). Without it they skip, except under CI
(``CI`` set), where a missing binary is an error: the CI step builds it first and must not pass by skipping.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from cluster import Cluster, quorate_binary
from fakes import FakeNode, Handler

StartNode = Callable[..., Awaitable[FakeNode]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def nodes() -> AsyncIterator[StartNode]:
    """Starts fake nodes (``await nodes(handler, delay=...)``) and stops them after the test."""
    started: list[FakeNode] = []

    async def start(handler: Handler, delay: float = 0.0) -> FakeNode:
        node = await FakeNode(handler=handler, delay=delay).start()
        started.append(node)
        return node

    yield start
    for node in started:
        await node.stop()


def _binary() -> Path:
    binary = quorate_binary()
    if binary is None or not binary.is_file():
        message = "no quorate binary: run `cargo build --bin quorate` or set QUORATE_BIN"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def _start(tmp: Path, tls: bool = False) -> Iterator[Cluster]:
    cluster = Cluster(binary=_binary(), dir=tmp, tls=tls).start()
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A three-node cluster shared by a module's tests (each test uses its own keys)."""
    yield from _start(tmp_path_factory.mktemp("cluster"))


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A three-node TLS cluster with tokens (``Cluster(tls=True)``) shared by a module's tests."""
    yield from _start(tmp_path_factory.mktemp("tls-cluster"), tls=True)


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A three-node cluster for one test, which may kill its nodes."""
    yield from _start(tmp_path)
