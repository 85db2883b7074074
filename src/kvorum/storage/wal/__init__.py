"""The write-ahead log (format 2): one log for every Raft group of a node, in batch frames.

Theory of operation: a node's groups share one WAL so that one ``fdatasync`` per drive round
makes every group's writes durable. The log is a directory of segment files
(:mod:`~kvorum.storage.wal.segments`); each sync appends one checksummed batch frame holding
every group's records, tagged by group id, with a header that summarises what each group got
(:mod:`~kvorum.storage.wal.frame`). Opening replays the segments, cuts a torn tail (a batch
that never became durable, whatever subset of its sectors reached the disk) and reports
damage to synced data with what it cost each group (:mod:`~kvorum.storage.wal.recovery`).
The log keeps no entries in memory, only per-group indexes of where they are and the terms
of the live entries (:mod:`~kvorum.storage.wal.groups`). :class:`WAL`
(:mod:`~kvorum.storage.wal.log`) writes batches, reads entries back, and deletes segments
whose entries every group has covered with a snapshot. Staging per group and reconciling
with snapshots is :mod:`kvorum.storage.node_log`'s job, on top.
"""

from kvorum.storage.wal.errors import (
    LostGroupData,
    TornTail,
    WALClosedError,
    WALCorruptionError,
    WALFormatError,
    WALRecovery,
)
from kvorum.storage.wal.frame import Checkpoint, GroupWrite, SnapshotMarker
from kvorum.storage.wal.log import DEFAULT_BLOCK_BYTES, WAL
from kvorum.storage.wal.segments import DEFAULT_SEGMENT_BYTES, PREALLOCATE_BYTES

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "DEFAULT_SEGMENT_BYTES",
    "PREALLOCATE_BYTES",
    "WAL",
    "Checkpoint",
    "GroupWrite",
    "LostGroupData",
    "SnapshotMarker",
    "TornTail",
    "WALClosedError",
    "WALCorruptionError",
    "WALFormatError",
    "WALRecovery",
]
