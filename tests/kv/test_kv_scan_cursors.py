"""SCAN cursor handles: short, stable while kept, and refused with a reason once not."""

from __future__ import annotations

from kvorum.kv.replies import ErrorReply
from kvorum.kv.scan_cursors import ScanCursors


def test_a_handle_resolves_to_what_it_was_issued_for_and_zero_stays_zero() -> None:
    cursors = ScanCursors(3)
    inner = b"9" * 300  # a state machine's cursor naming a long key
    handle = cursors.issue(inner)
    assert len(handle) <= 20 and int(handle) < 2**64
    assert cursors.resolve(handle) == inner
    assert cursors.resolve(handle) == inner  # a client may repeat a page
    assert cursors.issue(b"0") == b"0" and cursors.resolve(b"0") == b"0"


def test_forgotten_foreign_and_malformed_handles_are_refused_with_a_reason() -> None:
    cursors = ScanCursors(1, capacity=2)
    first = cursors.issue(b"11")
    cursors.issue(b"12")
    cursors.issue(b"13")  # the oldest is forgotten
    forgotten = cursors.resolve(first)
    assert isinstance(forgotten, ErrorReply) and "start the scan again" in forgotten.message
    foreign = cursors.resolve(ScanCursors(2).issue(b"11"))
    assert isinstance(foreign, ErrorReply) and "node that gave them" in foreign.message
    for bad in (b"x", b"-1", str(2**64).encode()):
        assert cursors.resolve(bad) == ErrorReply("ERR invalid cursor")
