"""Who is calling: the descriptors and cost of an HTTP request, from its headers and its peer address.

The client IP is the socket peer, unless the peer is a trusted proxy: then ``X-Forwarded-For`` is read right to
left and the first address that is not a trusted proxy is the client (addresses left of it could be forged by the
client itself). Header values that could not be a descriptor value (not visible ASCII, empty, over 256 bytes) are
ignored as if absent, so a malformed header never turns into a cluster error. The same rules as the Rust
middleware's ``identity.rs``.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from ..descriptors import AGENT_ID, API_KEY, IP, Descriptor

#: The longest descriptor value the cluster accepts, in bytes.
MAX_VALUE_LEN = 256

#: The value of the shared ``ip`` descriptor of requests that identify themselves in no way.
UNKNOWN_IP = "unknown"

IpAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: An ASGI connection scope.
Scope = MutableMapping[str, Any]
#: Computes a request's cost from its scope.
CostFn = Callable[[Scope], int]
#: Adjusts the descriptors read from a request (add a tenant, name a policy for a route, drop one).
DescriptorsFn = Callable[[Scope, list[Descriptor]], list[Descriptor]]
#: Finds the peer address of a request (default: the ASGI scope's ``client``).
PeerFn = Callable[[Scope], str | None]


class MissingIdentity(enum.Enum):
    """What the middleware does with a request that yields no descriptor (no API key, agent id or address)."""

    #: Count it under the shared descriptor ``ip = unknown``, so all such requests share one limit (the default:
    #: leaving out identification never escapes limiting).
    SHARED = "shared"
    #: Pass it through unchecked, without rate-limit headers.
    ALLOW = "allow"


class IpRange:
    """An IP address range in CIDR notation (``10.0.0.0/8``, ``fd00::/8``, or one address), e.g. of proxies.

    >>> IpRange("10.0.0.0/8").contains("10.20.30.40"), IpRange("10.0.0.0/8").contains("11.0.0.1")
    (True, False)
    >>> IpRange("10.0.0.0/8").contains("::ffff:10.0.0.1")  # IPv4-mapped IPv6 counts as IPv4
    True

    Raises ``ValueError`` for text that is not an address or ``address/prefix``.
    """

    def __init__(self, text: str) -> None:
        try:
            self.network: IpNetwork = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or CIDR range (e.g. 10.0.0.0/8)") from None

    def contains(self, address: IpAddress | str) -> bool:
        """True if ``address`` is in the range."""
        ip = canonical(address) if isinstance(address, str) else canonical_ip(address)
        return ip is not None and ip.version == self.network.version and ip in self.network

    def __repr__(self) -> str:
        return f"IpRange({str(self.network)!r})"


def canonical(text: str) -> IpAddress | None:
    """Parses an address, IPv4-mapped IPv6 as IPv4; ``None`` if it is not one."""
    try:
        return canonical_ip(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def canonical_ip(ip: IpAddress) -> IpAddress:
    """``ip``, with an IPv4-mapped IPv6 address as the IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_ip(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[IpRange]) -> IpAddress | None:
    """Returns the client's address: ``peer``, or if ``peer`` is a trusted proxy, the right-most address of
    ``X-Forwarded-For`` (all its values, in order) that is not one. ``None`` without a usable peer: forwarded
    addresses cannot be trusted then."""
    current = canonical(peer) if peer is not None else None
    if current is None:
        return None

    def is_trusted(ip: IpAddress) -> bool:
        return any(proxy.contains(ip) for proxy in trusted)

    if not is_trusted(current):
        return current
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = parse_hop(hop)
        if ip is None:
            # A hop a trusted proxy wrote that is not an address ("unknown", garbage): stop at that proxy.
            return current
        current = ip
        if not is_trusted(ip):
            return ip
    return current


def parse_hop(hop: str) -> IpAddress | None:
    """Parses one ``X-Forwarded-For`` entry: an address, possibly with a port (``1.2.3.4:80``, ``[::1]:80``)."""
    ip = canonical(hop)
    if ip is not None:
        return ip
    if hop.startswith("["):
        host, bracket, port = hop[1:].partition("]:")
        return canonical(host) if bracket and port.isdigit() else None
    host, colon, port = hop.rpartition(":")
    if colon and port.isdigit():
        parsed = canonical(host)
        return parsed if isinstance(parsed, ipaddress.IPv4Address) else None
    return None


def usable(value: str) -> bool:
    """True if a header value can be a descriptor value: 1 to 256 bytes."""
    return 0 < len(value) <= MAX_VALUE_LEN


def header_text(raw: bytes) -> str | None:
    """A header value as text if it is visible ASCII (tabs and spaces allowed), trimmed; else ``None``."""
    if not all(byte == 9 or 32 <= byte <= 126 for byte in raw):
        return None
    return raw.decode("ascii").strip()


def parse_cost(text: str) -> int:
    """A cost header's value: a whole number up to 2^64-1 (as Rust's ``u64`` parses it), else 1."""
    digits = text[1:] if text.startswith("+") else text
    if not (digits.isascii() and digits.isdigit()):
        return 1
    value = int(digits)
    return value if value <= 2**64 - 1 else 1


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value, if it is one and usable."""
    if authorization is None:
        return None
    scheme, space, token = authorization.strip().partition(" ")
    token = token.strip()
    if space and scheme.lower() == "bearer" and usable(token):
        return token
    return None


@dataclass(frozen=True)
class Identity:
    """How requests are identified (see :class:`~quorate.asgi.RateLimitMiddleware` for each option)."""

    api_key_header: str | None = "x-api-key"
    bearer: bool = True
    agent_id_header: str | None = "x-agent-id"
    limit_by_ip: bool = True
    trusted_proxies: tuple[IpRange, ...] = ()
    cost_header: str | None = None
    cost_fn: CostFn | None = None
    descriptors_fn: DescriptorsFn | None = None
    peer_fn: PeerFn | None = None
    missing_identity: MissingIdentity = MissingIdentity.SHARED

    def identify(self, scope: Scope) -> tuple[list[Descriptor], int] | None:
        """Returns the descriptors and cost to check for a request, or ``None`` to let it through unchecked."""
        headers = _Headers(scope.get("headers") or ())
        descriptors: list[Descriptor] = []
        key = headers.value(self.api_key_header) if self.api_key_header else None
        if key is None and self.bearer:
            key = bearer_token(headers.value("authorization", any_length=True))
        if key is not None:
            descriptors.append(Descriptor(API_KEY, key))
        if self.limit_by_ip:
            peer = self.peer_fn(scope) if self.peer_fn is not None else _scope_peer(scope)
            ip = client_ip(peer, headers.all_text("x-forwarded-for"), self.trusted_proxies)
            if ip is not None:
                descriptors.append(Descriptor(IP, str(ip)))
        agent = headers.value(self.agent_id_header) if self.agent_id_header else None
        if agent is not None:
            descriptors.append(Descriptor(AGENT_ID, agent))
        if self.descriptors_fn is not None:
            descriptors = list(self.descriptors_fn(scope, descriptors))
        if not descriptors:
            if self.missing_identity is MissingIdentity.ALLOW:
                return None
            descriptors.append(Descriptor(IP, UNKNOWN_IP))
        if self.cost_fn is not None:
            cost = self.cost_fn(scope)
        else:
            text = headers.value(self.cost_header) if self.cost_header else None
            cost = parse_cost(text) if text is not None else 1
        return descriptors, max(cost, 1)


class _Headers:
    """Read access to an ASGI header list by lowercase name."""

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._raw = list(raw)

    def first(self, name: str) -> bytes | None:
        wanted = name.lower().encode("latin-1")
        return next((value for key, value in self._raw if key.lower() == wanted), None)

    def value(self, name: str, *, any_length: bool = False) -> str | None:
        """The first value of ``name`` if it can be a descriptor value (or, with ``any_length``, any text)."""
        raw = self.first(name)
        text = header_text(raw) if raw is not None else None
        if text is None or not (any_length or usable(text)):
            return None
        return text

    def all_text(self, name: str) -> list[str]:
        wanted = name.lower().encode("latin-1")
        return [header_text(value) or "" for key, value in self._raw if key.lower() == wanted]


def _scope_peer(scope: Scope) -> str | None:
    client = scope.get("client")
    if client and isinstance(client[0], str):
        return client[0]
    return None


__all__ = [
    "MAX_VALUE_LEN",
    "UNKNOWN_IP",
    "CostFn",
    "DescriptorsFn",
    "Identity",
    "IpRange",
    "MissingIdentity",
    "PeerFn",
    "bearer_token",
    "client_ip",
    "parse_cost",
    "parse_hop",
]
