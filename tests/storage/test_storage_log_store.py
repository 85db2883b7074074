"""The RaftLogStore facade: initial state, durable saves, reads, snapshots and compaction (and
the runtime's engine snapshots on top of it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kvorum.core.raft.messages import ConfState, Entry, HardState, SnapshotMeta
from kvorum.kv.engine import Engine
from kvorum.kv.key_order import FULL_SPAN
from kvorum.kv.memory_engine import MemoryEngine
from kvorum.runtime.engine_snapshots import EngineSnapshotter, restore_engine_if_behind
from kvorum.storage import (
    CompactedError,
    LmdbKeyspace,
    RaftLogStore,
    StorageCorruptionError,
    open_store,
)

CONF = ConfState(voters=frozenset({1, 2, 3}))
SMALL: dict[str, Any] = {"segment_bytes": 1024, "block_bytes": 200}


def entry(index: int, term: int = 1) -> Entry:
    return Entry(term=term, index=index, data=b"cmd-%d" % index)


def fill(store: RaftLogStore, engine: Engine, lo: int, hi: int) -> None:
    """Append and apply entries lo..hi-1, one save per entry, as a node would."""
    for i in range(lo, hi):
        store.save(HardState(term=1, vote=1, commit=i), [entry(i)])
        engine.apply_batch([(b"key%03d" % i, b"value%d" % i)], i)


def test_fresh_store_starts_empty(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    init = store.initial
    assert (init.hard_state, init.snapshot, init.last_index, init.entries) == (
        HardState(),
        None,
        0,
        (),
    )
    assert store.first_index == 1 and store.term(0) == 0


def test_save_is_one_fdatasync_and_survives_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path)
    calls: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    store.save(HardState(term=3, vote=2, commit=1), [entry(1, 3), entry(2, 3)])
    assert len(calls) == 1
    store.close()
    init = open_store(tmp_path).initial
    assert init.hard_state == HardState(term=3, vote=2, commit=1)
    assert init.entries == (entry(1, 3), entry(2, 3))
    assert (init.last_index, init.last_term) == (2, 3)


def test_entries_and_terms_read_back_from_disk(tmp_path: Path) -> None:
    store = open_store(tmp_path, **SMALL)
    fill(store, MemoryEngine(), 1, 50)
    store.save(None, [entry(30, 2), entry(31, 2)])  # truncates 30.. and rewrites
    assert store.last_index == 31
    assert store.entries(28, 32) == [entry(28), entry(29), entry(30, 2), entry(31, 2)]
    assert store.term(31) == 2 and store.term(12) == 1
    with pytest.raises(ValueError, match="last_index"):
        store.entries(1, 40)


def test_compaction_after_a_background_snapshot(tmp_path: Path) -> None:
    store = open_store(tmp_path / "raft", **SMALL)
    keyspace = LmdbKeyspace(tmp_path / "kv")
    engine = keyspace.open_group(0, FULL_SPAN)
    fill(store, engine, 1, 80)
    segments_before = len(list((tmp_path / "raft" / "wal").glob("*.wal")))
    snapshotter = EngineSnapshotter()
    future = snapshotter.start(store, engine, CONF)
    fill(store, engine, 80, 90)  # appends and applies go on while the snapshot is written
    snap = future.result(timeout=30)
    assert snap == SnapshotMeta(index=79, term=1, conf=CONF)
    assert store.compact(snap)
    assert not store.compact(snap)  # already adopted
    segments_after = len(list((tmp_path / "raft" / "wal").glob("*.wal")))
    assert segments_after < segments_before
    assert store.first_index == 80
    with pytest.raises(CompactedError):
        store.entries(79, 80)
    assert store.term(79) == 1
    assert store.entries(80, 90) == [entry(i) for i in range(80, 90)]
    store.close()
    init = open_store(tmp_path / "raft", **SMALL).initial
    assert init.snapshot == snap
    assert init.entries == tuple(entry(i) for i in range(80, 90))
    restored = MemoryEngine()
    reopened = open_store(tmp_path / "raft", **SMALL)
    assert restore_engine_if_behind(reopened, restored)
    assert restored.applied_index() == 79 and restored.count() == 79
    assert restored.get(b"key050") == b"value50" and restored.get(b"key085") is None
    assert not restore_engine_if_behind(reopened, engine)  # LMDB is ahead: nothing to do
    snapshotter.close()
    keyspace.close()


def test_a_snapshot_the_wal_never_heard_of_is_adopted_on_open(tmp_path: Path) -> None:
    store = open_store(tmp_path, **SMALL)
    engine = MemoryEngine()
    fill(store, engine, 1, 40)
    applied, chunks = engine.snapshot_chunks()
    snap = SnapshotMeta(index=applied, term=1, conf=CONF)
    store.write_snapshot(snap, chunks)  # ... and the node crashes before compact()
    store.close()
    reopened = open_store(tmp_path, **SMALL)
    assert reopened.initial.snapshot == snap
    assert reopened.initial.last_index == 39 and reopened.initial.entries == ()
    assert reopened.first_index == 40


def test_install_snapshot_keeps_a_matching_log_suffix(tmp_path: Path) -> None:
    store = open_store(tmp_path, **SMALL)
    fill(store, MemoryEngine(), 1, 30)
    kept = store.install_snapshot(SnapshotMeta(20, 1, CONF), iter([b"state"]))
    assert kept
    assert store.entries(21, 30) == [entry(i) for i in range(21, 30)]


def test_install_snapshot_discards_a_conflicting_log(tmp_path: Path) -> None:
    store = open_store(tmp_path, **SMALL)
    fill(store, MemoryEngine(), 1, 30)
    kept = store.install_snapshot(SnapshotMeta(100, 5, CONF), iter([b"state"]))
    assert not kept
    assert (store.last_index, store.last_term, store.first_index) == (100, 5, 101)
    store.save(HardState(term=5, commit=100), [entry(101, 5)])
    store.close()
    init = open_store(tmp_path, **SMALL).initial
    assert init.snapshot == SnapshotMeta(100, 5, CONF)
    assert init.entries == (entry(101, 5),)
    assert list((tmp_path / "snapshots" / f"{0:020d}").glob("*.snap"))


def test_missing_snapshot_file_is_corruption(tmp_path: Path) -> None:
    store = open_store(tmp_path, **SMALL)
    fill(store, MemoryEngine(), 1, 10)
    store.install_snapshot(SnapshotMeta(5, 1, CONF), iter([b"state"]))
    store.close()
    for snap in (tmp_path / "snapshots").glob("*/*.snap"):
        snap.unlink()
    with pytest.raises(StorageCorruptionError, match="no snapshot"):
        open_store(tmp_path, **SMALL)


def test_bad_calls_are_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path, **SMALL)
    fill(store, MemoryEngine(), 1, 10)
    store.install_snapshot(SnapshotMeta(5, 1, CONF), iter([b"state"]))
    with pytest.raises(ValueError, match="inside the snapshot"):
        store.save(None, [entry(3)])
    with pytest.raises(ValueError, match="not newer"):
        store.install_snapshot(SnapshotMeta(4, 1, CONF), iter([]))
    with pytest.raises(ValueError, match="no durable file"):
        store.compact(SnapshotMeta(8, 1, CONF))
    with pytest.raises(ValueError, match="applied nothing"):
        EngineSnapshotter().start(open_store(tmp_path / "other"), MemoryEngine(), CONF)
