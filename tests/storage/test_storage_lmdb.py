"""The LMDB engine: atomic batches with their applied index, scans, snapshots, restore, growth."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from kvorum.kv.memory_engine import MemoryEngine
from kvorum.storage import EngineClosedError, LmdbEngine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[LmdbEngine]:
    eng = LmdbEngine(tmp_path / "kv", map_bytes=1 << 20)
    yield eng
    eng.close()


def test_batches_store_their_applied_index(engine: LmdbEngine, tmp_path: Path) -> None:
    assert engine.applied_index() == 0
    engine.apply_batch([(b"a", b"1"), (b"b", b"2"), (b"", b"empty key is fine")], 7)
    engine.apply_batch([(b"a", None), (b"b", b"3"), (b"b", b"4")], 8)  # in order
    assert engine.get(b"a") is None and engine.get(b"b") == b"4"
    assert engine.get(b"") == b"empty key is fine"
    assert (engine.count(), engine.applied_index()) == (2, 8)
    engine.close()
    again = LmdbEngine(tmp_path / "kv")
    assert (again.get(b"b"), again.applied_index()) == (b"4", 8)
    again.close()


def test_a_refused_batch_changes_nothing(engine: LmdbEngine) -> None:
    engine.apply_batch([(b"a", b"1")], 5)
    with pytest.raises(ValueError, match="backwards"):
        engine.apply_batch([(b"a", b"2")], 4)
    with pytest.raises(ValueError, match=r"\(bytes, bytes \| None\)"):
        engine.apply_batch([(b"a", b"2"), ("text", b"x")], 6)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="LMDB's limit"):
        engine.apply_batch([(b"a", b"2"), (b"k" * 600, b"x")], 6)
    assert (engine.get(b"a"), engine.applied_index()) == (b"1", 5)


def test_scan_is_ordered_bounded_and_limited(engine: LmdbEngine) -> None:
    engine.apply_batch([(b"user:%02d" % i, b"%d" % i) for i in range(20)] + [(b"zz", b"z")], 1)
    assert [k for k, _ in engine.scan(b"user:05", b"user:08", 100)] == [
        b"user:05",
        b"user:06",
        b"user:07",
    ]
    assert len(engine.scan(b"user:", None, 4)) == 4
    assert engine.scan(b"user:19", None, 10) == [(b"user:19", b"19"), (b"zz", b"z")]
    assert engine.scan(b"zzz", None, 10) == []
    assert engine.scan(b"", None, 0) == []
    with pytest.raises(ValueError, match="limit"):
        engine.scan(b"", None, -1)


def test_snapshot_is_a_point_in_time_view_while_writes_go_on(engine: LmdbEngine) -> None:
    engine.apply_batch([(b"k%04d" % i, b"old") for i in range(3000)], 10)
    applied, chunks = engine.snapshot_chunks()
    writer_done = threading.Event()

    def writer() -> None:
        for n in range(11, 31):
            engine.apply_batch([(b"k%04d" % (n * 7), b"new"), (b"extra%d" % n, b"x")], n)
        writer_done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    pairs = [pair for chunk in chunks for pair in msgpack.unpackb(chunk)]
    thread.join()
    assert writer_done.is_set()
    assert applied == 10
    assert len(pairs) == 3000 and {v for _, v in pairs} == {b"old"}
    assert engine.applied_index() == 30 and engine.get(b"k0077") == b"new"


def test_restore_replaces_everything(engine: LmdbEngine, tmp_path: Path) -> None:
    source = LmdbEngine(tmp_path / "source")
    source.apply_batch([(b"s%d" % i, b"v" * i) for i in range(100)], 40)
    applied, chunks = source.snapshot_chunks()
    engine.apply_batch([(b"stale", b"gone soon")], 3)
    engine.restore(chunks, applied)
    assert engine.get(b"stale") is None
    assert (engine.count(), engine.applied_index(), engine.get(b"s9")) == (100, 40, b"v" * 9)
    source.close()


def test_snapshots_are_interchangeable_with_the_memory_engine(engine: LmdbEngine) -> None:
    memory = MemoryEngine()
    memory.apply_batch([(b"m%05d" % i, b"%d" % i) for i in range(10_000)], 12)
    applied, chunks = memory.snapshot_chunks()
    engine.restore(chunks, applied)
    assert engine.count() == 10_000 and engine.get(b"m09999") == b"9999"
    back = MemoryEngine()
    applied, chunks = engine.snapshot_chunks()
    back.restore(chunks, applied)
    assert back.scan(b"", None, 20_000) == memory.scan(b"", None, 20_000)


def test_a_bad_snapshot_stream_leaves_the_store_untouched(engine: LmdbEngine) -> None:
    engine.apply_batch([(b"keep", b"me")], 2)

    def failing() -> Iterator[bytes]:
        yield msgpack.packb([[b"a", b"b"]])
        raise OSError("checksum mismatch at the end of the stream")

    with pytest.raises(OSError):
        engine.restore(failing(), 9)
    with pytest.raises(ValueError, match="mid-object"):
        engine.restore(iter([msgpack.packb([[b"a", b"b"]])[:-1]]), 9)
    with pytest.raises(ValueError, match="not"):
        engine.restore(iter([msgpack.packb([[b"a", 3]])]), 9)
    assert (engine.get(b"keep"), engine.count(), engine.applied_index()) == (b"me", 1, 2)


def test_the_map_grows_when_full(tmp_path: Path) -> None:
    engine = LmdbEngine(tmp_path / "kv", map_bytes=64 * 1024)
    start = engine.map_bytes
    value = b"v" * 4000
    for batch in range(1, 41):
        engine.apply_batch([(b"k%d-%d" % (batch, i), value) for i in range(10)], batch)
    assert engine.map_bytes > start
    assert engine.count() == 400 and engine.applied_index() == 40
    # a restore that does not fit grows the map too, and is still atomic
    big = LmdbEngine(tmp_path / "big", map_bytes=64 * 1024)
    big.restore(engine.snapshot_chunks()[1], 40)
    assert big.count() == 400 and big.get(b"k40-9") == value
    engine.close()
    big.close()


def test_use_after_close_is_an_error(tmp_path: Path) -> None:
    engine = LmdbEngine(tmp_path / "kv")
    _, chunks = engine.snapshot_chunks()
    engine.close()
    with pytest.raises(EngineClosedError):
        engine.get(b"a")
    del chunks  # releasing a reader after close must not crash
    with pytest.raises(ValueError, match="map_bytes"):
        LmdbEngine(tmp_path / "other", map_bytes=0)
