"""Why a request handed to the host was not carried out, in words a Redis client matches on.

Theory of operation: every failure a host reports to whoever is waiting on a request is a
:class:`RequestError` whose message starts with an upper-case code (``CLUSTERDOWN``,
``TRYAGAIN``, ``TIMEOUT``, ``ERR``), the way Redis error replies do, so the RESP server can
pass it to the client unchanged. The subclasses say what the client may assume: a request
that failed before it entered any log (:class:`NoLeaderError`, :class:`WriteLostError`,
:class:`RetryableError`) certainly had no effect and may be retried; one that timed out
(:class:`CommitTimeoutError`) or was cut off by a shutdown after it was proposed may still be
applied later, and the message says so.
"""

from __future__ import annotations


class RequestError(Exception):
    """A request the node could not carry out; ``message`` is the Redis-style error text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoLeaderError(RequestError):
    """The group has no leader right now (election in progress, or no quorum)."""

    def __init__(self) -> None:
        super().__init__("CLUSTERDOWN no leader")


class RetryableError(RequestError):
    """Refused before it entered any log (a leadership transfer, a full queue...): retry."""

    def __init__(self, why: str) -> None:
        super().__init__(f"TRYAGAIN {why}")


class WriteLostError(RequestError):
    """The leader changed before the write committed, and another entry took its place: the
    write was definitely not applied, so retrying it is safe."""

    def __init__(self) -> None:
        super().__init__("TRYAGAIN leader changed before the write committed; it was not applied")


class CommitTimeoutError(RequestError):
    """A write was proposed but not known to commit in time; it may still apply later, so a
    client must not assume either outcome."""

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(
            f"TIMEOUT not committed within {timeout_ms} ms; the write may still be applied"
        )
        self.timeout_ms = timeout_ms


class DiskFullRequestError(RequestError):
    """The node's disk is full: writes are refused until space is freed; reads go on."""

    def __init__(self) -> None:
        super().__init__(
            "ERR disk full: this node cannot write its log; writes resume once space is freed"
        )
