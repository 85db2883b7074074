"""A follower receiving a snapshot whose chunks its host stored (``step_stored_snapshot_chunk``)
keeps views of them, not the bytes, and hands the host a snapshot that reads the same."""

from __future__ import annotations

from random import Random

import pytest

from kvorum.core.raft import ConfState, HardState, RaftConfig, RaftCore
from kvorum.core.raft.messages import (
    InstallSnapshot,
    InstallSnapshotResponse,
    JoinedSnapshotData,
    SnapshotMeta,
)

META = SnapshotMeta(index=50, term=2, conf=ConfState(frozenset({1, 2, 3})))
DATA = bytes(range(256)) * 40  # 10,240 bytes


class StoredPiece:
    """A chunk kept by the host (a file, in the real runtime); counts the reads."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.reads = 0

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, part: slice, /) -> bytes:
        self.reads += 1
        return self._data[part]


def follower() -> RaftCore:
    config = RaftConfig(pre_vote=False, check_quorum=False)
    return RaftCore(2, ConfState(frozenset({1, 2, 3})), config, Random(2),
                    hard_state=HardState(2, 1, 0))


def test_stored_chunks_make_a_snapshot_that_reads_the_same_bytes() -> None:
    core = follower()
    pieces = []
    for offset in range(0, len(DATA), 4096):
        chunk = DATA[offset : offset + 4096]
        piece = StoredPiece(chunk)
        pieces.append(piece)
        done = offset + len(chunk) == len(DATA)
        core.step_stored_snapshot_chunk(
            InstallSnapshot(1, 2, 2, META, offset, chunk, done), piece
        )
        rd = core.ready()
        core.advance(rd)
        if not done:
            (ack,) = [m for m in rd.all_messages if isinstance(m, InstallSnapshotResponse)]
            assert ack.next_offset == offset + len(chunk)
    assert rd.snapshot is not None and rd.snapshot.meta == META
    data = rd.snapshot.data
    assert isinstance(data, JoinedSnapshotData)  # views of the pieces, not a copy
    assert sum(p.reads for p in pieces) == 0
    assert len(data) == len(DATA) and data[0 : len(DATA)] == DATA
    assert data[4000:4200] == DATA[4000:4200]  # across a chunk boundary
    assert rd.snapshot.data_bytes() == DATA


def test_a_stored_chunk_must_hold_the_message_bytes() -> None:
    core = follower()
    with pytest.raises(ValueError, match="stored chunk holds"):
        core.step_stored_snapshot_chunk(
            InstallSnapshot(1, 2, 2, META, 0, b"abc", True), StoredPiece(b"ab")
        )
