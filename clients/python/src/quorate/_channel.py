"""One grpc.aio channel per node: how it is made, how an attempt waits for it to connect, how it is retired.

Channels own their connections (``grpc.use_local_subchannel_pool``): without it gRPC shares one connection per
target across channels, and a channel made to replace a dead one would inherit the dead one's reconnect backoff.
Reconnect backoff is short (100 ms to 1 s instead of gRPC's 1 s to 120 s), so a node that comes back is used
again within a second.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
import grpc.aio

from ._proto.quorate.v1 import admin_pb2_grpc, rate_limiter_pb2_grpc
from .auth import Security

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)

_SETTLED = (
    grpc.ChannelConnectivity.READY,
    grpc.ChannelConnectivity.TRANSIENT_FAILURE,
    grpc.ChannelConnectivity.SHUTDOWN,
)


@dataclass(frozen=True)
class NodeChannel:
    """A node's channel and the generated stubs bound to it."""

    url: str
    channel: grpc.aio.Channel
    #: ``quorate.v1.RateLimiter`` (generated, untyped).
    limiter: rate_limiter_pb2_grpc.RateLimiterStub
    #: ``quorate.v1.Admin`` (generated, untyped).
    admin: admin_pb2_grpc.AdminStub


def open_channel(url: str, target: str, security: Security) -> NodeChannel:
    """Makes the channel to ``target`` (``host:port``); it connects on first use."""
    options = [*CHANNEL_OPTIONS, *security.channel_options]
    if security.credentials is not None:
        channel = grpc.aio.secure_channel(target, security.credentials, options=options)
    else:
        channel = grpc.aio.insecure_channel(target, options=options)
    return NodeChannel(
        url=url,
        channel=channel,
        # The generated service stubs carry no annotations (grpcio-tools writes none): their calls return Any,
        # which the client casts to the message types of the generated .pyi files.
        limiter=rate_limiter_pb2_grpc.RateLimiterStub(channel),  # type: ignore[no-untyped-call]
        admin=admin_pb2_grpc.AdminStub(channel),  # type: ignore[no-untyped-call]
    )


async def wait_connected(channel: grpc.aio.Channel, timeout: float) -> grpc.ChannelConnectivity:
    """Waits until ``channel`` is connected or fails to, for at most ``timeout`` seconds; returns its state.

    ``READY`` means a call can be sent. Anything else means nothing was sent: ``TRANSIENT_FAILURE`` (refused,
    unreachable) as soon as the connection attempt fails, or the state it was still in when the time ran out.
    """
    state = channel.get_state(try_to_connect=True)
    if state in _SETTLED:
        return state
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while state not in _SETTLED:
        left = deadline - loop.time()
        if left <= 0:
            return state
        try:
            await asyncio.wait_for(channel.wait_for_state_change(state), left)
        except asyncio.TimeoutError:
            return channel.get_state()
        state = channel.get_state(try_to_connect=True)
    return state


#: What gRPC's connection errors say when the TLS handshake failed rather than the network: a certificate that
#: does not chain to the trusted CA ("Tls handshake failed ... certificate signature failure") or does not name
#: the host ("Hostname Verification Check failed").
_TLS_FAILURES = ("handshake failed", "hostname verification", "certificate verify failed")


async def handshake_failure(channel: grpc.aio.Channel, timeout: float) -> str | None:
    """Why ``channel``'s last connection attempt failed, if it was the TLS handshake; ``None`` otherwise.

    Call it on a channel in ``TRANSIENT_FAILURE``: a call on such a channel fails at once, without being sent,
    with the last connection error in its details (the connectivity state alone does not say why).
    """
    # Bytes in and out: nothing is sent anyway.
    probe: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/grpc.health.v1.Health/Check")
    try:
        await probe(b"", timeout=timeout)
    except grpc.aio.AioRpcError as error:
        details = error.details() or ""
        if any(marker in details.lower() for marker in _TLS_FAILURES):
            return details
    return None


__all__ = ["CHANNEL_OPTIONS", "NodeChannel", "handshake_failure", "open_channel", "wait_connected"]
