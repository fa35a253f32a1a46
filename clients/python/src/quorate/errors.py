"""Every way a client call or a client's construction can fail, as exception types to branch on.

Callers branch on the type, never on the message. :attr:`QuorateError.unreachable` groups the failures that the
client's failure mode covers (:class:`Unavailable` and :class:`Timeout`).
"""

from __future__ import annotations

import grpc


class QuorateError(Exception):
    """Base class of the errors raised by :class:`quorate.AsyncClient` and :class:`quorate.Client`."""

    #: True if the error means the cluster could not be reached in time: the failures a failure mode turns into
    #: a decision.
    unreachable: bool = False


class InvalidConfig(QuorateError, ValueError):
    """Raised when a client setting is out of range (a zero timeout, no endpoint, a bad endpoint or TLS file)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid client setting {field}: {reason}")
        #: The setting, as its keyword argument is named.
        self.field = field
        #: What is wrong with it.
        self.reason = reason


class Unavailable(QuorateError):
    """Raised when no node produced an answer before the deadline and every failure was one a retry may fix.

    A node down or refusing connections, not the leader, or without a quorum. With the default failure mode
    (closed) this is what a check raises when the cluster is unreachable.
    """

    unreachable = True

    def __init__(self, attempts: int, elapsed: float, last: str) -> None:
        super().__init__(f"no quorate node answered within {elapsed:.3f} s ({attempts} attempts); last failure: {last}")
        #: How many calls were made.
        self.attempts = attempts
        #: Seconds spent before giving up.
        self.elapsed = elapsed
        #: The last failure seen, for logs.
        self.last = last


class TlsError(QuorateError):
    """Raised when the TLS handshake with a node failed: the client does not trust the node's certificate
    (another CA, or a name the certificate does not carry).

    Final: not retried on other nodes (they share the cluster's CA and would fail the same way) and never turned
    into a decision by a failure mode — a misconfigured client must not admit traffic as if the cluster were
    down. A plaintext client on a TLS node cannot be told apart from a node that closes connections (gRPC says
    only "Socket closed"): that stays :class:`Unavailable`.
    """

    def __init__(self, endpoint: str, details: str) -> None:
        super().__init__(f"TLS handshake with {endpoint} failed: {details}")
        #: The node's endpoint.
        self.endpoint = endpoint
        #: What gRPC said of the handshake.
        self.details = details


class Timeout(QuorateError):
    """Raised when a call timed out after it was sent and was not retried because it may have been applied.

    Retrying a charging check could charge twice, retrying a refund could refund twice (see the
    ``retry_timed_out_checks`` client option).
    """

    unreachable = True

    def __init__(self, endpoint: str, after: float) -> None:
        super().__init__(
            f"{endpoint} did not answer within {after:.3f} s; the call was not retried because it may have been applied"
        )
        #: The endpoint that did not answer.
        self.endpoint = endpoint
        #: The timeout that expired, in seconds.
        self.after = after


class InvalidArgument(QuorateError):
    """Raised when the request is invalid (``INVALID_ARGUMENT``, or caught before sending).

    A descriptor matches no policy, a value is empty or too long, the cost exceeds a limit, there is no
    descriptor, or a refund amount is 0.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"invalid request: {message}")
        #: The cluster's (or the client's) explanation.
        self.message = message


class ResourceExhausted(QuorateError):
    """Raised when the cluster's key table is full (``RESOURCE_EXHAUSTED``) and it cannot track a new key."""

    def __init__(self, message: str) -> None:
        super().__init__(f"the cluster is at capacity: {message}")
        #: The cluster's explanation.
        self.message = message


class RpcError(QuorateError):
    """Raised when a node answers with a gRPC status not covered above (e.g. ``INTERNAL``, ``UNIMPLEMENTED``);
    base class of :class:`Unauthenticated` and :class:`PermissionDenied`."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        #: The gRPC status code.
        self.code = code
        #: The node's message.
        self.message = message


class Unauthenticated(RpcError):
    """Raised when the node does not know the caller (``UNAUTHENTICATED``): no token was sent to a cluster that
    requires one, or the token is not one the cluster knows.

    Not retried: every node of a cluster has the same tokens. Give the client ``token``, ``token_file`` or
    ``$QUORATE_TOKEN`` with a token made by ``quorate token new`` and listed in the nodes' ``[[tokens]]``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.UNAUTHENTICATED, message)


class PermissionDenied(RpcError):
    """Raised when the token is known but lacks the role the call needs (``PERMISSION_DENIED``): checks, refunds
    and lease returns need ``check``, load reports ``report_load``; an ``admin`` token alone cannot check.

    Not retried: the same token is refused by every node.
    """

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.PERMISSION_DENIED, message)


class ClientClosed(QuorateError):
    """Raised by calls made after the client was closed."""

    def __init__(self) -> None:
        super().__init__("the quorate client is closed")


_CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def status_code(value: int) -> grpc.StatusCode:
    """The gRPC status code numbered ``value`` (a ``google.rpc.Code``, as in a batch item's error); ``UNKNOWN``
    for a number gRPC does not define.

    >>> status_code(3).name
    'INVALID_ARGUMENT'
    """
    return _CODES.get(value, grpc.StatusCode.UNKNOWN)


def from_status(code: grpc.StatusCode, message: str) -> QuorateError:
    """Maps a final (not retried) gRPC status to its typed error."""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(message)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhausted(message)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(message)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(message)
    return RpcError(code, message)


__all__ = [
    "ClientClosed",
    "InvalidArgument",
    "InvalidConfig",
    "PermissionDenied",
    "QuorateError",
    "ResourceExhausted",
    "RpcError",
    "Timeout",
    "TlsError",
    "Unauthenticated",
    "Unavailable",
    "from_status",
    "status_code",
]
