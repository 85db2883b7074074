"""Range map: contiguous coverage under any split/merge sequence, O(log n) lookup agreeing with
a linear scan, and the policy's splits, merges (with cool-down) and moves."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvorum.sharding import (
    ClockWentBackwardsError,
    KeyRange,
    MergeProposal,
    MoveProposal,
    RangeMap,
    RangeMapError,
    RangePolicy,
    RangeStats,
    ShardingError,
    SplitProposal,
    apply_proposal,
)

small_keys = st.binary(min_size=0, max_size=3)


def linear_lookup(ranges: list[KeyRange], key: bytes) -> KeyRange:
    return next(r for r in ranges if r.contains(key))


def assert_covers_everything(range_map: RangeMap) -> None:
    ranges = range_map.ranges()
    assert ranges[0].start == b""
    assert ranges[-1].end is None
    for left, right in itertools.pairwise(ranges):
        assert left.end == right.start
        assert left.start < right.start


@settings(max_examples=80, deadline=None)
@given(
    ops=st.lists(st.tuples(st.booleans(), small_keys, st.sampled_from("xyz")), max_size=40),
    probes=st.lists(small_keys, max_size=30),
)
def test_splits_and_merges_keep_the_map_contiguous(
    ops: list[tuple[bool, bytes, str]], probes: list[bytes]
) -> None:
    range_map = RangeMap("x")
    now_ms = 0
    for is_split, key, shard in ops:
        now_ms += 1
        if is_split:
            holder = range_map.lookup(key)
            if key == holder.start:
                with pytest.raises(RangeMapError, match="already starts"):
                    range_map.split(key, now_ms)
                continue
            left, right = range_map.split(key, now_ms, shard=shard)
            assert (left.start, left.end, right.start, right.end) == (
                holder.start,
                key,
                key,
                holder.end,
            )
            assert right.shard == shard and left.shard == holder.shard
        else:
            ranges = range_map.ranges()
            target = ranges[len(key) % len(ranges)]
            if target.end is None:
                with pytest.raises(RangeMapError, match="no neighbour"):
                    range_map.merge(target.start, now_ms)
                continue
            right_end = range_map.lookup(target.end).end
            merged = range_map.merge(target.start, now_ms)
            assert (merged.start, merged.end, merged.shard) == (
                target.start,
                right_end,
                target.shard,
            )
        assert_covers_everything(range_map)
    ranges = range_map.ranges()
    for probe in probes:
        assert range_map.lookup(probe) == linear_lookup(ranges, probe)


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.sets(st.binary(min_size=1, max_size=2), max_size=12),
    start=small_keys,
    end=st.one_of(st.none(), small_keys),
)
def test_overlapping_ranges_are_exactly_those_a_scan_touches(
    cuts: set[bytes], start: bytes, end: bytes | None
) -> None:
    boundaries = sorted(cuts)
    shards = [f"s{i}" for i in range(len(boundaries) + 1)]
    range_map = RangeMap.from_boundaries(boundaries, shards)
    touched = range_map.overlapping(start, end)
    expected = [
        r
        for r in range_map.ranges()
        if (end is None or r.start < end)
        and (r.end is None or start < r.end)
        and (end is None or start < end)
    ]
    assert touched == expected


def test_bad_range_map_arguments() -> None:
    with pytest.raises(RangeMapError, match="strictly increasing"):
        RangeMap.from_boundaries([b"m", b"c"], ["a", "b", "c"])
    with pytest.raises(RangeMapError, match="3 shards"):
        RangeMap.from_boundaries([b"m"], ["a", "b", "c"])
    range_map = RangeMap("a", now_ms=100)
    with pytest.raises(ClockWentBackwardsError, match="backwards"):
        range_map.split(b"m", now_ms=99)
    with pytest.raises(RangeMapError, match="no range starts"):
        range_map.merge(b"q", now_ms=100)
    with pytest.raises(ShardingError, match="non-empty"):
        range_map.move(b"", "")


def policy() -> RangePolicy:
    return RangePolicy(
        split_size_bytes=1000,
        split_load_ops=500.0,
        merge_size_bytes=300,
        merge_load_ops=100.0,
        cooldown_ms=10_000,
    )


def test_policy_splits_big_and_hot_ranges() -> None:
    range_map = RangeMap.from_boundaries([b"g", b"p"], ["s1", "s1", "s2"])
    stats = {
        b"": RangeStats(size_bytes=2000, load_ops=10, split_key=b"c"),
        b"g": RangeStats(size_bytes=200, load_ops=900, split_key=b"k"),
        b"p": RangeStats(size_bytes=200, load_ops=10, split_key=b"t"),
    }
    proposals = policy().propose(range_map, stats, now_ms=0)
    assert proposals == [
        SplitProposal(b"", b"c", "big: 2000 B >= 1000 B"),
        SplitProposal(b"g", b"k", "hot: 900 ops/s >= 500 ops/s"),
    ]
    for proposal in proposals:
        apply_proposal(range_map, proposal, now_ms=0)
    assert [r.start for r in range_map.ranges()] == [b"", b"c", b"g", b"k", b"p"]


def test_policy_merges_small_cold_neighbours_only_after_the_cooldown() -> None:
    range_map = RangeMap.from_boundaries([b"g", b"p"], ["s1", "s2", "s2"], now_ms=0)
    range_map.split(b"k", now_ms=5_000)  # [g, k) and [k, p) are fresh
    cold = RangeStats(size_bytes=50, load_ops=5)
    stats = dict.fromkeys([b"", b"g", b"k", b"p"], cold)
    early = policy().propose(range_map, stats, now_ms=12_000)
    # [g, k) and [k, p) are 7 s old, under the 10 s cool-down, and every neighbouring pair
    # includes one of them: nothing may merge yet.
    assert early == []
    later = policy().propose(range_map, stats, now_ms=15_000)
    assert later == [
        MergeProposal(b"", b"g", "s1", "small and cold together: 100 B, 10 ops/s"),
        MergeProposal(b"k", b"p", "s2", "small and cold together: 100 B, 10 ops/s"),
    ]
    for proposal in later:
        apply_proposal(range_map, proposal, now_ms=15_000)
    assert [(r.start, r.end) for r in range_map.ranges()] == [(b"", b"k"), (b"k", None)]


def test_policy_does_not_merge_what_would_be_too_big_or_hot() -> None:
    range_map = RangeMap.from_boundaries([b"m"], ["s1", "s1"])
    stats = {b"": RangeStats(200, 60.0), b"m": RangeStats(200, 60.0)}
    assert policy().propose(range_map, stats, now_ms=50_000) == []


def test_policy_moves_even_out_shard_load() -> None:
    range_map = RangeMap.from_boundaries([b"d", b"h", b"m", b"r"], ["s1", "s1", "s1", "s1", "s2"])
    loads = {b"": 400.0, b"d": 300.0, b"h": 200.0, b"m": 100.0, b"r": 100.0}
    stats = {start: RangeStats(100, load) for start, load in loads.items()}
    moves = policy().propose_moves(range_map, stats, ["s1", "s2", "s3"])
    assert all(isinstance(m, MoveProposal) for m in moves)
    for move in moves:
        apply_proposal(range_map, move, now_ms=0)
    per_shard = dict.fromkeys(["s1", "s2", "s3"], 0.0)
    for key_range in range_map.ranges():
        per_shard[key_range.shard] += loads[key_range.start]
    assert max(per_shard.values()) <= 400.0
    assert min(per_shard.values()) >= 200.0


def test_policy_rejects_oscillating_or_negative_thresholds() -> None:
    with pytest.raises(ShardingError, match="merge_size_bytes"):
        RangePolicy(1000, 500.0, 1000, 100.0, 0)
    with pytest.raises(ShardingError, match="merge_load_ops"):
        RangePolicy(1000, 500.0, 100, 600.0, 0)
    with pytest.raises(ShardingError, match=">= 0"):
        RangePolicy(1000, 500.0, 100, 100.0, -1)
    with pytest.raises(ShardingError, match="negative"):
        RangeStats(-1, 0.0)
    range_map = RangeMap("s1", now_ms=10)
    with pytest.raises(ClockWentBackwardsError):
        policy().propose(range_map, {}, now_ms=5)


def test_from_ranges_restores_bounds_and_ages_and_refuses_a_gap() -> None:
    original = RangeMap("a", now_ms=5)
    original.split(b"m", 10, shard="b")
    original.split(b"t", 20, shard="c")
    restored = RangeMap.from_ranges(original.ranges())
    assert restored.ranges() == original.ranges()
    assert restored.lookup(b"p").shard == "b"
    restored.split(b"x", 20)  # its clock is the newest age, so 20 is not "backwards"
    with pytest.raises(ClockWentBackwardsError):
        restored.split(b"y", 19)
    gap = [KeyRange(b"", b"m", "a", 0), KeyRange(b"n", None, "b", 0)]
    with pytest.raises(RangeMapError):
        RangeMap.from_ranges(gap)
    with pytest.raises(RangeMapError):
        RangeMap.from_ranges([KeyRange(b"a", None, "a", 0)])
