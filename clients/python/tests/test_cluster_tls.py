"""The package against a real three-node TLS cluster (``tls_cluster`` in ``conftest.py``: certificates from
``quorate certs init``, a ``check`` and an ``admin`` token from ``quorate token new``, the node config of
``tests/tests/security.rs``): clients given the cluster CA and a check token (as ``token``, ``token_file`` or
``$QUORATE_TOKEN``, with or without a client certificate) spend a limit exactly, the blocking client too; no token
or an unknown one raises :class:`~quorate.Unauthenticated`, the admin token :class:`~quorate.PermissionDenied`,
neither retried; a client that trusts another CA or expects another server name raises
:class:`~quorate.TlsError` at once, never a decision of its failure mode, and a plaintext client fails with
:class:`~quorate.Unavailable` within its deadline instead of hanging. Each test uses keys of its own."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from cluster import TOKEN_ROLES, Cluster
from quorate import (
    AsyncClient,
    Client,
    Decision,
    FailureMode,
    PermissionDenied,
    RpcError,
    Source,
    TlsError,
    Unauthenticated,
    Unavailable,
)

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]

#: The ``free`` tier of the test policies (``api_key`` prefix ``free_``).
FREE_LIMIT = 10


@pytest.fixture(autouse=True)
def no_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A QUORATE_TOKEN of the machine running the tests must not stand in for the token a test leaves out.
    monkeypatch.delenv("QUORATE_TOKEN", raising=False)


def fresh() -> dict[str, str]:
    return {"api_key": f"free_{uuid.uuid4().hex[:12]}"}


def assert_spent_exactly(decisions: list[Decision]) -> None:
    assert [d.allowed for d in decisions] == [True] * FREE_LIMIT + [False] * 3
    assert [d.remaining for d in decisions[:FREE_LIMIT]] == list(range(FREE_LIMIT - 1, -1, -1))
    assert {(d.policy, d.limit, d.source, d.degraded) for d in decisions} == {
        ("free", FREE_LIMIT, Source.CLUSTER, False)
    }


async def remaining(cluster: Cluster, key: dict[str, str]) -> int | None:
    """What a peek with the check token sees left of ``key``'s limit."""
    async with AsyncClient(cluster.endpoints, ca_cert=cluster.pki("ca.pem"), token=cluster.tokens["check"]) as client:
        return (await client.peek(key)).remaining


@pytest.mark.parametrize("given", ["token", "token_file", "environment with a client certificate"])
async def test_the_cluster_ca_and_a_check_token_spend_a_limit_exactly(
    tls_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    token = tls_cluster.tokens["check"]
    options: dict[str, Any] = {"ca_cert": tls_cluster.pki("ca.pem")}
    if given == "token":
        options["token"] = token
    elif given == "token_file":
        (tmp_path / "token").write_text(f"{token}\n")
        options["token_file"] = tmp_path / "token"
    else:
        monkeypatch.setenv("QUORATE_TOKEN", token)
        # The node certificates name localhost as well as 127.0.0.1.
        options |= {
            "client_cert": tls_cluster.pki("client.pem"),
            "client_key": tls_cluster.pki("client-key.pem"),
            "tls_server_name": "localhost",
        }
    key = fresh()
    async with AsyncClient(tls_cluster.endpoints, **options) as client:
        decisions = [await client.check(key) for _ in range(FREE_LIMIT + 3)]
        # Leader discovery (Admin.Status on the public listener, any valid token) worked over TLS too.
        assert client.leader is not None and client.leader.startswith("https://")
        assert tls_cluster.node_of(client.leader) == tls_cluster.wait_ready()
    assert_spent_exactly(decisions)
    assert await remaining(tls_cluster, key) == 0


async def test_the_blocking_client_over_tls_with_a_check_token_spends_a_limit_exactly(tls_cluster: Cluster) -> None:
    key = fresh()

    def spend() -> list[Decision]:
        with Client(tls_cluster.endpoints, ca_cert=tls_cluster.pki("ca.pem"), token=tls_cluster.tokens["check"]) as c:
            return [c.check(key) for _ in range(FREE_LIMIT + 3)]

    assert_spent_exactly(await anyio.to_thread.run_sync(spend))


@pytest.mark.parametrize(
    ("token", "says"),
    [
        (None, "needs a token: send `authorization: Bearer <token>`"),
        ("qrt_" + "0" * 64, "the token is not one this cluster knows"),
    ],
)
async def test_no_token_or_an_unknown_one_is_unauthenticated_and_charges_nothing(
    tls_cluster: Cluster, token: str | None, says: str
) -> None:
    key = fresh()
    # A long deadline: the error must be final at once, not retried until the deadline turns it into Unavailable.
    async with AsyncClient(tls_cluster.endpoints, ca_cert=tls_cluster.pki("ca.pem"), token=token, deadline=30.0) as c:
        with pytest.raises(Unauthenticated) as raised:
            await c.check(key)
        with pytest.raises(Unauthenticated):
            await c.refund(key, 1)
    error = raised.value
    assert isinstance(error, RpcError) and error.code.name == "UNAUTHENTICATED"
    assert says in error.message and not error.unreachable
    assert token is None or token not in str(error)
    assert await remaining(tls_cluster, key) == FREE_LIMIT, "the refused check charged nothing"


async def test_a_token_without_the_check_role_is_permission_denied(tls_cluster: Cluster) -> None:
    key, admin = fresh(), tls_cluster.tokens["admin"]
    async with AsyncClient(tls_cluster.endpoints, ca_cert=tls_cluster.pki("ca.pem"), token=admin, deadline=30.0) as c:
        with pytest.raises(PermissionDenied) as raised:
            await c.check(key)
        # The admin token is a valid token: Admin.Status on the public listener answers it.
        assert len((await c.status()).members) == 3

    def check_blocking() -> None:
        with Client(tls_cluster.endpoints, ca_cert=tls_cluster.pki("ca.pem"), token=admin, deadline=30.0) as c:
            c.check(key)

    with pytest.raises(PermissionDenied):
        await anyio.to_thread.run_sync(check_blocking)
    error = raised.value
    assert error.code.name == "PERMISSION_DENIED" and not error.unreachable
    # The refusal names the token's name and the missing role, never the token.
    assert f'token "{TOKEN_ROLES["admin"]}" lacks the `check` role' in error.message
    assert admin not in str(error)
    assert await remaining(tls_cluster, key) == FREE_LIMIT


@pytest.mark.parametrize("mismatch", ["another CA", "another server name"])
@pytest.mark.parametrize("failure_mode", [FailureMode.CLOSED, FailureMode.OPEN])
async def test_a_client_whose_tls_handshake_fails_gets_a_tls_error_never_a_decision(
    tls_cluster: Cluster, mismatch: str, failure_mode: FailureMode
) -> None:
    options: dict[str, Any] = {"token": tls_cluster.tokens["check"], "deadline": 2.0, "failure_mode": failure_mode}
    if mismatch == "another CA":
        # A second `quorate certs init`: its node certificates name 127.0.0.1 too, but the cluster's do not chain
        # to its CA.
        options["ca_cert"] = tls_cluster.other_pki("ca.pem")
    else:
        options |= {"ca_cert": tls_cluster.pki("ca.pem"), "tls_server_name": "quorate-9.internal"}
    key = fresh()
    with anyio.fail_after(10):  # a hang fails the test instead of stalling the run
        async with AsyncClient(tls_cluster.endpoints, **options) as client:
            start = time.monotonic()
            with pytest.raises(TlsError) as raised:
                await client.check(key)
            elapsed = time.monotonic() - start
    # Final at the first node: neither retried until the deadline nor admitted by the open failure mode.
    assert elapsed < 1.5, elapsed
    expected = "handshake failed" if mismatch == "another CA" else "hostname verification"
    assert expected in raised.value.details.lower(), raised.value.details
    assert await remaining(tls_cluster, key) == FREE_LIMIT


async def test_a_plaintext_client_on_a_tls_cluster_gets_unavailable_within_its_deadline(tls_cluster: Cluster) -> None:
    # gRPC reports only "Socket closed": indistinguishable from a node closing connections, so not a TlsError.
    key = fresh()
    with anyio.fail_after(10):
        async with AsyncClient(tls_cluster.endpoints, token=tls_cluster.tokens["check"], deadline=1.0) as client:
            start = time.monotonic()
            with pytest.raises(Unavailable) as raised:
                await client.check(key)
            elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 3.0, elapsed
    assert raised.value.attempts >= 3 and "not connected" in raised.value.last
    assert await remaining(tls_cluster, key) == FREE_LIMIT
