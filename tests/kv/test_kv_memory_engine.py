"""MemoryEngine keeps the Engine contract: ordered scans, atomic batches with their index,
point-in-time snapshots that restore exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvorum.kv.memory_engine import SNAPSHOT_PAIRS_PER_CHUNK, MemoryEngine


def test_scan_is_ordered_half_open_and_limited() -> None:
    engine = MemoryEngine()
    engine.apply_batch([(b"b", b"2"), (b"a", b"1"), (b"c", b"3"), (b"ab", b"x")], 1)
    assert engine.scan(b"", None, 10) == [(b"a", b"1"), (b"ab", b"x"), (b"b", b"2"), (b"c", b"3")]
    assert engine.scan(b"ab", b"c", 10) == [(b"ab", b"x"), (b"b", b"2")]
    assert engine.scan(b"a", None, 2) == [(b"a", b"1"), (b"ab", b"x")]
    assert engine.scan(b"a", None, 0) == []
    assert engine.count() == 4


def test_batch_applies_in_order_with_deletes_and_records_index() -> None:
    engine = MemoryEngine()
    engine.apply_batch([(b"k", b"1"), (b"k", None), (b"j", b"2"), (b"j", b"3")], 7)
    assert engine.get(b"k") is None
    assert engine.get(b"j") == b"3"
    assert engine.applied_index() == 7


def test_bad_batch_changes_nothing() -> None:
    engine = MemoryEngine()
    engine.apply_batch([(b"a", b"1")], 1)
    with pytest.raises(ValueError, match="bytes"):
        engine.apply_batch([(b"b", b"2"), ("c", b"3")], 2)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="backwards"):
        engine.apply_batch([(b"b", b"2")], 0)
    assert engine.get(b"b") is None
    assert engine.applied_index() == 1


def test_snapshot_is_point_in_time_and_restores() -> None:
    engine = MemoryEngine()
    pairs = [(b"%05d" % i, b"v%d" % i) for i in range(SNAPSHOT_PAIRS_PER_CHUNK + 10)]
    engine.apply_batch(pairs, 3)
    index, chunks = engine.snapshot_chunks()
    engine.apply_batch([(b"00000", None), (b"zzz", b"late")], 4)  # writes go on meanwhile
    other = MemoryEngine()
    other.apply_batch([(b"stale", b"x")], 1)
    chunk_list = list(chunks)
    assert len(chunk_list) == 2
    other.restore(iter(chunk_list), index)
    assert other.applied_index() == 3
    assert other.scan(b"", None, 10**6) == pairs


def test_closed_engine_refuses_use() -> None:
    engine = MemoryEngine()
    engine.close()
    with pytest.raises(RuntimeError, match="close"):
        engine.get(b"a")


@given(st.lists(st.tuples(st.binary(max_size=3), st.one_of(st.none(), st.binary(max_size=3)))))
def test_engine_matches_a_dict(writes: list[tuple[bytes, bytes | None]]) -> None:
    engine = MemoryEngine()
    model: dict[bytes, bytes] = {}
    for i, (key, value) in enumerate(writes, start=1):
        engine.apply_batch([(key, value)], i)
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value
    assert engine.scan(b"", None, 10**6) == sorted(model.items())
    assert engine.count() == len(model)
