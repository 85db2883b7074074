"""The durable storage a Raft node uses: WAL + snapshot files behind one small facade.

Theory of operation. A node's directory holds ``wal/`` (:mod:`kvorum.storage.wal`) and
``snapshots/`` (:mod:`kvorum.storage.snapshots`). :func:`open_store` replays both and hands
back the node's :class:`InitialState`. While running, the node calls :meth:`RaftLogStore.save`
with each Ready's hard state and entries — one write and one ``fdatasync`` — and only then
sends the Ready's messages. Entries are read back from disk with
:meth:`RaftLogStore.entries`; the store keeps just the WAL's block index and the terms of
the few thousand newest entries (which every AppendEntries consults) in memory.

Snapshots, and why they never stall appends: :meth:`RaftLogStore.snapshot_in_background`
asks the engine for a point-in-time view *on the node's thread* (for LMDB: a read
transaction, which sees the store as of that instant while later write transactions go on),
then a worker thread streams that view into a snapshot file. The worker touches only the
snapshot directory; the node keeps appending to the WAL meanwhile. When the future completes
the node calls :meth:`RaftLogStore.compact`, which records a snapshot marker in the WAL and
deletes the segments the snapshot covers. The order — snapshot file durable, then marker,
then deletion — means a crash at any point leaves either the old state or the new one; on
open a snapshot newer than the WAL's marker (crash before the marker) is adopted then.

Recovery of the state machine is the node's: :meth:`RaftLogStore.restore_engine_if_behind`
restores the engine from the latest snapshot when the engine's applied index is older than
it (e.g. LMDB lost its last commits, or is new), after which the node re-applies entries
``applied_index + 1 .. commit`` from :meth:`entries`. Both the snapshot and those entries
are still on disk because compaction only ever deletes entries a durable snapshot holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kvorum.core.raft.messages import ConfState, Entry, HardState, SnapshotMeta
from kvorum.kv.engine import Engine
from kvorum.storage.snapshots import DEFAULT_KEEP, SnapshotFileData, SnapshotStore
from kvorum.storage.wal import (
    DEFAULT_BLOCK_BYTES,
    DEFAULT_SEGMENT_BYTES,
    WAL,
    SnapshotMarker,
    TornTail,
)

RECENT_TERMS = 4096
"""How many of the newest entries' terms stay in memory (for AppendEntries' prev term)."""


class CompactedError(LookupError):
    """The requested entries were folded into a snapshot and are no longer in the log."""


class StorageCorruptionError(Exception):
    """The WAL and the snapshot files disagree in a way no crash can explain."""


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
    """A node's durable Raft state: hard state, log entries and snapshots.

    All methods are for the node's own thread, except that the snapshot writing started by
    :meth:`snapshot_in_background` runs on a worker thread.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        keep_snapshots: int = DEFAULT_KEEP,
    ) -> None:
        """Open (or create) the store under ``directory`` and recover it; see
        :func:`open_store`."""
        self._dir = Path(directory)
        self._snapshots = SnapshotStore(self._dir / "snapshots", keep=keep_snapshots)
        self._snapshot = self._snapshots.latest()
        self._wal = WAL(self._dir / "wal", segment_bytes=segment_bytes, block_bytes=block_bytes)
        self._recent_terms: dict[int, int] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: Future[SnapshotMeta] | None = None
        self._reconcile()
        snap_index = self._snapshot.index if self._snapshot else 0
        after = self._wal.read_entries(snap_index + 1, self._wal.last_index + 1)
        for entry in after[-RECENT_TERMS:]:
            self._recent_terms[entry.index] = entry.term
        self.initial = InitialState(
            hard_state=self._wal.hard_state,
            snapshot=self._snapshot,
            last_index=self._wal.last_index,
            last_term=self._wal.last_term,
            entries=tuple(after),
            torn_tail=self._wal.recovery.torn_tail,
        )

    def _reconcile(self) -> None:
        snap, marker = self._snapshot, self._wal.marker
        if snap is None:
            if marker is not None:
                raise StorageCorruptionError(
                    f"the WAL records a snapshot at index {marker.index} but "
                    f"{self._snapshots.directory} holds no snapshot"
                )
            return
        if marker is None or snap.index > marker.index:
            # Crash between the snapshot becoming durable and the WAL hearing of it.
            self._record_snapshot(snap)
        elif snap.index < marker.index:
            raise StorageCorruptionError(
                f"the WAL records a snapshot at index {marker.index} but the newest file in "
                f"{self._snapshots.directory} is at index {snap.index}"
            )
        elif snap.term != marker.term:
            raise StorageCorruptionError(
                f"snapshot at index {snap.index} has term {snap.term}, the WAL says "
                f"{marker.term}"
            )

    # --- state -------------------------------------------------------------------------

    @property
    def hard_state(self) -> HardState:
        return self._wal.hard_state

    @property
    def snapshot_meta(self) -> SnapshotMeta | None:
        return self._snapshot

    @property
    def first_index(self) -> int:
        """The first index :meth:`entries` can return (just after the snapshot)."""
        return self._snapshot.index + 1 if self._snapshot else 1

    @property
    def last_index(self) -> int:
        return self._wal.last_index

    @property
    def last_term(self) -> int:
        return self._wal.last_term

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
        self._wal.append_and_sync(entries, hard_state)
        if entries:
            cut = entries[0].index
            # Keys are ascending (a cut only ever removes a suffix), so the entries being
            # replaced sit at the end: pop them there rather than scan all RECENT_TERMS keys.
            recent = self._recent_terms
            while recent and next(reversed(recent)) >= cut:
                recent.popitem()
            for entry in entries[-RECENT_TERMS:]:
                self._recent_terms[entry.index] = entry.term
            while len(self._recent_terms) > RECENT_TERMS:
                del self._recent_terms[next(iter(self._recent_terms))]

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """Entries ``lo <= index < hi`` read from disk. Raises CompactedError if ``lo`` is
        inside the snapshot, ValueError unless ``lo <= hi <= last_index + 1``."""
        if lo < self.first_index:
            raise CompactedError(f"entry {lo} is compacted (first index {self.first_index})")
        return self._wal.read_entries(lo, hi)

    def term(self, index: int) -> int:
        """The term of the entry at ``index`` (the snapshot's term at its index; 0 at 0)."""
        if index == 0:
            return 0
        if self._snapshot is not None and index == self._snapshot.index:
            return self._snapshot.term
        cached = self._recent_terms.get(index)
        if cached is not None:
            return cached
        return self.entries(index, index + 1)[0].term

    # --- snapshots ---------------------------------------------------------------------

    def write_snapshot(self, meta: SnapshotMeta, chunks: Iterable[bytes]) -> Path:
        """Stream a snapshot file and make it durable (safe to call from a worker thread).

        This does not compact; call :meth:`compact` with ``meta`` on the node's thread."""
        return self._snapshots.write(meta, chunks)

    def snapshot_in_background(self, engine: Engine, conf: ConfState) -> Future[SnapshotMeta]:
        """Snapshot ``engine`` without stalling appends; the future yields the durable
        snapshot's metadata, to pass to :meth:`compact`.

        ``conf`` must be the configuration as of the engine's applied index. The point-in-time
        view is taken here, on the caller's thread; only the streaming runs on the worker.
        """
        if self._in_flight is not None and not self._in_flight.done():
            raise RuntimeError("a snapshot is already being written")
        applied_index, chunks = engine.snapshot_chunks()
        current = self._snapshot
        if current is not None and applied_index <= current.index:
            # Nothing new since the last snapshot: report it rather than write a stale one.
            done: Future[SnapshotMeta] = Future()
            done.set_result(current)
            return done
        if applied_index == 0:
            raise ValueError("the engine has applied nothing yet; there is nothing to snapshot")
        if applied_index > self.last_index:
            raise ValueError(
                f"engine applied {applied_index}, beyond the log's last index {self.last_index}"
            )
        meta = SnapshotMeta(index=applied_index, term=self.term(applied_index), conf=conf)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="kvorum-snapshot")

        def write() -> SnapshotMeta:
            self._snapshots.write(meta, chunks)
            return meta

        self._in_flight = self._executor.submit(write)
        return self._in_flight

    def compact(self, meta: SnapshotMeta) -> bool:
        """Adopt the durable snapshot ``meta`` (of this node's own state machine): record it
        in the WAL and delete the segments it covers. Returns False (and does nothing) if a
        snapshot at or beyond ``meta.index`` is already adopted."""
        if self._snapshot is not None and meta.index <= self._snapshot.index:
            return False
        if not self._snapshots.path_for(meta).exists():
            raise ValueError(f"snapshot {meta.index}/{meta.term} has no durable file yet")
        if meta.index > self.last_index or self.term(meta.index) != meta.term:
            raise ValueError(
                f"snapshot {meta.index}/{meta.term} is not part of this log; "
                "use install_snapshot for a leader's snapshot"
            )
        self._record_snapshot(meta)
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
        return self._record_snapshot(meta)

    def _record_snapshot(self, meta: SnapshotMeta) -> bool:
        keep_log = self._term_in_log(meta.index) == meta.term
        marker = SnapshotMarker(meta.index, meta.term, discard_log=not keep_log)
        self._wal.append_and_sync(marker=marker)
        self._snapshot = meta
        if not keep_log:
            self._recent_terms.clear()
        self._wal.delete_segments_through(meta.index)
        return keep_log

    def _term_in_log(self, index: int) -> int | None:
        if index == 0:
            return 0
        marker = self._wal.marker
        if marker is not None and index == marker.index:
            return marker.term
        if index < 1 or index > self._wal.last_index:
            return None
        try:
            return self._wal.read_entries(index, index + 1)[0].term
        except LookupError:
            return None

    def snapshot_chunks(self, meta: SnapshotMeta | None = None) -> Iterator[bytes]:
        """Stream a snapshot's chunks (the latest by default), checksum verified as it ends."""
        meta = meta or self._snapshot
        if meta is None:
            raise LookupError("there is no snapshot")
        return self._snapshots.read_chunks(meta)

    def snapshot_data(
        self, meta: SnapshotMeta | None = None, *, verified: bool = False
    ) -> SnapshotFileData:
        """A snapshot's data (the latest by default), read from its file on demand; see
        :meth:`SnapshotStore.data` for ``verified``."""
        meta = meta or self._snapshot
        if meta is None:
            raise LookupError("there is no snapshot")
        return self._snapshots.data(meta, verified=verified)

    def restore_engine_if_behind(self, engine: Engine) -> bool:
        """Restore ``engine`` from the latest snapshot if it has applied less than the
        snapshot holds; returns whether it did. The node then re-applies entries from
        ``engine.applied_index() + 1``."""
        snap = self._snapshot
        if snap is None or engine.applied_index() >= snap.index:
            return False
        engine.restore(self.snapshot_chunks(snap), snap.index)
        return True

    def close(self) -> None:
        """Wait for a background snapshot, then release the files."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._wal.close()


def open_store(
    directory: Path,
    *,
    segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    keep_snapshots: int = DEFAULT_KEEP,
) -> RaftLogStore:
    """Open a node's storage in ``directory`` (created if missing), repairing a torn WAL tail.

    The node's starting point is the returned store's ``initial``. Raises
    :class:`~kvorum.storage.wal.WALCorruptionError`,
    :class:`~kvorum.storage.snapshots.SnapshotCorruptionError` or
    :class:`StorageCorruptionError` when acknowledged data is damaged.
    """
    return RaftLogStore(
        directory,
        segment_bytes=segment_bytes,
        block_bytes=block_bytes,
        keep_snapshots=keep_snapshots,
    )

