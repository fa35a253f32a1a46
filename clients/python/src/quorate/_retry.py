"""What is retried: the Rust client's retry table, as pure functions of the call and how an attempt failed.

Every call has an overall deadline; each attempt gets the smaller of the call timeout and the time left. Only
failures another node (or a moment later) may fix are retried, and only while the retry cannot make the cluster
admit more than its limits:

=====================================================  ==============  ==============  ==========
failure of an attempt                                  check           peek, status    refund
=====================================================  ==============  ==============  ==========
connection failed (refused, unreachable): not sent     retry           retry           retry
``UNAVAILABLE`` (not leader, no quorum, conn lost)     retry (1)       retry           no
call timed out (``DEADLINE_EXCEEDED``, ``CANCELLED``)  no (2)          retry           no
``INVALID_ARGUMENT``, ``RESOURCE_EXHAUSTED``, other    no: typed       no              no
=====================================================  ==============  ==============  ==========

(1) A node answers ``UNAVAILABLE`` when it could not commit in time, and a connection can break after the
request left: the first attempt may still commit, so the retry may charge twice. Charging twice only ever denies
more, and the protocol asks for this retry. (2) A timed-out check is most likely still in the leader's pipeline;
retrying it would usually charge twice, so it raises :class:`~quorate.errors.Timeout` unless the client was made
with ``retry_timed_out_checks=True``. A refund that may have been applied is never repeated: refunding twice
would over-admit.

"Not sent" is known without reading error messages: the client waits for the channel to connect before each
attempt, and an attempt whose channel could not connect never sent anything.
"""

from __future__ import annotations

import enum

import grpc

#: The first pause between two attempts in seconds; it doubles up to :data:`MAX_RETRY_PAUSE`.
FIRST_RETRY_PAUSE = 0.010
#: The longest pause between two attempts: short next to an election (~0.5 s), long enough not to spin.
MAX_RETRY_PAUSE = 0.200


class Call(enum.Enum):
    """What is being called, which decides what may be retried."""

    #: A charging check.
    CHECK = "check"
    #: Anything that changes nothing or can be repeated: peek, status, report_load.
    READ = "read"
    #: A refund: never repeated once it may have been applied.
    REFUND = "refund"


class Failure(enum.Enum):
    """How one attempt failed, as far as the retry rules care."""

    #: The connection could not be made: the request was never sent.
    NOT_SENT = "not_sent"
    #: ``UNAVAILABLE`` after the request may have been sent.
    UNAVAILABLE = "unavailable"
    #: The attempt timed out after the request was sent.
    TIMED_OUT = "timed_out"
    #: An answer no retry changes.
    FINAL = "final"


def classify(code: grpc.StatusCode) -> Failure:
    """Sorts the status of an attempt that was sent."""
    if code == grpc.StatusCode.UNAVAILABLE:
        return Failure.UNAVAILABLE
    if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return Failure.TIMED_OUT
    return Failure.FINAL


def may_retry(call: Call, failure: Failure, *, retry_timed_out_checks: bool) -> bool:
    """True if the table above lets ``call`` be tried again after ``failure``."""
    if failure is Failure.NOT_SENT:
        return True
    if failure is Failure.UNAVAILABLE:
        return call is not Call.REFUND
    if failure is Failure.TIMED_OUT:
        return call is Call.READ or (call is Call.CHECK and retry_timed_out_checks)
    return False


def drops_channel(failure: Failure) -> bool:
    """True if the channel should be replaced: a connection that timed out may be dead without knowing it, and one
    that could not connect is dialled afresh rather than waiting out gRPC's reconnect backoff."""
    return failure in (Failure.TIMED_OUT, Failure.NOT_SENT)


def pause(attempts: int, time_left: float) -> float:
    """Seconds to wait before the next attempt: 10 ms doubling per attempt, at most 200 ms and the time left."""
    exponential = FIRST_RETRY_PAUSE * (1 << min(attempts, 8)) / 2
    return max(0.0, min(exponential, MAX_RETRY_PAUSE, time_left))


__all__ = [
    "FIRST_RETRY_PAUSE",
    "MAX_RETRY_PAUSE",
    "Call",
    "Failure",
    "classify",
    "drops_channel",
    "may_retry",
    "pause",
]
