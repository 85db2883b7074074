"""The placement invariant: the live ranges cover the keyspace exactly once.

Theory of operation: sorted by start, the first range must start at ``b""`` (the lowest
position), each range must end exactly where the next starts, and only the last may be
unbounded (``end`` None). Anything else is a *gap* (some positions belong to no range: their
keys cannot be served) or an *overlap* (some positions belong to two ranges: a key could be
served by both, and two histories of it could diverge). :func:`check_cover` lists every such
problem in words; an empty list means the cover is exact. It is run by the placement
driver's state machine after every change in tests, and by the simulator after every step.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

from kvorum.placement.descriptor import RangeDescriptor


def _show(position: bytes | None) -> str:
    return "end" if position is None else (position.hex() or "-")


def check_cover(descriptors: Iterable[RangeDescriptor]) -> list[str]:
    """Every gap, overlap or duplicate id among ``descriptors``; empty if they tile the
    keyspace exactly once."""
    ranges = sorted(descriptors, key=lambda d: (d.start, d.range_id))
    if not ranges:
        return ["no ranges: the whole keyspace is a gap"]
    problems: list[str] = []
    seen: set[int] = set()
    for desc in ranges:
        if desc.range_id in seen:
            problems.append(f"range id {desc.range_id} appears twice")
        seen.add(desc.range_id)
    if ranges[0].start != b"":
        problems.append(f"gap: [-, {_show(ranges[0].start)}) has no range")
    for left, right in pairwise(ranges):
        if left.end is None:
            problems.append(f"overlap: {left} is unbounded but {right} starts after it")
        elif left.end < right.start:
            problems.append(f"gap: [{_show(left.end)}, {_show(right.start)}) between "
                            f"{left} and {right}")
        elif left.end > right.start:
            problems.append(f"overlap: {left} and {right} share [{_show(right.start)}, "
                            f"{_show(min(left.end, right.end) if right.end else left.end)})")
    if ranges[-1].end is not None:
        problems.append(f"gap: [{_show(ranges[-1].end)}, end) has no range")
    return problems
