"""Client settings: endpoints normalised and validated, every bad option named, token and TLS options resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from quorate import AsyncClient, FailureMode, InvalidConfig, LocalLimit
from quorate.auth import Security


def test_endpoints_are_normalised_deduplicated_and_split_on_commas() -> None:
    client = AsyncClient(["127.0.0.1:1,http://127.0.0.1:2/", "127.0.0.1:1"])
    assert client.endpoints == ("http://127.0.0.1:1", "http://127.0.0.1:2")
    assert AsyncClient("a:1, b:2").endpoints == ("http://a:1", "http://b:2")
    assert AsyncClient("[::1]:7101").endpoints == ("http://[::1]:7101",)


@pytest.mark.parametrize("bad", ["127.0.0.1", "grpc://a:1", "a:1/path", "a:99999", "http://", "a:0", "[::1:80"])
def test_bad_endpoints_are_rejected_naming_the_endpoint(bad: str) -> None:
    with pytest.raises(InvalidConfig) as raised:
        AsyncClient([bad])
    assert raised.value.field == "endpoints" and repr(bad) in str(raised.value)


def test_no_endpoint_is_an_error() -> None:
    with pytest.raises(InvalidConfig, match="no endpoint"):
        AsyncClient([])
    with pytest.raises(InvalidConfig, match="no endpoint"):
        AsyncClient(" , ")


@pytest.mark.parametrize("field", ["deadline", "call_timeout", "connect_timeout", "leader_refresh"])
@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf")])
def test_timeouts_must_be_positive_finite_seconds(field: str, value: float) -> None:
    with pytest.raises(InvalidConfig) as raised:
        AsyncClient(["a:1"], **{field: value})  # type: ignore[arg-type]
    assert raised.value.field == field


@pytest.mark.parametrize(
    "mode", [LocalLimit(0, 1.0), LocalLimit(1, 0.0), LocalLimit(1, 1.0, max_keys=0), "sideways", FailureMode]
)
def test_bad_failure_modes_are_rejected(mode: object) -> None:
    with pytest.raises(InvalidConfig) as raised:
        AsyncClient(["a:1"], failure_mode=mode)  # type: ignore[arg-type]
    assert raised.value.field == "failure_mode"


def test_failure_modes_accept_the_enum_its_names_and_a_local_limit() -> None:
    assert AsyncClient(["a:1"]).failure_mode is FailureMode.CLOSED
    assert AsyncClient(["a:1"], failure_mode="open").failure_mode is FailureMode.OPEN
    local = LocalLimit(60, 60.0)
    assert AsyncClient(["a:1"], failure_mode=local).failure_mode == local


def test_tls_options_turn_tls_on_and_cannot_be_mixed_with_plain_http(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    client = AsyncClient(["a:1", "b:2"], ca_cert=ca)
    assert client.endpoints == ("https://a:1", "https://b:2")
    assert AsyncClient(["https://a:1"]).endpoints == ("https://a:1",)
    with pytest.raises(InvalidConfig, match="mixes"):
        AsyncClient(["http://a:1"], ca_cert=ca)
    with pytest.raises(InvalidConfig, match="mixes"):
        AsyncClient(["https://a:1", "http://b:2"])


def test_tls_files_must_exist_and_client_cert_goes_with_its_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig) as raised:
        AsyncClient(["a:1"], ca_cert=tmp_path / "missing.pem")
    assert raised.value.field == "ca_cert" and "missing.pem" in str(raised.value)
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    with pytest.raises(InvalidConfig) as raised:
        AsyncClient(["a:1"], client_cert=cert)
    assert raised.value.field == "client_cert"


def test_security_puts_the_server_name_override_in_the_channel_options(tmp_path: Path) -> None:
    security = Security.build(tls_server_name="node1.quorate.internal", environ={})
    assert security.tls and security.credentials is not None
    assert security.channel_options == (("grpc.ssl_target_name_override", "node1.quorate.internal"),)
    assert Security.build(environ={}).credentials is None


def test_the_token_option_wins_over_the_file_which_wins_over_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  file-token  \nsecond line ignored\n")
    env = {"QUORATE_TOKEN": "env-token"}
    assert Security.build(token="opt", token_file=token_file, environ=env).metadata == (
        ("authorization", "Bearer opt"),
    )
    assert Security.build(token_file=token_file, environ=env).metadata == (("authorization", "Bearer file-token"),)
    assert Security.build(environ=env).metadata == (("authorization", "Bearer env-token"),)
    assert Security.build(environ={}).metadata == ()


@pytest.mark.parametrize("token", ["", "   ", "two words", "tab\there", "caf\u00e9"])
def test_unusable_tokens_are_rejected(token: str) -> None:
    with pytest.raises(InvalidConfig) as raised:
        Security.build(token=token, environ={})
    assert raised.value.field == "token"
    with pytest.raises(InvalidConfig) as raised:
        Security.build(environ={"QUORATE_TOKEN": token})
    assert raised.value.field == "QUORATE_TOKEN"
