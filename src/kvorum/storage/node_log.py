"""The durable NodeLog: every group's log staged in memory, made durable together in the WAL.

Theory of operation: a node's directory holds ``wal/`` (:mod:`kvorum.storage.wal`, shared by
all groups) and ``snapshots/<group id>/`` (:mod:`kvorum.storage.snapshots`, one store per
group). :class:`DurableGroupLog` keeps what its group staged since the last sync as an
overlay on the WAL's durable state: the entries from the lowest index the staging touched
(``dirty_from``) to the end, and the latest hard state and snapshot marker. Reads see the
overlay first, then the WAL. :meth:`DurableNodeLog.sync` turns every dirty group's overlay
into one :class:`~kvorum.storage.wal.GroupWrite` — marker, then the entries from
``dirty_from``, then the hard state — writes them as one batch with one ``fdatasync``, and
only then drops the overlays. Replaying those records onto the durable log gives exactly the
staged view (an entry at i replaces everything from i; a marker that leaves no entry behind
discards the log), so however many times a group staged, one run of records per group per
sync is enough. If the disk is full the overlays stay and the next sync writes them again.

On open each group's newest snapshot is checked against the WAL's marker for it: a snapshot
the WAL never heard of (a crash between the snapshot becoming durable and the sync that
recorded it) is adopted then and there; a marker with no snapshot file, or a snapshot older
than the marker, means acknowledged data is gone (:class:`StorageCorruptionError`).

Repair from peers (``repair_from_peers=True``, for a node whose groups have peers): damage to
a synced WAL batch whose header still says what it held is quarantined rather than refused,
and each group that lost acknowledged entries opens cut back before them with a
:attr:`DurableGroupLog.repair_fence`, which its Raft core must respect (see
:mod:`kvorum.core.raft.repair`); the WAL lifts the fence once the group's durable log holds
what was lost again.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from kvorum.core.raft.messages import Entry, HardState, SnapshotMeta
from kvorum.core.raft.repair import RepairFence
from kvorum.core.shape import GroupId
from kvorum.storage.fs import OS_FILE_SYSTEM, FileSystem
from kvorum.storage.snapshots import DEFAULT_KEEP, SnapshotStore
from kvorum.storage.wal import (
    DEFAULT_BLOCK_BYTES,
    DEFAULT_SEGMENT_BYTES,
    WAL,
    GroupWrite,
    SnapshotMarker,
    WALRecovery,
)

LOW_SPACE_BYTES = 32 * 1024 * 1024
"""Free disk below which a node stops taking client writes (a few segments' zero-fill)."""


class CompactedError(LookupError):
    """The requested entries were folded into a snapshot and are no longer in the log."""


class StorageCorruptionError(Exception):
    """The WAL and the snapshot files disagree in a way no crash can explain."""


class DurableGroupLog:
    """One group's log inside a :class:`DurableNodeLog` (see
    :class:`kvorum.storage.contracts.GroupLog`)."""

    __slots__ = (
        "_dirty",
        "_dirty_from",
        "_discard",
        "_group_id",
        "_hard_state",
        "_hard_state_staged",
        "_last_index",
        "_last_term",
        "_marker_staged",
        "_new",
        "_pending",
        "_snapshot_index",
        "_snapshot_term",
        "_wal",
    )

    def __init__(self, wal: WAL, group_id: GroupId, dirty: set[GroupId], *, new: bool) -> None:
        self._wal = wal
        self._group_id = group_id
        self._dirty = dirty  # the node's groups with something staged; a stage adds this one
        self._new = new
        if new:
            dirty.add(group_id)
        if new:
            self._snapshot_index = self._snapshot_term = 0
            self._last_index = self._last_term = 0
            self._hard_state = HardState()
        else:
            durable = wal.group(group_id)
            self._snapshot_index = durable.snapshot_index
            self._snapshot_term = durable.snapshot_term
            self._last_index = durable.last_index
            self._last_term = durable.last_term
            self._hard_state = durable.hard_state
        # The lowest index the staged writes may have changed (None: no entry changed), and
        # the view's entries from there on.
        self._dirty_from: int | None = None
        self._pending: list[Entry] = []
        self._discard = False
        self._marker_staged = False
        self._hard_state_staged = False

    # --- reading -----------------------------------------------------------------------

    @property
    def group_id(self) -> GroupId:
        return self._group_id

    @property
    def first_index(self) -> int:
        return self._snapshot_index + 1

    @property
    def last_index(self) -> int:
        return self._last_index

    @property
    def last_term(self) -> int:
        return self._last_term

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def snapshot_index(self) -> int:
        return self._snapshot_index

    @property
    def repair_fence(self) -> RepairFence | None:
        """Set while this group's durable log lacks entries it had acknowledged before
        storage damage was repaired (see :mod:`kvorum.core.raft.repair`)."""
        return None if self._new else self._wal.repair_fence(self._group_id)

    def term(self, index: int) -> int:
        if index == 0:
            return 0
        if index == self._snapshot_index:
            return self._snapshot_term
        if index < self._snapshot_index:
            raise CompactedError(
                f"entry {index} is compacted (snapshot at {self._snapshot_index})"
            )
        if index > self._last_index:
            raise LookupError(f"entry {index} is past the last index {self._last_index}")
        if self._dirty_from is not None and index >= self._dirty_from:
            return self._pending[index - self._dirty_from].term
        term = self._wal.group(self._group_id).term(index)
        if term is None:
            raise LookupError(f"group {self._group_id}: no term known for entry {index}")
        return term

    def entries(self, lo: int, hi: int) -> list[Entry]:
        if lo < self.first_index:
            raise CompactedError(f"entry {lo} is compacted (first index is {self.first_index})")
        if not lo <= hi <= self._last_index + 1:
            raise ValueError(
                f"need first_index {self.first_index} <= lo <= hi <= last_index + 1 = "
                f"{self._last_index + 1}, "
                f"got lo={lo} hi={hi}"
            )
        split = hi if self._dirty_from is None else max(lo, min(hi, self._dirty_from))
        durable = self._wal.read_entries(self._group_id, lo, split) if lo < split else []
        if split < hi:
            assert self._dirty_from is not None
            durable.extend(self._pending[split - self._dirty_from : hi - self._dirty_from])
        return durable

    # --- staging -----------------------------------------------------------------------

    def stage(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        if entries:
            first = entries[0].index
            if first <= self._snapshot_index:
                raise ValueError(
                    f"entry {first} is inside the snapshot (first index is {self.first_index})"
                )
            if first > self._last_index + 1:
                raise ValueError(f"entry {first} leaves a gap after {self._last_index}")
            for before, after in itertools.pairwise(entries):
                if after.index != before.index + 1:
                    raise ValueError(
                        f"entries must be consecutive: {after.index} after {before.index}"
                    )
            if self._dirty_from is None or first < self._dirty_from:
                self._dirty_from = first
                self._pending = list(entries)
            else:
                del self._pending[first - self._dirty_from :]
                self._pending.extend(entries)
            self._last_index = entries[-1].index
            self._last_term = entries[-1].term
        if hard_state is not None:
            self._hard_state = hard_state
            self._hard_state_staged = True
        if entries or hard_state is not None:
            self._dirty.add(self._group_id)

    def stage_snapshot(self, meta: SnapshotMeta) -> bool:
        if meta.index < self._snapshot_index:
            raise ValueError(
                f"snapshot {meta.index} is older than the current one ({self._snapshot_index})"
            )
        keep = meta.index <= self._last_index and self.term(meta.index) == meta.term
        if keep:
            if self._dirty_from is not None and self._dirty_from <= meta.index:
                del self._pending[: meta.index + 1 - self._dirty_from]
                self._dirty_from = meta.index + 1
        else:
            self._dirty_from = meta.index + 1
            self._pending = []
            self._discard = True
            self._last_index, self._last_term = meta.index, meta.term
        self._snapshot_index, self._snapshot_term = meta.index, meta.term
        self._marker_staged = True
        self._dirty.add(self._group_id)
        return keep

    # --- for the node log ----------------------------------------------------------------

    def _staged_write(self) -> GroupWrite:
        marker = None
        if self._marker_staged:
            # A marker that leaves no staged entry after it must also drop whatever durable
            # entries the staging replaced: discard the log, which the view has emptied.
            discard = self._discard or (self._dirty_from is not None and not self._pending)
            marker = SnapshotMarker(self._snapshot_index, self._snapshot_term, discard)
        hard_state = self._hard_state if self._hard_state_staged else None
        if self._new and hard_state is None and marker is None and not self._pending:
            hard_state = self._hard_state  # a record that says the group exists
        return GroupWrite(self._group_id, marker, tuple(self._pending), hard_state)

    def _synced(self) -> None:
        self._new = False
        self._dirty_from = None
        self._pending = []
        self._discard = False
        self._marker_staged = False
        self._hard_state_staged = False


class DurableNodeLog:
    """Every group's log on one node, over one WAL (see :class:`kvorum.storage.contracts.NodeLog`),
    with each group's :class:`~kvorum.storage.snapshots.SnapshotStore`."""

    def __init__(
        self,
        directory: Path,
        *,
        fs: FileSystem = OS_FILE_SYSTEM,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        keep_snapshots: int = DEFAULT_KEEP,
        low_space_bytes: int = LOW_SPACE_BYTES,
        repair_from_peers: bool = False,
    ) -> None:
        """Open (or create) the node's storage in ``directory``: replay the WAL (repairing a
        torn tail, see :attr:`recovery`, and with ``repair_from_peers`` quarantining
        attributable damage, see the module docstring) and reconcile each group with its
        snapshots. ``low_space_bytes``: below this much free disk, :meth:`space_low` says so.

        Raises :class:`~kvorum.storage.wal.WALCorruptionError`,
        :class:`~kvorum.storage.wal.WALFormatError`,
        :class:`~kvorum.storage.snapshots.SnapshotCorruptionError` or
        :class:`StorageCorruptionError` when acknowledged data is damaged or unreadable.
        """
        self._dir = Path(directory)
        self._fs = fs
        self._keep_snapshots = keep_snapshots
        self._low_space_bytes = low_space_bytes
        self._wal = WAL(
            self._dir / "wal",
            fs=fs,
            segment_bytes=segment_bytes,
            block_bytes=block_bytes,
            repair=repair_from_peers,
        )
        self._dirty: set[GroupId] = set()
        self._groups = {
            g: DurableGroupLog(self._wal, g, self._dirty, new=False)
            for g in self._wal.group_ids()
        }
        self._stores: dict[GroupId, SnapshotStore] = {}
        self.verified_snapshots: dict[GroupId, SnapshotMeta] = {}
        """Each group's newest snapshot as checked end to end when the log opened."""
        self.syncs = 0
        """How many batches :meth:`sync` wrote (each one fdatasync)."""
        try:
            self._reconcile()
        except BaseException:
            self._wal.close()
            raise

    @property
    def recovery(self) -> WALRecovery:
        """What opening the WAL found (a torn tail that was cut, if any)."""
        return self._wal.recovery

    @property
    def wal(self) -> WAL:
        return self._wal

    def repair_fences(self) -> dict[GroupId, RepairFence]:
        """Every group still fetching entries that storage damage cost it."""
        return self._wal.repair_fences()

    def _reconcile(self) -> None:
        for g, log in self._groups.items():
            store = self.snapshot_store(g)
            snap = store.latest()
            if snap is not None:
                self.verified_snapshots[g] = snap
            marker = self._wal.group(g).marker
            if snap is None:
                if marker is not None:
                    raise StorageCorruptionError(
                        f"group {g}: the WAL records a snapshot at index {marker.index} but "
                        f"{store.directory} holds no snapshot"
                    )
            elif marker is None or snap.index > marker.index:
                # Crash between the snapshot becoming durable and the WAL hearing of it.
                log.stage_snapshot(snap)
            elif snap.index < marker.index:
                raise StorageCorruptionError(
                    f"group {g}: the WAL records a snapshot at index {marker.index} but the "
                    f"newest file in {store.directory} is at index {snap.index}"
                )
            elif snap.term != marker.term:
                raise StorageCorruptionError(
                    f"group {g}: snapshot at index {snap.index} has term {snap.term}, the WAL "
                    f"says {marker.term}"
                )
        self.sync()

    def group_ids(self) -> list[GroupId]:
        return sorted(self._groups)

    def group(self, group_id: GroupId) -> DurableGroupLog:
        return self._groups[group_id]

    def create_group(self, group_id: GroupId) -> DurableGroupLog:
        if group_id in self._groups:
            raise ValueError(f"group {group_id} already exists")
        log = DurableGroupLog(self._wal, group_id, self._dirty, new=True)
        self._groups[group_id] = log
        return log

    def snapshot_store(self, group_id: GroupId) -> SnapshotStore:
        """The snapshot store of ``group_id`` (its directory appears with the first write)."""
        store = self._stores.get(group_id)
        if store is None:
            store = SnapshotStore(
                self._dir / "snapshots" / f"{group_id:020d}",
                keep=self._keep_snapshots,
                fs=self._fs,
            )
            self._stores[group_id] = store
        return store

    def groups_pinning_oldest_segment(self) -> list[GroupId]:
        """The groups whose unsnapshotted entries keep the WAL's oldest segment on disk: a
        snapshot of each lets the log delete it (empty when there is nothing to delete)."""
        return self._wal.pinning_groups()

    def sync(self) -> None:
        staged = sorted(self._dirty)
        if not staged:
            self._dirty.clear()
            return
        self._wal.write_batch([self._groups[g]._staged_write() for g in staged])
        for g in staged:
            self._groups[g]._synced()
        self._dirty.clear()
        self.syncs += 1

    def space_low(self) -> bool:
        """Free disk below the low-space mark (one ``statvfs``). Raft's own writes fit in
        what is left and in the space already zero-filled ahead of the log; client writes
        should wait (see :mod:`kvorum.runtime.driver`)."""
        return self._fs.free_bytes(self._dir) < self._low_space_bytes

    def close(self) -> None:
        self._wal.close()
