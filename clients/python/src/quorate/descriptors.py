"""Descriptors: the ``dimension = value`` facts a check is made of.

The cluster's rules pick a policy per descriptor; the dimension names below are the ones the sample policies
(``deploy/policies.toml``) have rules for. Validation (identifier dimensions, values of 1 to 256 bytes, at most 16
descriptors) happens in the cluster, which answers ``INVALID_ARGUMENT`` naming the bad descriptor.

Anywhere the client takes descriptors it accepts a mapping (``{"api_key": "agent_42", "ip": "10.1.2.3"}``, in
insertion order), or a sequence of :class:`Descriptor` or ``(dimension, value)`` pairs; :func:`normalize` turns
each into a tuple of :class:`Descriptor`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from .errors import InvalidArgument

#: The dimension of API keys.
API_KEY = "api_key"
#: The dimension of client IP addresses.
IP = "ip"
#: The dimension of agent identities.
AGENT_ID = "agent_id"


@dataclass(frozen=True)
class Descriptor:
    """One ``dimension = value`` fact about a request, optionally naming the policy to check it against.

    >>> Descriptor("api_key", "agent_42").key
    'api_key=agent_42'
    """

    #: What the value identifies, e.g. ``api_key``: lowercase letters, digits, ``_``, ``.`` and ``-``.
    dimension: str
    #: The value, e.g. ``agent_42``: 1 to 256 bytes.
    value: str
    #: A policy that overrides the cluster's rules for this descriptor.
    policy: str | None = None

    @property
    def key(self) -> str:
        """The cluster's key for this descriptor, ``"dimension=value"`` (also the local fallback's key)."""
        return f"{self.dimension}={self.value}"

    @classmethod
    def ip(cls, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> Descriptor:
        """Returns ``ip = address`` in canonical text form (IPv6 compressed, IPv4-mapped IPv6 as IPv4).

        >>> Descriptor.ip("2001:db8:0:0::1").value
        '2001:db8::1'

        Raises ``ValueError`` if ``address`` is not an IP address.
        """
        parsed = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        return cls(IP, str(parsed))


#: What the client accepts as the descriptors of one request.
DescriptorsLike: TypeAlias = Mapping[str, str] | Iterable[Descriptor | tuple[str, str]]


def normalize(descriptors: DescriptorsLike) -> tuple[Descriptor, ...]:
    """Returns ``descriptors`` as a tuple of :class:`Descriptor`, in order.

    Raises :class:`~quorate.errors.InvalidArgument` if there is none (a check needs at least one), and
    ``TypeError`` for an item that is neither a :class:`Descriptor` nor a ``(dimension, value)`` pair.
    """
    if isinstance(descriptors, Mapping):
        items = tuple(Descriptor(str(dimension), str(value)) for dimension, value in descriptors.items())
    else:
        items = tuple(_one(item) for item in descriptors)
    if not items:
        raise InvalidArgument("a request needs at least one descriptor")
    return items


def _one(item: Descriptor | tuple[str, str]) -> Descriptor:
    if isinstance(item, Descriptor):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        return Descriptor(str(item[0]), str(item[1]))
    raise TypeError(f"a descriptor is a Descriptor or a (dimension, value) pair, not {item!r}")


__all__ = ["AGENT_ID", "API_KEY", "IP", "Descriptor", "DescriptorsLike", "normalize"]
