"""What the RESP server needs from the node behind it, and a single-node implementation.

Theory of operation: the server never touches the state machine or the log itself. It
checks each request (:func:`kvorum.kv.commands.check_command`), turns a write into a log
payload stamped with :meth:`Executor.now_ms`, and hands the node whole groups at a time:
consecutive writes from one pipelined read as one :meth:`Executor.write_batch` (the Raft node
puts them in one proposal and one fsync), consecutive reads as one :meth:`Executor.read_batch`
(one ReadIndex round). Replies come back in request order.

A node reports trouble by raising :class:`~kvorum.host.errors.RequestError` subclasses whose
``message`` is the Redis-style error the client sees (``-CLUSTERDOWN no leader``);
:func:`error_reply_for` maps anything else (a timeout, a bug) to an error reply so one
failing request never takes a connection or the server down.

:class:`LocalExecutor` is the reference implementation: one non-replicated node applying
each write batch directly to a :class:`KVStateMachine` as the next log index.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from kvorum.host.errors import RequestError
from kvorum.kv.replies import ErrorReply, Reply
from kvorum.kv.scan_cursors import ScanCursors, is_scan, scan_with_handles
from kvorum.kv.state_machine import KVStateMachine, encode_expire_sweep


class Consistency(enum.Enum):
    """How fresh a read must be."""

    LINEARIZABLE = "linearizable"
    """Reflects every write acknowledged before the read began (ReadIndex or a lease)."""
    STALE = "stale"
    """Whatever this node has applied; may miss recent writes, never waits for the leader."""


ExecutorError = RequestError
"""The name the server has always used for a host's :class:`~kvorum.host.errors.RequestError`."""


def error_reply_for(exc: BaseException) -> ErrorReply:
    """The error reply a client gets when the node raised ``exc`` for its request."""
    if isinstance(exc, RequestError):
        return ErrorReply(exc.message)
    if isinstance(exc, TimeoutError):
        return ErrorReply("TIMEOUT request timed out; a write may still be applied")
    return ErrorReply(f"ERR internal error ({type(exc).__name__})")


InfoSections = dict[str, dict[str, str | int]]
"""INFO sections by lower-case name (``replication``, ``keyspace``), each field -> value."""


class Executor(Protocol):
    """The node as the server sees it. Implementations must keep the order of a batch."""

    async def write_batch(self, payloads: Sequence[bytes]) -> list[Reply]:
        """Replicate and apply write payloads (from :func:`kvorum.kv.commands.encode_write`)
        in order; one reply per payload, returned only after each is applied. Raises
        :class:`ExecutorError` if the batch cannot be carried out at all."""
        ...

    async def read_batch(
        self, requests: Sequence[Sequence[bytes]], consistency: Consistency
    ) -> list[Reply]:
        """Evaluate checked read commands at ``consistency`` against state that includes
        every write whose reply was already returned; one reply per request."""
        ...

    def now_ms(self) -> int:
        """The clock writes are stamped with (the leader's, in Unix ms)."""
        ...

    def info(self) -> InfoSections:
        """INFO sections the node owns (at least ``replication`` and ``keyspace``)."""
        ...

    def role(self) -> Reply:
        """The ROLE reply, e.g. ``[b"master", 0, []]``."""
        ...


def wall_clock_ms() -> int:
    """Unix time in ms (the default clock; tests inject their own)."""
    return time.time_ns() // 1_000_000


class LocalExecutor:
    """A single, non-replicated node: each write batch is applied at once as the next log
    index, reads see everything applied. The reference behaviour for the Raft node."""

    def __init__(
        self, machine: KVStateMachine, clock_ms: Callable[[], int] = wall_clock_ms
    ) -> None:
        self.machine = machine
        self._clock_ms = clock_ms
        self._cursors = ScanCursors(0)

    def now_ms(self) -> int:
        """The injected clock's reading."""
        return self._clock_ms()

    async def write(self, payload: bytes) -> Reply:
        """Apply one write payload; its reply."""
        return (await self.write_batch([payload]))[0]

    async def write_batch(self, payloads: Sequence[bytes]) -> list[Reply]:
        """Apply the payloads as one log entry (one atomic engine batch)."""
        if not payloads:
            return []
        index = self.machine.engine.applied_index() + 1
        return self.machine.apply_many(payloads, index)

    async def read(self, request: Sequence[bytes], consistency: Consistency) -> Reply:
        """Evaluate one read command now."""
        return (await self.read_batch([request], consistency))[0]

    async def read_batch(
        self, requests: Sequence[Sequence[bytes]], consistency: Consistency
    ) -> list[Reply]:
        """Evaluate read commands now; a single node is always up to date."""
        now_ms = self._clock_ms()
        return [self._read(request, now_ms) for request in requests]

    def _read(self, request: Sequence[bytes], now_ms: int) -> Reply:
        if is_scan(request):
            return scan_with_handles(self._cursors, self.machine.read, request, now_ms)
        return self.machine.read(request, now_ms)

    async def sweep_expired(self, max_keys: int) -> int:
        """Apply one expiry sweep of up to ``max_keys`` keys due now (what a leader proposes
        when its housekeeping says keys may be due); how many keys it deleted."""
        deleted = await self.write(encode_expire_sweep(self._clock_ms(), max_keys))
        return deleted if isinstance(deleted, int) else 0

    def info(self) -> InfoSections:
        """``replication`` (always a master with no replicas) and ``keyspace``."""
        keyspace: dict[str, str | int] = dict(self.machine.keyspace_info(self._clock_ms()))
        return {
            "replication": {
                "role": "master",
                "connected_slaves": 0,
                "kvorum_mode": "local",
                "kvorum_applied_index": self.machine.engine.applied_index(),
            },
            "keyspace": keyspace,
        }

    def role(self) -> Reply:
        """A master with no replicas, at its applied index as the offset."""
        return [b"master", self.machine.engine.applied_index(), []]
