"""Durable storage for kvorum nodes: the write-ahead log, snapshot files, and LMDB.

Theory of operation: a node persists Raft's hard state and log entries in a segmented,
checksummed WAL (:mod:`~kvorum.storage.wal`) with one ``fdatasync`` per batch, keeps its state
machine's snapshots as atomically published, checksummed files
(:mod:`~kvorum.storage.snapshots`), and reaches both through one facade,
:class:`~kvorum.storage.raft_log_store.RaftLogStore`. The key-value state machines of all its
groups live in one LMDB environment (:mod:`~kvorum.storage.lmdb_keyspace`), each group a span
of one ordered keyspace. Unlike ``kvorum.core`` this package does real
file I/O; it is what "durable" means for a node.
"""

from kvorum.storage.lmdb_keyspace import (
    EngineClosedError,
    KeyspaceFormatError,
    LmdbGroupView,
    LmdbKeyspace,
)
from kvorum.storage.raft_log_store import (
    CompactedError,
    InitialState,
    RaftLogStore,
    StorageCorruptionError,
    open_store,
)
from kvorum.storage.snapshots import SnapshotCorruptionError, SnapshotStore
from kvorum.storage.wal import (
    WAL,
    SnapshotMarker,
    TornTail,
    WALClosedError,
    WALCorruptionError,
    WALRecovery,
)

__all__ = [
    "WAL",
    "CompactedError",
    "EngineClosedError",
    "InitialState",
    "KeyspaceFormatError",
    "LmdbGroupView",
    "LmdbKeyspace",
    "RaftLogStore",
    "SnapshotCorruptionError",
    "SnapshotMarker",
    "SnapshotStore",
    "StorageCorruptionError",
    "TornTail",
    "WALClosedError",
    "WALCorruptionError",
    "WALRecovery",
    "open_store",
]
