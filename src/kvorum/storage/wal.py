"""The write-ahead log: Raft entries, hard states and snapshot markers in checksummed segments.

Theory of operation. The log is a directory of *segment* files named
``<sequence>-<first index>.wal`` (both zero-padded, so names sort in log order). A segment is
a run of records, each ``length:u32 | type:u8 | crc32c:u32 | payload`` (little-endian), where
the CRC32C covers the type byte and the payload and the payload is msgpack:

* ``ENTRY``  ``[term, index, kind, data]`` — an entry at ``index`` *replaces* every earlier
  entry at an index ``>= index``, which is exactly Raft's "delete the conflicting entry and all
  that follow it";
* ``HARD_STATE`` ``[term, vote, commit]`` — the last one wins;
* ``SNAPSHOT_MARKER`` ``[index, term, discard_log]`` — entries up to ``index`` live in a
  snapshot; with ``discard_log`` the whole log is dropped and restarts after ``index`` (a
  follower that installed a leader's snapshot its log disagrees with).

Writes are batched: :meth:`WAL.append_and_sync` encodes a whole batch, writes it and calls
``os.fdatasync`` once (group commit), and returns only when the batch is durable — there is
no way to append without syncing, so nothing can be acknowledged too early. When a batch would
push the active segment past ``segment_bytes`` the log rolls over: the new segment is written
to a temporary name with a header (the current hard state and snapshot marker, so every older
segment may later be deleted) followed by the batch, fdatasynced once, renamed into place, and
the directory fsynced.

Segment files are *zero-filled ahead* of the records (``PREALLOCATE_BYTES`` at a time, never
past ``segment_bytes`` unless one batch is bigger): overwriting bytes a file already has lets
``fdatasync`` flush just the data, while an append must also commit the file's new size to
the file system's journal — measured here, 42 us against 80 us per sync. The zeros are written
by the same fdatasync as a batch, about once per ``PREALLOCATE_BYTES`` of log. So a segment is
its records followed by zeros, and a zero tail is simply the end of the log.

On open every segment is replayed; replay of a segment stops where only zeros remain. A bad
record (short, impossible length, bad CRC) at the end of the *last* segment with no valid
record anywhere after it is a torn write from a crash mid-append: it was never synced, so
never acknowledged, and is cut off (overwritten with zeros and fsynced) and reported. Any
other bad record means the disk lost acknowledged data, and :class:`WALCorruptionError` stops
the node with the file and byte offset. (A bit flip inside the very last record looks exactly
like a torn write and is cut too: no log format can tell them apart without a second copy.)
After a failed write or fsync the log refuses all further use, because after a failed fsync
the kernel may have dropped the dirty pages and a retry could report success for data that is
gone.

The log does not keep entries in memory. It keeps a small index of *blocks*: every segment
start, and then every ``block_bytes`` of records, notes its file offset, the log's next index
at that point, and the smallest entry index written inside the block. :meth:`WAL.read_entries`
starts at the newest block whose next index is at or below ``lo`` (everything it needs was
written at or after that point) and stops at the first block after which nothing below ``hi``
was ever rewritten, replaying the truncation rule over just that window.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import crc32c
import msgpack

from kvorum.core.raft.messages import Entry, EntryKind, HardState
from kvorum.storage._fs import fsync_dir, make_dirs_durable, write_all

log = logging.getLogger(__name__)

RECORD_HEADER = struct.Struct("<IBI")
"""payload length (bytes), record type, CRC32C of type byte + payload."""

MAX_PAYLOAD_BYTES = 256 * 1024 * 1024
"""A length field above this is impossible (a batch is split into one record per entry)."""

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
PREALLOCATE_BYTES = 1024 * 1024
"""How far ahead of the records a segment file is zero-filled (see the module docstring)."""
DEFAULT_BLOCK_BYTES = 256 * 1024

_SEGMENT_NAME = re.compile(r"^(\d{20})-(\d{20})\.wal$")
_TEMP_SUFFIX = ".tmp"
_NO_INDEX = 1 << 63
"""Stands for "no entry written in this block" in a block's ``min_written``."""


class RecordType(IntEnum):
    ENTRY = 1
    HARD_STATE = 2
    SNAPSHOT_MARKER = 3


class WALCorruptionError(Exception):
    """The log lost data it had acknowledged; the node must stop (never guess).

    ``path`` and ``offset`` say where the first bad byte is.
    """

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"WAL corrupted in {path} at byte offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class WALClosedError(RuntimeError):
    """The log was closed, or a previous write/fsync failed and the log refuses further use."""


@dataclass(frozen=True, slots=True)
class SnapshotMarker:
    """Entries up to ``index`` (whose term is ``term``) are held by a snapshot.

    With ``discard_log`` every entry in the log is dropped and the log continues at
    ``index + 1`` (the follower installed a snapshot its own log does not match).
    """

    index: int
    term: int
    discard_log: bool = False


@dataclass(frozen=True, slots=True)
class TornTail:
    """A half-written tail cut off during recovery: ``dropped_bytes`` from ``offset`` on."""

    path: Path
    offset: int
    dropped_bytes: int
    reason: str


@dataclass(frozen=True, slots=True)
class WALRecovery:
    """What opening the log found."""

    segments: int
    records: int
    torn_tail: TornTail | None


@dataclass(slots=True)
class _Segment:
    seq: int
    first_index: int
    path: Path
    size_bytes: int
    """Where the records end (the file goes on with zeros up to ``filled_bytes``)."""
    filled_bytes: int = 0
    """The file's length: records, then zeros written ahead of them."""
    appended: bool = False
    """Whether anything beyond the segment's header was written (worth rolling over)."""


@dataclass(slots=True)
class _Block:
    segment: _Segment
    start_offset: int
    next_index: int
    """The log's last index + 1 just before this block's first record."""
    min_written: int
    """The smallest entry index written in this block (a discarding marker at i counts as
    i + 1: it removes everything from there on); ``_NO_INDEX`` if none."""


Record = tuple[RecordType, object]


def encode_record(record_type: RecordType, payload: bytes) -> bytes:
    """One framed record: header (length, type, CRC32C over type + payload) then payload."""
    type_byte = bytes((record_type,))
    crc = crc32c.crc32c(payload, crc32c.crc32c(type_byte))
    return RECORD_HEADER.pack(len(payload), record_type, crc) + payload


def _entry_payload(entry: Entry) -> bytes:
    return msgpack.packb([entry.term, entry.index, int(entry.kind), entry.data])


def _hard_state_payload(hs: HardState) -> bytes:
    return msgpack.packb([hs.term, hs.vote, hs.commit])


def _marker_payload(marker: SnapshotMarker) -> bytes:
    return msgpack.packb([marker.index, marker.term, marker.discard_log])


def _decode(record_type: RecordType, payload: bytes) -> object:
    fields = msgpack.unpackb(payload)
    if record_type is RecordType.ENTRY:
        term, index, kind, data = fields
        return Entry(term=term, index=index, data=data, kind=EntryKind(kind))
    if record_type is RecordType.HARD_STATE:
        term, vote, commit = fields
        return HardState(term=term, vote=vote, commit=commit)
    index, term, discard = fields
    return SnapshotMarker(index=index, term=term, discard_log=bool(discard))


def _parse_at(data: bytes, pos: int) -> tuple[RecordType, bytes, int] | str:
    """The record at ``pos`` as (type, payload, end offset), or why it is not a record."""
    if len(data) - pos < RECORD_HEADER.size:
        return "short record header"
    length, type_byte, crc = RECORD_HEADER.unpack_from(data, pos)
    if type_byte not in RecordType._value2member_map_:
        return f"unknown record type {type_byte}"
    if length > MAX_PAYLOAD_BYTES:
        return f"impossible record length {length}"
    start = pos + RECORD_HEADER.size
    end = start + length
    if end > len(data):
        return f"record length {length} runs past the end of the file"
    payload = data[start:end]
    if crc32c.crc32c(payload, crc32c.crc32c(bytes((type_byte,)))) != crc:
        return "CRC mismatch"
    return RecordType(type_byte), payload, end


_TYPE_BYTES = re.compile(b"[\x01-\x03]")


def _valid_record_after(data: bytes, pos: int) -> int | None:
    """The offset of some checksum-valid record starting after ``pos``, if there is one.

    This decides torn tail (nothing valid follows) versus corruption (valid data follows).
    Zero-filled space (a file extended but never written) is the common torn case and is
    recognised without a scan.
    """
    tail = data[pos + 1 :]
    if tail.count(0) == len(tail):
        return None
    type_offset = 4  # the type byte follows the u32 length
    for match in _TYPE_BYTES.finditer(data, pos + 1 + type_offset):
        candidate = match.start() - type_offset
        if not isinstance(_parse_at(data, candidate), str):
            return candidate
    return None


def segment_name(seq: int, first_index: int) -> str:
    """The file name of segment ``seq`` whose first entry will be ``first_index``."""
    return f"{seq:020d}-{first_index:020d}.wal"


class WAL:
    """A durable, segmented log of Raft entries, hard states and snapshot markers.

    Not thread-safe: one thread (the node's) appends, reads and compacts.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        """Open (or create) the log in ``directory``, replaying and repairing it.

        Raises :class:`WALCorruptionError` if acknowledged data is damaged; a torn tail is
        repaired and described in :attr:`recovery`.
        """
        if segment_bytes <= RECORD_HEADER.size:
            raise ValueError(f"segment_bytes must exceed a record header, got {segment_bytes}")
        if block_bytes <= 0:
            raise ValueError(f"block_bytes must be positive, got {block_bytes}")
        self._dir = Path(directory)
        self._segment_bytes = segment_bytes
        self._block_bytes = block_bytes
        self._segments: list[_Segment] = []
        self._blocks: list[_Block] = []
        self._hard_state = HardState()
        self._marker: SnapshotMarker | None = None
        self._last_index = 0
        self._last_term = 0
        self._fd: int | None = None
        self._failed: BaseException | None = None
        make_dirs_durable(self._dir)
        self.recovery = self._replay()
        if not self._segments:
            self._create_first_segment()
        active = self._segments[-1]
        self._fd = os.open(active.path, os.O_WRONLY)

    # --- state -------------------------------------------------------------------------

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def marker(self) -> SnapshotMarker | None:
        """The latest snapshot marker (None if no snapshot was ever recorded)."""
        return self._marker

    @property
    def last_index(self) -> int:
        return self._last_index

    @property
    def last_term(self) -> int:
        return self._last_term

    @property
    def segment_paths(self) -> list[Path]:
        """The live segment files, oldest first."""
        return [s.path for s in self._segments]

    @property
    def segment_ends(self) -> list[int]:
        """Where each live segment's records end, oldest first (zeros follow)."""
        return [s.size_bytes for s in self._segments]

    @property
    def end_offset(self) -> int:
        """Where the active segment's records end (its file goes on with zeros)."""
        return self._segments[-1].size_bytes

    @property
    def block_count(self) -> int:
        """How many entries the in-memory read index holds (a few per segment)."""
        return len(self._blocks)

    # --- writing -----------------------------------------------------------------------

    def append_and_sync(
        self,
        entries: Sequence[Entry] = (),
        hard_state: HardState | None = None,
        marker: SnapshotMarker | None = None,
    ) -> None:
        """Append ``marker``, then ``entries``, then ``hard_state``, and make them durable with
        one ``fdatasync``; returns only once they would survive a crash.

        ``entries`` must be consecutive and start at or below ``last_index + 1`` (starting
        lower truncates the log there). Raises ValueError for a gap, WALClosedError if the log
        is closed or broken.
        """
        self._check_usable()
        if not entries and hard_state is None and marker is None:
            return
        self._check_entries(entries, marker)
        records: list[tuple[RecordType, bytes, object]] = []
        if marker is not None:
            records.append((RecordType.SNAPSHOT_MARKER, _marker_payload(marker), marker))
        records.extend((RecordType.ENTRY, _entry_payload(e), e) for e in entries)
        if hard_state is not None:
            records.append((RecordType.HARD_STATE, _hard_state_payload(hard_state), hard_state))
        framed = [encode_record(t, p) for t, p, _ in records]
        batch_bytes = sum(len(f) for f in framed)
        try:
            active = self._segments[-1]
            if active.size_bytes + batch_bytes > self._segment_bytes and active.appended:
                header = self._segment_header()
                self._roll_over(header + b"".join(framed))
                active = self._segments[-1]
                offset = len(header)
            else:
                offset = active.size_bytes
                assert self._fd is not None
                self._fill_ahead(self._fd, active, offset + batch_bytes)
                write_all(self._fd, b"".join(framed), offset)
                os.fdatasync(self._fd)
                active.size_bytes += batch_bytes
        except BaseException as exc:
            self._failed = exc
            raise
        active.appended = True
        for (_, _, value), frame in zip(records, framed, strict=True):
            self._note_written(active, offset, offset + len(frame), value)
            offset += len(frame)

    def _check_entries(self, entries: Sequence[Entry], marker: SnapshotMarker | None) -> None:
        if not entries:
            return
        next_index = self._last_index + 1
        if marker is not None and (marker.discard_log or marker.index > self._last_index):
            next_index = marker.index + 1
        first = entries[0].index
        if first < 1 or first > next_index:
            raise ValueError(
                f"entries must start between 1 and the log's next index {next_index}, "
                f"got {first}"
            )
        for before, after in itertools.pairwise(entries):
            if after.index != before.index + 1:
                raise ValueError(
                    f"entries must be consecutive: {after.index} follows {before.index}"
                )

    def _segment_header(self) -> bytes:
        header = encode_record(RecordType.HARD_STATE, _hard_state_payload(self._hard_state))
        if self._marker is not None:
            # The marker is repeated without discard_log: the discard already happened.
            repeat = SnapshotMarker(self._marker.index, self._marker.term, discard_log=False)
            header += encode_record(RecordType.SNAPSHOT_MARKER, _marker_payload(repeat))
        return header

    def _new_segment_file(self, content: bytes) -> None:
        """Write a complete new segment under a temporary name, sync it, then publish it."""
        seq = self._segments[-1].seq + 1 if self._segments else 1
        first_index = self._last_index + 1
        path = self._dir / segment_name(seq, first_index)
        temp = path.with_name(path.name + _TEMP_SUFFIX)
        segment = _Segment(seq=seq, first_index=first_index, path=path, size_bytes=len(content))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self._fill_ahead(fd, segment, len(content))
            write_all(fd, content, 0)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.rename(temp, path)
        fsync_dir(self._dir)
        self._segments.append(segment)
        self._blocks.append(_Block(segment, 0, first_index, _NO_INDEX))

    def _create_first_segment(self) -> None:
        self._new_segment_file(self._segment_header())

    def _roll_over(self, content: bytes) -> None:
        self._new_segment_file(content)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self._segments[-1].path, os.O_WRONLY)

    def _fill_ahead(self, fd: int, segment: _Segment, end: int) -> None:
        """Before records are written up to ``end``, zero-fill the file past it (up to
        ``PREALLOCATE_BYTES`` further, within ``segment_bytes``) if it is not already. The
        zeros start at ``end``: the records about to be written cover the rest."""
        if end <= segment.filled_bytes:
            return
        target = max(end, min(self._segment_bytes, end + PREALLOCATE_BYTES))
        position = end
        while position < target:
            chunk = min(target - position, PREALLOCATE_BYTES)
            write_all(fd, bytes(chunk), position)
            position += chunk
        segment.filled_bytes = target

    # --- the shared replay rule ------------------------------------------------------------

    def _note_written(self, segment: _Segment, offset: int, end: int, value: object) -> None:
        """Apply one durable record (bytes ``offset..end`` of ``segment``) to the in-memory
        state and the block index."""
        block = self._blocks[-1]
        if block.segment is not segment or offset - block.start_offset >= self._block_bytes:
            block = _Block(segment, offset, self._last_index + 1, _NO_INDEX)
            self._blocks.append(block)
        if not isinstance(value, HardState):
            segment.appended = True
        if isinstance(value, Entry):
            block.min_written = min(block.min_written, value.index)
            self._last_index = value.index
            self._last_term = value.term
        elif isinstance(value, HardState):
            self._hard_state = value
        elif isinstance(value, SnapshotMarker):
            self._marker = value
            if value.discard_log or value.index > self._last_index:
                block.min_written = min(block.min_written, value.index + 1)
                self._last_index = value.index
                self._last_term = value.term
                # A fresh block right after the reset lets reads skip the dropped log.
                self._blocks.append(_Block(segment, end, value.index + 1, _NO_INDEX))
            elif value.index == self._last_index:
                self._last_term = value.term

    # --- reading -----------------------------------------------------------------------

    def read_entries(self, lo: int, hi: int) -> list[Entry]:
        """The entries with indexes ``lo <= i < hi``, read from disk.

        Raises ValueError unless ``1 <= lo <= hi <= last_index + 1``, and LookupError if the
        segments holding ``lo`` were deleted by compaction.
        """
        self._check_usable()
        if not 1 <= lo <= hi <= self._last_index + 1:
            raise ValueError(
                f"need 1 <= lo <= hi <= last_index + 1 = {self._last_index + 1}, "
                f"got lo={lo} hi={hi}"
            )
        if lo == hi:
            return []
        first = None
        for i in range(len(self._blocks) - 1, -1, -1):
            if self._blocks[i].next_index <= lo:
                first = i
                break
        if first is None:
            raise LookupError(f"entries from {lo} were compacted away")
        last = first
        lowest_after = _NO_INDEX
        for i in range(len(self._blocks) - 1, first, -1):
            lowest_after = min(lowest_after, self._blocks[i].min_written)
            if lowest_after < hi:
                last = i
                break
        window: dict[int, Entry] = {}
        for segment, start, end in self._byte_ranges(first, last):
            with open(segment.path, "rb") as f:
                f.seek(start)
                data = f.read(end - start)
            pos = 0
            while pos < len(data):
                parsed = _parse_at(data, pos)
                if isinstance(parsed, str):
                    raise WALCorruptionError(segment.path, start + pos, parsed)
                record_type, payload, pos = parsed
                if record_type is RecordType.HARD_STATE:
                    continue
                value = _decode(record_type, payload)
                # Where this record truncates the log (None: it does not).
                cut: int | None = None
                if isinstance(value, Entry):
                    cut = value.index
                elif isinstance(value, SnapshotMarker) and value.discard_log:
                    cut = value.index + 1
                if cut is not None and cut < hi:
                    for index in [k for k in window if k >= cut]:
                        del window[index]
                if isinstance(value, Entry) and lo <= value.index < hi:
                    window[value.index] = value
        result = [window[i] for i in range(lo, hi) if i in window]
        if len(result) != hi - lo:
            missing = next(i for i in range(lo, hi) if i not in window)
            raise WALCorruptionError(
                self._blocks[first].segment.path,
                self._blocks[first].start_offset,
                f"entry {missing} is missing from the log",
            )
        return result

    def _byte_ranges(self, first: int, last: int) -> list[tuple[_Segment, int, int]]:
        """Blocks ``first..last`` as (segment, start, end) byte ranges, one per segment."""
        ranges: list[tuple[_Segment, int, int]] = []
        for i in range(first, last + 1):
            block = self._blocks[i]
            following = self._blocks[i + 1] if i + 1 < len(self._blocks) else None
            end = (
                following.start_offset
                if following is not None and following.segment is block.segment
                else block.segment.size_bytes
            )
            if ranges and ranges[-1][0] is block.segment:
                ranges[-1] = (block.segment, ranges[-1][1], end)
            else:
                ranges.append((block.segment, block.start_offset, end))
        return ranges

    # --- compaction --------------------------------------------------------------------

    def delete_segments_through(self, index: int) -> list[Path]:
        """Delete every segment whose entries all sit at or below ``index`` (the snapshot's
        index); the active segment is always kept. Returns the deleted paths.

        The caller must have made the snapshot at ``index`` durable first.
        """
        self._check_usable()
        doomed: list[_Segment] = []
        for segment, following in zip(self._segments, self._segments[1:], strict=False):
            # The log ended at following.first_index - 1 when `following` began, so nothing
            # `segment` wrote is still live above that.
            if following.first_index - 1 <= index:
                doomed.append(segment)
            else:
                break
        if not doomed:
            return []
        for segment in doomed:
            os.unlink(segment.path)
        fsync_dir(self._dir)
        dead = {id(s) for s in doomed}
        self._segments = [s for s in self._segments if id(s) not in dead]
        self._blocks = [b for b in self._blocks if id(b.segment) not in dead]
        return [s.path for s in doomed]

    def close(self) -> None:
        """Release the file; later calls raise WALClosedError."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._failed is None:
            self._failed = WALClosedError("WAL closed")

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise WALClosedError(
                f"WAL in {self._dir} is unusable: {self._failed!r}"
            ) from self._failed

    # --- recovery ----------------------------------------------------------------------

    def _replay(self) -> WALRecovery:
        leftovers = sorted(self._dir.glob("*" + _TEMP_SUFFIX))
        for temp in leftovers:
            # A segment that never got its name was never acknowledged.
            log.info("removing unpublished WAL segment %s", temp)
            temp.unlink()
        if leftovers:
            fsync_dir(self._dir)
        found: list[tuple[int, int, Path]] = []
        for path in self._dir.iterdir():
            match = _SEGMENT_NAME.match(path.name)
            if match:
                found.append((int(match[1]), int(match[2]), path))
        found.sort()
        for (seq, _, path), (next_seq, _, _) in itertools.pairwise(found):
            if next_seq != seq + 1:
                raise WALCorruptionError(
                    path, 0, f"segment {seq + 1} is missing (next is {next_seq})"
                )
        records = 0
        torn: TornTail | None = None
        last_term_known = False
        for position, (seq, first_index, path) in enumerate(found):
            data = path.read_bytes()
            is_last = position == len(found) - 1
            if not self._segments:
                # The oldest surviving segment: earlier ones were compacted away.
                self._last_index = first_index - 1
            elif first_index != self._last_index + 1:
                raise WALCorruptionError(
                    path,
                    0,
                    f"segment says it starts at index {first_index}, "
                    f"but the log before it ends at {self._last_index}",
                )
            segment = _Segment(
                seq=seq, first_index=first_index, path=path, size_bytes=0, filled_bytes=len(data)
            )
            self._segments.append(segment)
            self._blocks.append(_Block(segment, 0, first_index, _NO_INDEX))
            pos = 0
            records_in_segment = 0
            while pos < len(data):
                parsed = _parse_at(data, pos)
                if isinstance(parsed, str):
                    if data.count(0, pos) == len(data) - pos:
                        break  # the zeros written ahead of the records: the clean end
                    if not is_last:
                        raise WALCorruptionError(path, pos, parsed)
                    valid_at = _valid_record_after(data, pos)
                    if valid_at is not None:
                        raise WALCorruptionError(
                            path, pos, f"{parsed}, yet a valid record follows at {valid_at}"
                        )
                    torn_end = len(data.rstrip(b"\x00"))
                    torn = self._cut_torn_tail(path, pos, torn_end - pos, parsed)
                    break
                record_type, payload, end = parsed
                try:
                    value = _decode(record_type, payload)
                except (ValueError, TypeError) as exc:
                    raise WALCorruptionError(path, pos, f"undecodable payload: {exc}") from exc
                if isinstance(value, Entry):
                    if value.index > self._last_index + 1 or value.index < 1:
                        raise WALCorruptionError(
                            path,
                            pos,
                            f"entry {value.index} leaves a gap after {self._last_index}",
                        )
                    last_term_known = True
                elif isinstance(value, SnapshotMarker) and (
                    value.discard_log or value.index >= self._last_index
                ):
                    last_term_known = True
                header_record = records_in_segment < 2 and not isinstance(value, Entry)
                appended_before = segment.appended
                self._note_written(segment, pos, end, value)
                # The header (hard state + marker) alone does not make a segment worth rolling.
                segment.appended = appended_before or not header_record
                records_in_segment += 1
                segment.size_bytes = end
                records += 1
                pos = end
        if not last_term_known and self._last_index > 0:
            path = found[0][2]
            raise WALCorruptionError(
                path, 0, f"cannot tell the term of the last entry {self._last_index}"
            )
        if torn is not None:
            log.warning(
                "WAL recovery cut a torn tail: %d bytes at offset %d of %s (%s)",
                torn.dropped_bytes,
                torn.offset,
                torn.path,
                torn.reason,
            )
        return WALRecovery(segments=len(found), records=records, torn_tail=torn)

    @staticmethod
    def _cut_torn_tail(path: Path, offset: int, dropped_bytes: int, reason: str) -> TornTail:
        # Zeroed rather than truncated: the file keeps its zero-filled length.
        fd = os.open(path, os.O_WRONLY)
        try:
            write_all(fd, bytes(dropped_bytes), offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        return TornTail(path=path, offset=offset, dropped_bytes=dropped_bytes, reason=reason)
