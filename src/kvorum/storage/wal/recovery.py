"""Opening the WAL: replay every segment, cut a torn tail, report corruption precisely.

Theory of operation: batches are replayed in order; each must be whole (header CRC, body CRC)
and carry the next sequence number. The first batch that is not — short, zeros, bad magic, a
checksum that fails, a sequence number out of place — is *bad*. If only zeros follow it, the
log simply ends there (the zeros written ahead of the batches). Otherwise the question is
whether this batch was ever synced:

* a batch is written at the end of the log and fsynced before anything depends on it, so a
  batch that was never synced is the *last* one: no valid batch with a later sequence number
  exists anywhere after it. Its remains — whatever subset of its sectors reached the disk,
  including a missing first sector with later sectors present, even records that look whole
  on their own — are a *torn tail*: never acknowledged, so cut (zeroed and fsynced) and
  reported in :class:`~kvorum.storage.wal.errors.TornTail`;
* a bad batch followed by a valid later batch (in the same segment or a later one — a segment
  is only ever followed by another after all its batches were synced) is damage to synced
  data: :class:`~kvorum.storage.wal.errors.WALCorruptionError`, with the file, the offset, and
  what the batch held per group when its header is still readable.

A bit flip inside the very last batch looks exactly like a torn write and is cut: no format
can tell them apart without a second copy, and that batch is the one a crash may legitimately
lose. The test-only :data:`~kvorum.storage.wal.faults.UNSAFE_DISABLE_TORN_TAIL_REPAIR` turns
every bad batch into corruption, to prove the tests that rely on the cut can fail.

Repair (only when the caller asks for it: a node whose peers can give lost entries back).
Corruption whose damage is *attributable* — the bad batch's header is whole, so its summary
says which groups lost which entries, and it carries the sequence number due, so it is the
batch that was written there — is quarantined instead of refused
(:mod:`kvorum.storage.wal.quarantine`): replay steps over it, the groups it touched are cut
back before their first lost entry (:mod:`kvorum.storage.wal.losses`) and fenced until their
node has fetched the entries again. The record of that is durable before the log is used, so
every later start replays around the same batch the same way. Damage that is not
attributable (an unreadable header), or whose loss peers cannot make good (a lost hard state
nothing repeats, a lost snapshot marker), is refused as before, and so is everything when
repair is not asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from kvorum.core.raft.repair import RepairFence
from kvorum.core.shape import GroupId
from kvorum.storage.fs import FileSystem
from kvorum.storage.wal import faults
from kvorum.storage.wal.errors import (
    LostGroupData,
    TornTail,
    WALCorruptionError,
    WALFormatError,
    WALRecovery,
)
from kvorum.storage.wal.frame import (
    BATCH_MAGIC,
    SEGMENT_MAGIC,
    BatchHeader,
    Checkpoint,
    RecordType,
    RunFlags,
    SnapshotMarker,
    check_body,
    iter_records,
    parse_batch,
    parse_header,
    record_checkpoint,
    record_hard_state,
    record_marker,
)
from kvorum.storage.wal.groups import GroupIndex
from kvorum.storage.wal.losses import LossTracker, Unrepairable
from kvorum.storage.wal.quarantine import (
    Quarantine,
    QuarantinedBatch,
    load_quarantine,
    save_quarantine,
)
from kvorum.storage.wal.segments import (
    SEGMENT_NAME,
    TEMP_SUFFIX,
    V1_SEGMENT_NAME,
    Segment,
    segment_name,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Recovered:
    segments: list[Segment]
    groups: dict[GroupId, GroupIndex]
    next_seq: int
    recovery: WALRecovery
    quarantine: Quarantine


def lost_of(header: BatchHeader) -> tuple[LostGroupData, ...]:
    """What a batch header says each group's run held."""
    return tuple(
        LostGroupData(
            group_id=s.group_id,
            first_index=s.first_index,
            last_index=s.last_index,
            hard_state=bool(s.flags & RunFlags.HARD_STATE),
            snapshot_marker=bool(s.flags & RunFlags.MARKER),
            checkpoint=bool(s.flags & RunFlags.CHECKPOINT),
        )
        for s in header.groups
    )


def _later_batch(data: bytes, pos: int, min_seq: int | None) -> tuple[int, int] | None:
    """(offset, seq) of a whole batch after ``pos`` numbered ``min_seq`` or later."""
    at = data.find(BATCH_MAGIC, pos + 1)
    while at != -1:
        parsed = parse_batch(data, at)
        if isinstance(parsed, BatchHeader) and (min_seq is None or parsed.seq >= min_seq):
            return at, parsed.seq
        at = data.find(BATCH_MAGIC, at + 1)
    return None


def _list_segments(fs: FileSystem, directory: Path) -> list[tuple[int, Path]]:
    names = fs.list_dir(directory)
    old = [n for n in names if V1_SEGMENT_NAME.match(n)]
    if old:
        raise WALFormatError(
            directory,
            old[0],
            "this directory holds a format-1 WAL, and this kvorum reads WAL format 2 only: "
            "move the node's data folder aside and let the node rejoin as a new member "
            "(README, 'Data format')",
        )
    leftovers = [n for n in names if n.endswith(TEMP_SUFFIX)]
    for name in leftovers:
        # A segment that never got its name was never acknowledged.
        log.info("removing unpublished WAL segment %s", directory / name)
        fs.unlink(directory / name, missing_ok=True)
    if leftovers:
        fs.fsync_dir(directory)
    found = []
    for name in names:
        match = SEGMENT_NAME.match(name)
        if match:
            found.append((int(match[1]), directory / name))
    found.sort()
    for (seq, path), (next_seq, _) in pairwise(found):
        if next_seq != seq + 1:
            raise WALCorruptionError(path, 0, f"segment {seq + 1} is missing (next is {next_seq})")
    return found


def _apply_batch(
    groups: dict[GroupId, GroupIndex],
    segment: Segment,
    data: bytes,
    pos: int,
    header: BatchHeader,
    *,
    block_bytes: int,
    losses: LossTracker,
) -> None:
    """Replay one whole batch; raises WALCorruptionError if it contradicts the log."""
    end = pos + header.frame_length
    for summary in header.groups:
        g = summary.group_id

        def bad(reason: str, summary_group: GroupId = g) -> WALCorruptionError:
            return WALCorruptionError(
                segment.path, pos, f"group {summary_group}: {reason}", batch_seq=header.seq
            )

        run_start = pos + summary.run_offset
        run_end = run_start + summary.run_length
        if summary.run_offset < header.header_length or run_end > end:
            raise bad("its run lies outside the batch")
        group = groups.get(g)
        checkpoint: Checkpoint | None = None
        marker: SnapshotMarker | None = None
        first = 0
        terms: list[int] = []
        try:
            records = list(iter_records(data, run_start, run_end))
        except ValueError as exc:
            raise bad(str(exc)) from exc
        for record in records:
            if record.group_id != g:
                raise bad(f"a record of group {record.group_id} inside its run")
            if record.record_type is RecordType.CHECKPOINT:
                checkpoint = record_checkpoint(record)
                if group is None:
                    group = groups[g] = GroupIndex()
                    group.apply_checkpoint(checkpoint)
                elif not losses.check_checkpoint(g, group, checkpoint):
                    raise bad(
                        f"the checkpoint says snapshot {checkpoint.snapshot_index}, last index "
                        f"{checkpoint.last_index}; the log before it says "
                        f"{group.snapshot_index}, {losses.end_of_log(g, group)}"
                    )
                continue
            if group is None:
                group = groups[g] = GroupIndex()
            if record.record_type is RecordType.MARKER:
                marker = record_marker(record)
                losses.apply_marker(g, group, marker)
            elif record.record_type is RecordType.ENTRY:
                index = record.a
                if not terms:
                    end_of_log = losses.end_of_log(g, group)
                    if index <= group.snapshot_index or index > end_of_log + 1:
                        raise bad(
                            f"entry {index} does not follow the log (snapshot "
                            f"{group.snapshot_index}, last index {end_of_log})"
                        )
                    first = index
                elif index != first + len(terms):
                    raise bad(f"entry {index} follows entry {first + len(terms) - 1}")
                terms.append(record.b)
            else:
                if terms:
                    if losses.keep_entries(g, group, first, terms):
                        group.apply_entries(
                            segment, pos, end, first=first, terms=terms, block_bytes=block_bytes
                        )
                    terms = []
                group.hard_state = record_hard_state(record)
                losses.hard_state_seen(g)
        if terms:
            assert group is not None
            if losses.keep_entries(g, group, first, terms):
                group.apply_entries(
                    segment, pos, end, first=first, terms=terms, block_bytes=block_bytes
                )


def _cut(fs: FileSystem, path: Path, offset: int, length: int) -> None:
    # Zeroed rather than truncated: the file keeps its zero-filled length.
    file = fs.open(path)
    try:
        file.pwrite(bytes(length), offset)
        file.fsync()
    finally:
        file.close()


def _refuse(directory: Path, batch: QuarantinedBatch, why: str) -> WALCorruptionError:
    """The error for a damaged batch that cannot be repaired: its original description."""
    path = directory / segment_name(batch.segment_seq)
    # batch.damage already reads "WAL corrupted in <path> at byte offset <n>: <reason>...".
    prefix = f"WAL corrupted in {path} at byte offset {batch.offset}: "
    reason = batch.damage.removeprefix(prefix)
    return WALCorruptionError(
        path,
        batch.offset,
        f"{reason}; it cannot be repaired from peers: {why}",
        lost=batch.lost,
        batch_seq=batch.batch_seq,
    )


def recover(
    fs: FileSystem, directory: Path, block_bytes: int, *, repair: bool = False
) -> Recovered:
    """Replay the WAL in ``directory`` (see the module docstring); with ``repair``, accept
    attributable damage and record it (:mod:`kvorum.storage.wal.quarantine`)."""
    found = _list_segments(fs, directory)
    quarantine = load_quarantine(fs, directory)
    if quarantine.fences and not repair:
        g, fence = min(quarantine.fences.items())
        raise WALCorruptionError(
            directory,
            0,
            f"{fence.damage}; group {g} has not yet fetched its lost entries "
            f"{fence.describe()} from its peers, and this node was opened without repair "
            "(start it as a cluster node to finish the repair)",
        )
    groups: dict[GroupId, GroupIndex] = {}
    losses = LossTracker(groups)
    segments: list[Segment] = []
    expected: int | None = None
    batches = 0
    torn: TornTail | None = None
    newly: list[QuarantinedBatch] = []
    newest_segment = found[-1][0] if found else 0

    def skip(batch: QuarantinedBatch, segment: Segment, position: int) -> None:
        base = position == 0 and batch.offset == len(SEGMENT_MAGIC)
        try:
            losses.lose(batch, base_of_log=base)
        except Unrepairable as exc:
            raise _refuse(directory, batch, exc.why) from exc
        segment.quarantined_until = batch.offset + batch.frame_length
        segment.records_end = segment.quarantined_until
        if not all(x.checkpoint for x in batch.lost):
            segment.has_data = True

    for position, (seq, path) in enumerate(found):
        data = fs.read_file(path)
        is_last = position == len(found) - 1
        if data[: len(SEGMENT_MAGIC)] != SEGMENT_MAGIC:
            raise WALCorruptionError(path, 0, "the file does not start with a segment preamble")
        segment = Segment(seq, path, records_end=len(SEGMENT_MAGIC), filled_bytes=len(data))
        segments.append(segment)
        pos = len(SEGMENT_MAGIC)
        while pos < len(data):
            known = quarantine.batch_at(seq, pos)
            if known is not None:
                if pos + known.frame_length > len(data):
                    raise _refuse(directory, known, "the segment is now shorter than it")
                skip(known, segment, position)
                pos += known.frame_length
                expected = known.batch_seq + 1
                continue
            header = parse_header(data, pos)
            if isinstance(header, str):
                reason: str | None = header
            else:
                reason = check_body(data, pos, header)
                if reason is None and expected is not None and header.seq != expected:
                    reason = f"batch sequence number {header.seq} where {expected} was due"
            if reason is None:
                assert isinstance(header, BatchHeader)
                _apply_batch(
                    groups, segment, data, pos, header, block_bytes=block_bytes, losses=losses
                )
                if not all(s.flags & RunFlags.CHECKPOINT for s in header.groups):
                    segment.has_data = True
                pos += header.frame_length
                segment.records_end = pos
                expected = header.seq + 1
                batches += 1
                continue
            if data.count(0, pos) == len(data) - pos:
                break  # the zeros written ahead of the batches: the clean end
            readable = header if isinstance(header, BatchHeader) else None
            lost = lost_of(readable) if readable is not None else None
            seq_of_bad = readable.seq if readable is not None else None
            later = _later_batch(data, pos, expected)
            synced = not is_last or later is not None
            if synced or faults.UNSAFE_DISABLE_TORN_TAIL_REPAIR:
                if later is not None:
                    reason += (
                        f", yet a valid later batch (sequence {later[1]}) follows at {later[0]}"
                    )
                elif not is_last:
                    reason += ", yet a later segment follows"
                if lost is None:
                    reason += "; its header is unreadable, so the groups affected are unknown"
                error = WALCorruptionError(path, pos, reason, lost=lost, batch_seq=seq_of_bad)
                attributable = (
                    readable is not None
                    and (expected is None or readable.seq == expected)
                    and pos + readable.frame_length <= len(data)
                )
                if not (repair and synced and attributable):
                    raise error
                assert readable is not None and lost is not None
                batch = QuarantinedBatch(
                    seq, pos, readable.frame_length, readable.seq, newest_segment, lost,
                    str(error),
                )
                skip(batch, segment, position)
                newly.append(batch)
                log.warning(
                    "%s: quarantined; what it held is fetched again from peers", error
                )
                pos += readable.frame_length
                expected = readable.seq + 1
                continue
            dropped = len(data.rstrip(b"\x00")) - pos
            _cut(fs, path, pos, dropped)
            torn = TornTail(path, pos, dropped, reason, lost)
            log.warning(
                "WAL recovery cut a torn tail: %d bytes at offset %d of %s (%s)",
                dropped,
                pos,
                path,
                reason,
            )
            break
    if segments:
        for g, group in groups.items():
            if group.last_index > group.snapshot_index:
                covered = group.covered_from()
                if covered > group.snapshot_index + 1:
                    first, last = group.snapshot_index + 1, covered - 1
                    raise WALCorruptionError(
                        segments[0].path,
                        0,
                        f"group {g}: entries {first}..{last} are in no segment",
                        lost=(LostGroupData(g, first, last, False, False, False),),
                    )
    try:
        new_fences = losses.fences({b.batch_seq for b in newly})
    except Unrepairable as exc:
        raise _refuse(directory, exc.batch, exc.why) from exc
    changed = _settle_fences(quarantine, groups, new_fences)
    if newly:
        quarantine.batches.extend(newly)
    if segments and quarantine.forget_segments_before(segments[0].seq):
        changed = True
    if newly or changed:
        save_quarantine(fs, directory, quarantine)
    next_seq = expected if expected is not None else 1
    recovery = WALRecovery(len(found), batches, torn, tuple(newly))
    return Recovered(segments, groups, next_seq, recovery, quarantine)


def _settle_fences(
    quarantine: Quarantine,
    groups: dict[GroupId, GroupIndex],
    new_fences: dict[GroupId, RepairFence],
) -> bool:
    """Merge this replay's new fences into the record's, and drop every fence the log
    already satisfies; True if the record changed."""
    changed = False
    for g, fresh in new_fences.items():
        old = quarantine.fences.get(g)
        # Damage again before the first was repaired: wait for both.
        quarantine.fences[g] = fresh if old is None else RepairFence(
            fresh.lost_from,
            max(old.acknowledged_index, fresh.acknowledged_index),
            max(old.fence_term, fresh.fence_term),
            f"{old.damage}; then {fresh.damage}",
        )
        changed = True
    for g, fence in list(quarantine.fences.items()):
        group = groups.get(g)
        if group is not None and fence.satisfied_by(group.last_index, group.last_term):
            del quarantine.fences[g]
            changed = True
    return changed
