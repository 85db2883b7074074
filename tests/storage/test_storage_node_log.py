"""The durable node log on open: each group's snapshots are reconciled with its WAL marker.

A snapshot becomes durable before the WAL records it, so a crash in between leaves a snapshot
the WAL never heard of: adopted on open. A marker with no snapshot file behind it means
acknowledged data is gone: refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kvorum.core.raft.messages import ConfState, Entry, HardState, SnapshotMeta
from kvorum.storage.node_log import DurableNodeLog, StorageCorruptionError

CONF = ConfState(voters=frozenset({1, 2, 3}))
SMALL: dict[str, Any] = {"segment_bytes": 1024, "block_bytes": 200}


def entry(index: int, term: int = 1) -> Entry:
    return Entry(term=term, index=index, data=b"cmd-%d" % index)


def filled(path: Path, groups: int = 2, last: int = 39) -> DurableNodeLog:
    log = DurableNodeLog(path, **SMALL)
    for g in range(groups):
        group = log.create_group(g)
        for i in range(1, last + 1):
            group.stage(HardState(term=1, vote=1, commit=i), [entry(i)])
            log.sync()
    return log


def test_a_snapshot_the_wal_never_heard_of_is_adopted_on_open(tmp_path: Path) -> None:
    log = filled(tmp_path)
    snap = SnapshotMeta(index=39, term=1, conf=CONF)
    log.snapshot_store(1).write(snap, iter([b"state"]))  # ... and the node crashes here
    log.close()
    reopened = DurableNodeLog(tmp_path, **SMALL)
    assert reopened.group(1).first_index == 40 and reopened.group(1).last_index == 39
    assert reopened.group(0).first_index == 1  # the other group is untouched
    assert reopened.snapshot_store(1).latest() == snap


def test_a_marker_without_its_snapshot_file_is_corruption(tmp_path: Path) -> None:
    log = filled(tmp_path)
    meta = SnapshotMeta(5, 1, CONF)
    log.snapshot_store(0).write(meta, iter([b"state"]))
    log.group(0).stage_snapshot(meta)
    log.sync()
    log.close()
    for snap in (tmp_path / "snapshots").glob("*/*.snap"):
        snap.unlink()
    with pytest.raises(StorageCorruptionError, match="no snapshot"):
        DurableNodeLog(tmp_path, **SMALL)
