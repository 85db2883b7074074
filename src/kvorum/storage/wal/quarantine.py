"""The WAL's quarantine record: damaged batches that replay skips, and the fences they left.

Theory of operation: when recovery accepts damage to a synced batch whose header still says
what it held (:mod:`kvorum.storage.wal.recovery`), it does not touch the segment — the bytes
stay for an operator to inspect — but writes this small file, ``quarantine.json`` beside the
segments, *before* the log is used: which batches (segment, offset, length, sequence number,
what each group lost) replay must step over, and for each group that lost entries it had
acknowledged, its :class:`~kvorum.core.raft.RepairFence`. The file is written whole under a
temporary name, fsynced, renamed into place and the directory fsynced, so a crash leaves
either the old record or the new one: before the rename the next start finds the same damage
and decides the same way; after it, replay skips the batches exactly as the first time.

Every later start replays around the same batches with the same rules, so the log comes out
the same. A fence is removed (the file rewritten) once the group's durable log satisfies it;
a quarantined batch is forgotten once its segment is deleted. The record carries a CRC32C of
its content: a damaged record is reported like a damaged segment, never guessed at.

A quarantined batch *pins* its segment and every segment after it up to the one that was
active when the damage was accepted (``through_segment``): their checkpoints describe the
log as it was before the repair, which replay can only reconcile by replaying the damaged
batch's summary first, so they are deleted together (see :class:`~kvorum.storage.wal.WAL`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crc32c

from kvorum.core.raft.repair import RepairFence
from kvorum.core.shape import GroupId
from kvorum.storage.fs import FileSystem
from kvorum.storage.wal.errors import LostGroupData, WALCorruptionError

QUARANTINE_NAME = "quarantine.json"
_TEMP_NAME = QUARANTINE_NAME + ".tmp"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class QuarantinedBatch:
    """A synced batch that is damaged and skipped by replay; what it held is repaired."""

    segment_seq: int
    offset: int
    frame_length: int
    batch_seq: int
    through_segment: int
    """The newest segment when the damage was accepted (see the module docstring)."""
    lost: tuple[LostGroupData, ...]
    damage: str
    """How recovery described it (``WAL corrupted in <file> at byte offset <n>: ...``)."""


@dataclass(slots=True)
class Quarantine:
    """The record's content (empty when no file exists)."""

    batches: list[QuarantinedBatch] = field(default_factory=list)
    fences: dict[GroupId, RepairFence] = field(default_factory=dict)

    def batch_at(self, segment_seq: int, offset: int) -> QuarantinedBatch | None:
        for batch in self.batches:
            if batch.segment_seq == segment_seq and batch.offset == offset:
                return batch
        return None

    def pinned_through(self, segment_seq: int) -> int:
        """The newest segment that must be deleted together with ``segment_seq`` (itself if
        no quarantined batch pins it)."""
        through = segment_seq
        for batch in self.batches:
            if batch.segment_seq <= segment_seq <= batch.through_segment:
                through = max(through, batch.through_segment)
        return through

    def forget_segments_before(self, segment_seq: int) -> bool:
        """Drop batches in segments older than ``segment_seq`` (deleted); True if any."""
        kept = [b for b in self.batches if b.segment_seq >= segment_seq]
        changed = len(kept) != len(self.batches)
        self.batches = kept
        return changed


def _batch_to_json(batch: QuarantinedBatch) -> dict[str, Any]:
    return {
        "segment": batch.segment_seq,
        "offset": batch.offset,
        "frame_length": batch.frame_length,
        "seq": batch.batch_seq,
        "through_segment": batch.through_segment,
        "damage": batch.damage,
        "lost": [
            [x.group_id, x.first_index, x.last_index, x.hard_state, x.snapshot_marker,
             x.checkpoint]
            for x in batch.lost
        ],
    }


def _batch_from_json(raw: dict[str, Any]) -> QuarantinedBatch:
    lost = tuple(
        LostGroupData(int(g), int(first), int(last), bool(hs), bool(marker), bool(cp))
        for g, first, last, hs, marker, cp in raw["lost"]
    )
    return QuarantinedBatch(
        int(raw["segment"]),
        int(raw["offset"]),
        int(raw["frame_length"]),
        int(raw["seq"]),
        int(raw["through_segment"]),
        lost,
        str(raw["damage"]),
    )


def _fence_to_json(group_id: GroupId, fence: RepairFence) -> dict[str, Any]:
    return {
        "group": group_id,
        "lost_from": fence.lost_from,
        "acknowledged_index": fence.acknowledged_index,
        "fence_term": fence.fence_term,
        "damage": fence.damage,
    }


def _fences_from_json(raw: Iterable[dict[str, Any]]) -> dict[GroupId, RepairFence]:
    return {
        int(f["group"]): RepairFence(
            int(f["lost_from"]),
            int(f["acknowledged_index"]),
            int(f["fence_term"]),
            str(f["damage"]),
        )
        for f in raw
    }


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def load_quarantine(fs: FileSystem, directory: Path) -> Quarantine:
    """The record in ``directory`` (empty if there is none). Raises WALCorruptionError if
    it exists but is damaged."""
    path = directory / QUARANTINE_NAME
    if not fs.exists(path):
        return Quarantine()
    raw = fs.read_file(path)
    try:
        outer = json.loads(raw)
        body = outer["body"]
        if crc32c.crc32c(_canonical(body)) != outer["crc"]:
            raise ValueError("CRC mismatch")
        if body["format"] != _FORMAT:
            raise ValueError(f"unknown format {body['format']!r}")
        batches = [_batch_from_json(b) for b in body["batches"]]
        fences = _fences_from_json(body["fences"])
    except (ValueError, KeyError, TypeError) as exc:
        raise WALCorruptionError(path, 0, f"the quarantine record is unreadable ({exc})") from exc
    return Quarantine(batches, fences)


def save_quarantine(fs: FileSystem, directory: Path, quarantine: Quarantine) -> None:
    """Replace the record durably (write, fsync, rename, fsync the directory); with nothing
    to record, remove it."""
    path = directory / QUARANTINE_NAME
    if not quarantine.batches and not quarantine.fences:
        if fs.exists(path):
            fs.unlink(path)
            fs.fsync_dir(directory)
        return
    body = {
        "format": _FORMAT,
        "batches": [_batch_to_json(b) for b in quarantine.batches],
        "fences": [_fence_to_json(g, f) for g, f in sorted(quarantine.fences.items())],
    }
    data = json.dumps({"crc": crc32c.crc32c(_canonical(body)), "body": body}, indent=1).encode()
    temp = directory / _TEMP_NAME
    file = fs.open(temp, create=True, truncate=True)
    try:
        file.pwrite(data, 0)
        file.fsync()
    finally:
        file.close()
    fs.rename(temp, path)
    fs.fsync_dir(directory)
