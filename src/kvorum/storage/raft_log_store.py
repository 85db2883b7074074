"""One Raft group's durable storage behind the single-group API the runtime uses today.

Theory of operation: a thin facade over :class:`~kvorum.storage.node_log.DurableNodeLog`
holding just group 0 and that group's :class:`~kvorum.storage.snapshots.SnapshotStore`, for
the runtime that still drives one group per process. :func:`open_store` opens the node log
in ``directory`` (``wal/`` and ``snapshots/<group>/``) and hands back the group's
:class:`InitialState`. :meth:`RaftLogStore.save` stages a Ready's hard state and entries and
syncs them — one write and one ``fdatasync`` — before the node sends anything that depends on
them. Entries are read back from disk with :meth:`RaftLogStore.entries`.

Snapshots: :meth:`RaftLogStore.write_snapshot` makes a snapshot file durable (it may run on a
worker thread while the node keeps appending), then :meth:`RaftLogStore.compact` records it
in the WAL, after which the segments it covers are deleted. The order — snapshot file
durable, then marker, then deletion — means a crash at any point leaves either the old state
or the new one; on open a snapshot newer than the WAL's marker (crash before the marker) is
adopted then. What the state machine does with snapshots (taking one from the engine,
restoring the engine from one) is not storage's business: see
:mod:`kvorum.runtime.engine_snapshots`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kvorum.core.raft.messages import Entry, HardState, SnapshotMeta
from kvorum.storage.fs import OS_FILE_SYSTEM, FileSystem
from kvorum.storage.node_log import (
    CompactedError,
    DurableGroupLog,
    DurableNodeLog,
    StorageCorruptionError,
)
from kvorum.storage.snapshots import DEFAULT_KEEP, SnapshotFileData
from kvorum.storage.wal import DEFAULT_BLOCK_BYTES, DEFAULT_SEGMENT_BYTES, TornTail

__all__ = [
    "CompactedError",
    "InitialState",
    "RaftLogStore",
    "StorageCorruptionError",
    "open_store",
]

GROUP = 0
"""The one group this facade stores."""


@dataclass(frozen=True, slots=True)
class InitialState:
    """What a node starts from after :func:`open_store`."""

    hard_state: HardState
    snapshot: SnapshotMeta | None
    """The latest snapshot (verified), or None."""
    last_index: int
    last_term: int
    entries: tuple[Entry, ...]
    """The log after the snapshot, ``snapshot.index + 1 .. last_index`` (its length is
    bounded by how often the node snapshots)."""
    torn_tail: TornTail | None
    """A half-written WAL tail cut off during recovery, if there was one."""


class RaftLogStore:
    """A node's durable Raft state for one group: hard state, log entries and snapshots.

    All methods are for the node's own thread, except :meth:`write_snapshot`, which may run
    on a worker thread.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        keep_snapshots: int = DEFAULT_KEEP,
        fs: FileSystem = OS_FILE_SYSTEM,
    ) -> None:
        """Open (or create) the store under ``directory`` and recover it; see
        :func:`open_store`."""
        self._node = DurableNodeLog(
            Path(directory),
            fs=fs,
            segment_bytes=segment_bytes,
            block_bytes=block_bytes,
            keep_snapshots=keep_snapshots,
        )
        if GROUP not in self._node.group_ids():
            self._node.create_group(GROUP)
            self._node.sync()
        self._log: DurableGroupLog = self._node.group(GROUP)
        self._snapshots = self._node.snapshot_store(GROUP)
        self._snapshot = self._node.verified_snapshots.get(GROUP)
        log = self._log
        self.initial = InitialState(
            hard_state=log.hard_state,
            snapshot=self._snapshot,
            last_index=log.last_index,
            last_term=log.last_term,
            entries=tuple(log.entries(log.first_index, log.last_index + 1)),
            torn_tail=self._node.recovery.torn_tail,
        )

    @property
    def node_log(self) -> DurableNodeLog:
        return self._node

    # --- state -------------------------------------------------------------------------

    @property
    def hard_state(self) -> HardState:
        return self._log.hard_state

    @property
    def snapshot_meta(self) -> SnapshotMeta | None:
        return self._snapshot

    @property
    def first_index(self) -> int:
        """The first index :meth:`entries` can return (just after the snapshot)."""
        return self._log.first_index

    @property
    def last_index(self) -> int:
        return self._log.last_index

    @property
    def last_term(self) -> int:
        return self._log.last_term

    # --- the log -----------------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        """Durably append ``entries`` (an entry at index i first truncates the log at i) and
        then record ``hard_state``, with one ``fdatasync``. Returns only when both would
        survive a crash, so the caller may then send the messages that depend on them."""
        if entries and entries[0].index < self.first_index:
            raise ValueError(
                f"entry {entries[0].index} is inside the snapshot (first index is "
                f"{self.first_index}); install a snapshot instead"
            )
        self._log.stage(hard_state, entries)
        self._node.sync()

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """Entries ``lo <= index < hi`` read from disk. Raises CompactedError if ``lo`` is
        inside the snapshot, ValueError unless ``lo <= hi <= last_index + 1``."""
        return self._log.entries(lo, hi)

    def term(self, index: int) -> int:
        """The term of the entry at ``index`` (the snapshot's term at its index; 0 at 0)."""
        return self._log.term(index)

    # --- snapshots ---------------------------------------------------------------------

    def write_snapshot(self, meta: SnapshotMeta, chunks: Iterable[bytes]) -> Path:
        """Stream a snapshot file and make it durable (safe to call from a worker thread).

        This does not compact; call :meth:`compact` with ``meta`` on the node's thread."""
        self._snapshots.write(meta, chunks)
        return self._snapshots.path_for(meta)

    def compact(self, meta: SnapshotMeta) -> bool:
        """Adopt the durable snapshot ``meta`` (of this node's own state machine): record it
        in the WAL and delete the segments it covers. Returns False (and does nothing) if a
        snapshot at or beyond ``meta.index`` is already adopted."""
        if self._snapshot is not None and meta.index <= self._snapshot.index:
            return False
        if not self._snapshots.has(meta):
            raise ValueError(f"snapshot {meta.index}/{meta.term} has no durable file yet")
        if meta.index > self.last_index or self.term(meta.index) != meta.term:
            raise ValueError(
                f"snapshot {meta.index}/{meta.term} is not part of this log; "
                "use install_snapshot for a leader's snapshot"
            )
        self._log.stage_snapshot(meta)
        self._node.sync()
        self._snapshot = meta
        return True

    def install_snapshot(self, meta: SnapshotMeta, chunks: Iterable[bytes]) -> bool:
        """Store a snapshot received from the leader and adopt it. If the log holds the
        snapshot's last entry (same index and term) the entries after it are kept, otherwise
        the whole log is discarded (Raft's InstallSnapshot rule). Returns whether the log
        suffix was kept. The node then restores its engine from :meth:`snapshot_chunks`."""
        if self._snapshot is not None and meta.index <= self._snapshot.index:
            raise ValueError(
                f"snapshot {meta.index} is not newer than the current one "
                f"({self._snapshot.index})"
            )
        self._snapshots.write(meta, chunks)
        kept = self._log.stage_snapshot(meta)
        self._node.sync()
        self._snapshot = meta
        return kept

    def snapshot_chunks(self, meta: SnapshotMeta | None = None) -> Iterator[bytes]:
        """Stream a snapshot's chunks (the latest by default), checksum verified as it ends."""
        meta = meta or self._snapshot
        if meta is None:
            raise LookupError("there is no snapshot")
        return self._snapshots.chunks(meta)

    def snapshot_data(
        self, meta: SnapshotMeta | None = None, *, verified: bool = False
    ) -> SnapshotFileData:
        """A snapshot's data (the latest by default), read from its file on demand; see
        :meth:`SnapshotStore.data` for ``verified``."""
        meta = meta or self._snapshot
        if meta is None:
            raise LookupError("there is no snapshot")
        return self._snapshots.data(meta, verified=verified)

    def close(self) -> None:
        """Release the files."""
        self._node.close()


def open_store(
    directory: Path,
    *,
    segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    keep_snapshots: int = DEFAULT_KEEP,
    fs: FileSystem = OS_FILE_SYSTEM,
) -> RaftLogStore:
    """Open a node's storage in ``directory`` (created if missing), repairing a torn WAL tail.

    The node's starting point is the returned store's ``initial``. Raises
    :class:`~kvorum.storage.wal.WALCorruptionError`,
    :class:`~kvorum.storage.wal.WALFormatError`,
    :class:`~kvorum.storage.snapshots.SnapshotCorruptionError` or
    :class:`StorageCorruptionError` when acknowledged data is damaged or unreadable.
    """
    return RaftLogStore(
        directory,
        segment_bytes=segment_bytes,
        block_bytes=block_bytes,
        keep_snapshots=keep_snapshots,
        fs=fs,
    )
