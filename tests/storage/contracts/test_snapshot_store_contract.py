"""The SnapshotStore contract (kvorum.storage.contracts), for every implementation: in memory,
files on a real temporary directory, and files on a simulated disk that crashes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvorum.core.raft.messages import ConfState, SnapshotMeta
from kvorum.sim.disk import SimFileSystem, SimulatedPowerCut
from kvorum.storage.contracts import SnapshotStore
from kvorum.storage.memory import MemorySnapshotStore
from kvorum.storage.snapshots import SnapshotStore as FileSnapshotStore

CONF = ConfState(voters=frozenset({1, 2, 3}), learners=frozenset({4}))


def meta(index: int, term: int = 1) -> SnapshotMeta:
    return SnapshotMeta(index=index, term=term, conf=CONF)


@pytest.fixture(params=["memory", "files-tmp", "files-sim"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SnapshotStore]:
    if request.param == "memory":
        yield MemorySnapshotStore()
    elif request.param == "files-tmp":
        yield FileSnapshotStore(tmp_path / "snapshots" / "7")
    else:
        fs = SimFileSystem(random.Random(3))
        yield FileSnapshotStore(Path("/node/snapshots/7"), fs=fs)


def test_an_empty_store_has_no_snapshot(store: SnapshotStore) -> None:
    assert store.latest() is None


def test_a_snapshot_reads_back_whole_by_chunk_and_by_slice(store: SnapshotStore) -> None:
    chunks = [b"alpha", b"", b"beta" * 1000, b"\x00\xff"]
    store.write(meta(10, 2), iter(chunks))
    assert store.latest() == meta(10, 2)
    assert list(store.chunks(meta(10, 2))) == chunks  # boundaries kept
    data = store.data(meta(10, 2))
    whole = b"".join(chunks)
    assert len(data) == len(whole)
    assert data[0 : len(whole)] == whole
    for start, stop in [(0, 3), (4, 9), (3, 4003), (len(whole) - 1, len(whole)), (7, 7)]:
        assert data[start:stop] == whole[start:stop]


def test_the_newest_wins_and_the_previous_stays_readable(store: SnapshotStore) -> None:
    store.write(meta(10), iter([b"old"]))
    store.write(meta(20), iter([b"new"]))
    assert store.latest() == meta(20)
    # a leader may still be streaming the previous one to a follower
    assert list(store.chunks(meta(10))) == [b"old"]
    store.write(meta(15), iter([b"late"]))  # an older one written late does not win
    assert store.latest() == meta(20)


def test_an_empty_snapshot_is_a_snapshot(store: SnapshotStore) -> None:
    store.write(meta(3), iter([]))
    assert store.latest() == meta(3)
    assert list(store.chunks(meta(3))) == [] and len(store.data(meta(3))) == 0


def test_a_write_whose_chunks_fail_publishes_nothing(store: SnapshotStore) -> None:
    store.write(meta(10), iter([b"good"]))

    def failing() -> Iterator[bytes]:
        yield b"half"
        raise RuntimeError("the engine's read transaction broke")

    with pytest.raises(RuntimeError):
        store.write(meta(20), failing())
    assert store.latest() == meta(10)


@pytest.mark.parametrize("seed", range(25))
def test_a_crash_during_write_leaves_the_previous_snapshot_latest(seed: int) -> None:
    fs = SimFileSystem(random.Random(seed))
    directory = Path("/node/snapshots/7")
    store = FileSnapshotStore(directory, fs=fs)
    store.write(meta(10), iter([b"first" * 300]))
    fs.crash_after_ops = random.Random(seed).randint(1, 12)
    finished = False
    try:
        store.write(meta(20), iter([b"second" * 300, b"more" * 200]))
        finished = True
    except SimulatedPowerCut:
        pass
    fs.crash()
    reopened = FileSnapshotStore(directory, fs=fs)
    latest = reopened.latest()
    # written whole or not at all; once write returned, it stays
    assert latest in ((meta(20),) if finished else (meta(10), meta(20)))
    assert latest is not None
    expected = [b"second" * 300, b"more" * 200] if latest == meta(20) else [b"first" * 300]
    assert list(reopened.chunks(latest)) == expected
    assert not any(n.endswith(".tmp") for n in fs.list_dir(directory))
