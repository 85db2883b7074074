"""The WAL's bytes: segment preamble, batch frames, and the records inside a batch.

Theory of operation: every sync writes one *batch frame*, a header then a body::

    header  BATCH_MAGIC(4) | seq:u64 | body_length:u32 | body_crc:u32 | group_count:u32
            | group_count x summary | header_crc:u32
    summary group_id:u64 | first_index:u64 | last_index:u64 | flags:u8
            | run_offset:u32 | run_length:u32
    body    the groups' runs, one after another; a run is one group's records in the order
            MARKER?, ENTRY*, HARD_STATE? (or CHECKPOINT, HARD_STATE in a checkpoint batch)
    record  type:u8 | group_id:u64 | a:u64 | b:u64 | payload_length:u32 | payload

(little-endian). ``header_crc`` is the CRC32C of the header before it, ``body_crc`` that of
the body. The summary says per group which entries the batch carries (``first_index`` ..
``last_index``, 0 .. 0 if none) and whether it carries a hard state, a snapshot marker or a
checkpoint — so a batch whose body is damaged can still say what it held — and where the
group's run sits in the body, so a group's entries are read without walking other groups'.
``seq`` numbers batches 1, 2, 3, ... across segments; recovery tells a torn tail from
corruption by it (see :mod:`kvorum.storage.wal.recovery`).

Records: ENTRY ``a`` = index, ``b`` = term, payload = kind byte + data; HARD_STATE ``a`` =
term, ``b`` = commit, payload = vote + 1 as u64 (0: no vote); MARKER ``a`` = index, ``b`` =
term, payload = discard byte; CHECKPOINT ``a`` = snapshot index, ``b`` = snapshot term,
payload = last index, last term (u64 each). Fixed fields let replay rebuild its indexes
without decoding any entry's data.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag

import crc32c

from kvorum.core.raft.messages import Entry, EntryKind, HardState
from kvorum.core.shape import GroupId

SEGMENT_MAGIC = b"KVWAL\x00\x02\n"
"""The first 8 bytes of every format-2 segment file."""
BATCH_MAGIC = b"KVB2"

_HEADER = struct.Struct("<4sQIII")
"""magic, seq, body length, body CRC32C, group count."""
_SUMMARY = struct.Struct("<QQQBII")
"""group id, first entry index, last entry index, flags, run offset, run length."""
_CRC = struct.Struct("<I")
_RECORD = struct.Struct("<BQQQI")
"""type, group id, a, b, payload length."""
_U64 = struct.Struct("<Q")
_U64_PAIR = struct.Struct("<QQ")

_KIND_BYTES = {kind: bytes((kind,)) for kind in EntryKind}

MAX_GROUPS_PER_BATCH = 1 << 22
"""A header claiming more groups than this is garbage, not a header."""


class RecordType(IntEnum):
    ENTRY = 1
    HARD_STATE = 2
    MARKER = 3
    CHECKPOINT = 4


class RunFlags(IntFlag):
    HARD_STATE = 1
    MARKER = 2
    CHECKPOINT = 4


@dataclass(frozen=True, slots=True)
class SnapshotMarker:
    """Entries up to ``index`` (whose term is ``term``) are held by a snapshot.

    With ``discard_log`` every entry in the group's log is dropped and the log continues at
    ``index + 1`` (a follower installed a snapshot its own log does not match).
    """

    index: int
    term: int
    discard_log: bool = False


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A group's state as a segment begins, so that older segments can be deleted."""

    snapshot_index: int
    snapshot_term: int
    last_index: int
    last_term: int


@dataclass(frozen=True, slots=True)
class GroupWrite:
    """What one batch writes for one group, in this order: marker, entries, hard state."""

    group_id: GroupId
    marker: SnapshotMarker | None = None
    entries: Sequence[Entry] = ()
    hard_state: HardState | None = None
    checkpoint: Checkpoint | None = None


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """What a batch header says about one group's run."""

    group_id: GroupId
    first_index: int
    last_index: int
    flags: RunFlags
    run_offset: int
    """Where the run starts, from the start of the frame."""
    run_length: int


@dataclass(frozen=True, slots=True)
class BatchHeader:
    seq: int
    body_length: int
    body_crc: int
    groups: tuple[GroupSummary, ...]
    header_length: int

    @property
    def frame_length(self) -> int:
        return self.header_length + self.body_length


@dataclass(frozen=True, slots=True)
class Record:
    record_type: RecordType
    group_id: GroupId
    a: int
    b: int
    payload: bytes


def _encode_run(write: GroupWrite, out: list[bytes]) -> int:
    """Append ``write``'s records to ``out``; returns their byte count."""
    g = write.group_id
    size = 0
    if write.checkpoint is not None:
        c = write.checkpoint
        payload = _U64_PAIR.pack(c.last_index, c.last_term)
        out.append(_RECORD.pack(RecordType.CHECKPOINT, g, c.snapshot_index, c.snapshot_term, 16))
        out.append(payload)
        size += _RECORD.size + 16
    if write.marker is not None:
        m = write.marker
        out.append(_RECORD.pack(RecordType.MARKER, g, m.index, m.term, 1))
        out.append(b"\x01" if m.discard_log else b"\x00")
        size += _RECORD.size + 1
    pack = _RECORD.pack
    entry_type = RecordType.ENTRY
    for e in write.entries:
        out.append(pack(entry_type, g, e.index, e.term, len(e.data) + 1))
        out.append(_KIND_BYTES[e.kind])
        out.append(e.data)
        size += _RECORD.size + 1 + len(e.data)
    if write.hard_state is not None:
        hs = write.hard_state
        vote = 0 if hs.vote is None else hs.vote + 1
        out.append(_RECORD.pack(RecordType.HARD_STATE, g, hs.term, hs.commit, 8))
        out.append(_U64.pack(vote))
        size += _RECORD.size + 8
    return size


def encode_batch(seq: int, writes: Sequence[GroupWrite]) -> bytes:
    """One batch frame holding ``writes`` (one per group, in order)."""
    header_length = _HEADER.size + _SUMMARY.size * len(writes) + _CRC.size
    body: list[bytes] = []
    summaries: list[bytes] = []
    pack_summary = _SUMMARY.pack
    offset = header_length
    for write in writes:
        length = _encode_run(write, body)
        flags = 0
        if write.hard_state is not None:
            flags |= RunFlags.HARD_STATE.value
        if write.marker is not None:
            flags |= RunFlags.MARKER.value
        if write.checkpoint is not None:
            flags |= RunFlags.CHECKPOINT.value
        entries = write.entries
        first = entries[0].index if entries else 0
        last = entries[-1].index if entries else 0
        summaries.append(pack_summary(write.group_id, first, last, flags, offset, length))
        offset += length
    body_bytes = b"".join(body)
    fixed = _HEADER.pack(BATCH_MAGIC, seq, len(body_bytes), crc32c.crc32c(body_bytes), len(writes))
    header = fixed + b"".join(summaries)
    return header + _CRC.pack(crc32c.crc32c(header)) + body_bytes


def parse_header(data: bytes | memoryview, pos: int) -> BatchHeader | str:
    """The batch header at ``pos``, or why there is none."""
    end = len(data)
    if end - pos < _HEADER.size:
        return "short batch header"
    magic, seq, body_length, body_crc, count = _HEADER.unpack_from(data, pos)
    if magic != BATCH_MAGIC:
        if bytes(data[pos : pos + _HEADER.size]).count(0) == _HEADER.size:
            return "zeros where a batch header should be"
        return "no batch magic where a batch header should be"
    if count > MAX_GROUPS_PER_BATCH:
        return f"impossible group count {count}"
    header_length = _HEADER.size + _SUMMARY.size * count + _CRC.size
    if end - pos < header_length:
        return "batch header runs past the end of the file"
    (header_crc,) = _CRC.unpack_from(data, pos + header_length - _CRC.size)
    if crc32c.crc32c(data[pos : pos + header_length - _CRC.size]) != header_crc:
        return "batch header CRC mismatch"
    groups = []
    at = pos + _HEADER.size
    for _ in range(count):
        g, first, last, flags, run_offset, run_length = _SUMMARY.unpack_from(data, at)
        groups.append(GroupSummary(g, first, last, RunFlags(flags), run_offset, run_length))
        at += _SUMMARY.size
    return BatchHeader(seq, body_length, body_crc, tuple(groups), header_length)


def check_body(data: bytes | memoryview, pos: int, header: BatchHeader) -> str | None:
    """Why the body of the batch at ``pos`` is bad, or None if it is whole."""
    start = pos + header.header_length
    end = start + header.body_length
    if end > len(data):
        return f"batch body of {header.body_length} bytes runs past the end of the file"
    if crc32c.crc32c(data[start:end]) != header.body_crc:
        return "batch body CRC mismatch"
    return None


def parse_batch(data: bytes | memoryview, pos: int) -> BatchHeader | str:
    """The whole, checksum-valid batch at ``pos`` (its header), or why it is not one."""
    header = parse_header(data, pos)
    if isinstance(header, str):
        return header
    bad_body = check_body(data, pos, header)
    return header if bad_body is None else bad_body


def iter_records(data: bytes | memoryview, start: int, end: int) -> Iterator[Record]:
    """The records in ``data[start:end]`` (a checksum-valid body or run). ValueError if they
    do not tile it exactly — a writer's bug, since the checksum matched."""
    pos = start
    while pos < end:
        if end - pos < _RECORD.size:
            raise ValueError(f"short record at {pos}")
        record_type, group, a, b, length = _RECORD.unpack_from(data, pos)
        pos += _RECORD.size
        if pos + length > end or record_type not in RecordType._value2member_map_:
            raise ValueError(f"malformed record at {pos - _RECORD.size}")
        yield Record(RecordType(record_type), group, a, b, bytes(data[pos : pos + length]))
        pos += length


def record_entry(record: Record) -> Entry:
    payload = record.payload
    return Entry(term=record.b, index=record.a, data=payload[1:], kind=EntryKind(payload[0]))


def record_hard_state(record: Record) -> HardState:
    (vote,) = _U64.unpack(record.payload)
    return HardState(term=record.a, vote=None if vote == 0 else vote - 1, commit=record.b)


def record_marker(record: Record) -> SnapshotMarker:
    return SnapshotMarker(record.a, record.b, discard_log=record.payload == b"\x01")


def record_checkpoint(record: Record) -> Checkpoint:
    last_index, last_term = _U64_PAIR.unpack(record.payload)
    return Checkpoint(record.a, record.b, last_index, last_term)
