"""Durable storage for kvorum nodes: the write-ahead log, snapshot files, and LMDB.

Theory of operation: a node persists every Raft group's hard state and log entries in one
segmented, checksummed WAL (:mod:`~kvorum.storage.wal`) with one ``fdatasync`` per batch for
all groups, keeps each group's state-machine snapshots as atomically published, checksummed
files (:mod:`~kvorum.storage.snapshots`), and reaches both through
:class:`~kvorum.storage.node_log.DurableNodeLog`, which keeps the contracts of
:mod:`~kvorum.storage.contracts` (:mod:`~kvorum.storage.memory` keeps them in memory). The
key-value state machines of all groups live in one LMDB environment
(:mod:`~kvorum.storage.lmdb_keyspace`), each group a span of one ordered keyspace. All file I/O
goes through :mod:`~kvorum.storage.fs`, so the simulator can run it over a faulty disk. Unlike
``kvorum.core`` this package does real file I/O; it is what "durable" means for a node.
"""

from kvorum.storage.contracts import DiskFullError
from kvorum.storage.lmdb_keyspace import (
    EngineClosedError,
    KeyspaceFormatError,
    LmdbGroupView,
    LmdbKeyspace,
)
from kvorum.storage.node_log import (
    CompactedError,
    DurableGroupLog,
    DurableNodeLog,
    StorageCorruptionError,
)
from kvorum.storage.snapshots import SnapshotCorruptionError, SnapshotStore
from kvorum.storage.wal import (
    WAL,
    LostGroupData,
    SnapshotMarker,
    TornTail,
    WALClosedError,
    WALCorruptionError,
    WALFormatError,
    WALRecovery,
)

__all__ = [
    "WAL",
    "CompactedError",
    "DiskFullError",
    "DurableGroupLog",
    "DurableNodeLog",
    "EngineClosedError",
    "KeyspaceFormatError",
    "LmdbGroupView",
    "LmdbKeyspace",
    "LostGroupData",
    "SnapshotCorruptionError",
    "SnapshotMarker",
    "SnapshotStore",
    "StorageCorruptionError",
    "TornTail",
    "WALClosedError",
    "WALCorruptionError",
    "WALFormatError",
    "WALRecovery",
]
