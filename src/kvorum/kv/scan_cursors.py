"""SCAN cursors a client can hold: 64-bit numbers that stand for a resume position kept here.

Theory of operation: a SCAN page ends at the key the next page starts from, and kvorum's
state machines name that key in the cursor they return (so any replica can continue a scan
without shared state). Such a cursor grows with the key, and clients parse cursors as
unsigned 64-bit integers (``redis-cli --scan`` gave up after ten keys on one of 20 digits).
So what a client sees is a short handle instead: :meth:`ScanCursors.issue` stores the
state machine's cursor under a fresh number below 2**64 and returns that; :meth:`resolve`
turns the number back. The table is per node and bounded: the oldest handles are forgotten
first, and a forgotten or foreign handle is refused with an error that says so (Redis never
refuses a cursor, but silently restarting or skipping would break SCAN's promise that a full
iteration returns every key present throughout). Handles carry the issuing node's id in
their top bits, so a cursor taken to another node is recognised as such.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from kvorum.kv.replies import ErrorReply, Reply

_COUNTER_BITS = 48
_MAX_CURSOR = (1 << 64) - 1
DEFAULT_CAPACITY = 65_536
"""Handles kept per node: enough for that many scans in progress at once."""


class ScanCursors:
    """Handles for SCAN cursors (see the module docstring); not thread-safe, one per node."""

    def __init__(self, node_id: int, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._node_id = node_id
        self._prefix = ((node_id % 0xFFFF) + 1) << _COUNTER_BITS
        self._capacity = capacity
        self._counter = 0
        self._inner: OrderedDict[int, bytes] = OrderedDict()

    def issue(self, inner: bytes) -> bytes:
        """The client's cursor for the state machine's cursor ``inner`` (``0`` stays ``0``)."""
        if inner == b"0":
            return b"0"
        self._counter = (self._counter + 1) % (1 << _COUNTER_BITS)
        handle = self._prefix | self._counter
        self._inner[handle] = inner
        self._inner.move_to_end(handle)
        while len(self._inner) > self._capacity:
            self._inner.popitem(last=False)
        return str(handle).encode()

    def resolve(self, client_cursor: bytes) -> bytes | ErrorReply:
        """The state machine's cursor for a client's cursor, or the error to answer with."""
        if not client_cursor.isdigit() or len(client_cursor) > 20:
            return ErrorReply("ERR invalid cursor")
        handle = int(client_cursor)
        if handle == 0:
            return b"0"
        if handle > _MAX_CURSOR:
            return ErrorReply("ERR invalid cursor")
        inner = self._inner.get(handle)
        if inner is not None:
            return inner
        if handle >> _COUNTER_BITS != self._prefix >> _COUNTER_BITS:
            return ErrorReply(
                "ERR invalid cursor: SCAN cursors are kept by the node that gave them; "
                "continue the scan on that node"
            )
        return ErrorReply(
            f"ERR invalid cursor: this node keeps the last {self._capacity} cursors and this "
            "one is older (or was never given); start the scan again from 0"
        )


def is_scan(request: Sequence[bytes]) -> bool:
    """Whether ``request`` is a SCAN (whose cursor needs a handle), cheaply: most reads are
    GETs, ruled out by the name's length."""
    return bool(request) and len(request[0]) == 4 and request[0].lower() == b"scan"


def scan_with_handles(
    cursors: ScanCursors,
    read: Callable[[Sequence[bytes], int], Reply],
    request: Sequence[bytes],
    now_ms: int,
) -> Reply:
    """Run a client's SCAN on one state machine's ``read``, translating its cursor handle."""
    inner = cursors.resolve(request[1])
    if isinstance(inner, ErrorReply):
        return inner
    reply = read([request[0], inner, *request[2:]], now_ms)
    if isinstance(reply, list) and isinstance(reply[0], bytes):
        return [cursors.issue(reply[0]), reply[1]]
    return reply
