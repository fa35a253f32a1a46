"""Who a request is: client IP behind trusted proxies, bearer tokens, header values, costs. The same cases as the
Rust middleware's `identity.rs` tests, plus the ASGI-specific ones."""

from __future__ import annotations

import ipaddress

import pytest

from quorate import Descriptor
from quorate.asgi import IpRange, MissingIdentity
from quorate.asgi.identity import MAX_VALUE_LEN, Identity, bearer_token, client_ip, parse_cost

PROXIES = [IpRange("10.0.0.0/8"), IpRange("fd00::/8")]


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_forwarded_for_is_ignored_when_the_peer_is_not_a_trusted_proxy() -> None:
    assert client_ip("203.0.113.9", ["1.1.1.1"], PROXIES) == ip("203.0.113.9")
    assert client_ip(None, ["1.1.1.1"], PROXIES) is None
    assert client_ip("testclient", ["1.1.1.1"], PROXIES) is None


def test_forwarded_for_yields_the_right_most_untrusted_address() -> None:
    # The client forged "6.6.6.6"; the real client 198.51.100.7 went through two trusted proxies.
    assert client_ip("10.2.2.2", ["6.6.6.6, 198.51.100.7", "10.1.1.1"], PROXIES) == ip("198.51.100.7")


def test_forwarded_for_with_only_trusted_hops_yields_the_left_most_and_garbage_stops_the_walk() -> None:
    assert client_ip("10.0.0.1", ["10.9.9.9"], PROXIES) == ip("10.9.9.9")
    assert client_ip("10.0.0.1", ["198.51.100.7, unknown, 10.3.3.3"], PROXIES) == ip("10.3.3.3")
    assert client_ip("10.0.0.1", [], PROXIES) == ip("10.0.0.1")


def test_forwarded_entries_with_ports_and_mapped_ipv6_addresses_are_normalised() -> None:
    assert client_ip("::ffff:10.0.0.1", ["[2001:db8::1]:443, 198.51.100.7:8080"], PROXIES) == ip("198.51.100.7")
    assert client_ip("::ffff:203.0.113.1", [], PROXIES) == ip("203.0.113.1")
    assert client_ip("fd00::5", ["[2001:db8::1]:443"], PROXIES) == ip("2001:db8::1")


def test_bearer_tokens_need_the_bearer_scheme_and_a_usable_value() -> None:
    assert bearer_token("Bearer agent_42") == "agent_42"
    assert bearer_token("bearer   agent_42 ") == "agent_42"
    assert bearer_token("Basic dXNlcjpwYXNz") is None
    assert bearer_token("Bearer") is None
    assert bearer_token("bearer " + "x" * (MAX_VALUE_LEN + 1)) is None


def test_ip_ranges_parse_cidr_and_single_addresses_and_reject_garbage() -> None:
    assert IpRange("10.0.0.0/8").contains("10.20.30.40") and not IpRange("10.0.0.0/8").contains("11.0.0.1")
    assert IpRange("::1").contains("::1") and not IpRange("::1").contains("127.0.0.1")
    assert IpRange("10.1.2.3/8").contains("10.200.0.1")  # host bits are ignored, as in Rust
    for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x"]:
        with pytest.raises(ValueError, match="not an IP address or CIDR range"):
            IpRange(bad)


def test_costs_parse_like_a_rust_u64_and_fall_back_to_one() -> None:
    assert [parse_cost(text) for text in ["25", "+25", "0", "lots", "-3", "1.5", str(2**64)]] == [25, 25, 0, 1, 1, 1, 1]


def scope(headers: list[tuple[str, str]] | None = None, peer: str | None = "203.0.113.9") -> dict[str, object]:
    raw = [(name.lower().encode(), value.encode("latin-1")) for name, value in headers or []]
    return {"type": "http", "path": "/v1/chat", "headers": raw, "client": (peer, 40000) if peer else None}


def test_api_key_bearer_token_ip_and_agent_id_become_descriptors_in_order() -> None:
    identity = Identity()
    descriptors, cost = identity.identify(scope([("x-agent-id", "planner-7"), ("x-api-key", "agent_42")])) or ([], 0)
    assert descriptors == [
        Descriptor("api_key", "agent_42"),
        Descriptor("ip", "203.0.113.9"),
        Descriptor("agent_id", "planner-7"),
    ]
    assert cost == 1
    bearer = identity.identify(scope([("authorization", "Bearer tok_1")], peer=None))
    assert bearer == ([Descriptor("api_key", "tok_1")], 1)
    # The API key header wins over a bearer token.
    both = identity.identify(scope([("authorization", "Bearer tok_1"), ("x-api-key", "k")], peer=None))
    assert both == ([Descriptor("api_key", "k")], 1)
    assert Identity(bearer=False).identify(scope([("authorization", "Bearer tok_1")], peer=None)) == (
        [Descriptor("ip", "unknown")],
        1,
    )


def test_unusable_header_values_are_ignored_as_if_absent() -> None:
    identity = Identity(limit_by_ip=False, missing_identity=MissingIdentity.ALLOW)
    assert identity.identify(scope([("x-api-key", "")])) is None
    assert identity.identify(scope([("x-api-key", "x" * (MAX_VALUE_LEN + 1))])) is None
    assert identity.identify(scope([("x-api-key", "caf\u00e9")])) is None
    assert identity.identify(scope([("x-api-key", "  padded  ")])) == ([Descriptor("api_key", "padded")], 1)


def test_requests_without_identity_share_one_limit_unless_allowed_through() -> None:
    assert Identity().identify(scope(peer=None)) == ([Descriptor("ip", "unknown")], 1)
    assert Identity(missing_identity=MissingIdentity.ALLOW).identify(scope(peer=None)) is None


def test_cost_comes_from_the_cost_function_before_the_cost_header_and_is_at_least_one() -> None:
    headers = [("x-api-key", "k"), ("x-cost", "25")]
    assert Identity(cost_header="x-cost").identify(scope(headers))[1] == 25  # type: ignore[index]
    assert Identity(cost_header="X-Cost", cost_fn=lambda s: 7).identify(scope(headers))[1] == 7  # type: ignore[index]
    assert Identity(cost_fn=lambda s: 0).identify(scope(headers))[1] == 1  # type: ignore[index]
    assert Identity().identify(scope(headers))[1] == 1  # type: ignore[index]


def test_descriptors_fn_adjusts_what_was_read() -> None:
    def tenant(_scope: object, descriptors: list[Descriptor]) -> list[Descriptor]:
        return [*descriptors, Descriptor("tenant", "acme", policy="gold")]

    found = Identity(limit_by_ip=False, descriptors_fn=tenant).identify(scope([("x-api-key", "k")]))
    assert found == ([Descriptor("api_key", "k"), Descriptor("tenant", "acme", "gold")], 1)
