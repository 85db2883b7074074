"""Key orders and spans: hash order stores keys by Redis Cluster slot, range order by raw key;
spans cut the ordered keyspace into groups; and the expiry walk stays inside a group's span
in both orders, including range order, where neighbouring groups share one index bucket."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from kvorum.kv.engine import Engine
from kvorum.kv.key_order import (
    FULL_SPAN,
    HASH_ORDER,
    MAX_KEY_BYTES,
    RANGE_ORDER,
    HashOrder,
    KeySpan,
    RangeOrder,
)
from kvorum.kv.keyspace_audit import audit_engine
from kvorum.kv.memory_keyspace import MemoryKeyspace
from kvorum.kv.values import pack_value
from kvorum.sharding import SLOT_COUNT, key_slot
from kvorum.storage import LmdbKeyspace


def test_hash_positions_are_the_slot_then_the_key() -> None:
    for key in (b"", b"foo", b"{user1000}.following", b"\xff" * 10):
        position = HASH_ORDER.encode(key)
        assert position[:2] == key_slot(key).to_bytes(2, "big")
        assert HASH_ORDER.decode(position) == key
        assert HashOrder.slot_of(position) == key_slot(key)
    keys = [b"foo", b"bar", b"a", b"b", b"{a}z"]
    by_position = sorted(keys, key=HASH_ORDER.encode)
    assert by_position == sorted(keys, key=lambda k: (key_slot(k), k))
    assert HASH_ORDER.prefix_bytes + MAX_KEY_BYTES == 511


def test_range_positions_keep_raw_order_and_the_empty_key() -> None:
    keys = [b"", b"\x00", b"a", b"ab", b"b"]
    assert sorted(keys, key=RANGE_ORDER.encode) == keys
    assert all(RANGE_ORDER.encode(k) for k in keys)  # never empty: LMDB needs that
    assert RangeOrder.key_span(b"b", None).contains(RANGE_ORDER.encode(b"bz"))
    assert not RangeOrder.key_span(b"b", b"c").contains(RANGE_ORDER.encode(b"a"))
    assert RangeOrder.key_span(b"", None) == FULL_SPAN


def test_spans_cover_the_slots_exactly_once() -> None:
    spans = HashOrder.even_spans(7)
    assert spans[0].start == b"" and spans[-1].end is None
    for before, after in pairwise(spans):
        assert before.end == after.start and not before.overlaps(after)
    for slot in (0, 1, 2340, 2341, 9000, SLOT_COUNT - 1):
        position = slot.to_bytes(2, "big") + b"key"
        assert sum(span.contains(position) for span in spans) == 1
    assert HashOrder.even_spans(1) == [FULL_SPAN]
    assert HashOrder.slot_span(5, 6).overlaps(HashOrder.slot_span(0, 100))
    with pytest.raises(ValueError, match="slot range"):
        HashOrder.slot_span(10, 10)
    with pytest.raises(ValueError, match="empty or inverted"):
        KeySpan(b"b", b"a")
    assert KeySpan(b"b", b"d").clamp(b"a", b"c") == (b"b", b"c")
    assert KeySpan(b"b", None).clamp(b"c", None) == (b"c", None)


def _open(kind: str, path: Path) -> MemoryKeyspace | LmdbKeyspace:
    if kind == "memory":
        return MemoryKeyspace(RANGE_ORDER)
    return LmdbKeyspace(path, order=RANGE_ORDER)


@pytest.mark.parametrize("kind", ["memory", "lmdb"])
def test_range_order_groups_sweep_only_their_own_keys(kind: str, tmp_path: Path) -> None:
    keyspace = _open(kind, tmp_path / "kv")
    low: Engine = keyspace.create_group(1, RangeOrder.key_span(b"", b"m"))
    high: Engine = keyspace.create_group(2, RangeOrder.key_span(b"m", None))
    # Interleaved expire times, so each group's due keys sit among the other's in the index.
    low.apply_batch([(b"a%d" % i, pack_value(b"v", 100 + 2 * i)) for i in range(20)], 1)
    high.apply_batch([(b"z%d" % i, pack_value(b"v", 101 + 2 * i)) for i in range(20)], 1)
    high.apply_batch([(b"plain", b"\x00v")], 2)
    assert (low.next_expiry_ms(), high.next_expiry_ms()) == (100, 101)
    due_low = low.expired_keys(120, 1000)
    assert due_low == [b"a%d" % i for i in range(11)]  # expire times 100..120, in time order
    assert high.expired_keys(120, 3) == [b"z0", b"z1", b"z2"]  # the limit cuts the walk
    assert high.expired_keys(99, 1000) == []
    low.apply_batch([(key, None) for key in due_low], 2)
    assert low.count() == 9 and high.count() == 21
    for engine in (low, high):
        assert audit_engine(engine) == []
    with pytest.raises(ValueError, match="outside"):
        low.apply_batch([(b"zebra", b"x")], 3)
    keyspace.close()
