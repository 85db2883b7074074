"""A range map: ordered, contiguous key ranges ``[start, end)``, each assigned to a shard.

Theory of operation: range sharding keeps neighbouring keys together, so a scan over
``[a, b)`` touches only the shards of the ranges it overlaps (often one) — the property hash
sharding gives up. The map always covers the whole key space: the first range starts at
``b""``, each range ends where the next starts, and the last has no end (``end is None``).
Splits and merges keep that invariant by construction; the map is two parallel lists (range
starts, ranges), so finding a key's range is one binary search, O(log n), and a split or merge
is a list insert or delete.

Every range remembers ``since_ms``, the injected time at which it took its current bounds; the
split/merge policy (:mod:`kvorum.sharding._policy`) uses it as a cool-down so a range that was
just split is not merged straight back. Times must never go backwards.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from kvorum.sharding._errors import ClockWentBackwardsError, RangeMapError
from kvorum.sharding._hash import Key, key_bytes
from kvorum.sharding._placement import check_node_name


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Keys ``start <= key < end`` (no upper bound when ``end`` is None), held by ``shard``."""

    start: bytes
    end: bytes | None
    shard: str
    since_ms: int

    def contains(self, key: Key) -> bool:
        raw = key_bytes(key)
        return self.start <= raw and (self.end is None or raw < self.end)

    def __str__(self) -> str:
        end = "∞" if self.end is None else repr(self.end)
        return f"[{self.start!r}, {end}) -> {self.shard}"


class RangeMap:
    """Contiguous key ranges covering all byte strings, each on a shard."""

    def __init__(self, shard: str, now_ms: int = 0) -> None:
        """One range holding every key, on ``shard``, created at ``now_ms``."""
        check_node_name(shard)
        self._now_ms = now_ms
        self._ranges: list[KeyRange] = [KeyRange(b"", None, shard, now_ms)]
        self._starts: list[bytes] = [b""]

    @classmethod
    def from_boundaries(
        cls, boundaries: Sequence[Key], shards: Sequence[str], now_ms: int = 0
    ) -> RangeMap:
        """Ranges cut at ``boundaries`` (strictly increasing, none empty), the ``i``-th range
        on ``shards[i]``; needs ``len(shards) == len(boundaries) + 1``."""
        if len(shards) != len(boundaries) + 1:
            raise RangeMapError(
                f"{len(boundaries)} boundaries make {len(boundaries) + 1} ranges, "
                f"but {len(shards)} shards were given"
            )
        range_map = cls(shards[0], now_ms)
        for at, shard in zip(boundaries, shards[1:], strict=True):
            if key_bytes(at) <= range_map._starts[-1]:
                raise RangeMapError(f"boundaries must be strictly increasing and non-empty: {at!r}")
            range_map.split(at, now_ms, shard=shard)
        return range_map

    @classmethod
    def from_ranges(cls, ranges: Sequence[KeyRange]) -> RangeMap:
        """A map holding exactly ``ranges`` (with their ``since_ms``), which must tile the
        key space in order: how a saved map is restored."""
        if not ranges or ranges[0].start != b"" or ranges[-1].end is not None:
            raise RangeMapError("ranges must start at b'' and end unbounded")
        for left, right in pairwise(ranges):
            if left.end != right.start:
                raise RangeMapError(f"{left} and {right} are not neighbours")
        for key_range in ranges:
            check_node_name(key_range.shard)
        range_map = cls(ranges[0].shard, max(r.since_ms for r in ranges))
        range_map._ranges = list(ranges)
        range_map._starts = [r.start for r in ranges]
        return range_map

    def __len__(self) -> int:
        return len(self._ranges)

    def ranges(self) -> list[KeyRange]:
        """All ranges in key order."""
        return list(self._ranges)

    def shards(self) -> set[str]:
        """Every shard that holds at least one range."""
        return {r.shard for r in self._ranges}

    def _check_clock(self, now_ms: int) -> None:
        if now_ms < self._now_ms:
            raise ClockWentBackwardsError(f"now_ms went backwards: {now_ms} < {self._now_ms}")
        self._now_ms = now_ms

    def _index_of(self, key: bytes) -> int:
        return bisect_right(self._starts, key) - 1  # starts[0] == b"" so this is >= 0

    def _index_starting_at(self, start: Key) -> int:
        raw = key_bytes(start)
        index = bisect_left(self._starts, raw)
        if index == len(self._starts) or self._starts[index] != raw:
            raise RangeMapError(f"no range starts at {raw!r}")
        return index

    def lookup(self, key: Key) -> KeyRange:
        """The range holding ``key``, found by binary search."""
        return self._ranges[self._index_of(key_bytes(key))]

    def range_starting_at(self, start: Key) -> KeyRange:
        """The range whose first key is exactly ``start``."""
        return self._ranges[self._index_starting_at(start)]

    def overlapping(self, start: Key, end: Key | None) -> list[KeyRange]:
        """The ranges a scan of ``[start, end)`` touches (``end`` None: to the last key)."""
        low = key_bytes(start)
        high = None if end is None else key_bytes(end)
        if high is not None and high <= low:
            return []
        first = self._index_of(low)
        last = len(self._ranges) if high is None else bisect_left(self._starts, high)
        return self._ranges[first:last]

    def split(self, at: Key, now_ms: int, shard: str | None = None) -> tuple[KeyRange, KeyRange]:
        """Cut the range holding ``at`` into ``[start, at)`` and ``[at, end)``; the right part
        goes to ``shard`` (default: stays). Raises if ``at`` already starts a range."""
        raw = key_bytes(at)
        index = self._index_of(raw)
        old = self._ranges[index]
        if raw == old.start:
            raise RangeMapError(f"cannot split at {raw!r}: a range already starts there")
        if shard is not None:
            check_node_name(shard)
        self._check_clock(now_ms)
        left = KeyRange(old.start, raw, old.shard, now_ms)
        right = KeyRange(raw, old.end, old.shard if shard is None else shard, now_ms)
        self._ranges[index : index + 1] = [left, right]
        self._starts.insert(index + 1, raw)
        return left, right

    def merge(self, left_start: Key, now_ms: int, shard: str | None = None) -> KeyRange:
        """Join the range starting at ``left_start`` with its right neighbour, on ``shard``
        (default: the left range's shard)."""
        index = self._index_starting_at(left_start)
        if index + 1 == len(self._ranges):
            raise RangeMapError(f"the range at {key_bytes(left_start)!r} is last: no neighbour")
        if shard is not None:
            check_node_name(shard)
        self._check_clock(now_ms)
        left, right = self._ranges[index], self._ranges[index + 1]
        merged = KeyRange(left.start, right.end, left.shard if shard is None else shard, now_ms)
        self._ranges[index : index + 2] = [merged]
        del self._starts[index + 1]
        return merged

    def move(self, start: Key, shard: str) -> KeyRange:
        """Put the range starting at ``start`` on ``shard``; its bounds (and ``since_ms``)
        stay the same."""
        check_node_name(shard)
        index = self._index_starting_at(start)
        moved = replace(self._ranges[index], shard=shard)
        self._ranges[index] = moved
        return moved
