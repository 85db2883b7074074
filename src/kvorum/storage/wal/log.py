"""The WAL object: one log for every group of a node, one batch frame and one fdatasync a sync.

Theory of operation: :meth:`WAL.write_batch` takes what every group wrote since the last sync
(:class:`~kvorum.storage.wal.frame.GroupWrite`), encodes it as one batch frame, writes it at
the end of the active segment and calls ``fdatasync`` once; it returns only when the batch is
durable. If the batch would push the segment past ``segment_bytes`` the log rolls over
instead: a new segment holding a checkpoint batch (every group's state) and then the batch is
written under a temporary name, fdatasynced, renamed and the directory fsynced.

Failures: an ENOSPC while zero-filling ahead or writing raises
:class:`~kvorum.storage.contracts.DiskFullError` and leaves the log as it was — nothing in
memory changed, the sequence number is not used, and the caller writes the same (or a larger)
batch again later at the same place. Zero-filling comes first, so a full disk is nearly
always met before any byte of the batch is written. Any other failure — above all a failed
fdatasync, after which the kernel may have dropped the dirty pages — makes the log refuse
all further use (:class:`~kvorum.storage.wal.errors.WALClosedError`).

After each batch the log deletes the oldest segments no group still needs
(:mod:`~kvorum.storage.wal.segments`), and :meth:`WAL.pinning_groups` says which groups keep
the oldest one alive, so the host can ask them to snapshot.

Repair: opened with ``repair=True``, the log accepts attributable damage to synced batches
(:mod:`~kvorum.storage.wal.recovery`): the groups that lost acknowledged entries are cut back
and carry a :class:`~kvorum.core.raft.RepairFence` (:meth:`WAL.repair_fences`) until a batch
makes their log satisfy it, when the log lifts it durably (after that batch's fdatasync,
never before). A quarantined batch's segment and the segments after it up to the one active
when it was quarantined are deleted together (:mod:`~kvorum.storage.wal.quarantine`).
"""

from __future__ import annotations

import bisect
import errno
import itertools
from collections.abc import Sequence
from pathlib import Path

from kvorum.core.raft.messages import Entry
from kvorum.core.raft.repair import RepairFence
from kvorum.core.shape import GroupId
from kvorum.storage.contracts import DiskFullError
from kvorum.storage.fs import OS_FILE_SYSTEM, FileSystem
from kvorum.storage.wal import faults
from kvorum.storage.wal.errors import WALClosedError, WALCorruptionError, WALRecovery
from kvorum.storage.wal.frame import (
    SEGMENT_MAGIC,
    BatchHeader,
    GroupWrite,
    RecordType,
    encode_batch,
    iter_records,
    parse_batch,
    record_entry,
)
from kvorum.storage.wal.groups import GroupIndex
from kvorum.storage.wal.quarantine import QuarantinedBatch, save_quarantine
from kvorum.storage.wal.recovery import recover
from kvorum.storage.wal.segments import (
    DEFAULT_SEGMENT_BYTES,
    TEMP_SUFFIX,
    Segment,
    fill_ahead,
    segment_name,
)

DEFAULT_BLOCK_BYTES = 1024 * 1024
"""How far apart (in file bytes) one group's read-index pieces may stretch."""

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL


class WAL:
    """A durable, segmented log of every group's entries, hard states and snapshot markers.

    Not thread-safe: one thread at a time writes, reads and closes it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        fs: FileSystem = OS_FILE_SYSTEM,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        repair: bool = False,
    ) -> None:
        """Open (or create) the log in ``directory``, replaying and repairing it.

        Raises :class:`~kvorum.storage.wal.errors.WALCorruptionError` if synced data is
        damaged (unless ``repair`` and the damage is attributable: see the module
        docstring), :class:`~kvorum.storage.wal.errors.WALFormatError` for a format-1 log; a
        torn tail is repaired and described in :attr:`recovery`.
        """
        if segment_bytes < 512:
            raise ValueError(f"segment_bytes must be at least 512, got {segment_bytes}")
        if block_bytes <= 0:
            raise ValueError(f"block_bytes must be positive, got {block_bytes}")
        self._dir = Path(directory)
        self._fs = fs
        self._segment_bytes = segment_bytes
        self._block_bytes = block_bytes
        self._failed: BaseException | None = None
        self._batches_written = 0
        self._tear_at = faults.tear_at_batch()
        fs.make_dirs_durable(self._dir)
        recovered = recover(fs, self._dir, block_bytes, repair=repair)
        self.recovery: WALRecovery = recovered.recovery
        self._segments = recovered.segments
        self._groups = recovered.groups
        self._next_seq = recovered.next_seq
        self._quarantine = recovered.quarantine
        if not self._segments:
            self._new_segment([])
        else:
            active = self._segments[-1]
            active.file = fs.open(active.path)

    # --- state -------------------------------------------------------------------------

    def group_ids(self) -> list[GroupId]:
        return sorted(self._groups)

    def group(self, group_id: GroupId) -> GroupIndex:
        """The durable state of ``group_id`` (KeyError if the log never heard of it). Read
        only: the log changes it as batches are written."""
        return self._groups[group_id]

    @property
    def segment_paths(self) -> list[Path]:
        """The live segment files, oldest first."""
        return [s.path for s in self._segments]

    @property
    def segment_ends(self) -> list[int]:
        """Where each live segment's batches end, oldest first (zeros follow)."""
        return [s.records_end for s in self._segments]

    @property
    def next_seq(self) -> int:
        """The sequence number the next batch will carry."""
        return self._next_seq

    def pinning_groups(self) -> list[GroupId]:
        """The groups whose live entries keep the oldest segment from being deleted (empty
        when only the active segment is left): snapshotting them frees it."""
        if len(self._segments) < 2:
            return []
        # A quarantined batch pins a run of segments that go together (see the docstring).
        through = self._quarantine.pinned_through(self._segments[0].seq)
        held = {s.seq for s in self._segments[:-1] if s.seq <= through}
        return sorted(
            g
            for g, group in self._groups.items()
            if any(p.segment.seq in held for p in group.pieces)
        )

    def repair_fences(self) -> dict[GroupId, RepairFence]:
        """The groups that lost acknowledged entries and have not got them back yet."""
        return dict(self._quarantine.fences)

    def repair_fence(self, group_id: GroupId) -> RepairFence | None:
        """``group_id``'s fence (None: it lost nothing it has not got back)."""
        return self._quarantine.fences.get(group_id)

    @property
    def quarantined_batches(self) -> list[QuarantinedBatch]:
        """Damaged batches replay steps over (see :mod:`~kvorum.storage.wal.quarantine`)."""
        return list(self._quarantine.batches)

    # --- writing -----------------------------------------------------------------------

    def write_batch(self, writes: Sequence[GroupWrite]) -> None:
        """Write one batch holding ``writes`` (at most one per group) and make it durable
        with one ``fdatasync``; returns once it would survive a crash.

        Raises ValueError if a write does not fit its group's log (nothing is written),
        DiskFullError if the disk is full (nothing changed: write it again later),
        WALClosedError if the log is closed or broken; any other error breaks the log.
        """
        self._check_usable()
        if not writes:
            return
        self._check_writes(writes)
        active = self._segments[-1]
        seq = self._next_seq
        frame = encode_batch(seq, writes)
        try:
            if active.has_data and active.records_end + len(frame) > self._segment_bytes:
                frame = encode_batch(seq + 1, writes)
                offset = self._new_segment(writes, frame)
                active = self._segments[-1]
                self._next_seq = seq + 2
            else:
                offset = active.records_end
                self._write_in_place(active, frame, offset)
                self._next_seq = seq + 1
        except DiskFullError:
            raise
        except BaseException as exc:
            self._failed = exc
            raise
        active.has_data = True
        active.records_end = offset + len(frame)
        self._apply(writes, active, offset, offset + len(frame))
        self._batches_written += 1
        if self._quarantine.fences:
            self._lift_satisfied_fences(writes)
        self._delete_unneeded_segments()

    def _lift_satisfied_fences(self, writes: Sequence[GroupWrite]) -> None:
        """Record durably that groups of this (durable) batch again hold what they lost."""
        fences = self._quarantine.fences
        lifted = [
            w.group_id
            for w in writes
            if w.group_id in fences
            and fences[w.group_id].satisfied_by(
                self._groups[w.group_id].last_index, self._groups[w.group_id].last_term
            )
        ]
        if not lifted:
            return
        for g in lifted:
            del fences[g]
        try:
            save_quarantine(self._fs, self._dir, self._quarantine)
        except BaseException as exc:
            self._failed = exc  # what the disk holds is unknown now: stop, as for fsync
            raise

    def _check_writes(self, writes: Sequence[GroupWrite]) -> None:
        seen: set[GroupId] = set()
        for w in writes:
            if w.group_id in seen:
                raise ValueError(f"group {w.group_id} appears twice in one batch")
            seen.add(w.group_id)
            if not w.entries:
                continue
            group = self._groups.get(w.group_id)
            last = group.last_index if group is not None else 0
            snap = group.snapshot_index if group is not None else 0
            if w.marker is not None:
                snap = w.marker.index
                if w.marker.discard_log or w.marker.index > last:
                    last = w.marker.index
            first = w.entries[0].index
            if first <= snap or first > last + 1:
                raise ValueError(
                    f"group {w.group_id}: entries must start after the snapshot {snap} and at "
                    f"or before the log's next index {last + 1}, got {first}"
                )
            for before, after in itertools.pairwise(w.entries):
                if after.index != before.index + 1:
                    raise ValueError(
                        f"entries must be consecutive: {after.index} follows {before.index}"
                    )

    def _write_in_place(self, segment: Segment, frame: bytes, offset: int) -> None:
        file = segment.file
        assert file is not None
        try:
            fill_ahead(file, segment, offset + len(frame), self._segment_bytes)
        except OSError as exc:
            if _is_disk_full(exc):
                message = f"disk full while preallocating {segment.path}"
                raise DiskFullError(exc.errno, message) from exc
            raise
        if self._tear_at is not None and self._batches_written + 1 == self._tear_at:
            faults.tear_and_die(file, frame, offset)
        try:
            file.pwrite(frame, offset)
        except OSError as exc:
            if not _is_disk_full(exc):
                raise
            # Only past the zero-filled region can this happen. Wipe what was written, so
            # that no half batch is left for recovery to mistake for a later one.
            file.pwrite(bytes(len(frame)), offset)
            raise DiskFullError(exc.errno, f"disk full while writing {segment.path}") from exc
        file.fdatasync()

    def _new_segment(self, writes: Sequence[GroupWrite], frame: bytes = b"") -> int:
        """Publish a new segment: preamble, checkpoint batch, then ``frame`` (a batch already
        numbered after the checkpoint). Returns ``frame``'s offset in it."""
        fs = self._fs
        seq = self._segments[-1].seq + 1 if self._segments else 1
        path = self._dir / segment_name(seq)
        temp = path.with_name(path.name + TEMP_SUFFIX)
        checkpoint = [
            GroupWrite(g, hard_state=group.hard_state, checkpoint=group.checkpoint())
            for g, group in sorted(self._groups.items())
        ]
        head = encode_batch(self._next_seq, checkpoint)
        content = SEGMENT_MAGIC + head + frame
        segment = Segment(seq, path, records_end=len(SEGMENT_MAGIC) + len(head), filled_bytes=0)
        file = fs.open(temp, create=True, truncate=True)
        try:
            fill_ahead(file, segment, len(content), self._segment_bytes)
            file.pwrite(content, 0)
            file.fdatasync()
        except OSError as exc:
            file.close()
            if _is_disk_full(exc):
                fs.unlink(temp, missing_ok=True)
                raise DiskFullError(exc.errno, f"disk full while creating {path}") from exc
            raise
        fs.rename(temp, path)
        fs.fsync_dir(self._dir)
        if self._segments:
            previous = self._segments[-1].file
            if previous is not None:
                previous.close()
            self._segments[-1].file = None
        segment.file = file
        self._segments.append(segment)
        if not frame:
            self._next_seq += 1
        return segment.records_end

    def _apply(self, writes: Sequence[GroupWrite], segment: Segment, start: int, end: int) -> None:
        for w in writes:
            group = self._groups.get(w.group_id)
            if group is None:
                group = self._groups[w.group_id] = GroupIndex()
            if w.marker is not None:
                group.apply_marker(w.marker)
            if w.entries:
                terms = [e.term for e in w.entries]
                group.apply_entries(
                    segment,
                    start,
                    end,
                    first=w.entries[0].index,
                    terms=terms,
                    block_bytes=self._block_bytes,
                )
            if w.hard_state is not None:
                group.hard_state = w.hard_state

    def _delete_unneeded_segments(self) -> None:
        doomed: list[Segment] = []
        for segment in self._segments[:-1]:
            if segment.pieces:
                break
            doomed.append(segment)
        # Segments a quarantined batch pins go together or not at all.
        while doomed and self._quarantine.pinned_through(doomed[-1].seq) > doomed[-1].seq:
            doomed.pop()
        if not doomed:
            return
        for segment in doomed:
            self._fs.unlink(segment.path)
        self._fs.fsync_dir(self._dir)
        del self._segments[: len(doomed)]

    # --- reading -----------------------------------------------------------------------

    def read_entries(self, group_id: GroupId, lo: int, hi: int) -> list[Entry]:
        """The durable entries ``lo <= index < hi`` of ``group_id``, read from disk.

        Raises LookupError unless the group's live log holds them all, and
        WALCorruptionError if the bytes on disk no longer check out.
        """
        self._check_usable()
        if lo >= hi:
            return []
        group = self._groups[group_id]
        if lo <= group.snapshot_index or hi > group.last_index + 1 or lo < group.covered_from():
            raise LookupError(
                f"group {group_id}: entries {lo}..{hi - 1} are not all in the log "
                f"(snapshot {group.snapshot_index}, last index {group.last_index})"
            )
        pieces = group.pieces
        k = bisect.bisect_right([p.first for p in pieces], lo) - 1
        found: list[Entry] = []
        while len(found) < hi - lo and k < len(pieces):
            piece = pieces[k]
            wanted = (max(lo, piece.first), min(hi, piece.last + 1))
            self._read_piece(group_id, piece.segment, (piece.start, piece.end), wanted, found)
            k += 1
        if len(found) != hi - lo or any(e.index != lo + i for i, e in enumerate(found)):
            missing = next(
                (lo + i for i, e in enumerate(found) if e.index != lo + i), lo + len(found)
            )
            raise WALCorruptionError(
                pieces[max(k - 1, 0)].segment.path, 0,
                f"group {group_id}: entry {missing} is missing from the log",
            )
        return found

    def _read_piece(
        self,
        group_id: GroupId,
        segment: Segment,
        span: tuple[int, int],
        wanted_range: tuple[int, int],
        out: list[Entry],
    ) -> None:
        """Append to ``out`` the group's entries ``lo .. hi - 1`` found in the batches at
        ``span`` (a piece's bytes) of ``segment``."""
        start, end = span
        lo, hi = wanted_range
        if segment.file is not None:
            data = segment.file.pread(end - start, start)
        else:
            file = self._fs.open_read(segment.path)
            try:
                data = file.pread(end - start, start)
            finally:
                file.close()
        pos = 0
        wanted: dict[int, Entry] = {}
        while pos < len(data):
            header = parse_batch(data, pos)
            if not isinstance(header, BatchHeader):
                raise WALCorruptionError(segment.path, start + pos, header)
            for summary in header.groups:
                if summary.group_id != group_id or not summary.last_index:
                    continue
                if summary.last_index < lo or summary.first_index >= hi:
                    continue
                run = pos + summary.run_offset
                for record in iter_records(data, run, run + summary.run_length):
                    if record.record_type is RecordType.ENTRY and lo <= record.a < hi:
                        wanted[record.a] = record_entry(record)
            pos += header.frame_length
        out.extend(wanted[i] for i in range(lo, hi) if i in wanted)

    # --- closing -----------------------------------------------------------------------

    def close(self) -> None:
        """Release the files; later calls raise WALClosedError."""
        for segment in self._segments:
            if segment.file is not None:
                segment.file.close()
                segment.file = None
        if self._failed is None:
            self._failed = WALClosedError("WAL closed")

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise WALClosedError(
                f"WAL in {self._dir} is unusable: {self._failed!r}"
            ) from self._failed
