"""Snapshot files: streamed round trips, checksums, atomic publication, keeping the newest two."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvorum.core.raft.messages import ConfState, SnapshotMeta
from kvorum.storage.snapshots import SnapshotCorruptionError, SnapshotStore

CONF = ConfState(voters=frozenset({1, 2, 3}), learners=frozenset({4}), auto_promote=frozenset({4}))


def meta(index: int, term: int = 1) -> SnapshotMeta:
    return SnapshotMeta(index=index, term=term, conf=CONF)


CHUNKS = [b"first chunk", b"", b"x" * 70_000, b"last"]


def test_round_trip_keeps_chunks_and_metadata(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(meta(10, 2), iter(CHUNKS))
    path = store.path_for(meta(10, 2))
    assert path.name == "00000000000000000010-00000000000000000002.snap"
    assert store.latest() == meta(10, 2)
    assert list(store.read_chunks(meta(10, 2))) == CHUNKS
    assert SnapshotStore(tmp_path).latest() == meta(10, 2)


def test_an_empty_snapshot_round_trips(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(meta(3), iter([]))
    assert store.latest() == meta(3)
    assert list(store.read_chunks(meta(3))) == []


def test_only_the_newest_two_are_kept(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    for index in (5, 10, 15, 20):
        store.write(meta(index), iter([b"s%d" % index]))
    assert [p.name[:20] for p in store.files()] == [f"{15:020d}", f"{20:020d}"]


def test_no_store_is_empty(tmp_path: Path) -> None:
    assert SnapshotStore(tmp_path).latest() is None


def test_a_crash_mid_write_leaves_only_an_ignored_temp_file(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(meta(5), iter([b"good"]))

    def dying() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        store.write(meta(9), dying())
    assert store.latest() == meta(5)
    # a temp file left by a real crash (no chance to clean up) is ignored and then removed
    leftover = tmp_path / "00000000000000000009-00000000000000000001.snap.tmp"
    leftover.write_bytes(b"KVSNAP01partial")
    reopened = SnapshotStore(tmp_path)
    assert reopened.latest() == meta(5)
    assert not leftover.exists()


@pytest.mark.parametrize("where", ["data", "footer", "tail"])
def test_a_damaged_latest_snapshot_is_an_error_naming_it(tmp_path: Path, where: str) -> None:
    store = SnapshotStore(tmp_path)
    store.write(meta(5), iter([b"older"]))
    store.write(meta(10), iter(CHUNKS))
    path = store.path_for(meta(10))
    data = bytearray(path.read_bytes())
    offset = {"data": 5000, "footer": len(data) - 20, "tail": len(data) - 1}[where]
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotCorruptionError) as caught:
        store.latest()
    assert caught.value.path == path and str(path) in str(caught.value)


def test_reading_a_damaged_snapshot_fails_at_the_end_of_the_stream(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(meta(10), iter(CHUNKS))
    path = store.path_for(meta(10))
    data = bytearray(path.read_bytes())
    data[20] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotCorruptionError, match="CRC"):
        list(store.read_chunks(meta(10)))


def test_a_truncated_snapshot_is_an_error(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(meta(10), iter(CHUNKS))
    path = store.path_for(meta(10))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(SnapshotCorruptionError, match=str(path)):
        store.latest()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep"):
        SnapshotStore(tmp_path, keep=0)
    with pytest.raises(ValueError, match=">= 0"):
        SnapshotStore(tmp_path).write(meta(-1), iter([]))


def test_file_data_reads_any_slice_of_the_concatenated_chunks(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(meta(10, 2), iter(CHUNKS))
    data = store.data(meta(10, 2))
    whole = b"".join(CHUNKS)
    assert len(data) == len(whole)
    boundaries = [0, 1, 10, 11, 12, 5000, 70_010, 70_011, 70_012, len(whole) - 1, len(whole)]
    for start in boundaries:
        for stop in boundaries:
            assert data[start:stop] == whole[start:stop], (start, stop)
    assert data[70_000 : 70_000 + 256 * 1024] == whole[70_000:]  # past the end: clipped
    with pytest.raises(ValueError, match="plain slices"):
        data[0:10:2]


def test_file_data_of_a_damaged_snapshot_is_refused_when_checked(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(meta(10, 2), iter(CHUNKS))
    path = store.path_for(meta(10, 2))
    raw = bytearray(path.read_bytes())
    raw[40] ^= 0xFF  # inside the first big chunk
    path.write_bytes(bytes(raw))
    with pytest.raises(SnapshotCorruptionError):
        store.data(meta(10, 2), verified=False)


def test_spooled_chunks_read_back_and_are_cleared(tmp_path: Path) -> None:
    from kvorum.storage.snapshots import SnapshotSpool

    spool = SnapshotSpool(tmp_path / "incoming")
    first = spool.store(meta(10, 2), 0, b"hello ")
    second = spool.store(meta(10, 2), 6, b"world")
    again = spool.store(meta(10, 2), 0, b"hello ")  # a chunk sent twice lands on itself
    assert first[0:6] == again[0:6] == b"hello " and second[1:4] == b"orl"
    assert len(second) == 5 and second[0:100] == b"world"
    newer = spool.store(meta(20, 2), 0, b"x")
    spool.clear(through_index=10)
    assert not spool.path_for(meta(10, 2)).exists() and spool.path_for(meta(20, 2)).exists()
    assert newer[0:1] == b"x"
    SnapshotSpool(tmp_path / "incoming")  # a restart clears what a crash left
    assert not spool.path_for(meta(20, 2)).exists()
