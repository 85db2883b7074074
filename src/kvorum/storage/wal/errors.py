"""What the WAL reports: corruption (with what was lost, as data), torn tails, wrong formats.

Theory of operation: recovery either repairs a torn tail — a batch that was never fsynced and
so never acknowledged — and describes it in :class:`TornTail`, or finds damage to data that
*was* synced and raises :class:`WALCorruptionError`. That error carries, besides the file and
offset, which groups lost which entries (and whether a hard state or snapshot marker) when
the damaged batch's header can still be read: protocol-aware repair (fetch those entries
from peers, do not vote for them meanwhile) is built on that field. When the header itself is
unreadable, ``lost`` is None: the affected groups are unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kvorum.core.shape import GroupId

if TYPE_CHECKING:
    from kvorum.storage.wal.quarantine import QuarantinedBatch


@dataclass(frozen=True, slots=True)
class LostGroupData:
    """What a damaged batch held for one group."""

    group_id: GroupId
    first_index: int
    """The first entry index the batch wrote for the group (0 with ``last_index``: none)."""
    last_index: int
    hard_state: bool
    snapshot_marker: bool
    checkpoint: bool
    """The batch was a segment's checkpoint (the group's state, repeated)."""

    def describe(self) -> str:
        parts = []
        if self.last_index:
            parts.append(f"entries {self.first_index}..{self.last_index}")
        if self.hard_state:
            parts.append("hard state")
        if self.snapshot_marker:
            parts.append("snapshot marker")
        if self.checkpoint:
            parts.append("checkpoint")
        return f"group {self.group_id}: " + (", ".join(parts) or "nothing")


class WALCorruptionError(Exception):
    """The log lost data it had acknowledged; the node must not start on it as it is.

    ``path`` and ``offset`` say where the first bad byte is; ``lost`` says what the damaged
    batch held per group (None: its header is unreadable, the groups are unknown);
    ``batch_seq`` is its sequence number when known.
    """

    def __init__(
        self,
        path: Path,
        offset: int,
        reason: str,
        *,
        lost: tuple[LostGroupData, ...] | None = None,
        batch_seq: int | None = None,
    ) -> None:
        message = f"WAL corrupted in {path} at byte offset {offset}: {reason}"
        if lost is not None:
            message += "; the damaged batch held " + (
                "; ".join(x.describe() for x in lost) or "no group's data"
            )
        super().__init__(message)
        self.path = path
        self.offset = offset
        self.reason = reason
        self.lost = lost
        self.batch_seq = batch_seq


class WALFormatError(Exception):
    """The directory holds a WAL this version cannot read (e.g. format 1)."""

    def __init__(self, directory: Path, found: str, reason: str) -> None:
        super().__init__(f"{directory}: {reason} (found {found})")
        self.directory = directory
        self.found = found


class WALClosedError(RuntimeError):
    """The log was closed, or a previous write/fsync failed and the log refuses further use."""


@dataclass(frozen=True, slots=True)
class TornTail:
    """A batch that never became durable, cut off during recovery: ``dropped_bytes`` of
    non-zero remains from ``offset`` on. ``lost`` is what it held if its header survived."""

    path: Path
    offset: int
    dropped_bytes: int
    reason: str
    lost: tuple[LostGroupData, ...] | None = None


@dataclass(frozen=True, slots=True)
class WALRecovery:
    """What opening the log found."""

    segments: int
    batches: int
    torn_tail: TornTail | None
    quarantined: tuple[QuarantinedBatch, ...] = ()
    """Damaged batches this opening quarantined (see :mod:`kvorum.storage.wal.quarantine`)."""
