"""A simulated node's storage: the real durable log on its simulated disk, or memory.

Theory of operation: a host reaches storage only through the contracts of
:mod:`kvorum.storage.contracts` (a :class:`~kvorum.storage.contracts.NodeLog` and a
:class:`~kvorum.storage.contracts.SnapshotStore` per group), so the simulator can hand it
either implementation. :class:`DurableNodeStorage` is the default and the point: a
:class:`~kvorum.storage.node_log.DurableNodeLog` — the real WAL, snapshot files, recovery —
over the node's :class:`~kvorum.sim.disk.SimFileSystem`. A crash is the disk's power cut
(unsynced writes lost or torn sector by sector) and a restart opens the log from that disk,
exactly as a real node restarts, torn-tail repair and corruption checks included.
The log opens as a real node's does, repairing attributable damage to synced batches from
peers (``repair_from_peers``: the damaged groups start fenced), and it says its space is low
when less than ``low_space_bytes`` is free (then the host refuses client writes).
:class:`MemoryNodeStorage` keeps the in-memory reference implementation for quick tests: a
crash keeps what was synced, and the disk faults have nothing to act on.

Opening can fail two ways, and the difference matters to the simulator: an ``OSError`` (the
disk is full, an fsync failed) is the disk's fault and a supervisor simply tries again later;
one of :data:`REFUSALS` means the node found its own storage damaged and refuses to start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from kvorum.core.shape import GroupId
from kvorum.host.bootstrap import StorageMismatchError
from kvorum.sim.disk import SimFileSystem
from kvorum.storage.contracts import SnapshotStore
from kvorum.storage.memory import MemoryNodeLog, MemorySnapshotStore
from kvorum.storage.node_log import DurableNodeLog, StorageCorruptionError
from kvorum.storage.snapshots import SnapshotCorruptionError
from kvorum.storage.wal import WALCorruptionError, WALFormatError

NODE_DIRECTORY = Path("/node")
"""Where a simulated node keeps its data on its own simulated disk."""

REFUSALS: tuple[type[Exception], ...] = (
    WALCorruptionError,
    WALFormatError,
    StorageCorruptionError,
    SnapshotCorruptionError,
    StorageMismatchError,
)
"""What a node raises when it refuses to start on the storage it finds."""

STORAGE_KINDS = ("durable", "memory")


class NodeStorage(Protocol):
    """One node's storage across crashes (see the module docstring)."""

    @property
    def node_log(self) -> DurableNodeLog | MemoryNodeLog: ...

    def snapshot_store(self, group_id: GroupId) -> SnapshotStore: ...

    def crash(self) -> None:
        """The power fails: only what was synced is left."""

    def reopen(self) -> None:
        """Open the storage as a restarted node does (raises one of :data:`REFUSALS`, or
        an ``OSError`` the disk caused)."""

    def describe_recovery(self) -> str | None:
        """What the last open had to repair (a torn tail cut), if anything."""


class DurableNodeStorage:
    """:class:`DurableNodeLog` and its snapshot stores on a :class:`SimFileSystem`."""

    def __init__(self, fs: SimFileSystem, *, segment_bytes: int, low_space_bytes: int) -> None:
        self.fs = fs
        self.segment_bytes = segment_bytes
        self.low_space_bytes = low_space_bytes
        self._log: DurableNodeLog | None = None
        self.reopen()

    @property
    def node_log(self) -> DurableNodeLog:
        assert self._log is not None, "the storage is not open"
        return self._log

    def snapshot_store(self, group_id: GroupId) -> SnapshotStore:
        return self.node_log.snapshot_store(group_id)

    def crash(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        self.fs.crash()

    def reopen(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        self._log = DurableNodeLog(
            NODE_DIRECTORY,
            fs=self.fs,
            segment_bytes=self.segment_bytes,
            low_space_bytes=self.low_space_bytes,
            repair_from_peers=True,
        )

    def describe_recovery(self) -> str | None:
        recovery = self.node_log.recovery
        said = []
        torn = recovery.torn_tail
        if torn is not None:
            said.append(
                f"WAL recovery cut a torn tail: {torn.dropped_bytes} bytes at {torn.offset}"
                f" of {torn.path.name} ({torn.reason})"
            )
        for batch in recovery.quarantined:
            said.append(f"WAL recovery quarantined a damaged batch: {batch.damage}")
        return "; ".join(said) or None


class MemoryNodeStorage:
    """The in-memory reference storage (:mod:`kvorum.storage.memory`)."""

    def __init__(self) -> None:
        self._log = MemoryNodeLog()
        self._stores: dict[GroupId, MemorySnapshotStore] = {}

    @property
    def node_log(self) -> MemoryNodeLog:
        return self._log

    def snapshot_store(self, group_id: GroupId) -> MemorySnapshotStore:
        return self._stores.setdefault(group_id, MemorySnapshotStore())

    def crash(self) -> None:
        self._log = self._log.crash()

    def reopen(self) -> None:
        """Memory needs no opening: what :meth:`crash` kept is there."""

    def describe_recovery(self) -> str | None:
        return None
