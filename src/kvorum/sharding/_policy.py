"""When to split, merge and move ranges: a pure policy that proposes, never acts.

Theory of operation (SHARD-2, SHARD-3): with *static* sharding ranges stay where an operator put
them; with *dynamic* sharding a manager watches per-range statistics and reshapes the map. This
module is that manager's judgement, separated from any I/O: given the map, each range's size
and load, and the injected time, :meth:`RangePolicy.propose` returns proposals —

* **split** a range whose size or load reaches a threshold, at the key its statistics suggest
  (the median by size, or by load for a hot range);
* **merge** two neighbouring ranges that are both small and cold, when together they stay
  under the merge thresholds — and only once both have existed for ``cooldown_ms``, so a fresh
  split is not merged straight back while its statistics are still settling;

and :meth:`RangePolicy.propose_moves` proposes moving ranges from the busiest shard to the
idlest while that lowers the busiest shard's load. Merge thresholds must be below split
thresholds, or a merged range could qualify for a split at once and the map would oscillate.
The caller applies proposals with :func:`apply_proposal` (or ignores them: that is static).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kvorum.sharding._errors import ClockWentBackwardsError, ShardingError
from kvorum.sharding._ranges import KeyRange, RangeMap


@dataclass(frozen=True, slots=True)
class RangeStats:
    """What the manager knows about one range: bytes stored, load (operations per second over
    the last window) and a suggested split key inside the range (None: cannot split)."""

    size_bytes: int
    load_ops: float
    split_key: bytes | None = None

    def __post_init__(self) -> None:
        if self.size_bytes < 0 or self.load_ops < 0:
            raise ShardingError(f"range stats must not be negative: {self}")


@dataclass(frozen=True, slots=True)
class SplitProposal:
    """Split the range starting at ``start`` at key ``at``."""

    start: bytes
    at: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class MergeProposal:
    """Merge the range at ``left_start`` with its neighbour at ``right_start``, on ``shard``."""

    left_start: bytes
    right_start: bytes
    shard: str
    reason: str


@dataclass(frozen=True, slots=True)
class MoveProposal:
    """Move the range at ``start`` from ``from_shard`` to ``to_shard``."""

    start: bytes
    from_shard: str
    to_shard: str
    reason: str


Proposal = SplitProposal | MergeProposal | MoveProposal


@dataclass(frozen=True, slots=True)
class RangePolicy:
    """Thresholds for reshaping ranges. A range splits when ``size_bytes >= split_size_bytes``
    or ``load_ops >= split_load_ops``; two neighbours merge when their combined size is at most
    ``merge_size_bytes`` and combined load at most ``merge_load_ops``, both being at least
    ``cooldown_ms`` old."""

    split_size_bytes: int
    split_load_ops: float
    merge_size_bytes: int
    merge_load_ops: float
    cooldown_ms: int

    def __post_init__(self) -> None:
        if self.split_size_bytes <= 0 or self.split_load_ops <= 0:
            raise ShardingError("split thresholds must be > 0")
        if self.merge_size_bytes < 0 or self.merge_load_ops < 0 or self.cooldown_ms < 0:
            raise ShardingError("merge thresholds and cooldown_ms must be >= 0")
        if self.merge_size_bytes >= self.split_size_bytes:
            raise ShardingError(
                f"merge_size_bytes ({self.merge_size_bytes}) must be below split_size_bytes "
                f"({self.split_size_bytes}) or merged ranges would split again at once"
            )
        if self.merge_load_ops >= self.split_load_ops:
            raise ShardingError(
                f"merge_load_ops ({self.merge_load_ops}) must be below split_load_ops "
                f"({self.split_load_ops}) or merged ranges would split again at once"
            )

    def propose(
        self, range_map: RangeMap, stats: Mapping[bytes, RangeStats], now_ms: int
    ) -> list[SplitProposal | MergeProposal]:
        """Splits and merges for the map as it is (keyed by range start in ``stats``; ranges
        without stats are left alone). No range appears in two proposals."""
        ranges = range_map.ranges()
        for key_range in ranges:
            if now_ms < key_range.since_ms:
                raise ClockWentBackwardsError(
                    f"now_ms {now_ms} is before range {key_range} was made ({key_range.since_ms})"
                )
        proposals: list[SplitProposal | MergeProposal] = []
        busy: set[bytes] = set()
        for key_range in ranges:
            split = self._split_of(key_range, stats.get(key_range.start))
            if split is not None:
                proposals.append(split)
                busy.add(key_range.start)
        index = 0
        while index + 1 < len(ranges):
            left, right = ranges[index], ranges[index + 1]
            merge = None
            if left.start not in busy and right.start not in busy:
                merge = self._merge_of(left, right, stats, now_ms)
            if merge is None:
                index += 1
            else:
                proposals.append(merge)
                index += 2  # the right range is taken; its next neighbour starts a new pair
        return proposals

    def _split_of(self, key_range: KeyRange, stats: RangeStats | None) -> SplitProposal | None:
        if stats is None or stats.split_key is None or not key_range.contains(stats.split_key):
            return None
        if stats.split_key == key_range.start:
            return None
        if stats.size_bytes >= self.split_size_bytes:
            reason = f"big: {stats.size_bytes} B >= {self.split_size_bytes} B"
        elif stats.load_ops >= self.split_load_ops:
            reason = f"hot: {stats.load_ops:g} ops/s >= {self.split_load_ops:g} ops/s"
        else:
            return None
        return SplitProposal(key_range.start, stats.split_key, reason)

    def _merge_of(
        self, left: KeyRange, right: KeyRange, stats: Mapping[bytes, RangeStats], now_ms: int
    ) -> MergeProposal | None:
        left_stats, right_stats = stats.get(left.start), stats.get(right.start)
        if left_stats is None or right_stats is None:
            return None
        if min(now_ms - left.since_ms, now_ms - right.since_ms) < self.cooldown_ms:
            return None  # too fresh: its numbers may not have settled since it was made
        size = left_stats.size_bytes + right_stats.size_bytes
        load = left_stats.load_ops + right_stats.load_ops
        if size > self.merge_size_bytes or load > self.merge_load_ops:
            return None
        # Keep the merged range where more of its bytes already are: less data to copy.
        shard = left.shard if left_stats.size_bytes >= right_stats.size_bytes else right.shard
        reason = f"small and cold together: {size} B, {load:g} ops/s"
        return MergeProposal(left.start, right.start, shard, reason)

    def propose_moves(
        self,
        range_map: RangeMap,
        stats: Mapping[bytes, RangeStats],
        shards: Sequence[str],
        max_moves: int = 8,
    ) -> list[MoveProposal]:
        """Moves that even out load across ``shards`` (which may include empty ones): each
        takes a range from the busiest shard to the idlest when that lowers the larger of the
        two loads. Stops when no move helps or after ``max_moves``."""
        if not shards:
            raise ShardingError("propose_moves needs at least one shard")
        loads = dict.fromkeys(shards, 0.0)
        placed: dict[bytes, str] = {}
        for key_range in range_map.ranges():
            if key_range.shard not in loads:
                raise ShardingError(f"range {key_range} is on unknown shard {key_range.shard!r}")
            range_stats = stats.get(key_range.start)
            loads[key_range.shard] += range_stats.load_ops if range_stats else 0.0
            placed[key_range.start] = key_range.shard
        moves: list[MoveProposal] = []
        while len(moves) < max_moves:
            busiest = max(loads, key=lambda s: (loads[s], s))
            idlest = min(loads, key=lambda s: (loads[s], s))
            gap = loads[busiest] - loads[idlest]
            best: tuple[float, bytes] | None = None
            for start, shard in placed.items():
                range_stats = stats.get(start)
                if shard != busiest or range_stats is None:
                    continue
                load = range_stats.load_ops
                # Moving `load` helps only if 0 < load < gap; best leaves the two closest.
                if not 0 < load < gap:
                    continue
                if best is None or abs(gap - 2 * load) < abs(gap - 2 * best[0]):
                    best = (load, start)
            if best is None:
                break
            load, start = best
            reason = (
                f"{busiest} carries {loads[busiest]:g} ops/s, {idlest} {loads[idlest]:g}; "
                f"moving {load:g} ops/s evens them"
            )
            loads[busiest] -= load
            loads[idlest] += load
            placed[start] = idlest
            moves.append(MoveProposal(start, busiest, idlest, reason))
        return moves


def apply_proposal(range_map: RangeMap, proposal: Proposal, now_ms: int) -> None:
    """Carry out one proposal on ``range_map`` (raises if the map no longer fits it)."""
    if isinstance(proposal, SplitProposal):
        range_map.split(proposal.at, now_ms)
    elif isinstance(proposal, MergeProposal):
        right = range_map.range_starting_at(proposal.right_start)
        left = range_map.range_starting_at(proposal.left_start)
        if left.end != right.start:
            raise ShardingError(f"{left} and {right} are no longer neighbours")
        range_map.merge(proposal.left_start, now_ms, shard=proposal.shard)
    else:
        range_map.move(proposal.start, proposal.to_shard)
