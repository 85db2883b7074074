"""Repair of attributable WAL damage: quarantine, the groups cut back and fenced, never again.

A synced batch with a whole header but a damaged body, followed by a valid later batch, is
opened (with ``repair=True``) by cutting each group it touched back before its first lost
entry, reporting a fence per group, and recording the quarantine durably so that the next
open neither finds the damage again nor forgets the fence. What peers cannot give back (a
hard state nothing repeats, a snapshot marker, an unreadable header) is refused as before.
A seeded random comparison checks the replay rules against a reference log, and a power cut
at every step of a repairing open checks that the record is crash-safe.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from kvorum.core.raft import RepairFence
from kvorum.core.raft.messages import Entry, HardState
from kvorum.sim.disk import SimFileSystem, SimulatedPowerCut
from kvorum.storage.fs import FileSystem
from kvorum.storage.node_log import DurableNodeLog
from kvorum.storage.wal import WAL, GroupWrite, SnapshotMarker, WALCorruptionError
from kvorum.storage.wal.frame import SEGMENT_MAGIC, BatchHeader, parse_batch
from kvorum.storage.wal.quarantine import QUARANTINE_NAME

D = Path("/node/wal")


def entry(index: int, term: int = 1, group: int = 0) -> Entry:
    return Entry(term=term, index=index, data=f"g{group}e{index}t{term}".encode().ljust(24, b"."))


def _flip(fs: FileSystem | None, path: Path, offset: int) -> None:
    """Damage one synced byte (bit rot)."""
    if fs is None:
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x40
        path.write_bytes(bytes(data))
        return
    file = fs.open(path)
    byte = file.pread(1, offset)
    file.pwrite(bytes([byte[0] ^ 0x40]), offset)
    file.fsync()
    file.close()


def _three_batches(tmp_path: Path) -> tuple[Path, list[int]]:
    """Batch i writes group 1's entry i with a hard state, and group 2's entries 2i-1, 2i."""
    wal = WAL(tmp_path)
    starts = []
    for i in range(1, 4):
        starts.append(wal.segment_ends[0])
        wal.write_batch(
            [
                GroupWrite(1, entries=[entry(i, group=1)], hard_state=HardState(1, 1, i)),
                GroupWrite(2, entries=[entry(2 * i - 1, group=2), entry(2 * i, group=2)]),
            ]
        )
    (segment,) = wal.segment_paths
    wal.close()
    return segment, starts


def _damage_batch_two(tmp_path: Path) -> tuple[Path, list[int], bytes]:
    segment, starts = _three_batches(tmp_path)
    _flip(None, segment, starts[2] - 10)  # inside batch 2's body; batch 3 is whole
    return segment, starts, segment.read_bytes()


def test_a_damaged_middle_batch_cuts_the_groups_back_and_fences_them(tmp_path: Path) -> None:
    segment, starts, damaged = _damage_batch_two(tmp_path)
    wal = WAL(tmp_path, repair=True)
    (quarantined,) = wal.recovery.quarantined
    assert (quarantined.offset, quarantined.batch_seq) == (starts[1], 3)
    assert f"WAL corrupted in {segment} at byte offset {starts[1]}" in quarantined.damage
    # Group 1 lost entry 2; entry 3 (batch 3) followed it, so it goes too. Its lost hard
    # state is repeated by batch 3's, so the term and vote are known.
    g1 = wal.group(1)
    assert (g1.last_index, g1.hard_state) == (1, HardState(1, 1, 3))
    assert wal.read_entries(1, 1, 2) == [entry(1, group=1)]
    # Group 2 lost 3..4; 5..6 followed them.
    assert wal.group(2).last_index == 2
    assert wal.read_entries(2, 1, 3) == [entry(1, group=2), entry(2, group=2)]
    assert wal.repair_fences() == {
        1: RepairFence(lost_from=2, acknowledged_index=3, fence_term=1),
        # No hard state was ever written for group 2: its entries' term stands in.
        2: RepairFence(lost_from=3, acknowledged_index=6, fence_term=1),
    }
    fence = wal.repair_fence(1)
    assert fence is not None and f"byte offset {starts[1]}" in fence.damage
    wal.close()
    assert segment.read_bytes() == damaged  # the segment is left as it was: only recorded
    assert (tmp_path / QUARANTINE_NAME).exists()


def test_the_repair_is_not_replayed_on_the_next_open(tmp_path: Path) -> None:
    _damage_batch_two(tmp_path)
    WAL(tmp_path, repair=True).close()
    again = WAL(tmp_path, repair=True)
    assert again.recovery.quarantined == ()
    assert [b.batch_seq for b in again.quarantined_batches] == [3]
    assert set(again.repair_fences()) == {1, 2}
    assert (again.group(1).last_index, again.group(2).last_index) == (1, 2)
    # The next batch numbers on after the last whole one.
    assert again.next_seq == 5


def test_writes_after_the_repair_replay_and_lift_the_fence_durably(tmp_path: Path) -> None:
    _damage_batch_two(tmp_path)
    wal = WAL(tmp_path, repair=True)
    wal.write_batch([GroupWrite(1, entries=[entry(2, group=1)], hard_state=HardState(1, 1, 2))])
    assert wal.repair_fence(1) is not None  # index 2 < acknowledged 3
    wal.close()
    wal = WAL(tmp_path, repair=True)
    assert wal.read_entries(1, 1, 3) == [entry(1, group=1), entry(2, group=1)]
    assert wal.repair_fence(1) is not None
    wal.write_batch([GroupWrite(1, entries=[entry(3, group=1)])])
    assert wal.repair_fence(1) is None  # lifted as soon as the batch is durable
    wal.write_batch([GroupWrite(2, entries=[entry(3, term=2, group=2)])])
    assert wal.repair_fences() == {}  # a newer term's entry is enough (see core.raft.repair)
    wal.close()
    again = WAL(tmp_path)  # nothing left to repair: opens without repair too
    assert again.repair_fences() == {}
    assert again.read_entries(1, 1, 4) == [entry(i, group=1) for i in (1, 2, 3)]
    assert again.read_entries(2, 3, 4) == [entry(3, term=2, group=2)]
    record = json.loads((tmp_path / QUARANTINE_NAME).read_text())
    assert record["body"]["fences"] == [] and len(record["body"]["batches"]) == 1


def test_an_unfinished_repair_is_refused_without_repair(tmp_path: Path) -> None:
    segment, starts, _ = _damage_batch_two(tmp_path)
    WAL(tmp_path, repair=True).close()
    with pytest.raises(WALCorruptionError, match="has not yet fetched its lost entries") as got:
        WAL(tmp_path)
    assert f"{segment} at byte offset {starts[1]}" in str(got.value)


def test_without_repair_the_damage_is_refused_as_before(tmp_path: Path) -> None:
    segment, _, damaged = _damage_batch_two(tmp_path)
    with pytest.raises(WALCorruptionError, match="a valid later batch"):
        WAL(tmp_path)
    assert not (tmp_path / QUARANTINE_NAME).exists()
    assert segment.read_bytes() == damaged


def test_a_lost_hard_state_that_nothing_repeats_is_refused(tmp_path: Path) -> None:
    wal = WAL(tmp_path)
    starts = []
    for i in range(1, 4):
        starts.append(wal.segment_ends[0])
        writes = [GroupWrite(2, entries=[entry(i, group=2)])]
        if i == 2:  # group 1's only hard state with its vote, then nothing more for it
            writes.insert(0, GroupWrite(1, hard_state=HardState(term=7, vote=3, commit=0)))
        wal.write_batch(writes)
    (segment,) = wal.segment_paths
    wal.close()
    _flip(None, segment, starts[2] - 5)
    with pytest.raises(WALCorruptionError) as got:
        WAL(tmp_path, repair=True)
    message = str(got.value)
    assert message.startswith(f"WAL corrupted in {segment} at byte offset {starts[1]}")
    assert "cannot be repaired from peers" in message and "hard state" in message
    assert not (tmp_path / QUARANTINE_NAME).exists()


def test_an_unreadable_header_is_refused_even_with_repair(tmp_path: Path) -> None:
    segment, starts = _three_batches(tmp_path)
    _flip(None, segment, starts[1] + 6)  # the sequence number: the header's CRC fails
    with pytest.raises(WALCorruptionError, match="groups affected are unknown"):
        WAL(tmp_path, repair=True)


def test_a_lost_snapshot_marker_is_refused(tmp_path: Path) -> None:
    wal = WAL(tmp_path)
    starts = []
    for i in range(1, 4):
        starts.append(wal.segment_ends[0])
        marker = SnapshotMarker(i - 1, 1) if i == 2 else None
        wal.write_batch([GroupWrite(1, marker=marker, entries=[entry(i, group=1)])])
    (segment,) = wal.segment_paths
    wal.close()
    _flip(None, segment, starts[2] - 5)
    with pytest.raises(WALCorruptionError, match="snapshot marker"):
        WAL(tmp_path, repair=True)


def test_a_torn_tail_is_still_cut_with_repair(tmp_path: Path) -> None:
    segment, starts = _three_batches(tmp_path)
    _flip(None, segment, starts[2] + 60)  # the last batch: a torn write, never acknowledged
    wal = WAL(tmp_path, repair=True)
    assert wal.recovery.torn_tail is not None and wal.recovery.quarantined == ()
    assert wal.repair_fences() == {}
    assert (wal.group(1).last_index, wal.group(2).last_index) == (2, 4)


def _segments_of(wal: WAL) -> list[tuple[Path, int, int]]:
    """(path, where the first batch after the checkpoint ends, records end) of each
    segment: flipping a byte just before the middle value damages that batch's body."""
    out = []
    for path, end in zip(wal.segment_paths, wal.segment_ends, strict=True):
        data = path.read_bytes()
        checkpoint = parse_batch(data, len(SEGMENT_MAGIC))
        assert isinstance(checkpoint, BatchHeader)
        first = len(SEGMENT_MAGIC) + checkpoint.frame_length
        batch = parse_batch(data, first)
        assert isinstance(batch, BatchHeader)
        out.append((path, first + batch.frame_length, end))
    return out


def _frame_length(path: Path, offset: int) -> int:
    header = parse_batch(path.read_bytes(), offset)
    assert isinstance(header, BatchHeader)
    return header.frame_length


def test_damage_in_a_sealed_segment_then_checkpoints_before_and_after_the_repair(
    tmp_path: Path,
) -> None:
    wal = WAL(tmp_path, segment_bytes=1024)
    for i in range(1, 41):
        wal.write_batch(
            [GroupWrite(1, entries=[entry(i, group=1)], hard_state=HardState(1, 2, i - 1))]
        )
    segments = _segments_of(wal)
    wal.close()
    assert len(segments) >= 4
    path, first_batch_end, _ = segments[1]
    _flip(None, path, first_batch_end - 3)  # the first batch after segment 2's checkpoint
    wal = WAL(tmp_path, segment_bytes=1024, repair=True)
    fence = wal.repair_fence(1)
    assert fence is not None and fence.acknowledged_index == 40
    lost_from = fence.lost_from
    assert wal.group(1).last_index == lost_from - 1
    # Later segments' checkpoints (written before the damage) describe the unrepaired log and
    # are accepted; now roll over so that a checkpoint of the repaired log follows too.
    for i in range(lost_from, lost_from + 30):
        wal.write_batch([GroupWrite(1, entries=[entry(i, term=2, group=1)])])
    assert wal.repair_fences() == {}
    wal.close()
    again = WAL(tmp_path, segment_bytes=1024, repair=True)
    last = lost_from + 29
    assert again.group(1).last_index == last
    assert again.read_entries(1, lost_from, last + 1)[0] == entry(lost_from, term=2, group=1)


def test_a_lost_checkpoint_of_a_later_segment_costs_nothing(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=1024)
    for i in range(1, 31):
        wal.write_batch(
            [GroupWrite(1, entries=[entry(i, group=1)], hard_state=HardState(1, 2, i - 1))]
        )
    segments = _segments_of(wal)
    wal.close()
    path, first_batch_end, _ = segments[1]
    checkpoint_end = len(SEGMENT_MAGIC) + _frame_length(path, len(SEGMENT_MAGIC))
    assert checkpoint_end < first_batch_end
    _flip(None, path, checkpoint_end - 3)  # inside the body of segment 2's checkpoint batch
    wal = WAL(tmp_path, segment_bytes=1024, repair=True)
    assert len(wal.recovery.quarantined) == 1
    assert wal.repair_fences() == {} and wal.group(1).last_index == 30
    assert [e.index for e in wal.read_entries(1, 1, 31)] == list(range(1, 31))


def test_segments_pinned_by_a_quarantined_batch_are_deleted_together(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=1024)
    for i in range(1, 31):
        wal.write_batch([GroupWrite(1, entries=[entry(i, group=1)])])
        wal.write_batch([GroupWrite(2, entries=[entry(i, group=2)])])
    segments = _segments_of(wal)
    wal.close()
    path, first_batch_end, _ = segments[0]
    _flip(None, path, first_batch_end - 3)  # a batch of group 1 in the oldest segment
    wal = WAL(tmp_path, segment_bytes=1024, repair=True)
    pinned = len(wal.segment_paths)
    # Group 2 snapshots everything; group 1 writes on past the fence and snapshots too.
    lost_from = wal.group(1).last_index + 1
    wal.write_batch([GroupWrite(2, marker=SnapshotMarker(30, 1))])
    assert len(wal.segment_paths) == pinned  # group 1 still needs the oldest segment
    wal.write_batch(
        [GroupWrite(1, entries=[entry(i, term=2, group=1) for i in range(lost_from, 31)])]
    )
    wal.write_batch([GroupWrite(1, marker=SnapshotMarker(30, 2))])
    # Every segment from the damaged one through the one active at the repair went at once.
    assert len(wal.segment_paths) == 1
    wal.close()
    again = WAL(tmp_path, segment_bytes=1024, repair=True)
    assert again.quarantined_batches == []  # forgotten with its segment
    assert (again.group(1).snapshot_index, again.group(2).snapshot_index) == (30, 30)


def test_a_durable_node_log_fences_the_group_and_lifts_it_after_sync(tmp_path: Path) -> None:
    _damage_batch_two(tmp_path / "wal")
    node = DurableNodeLog(tmp_path, repair_from_peers=True)
    log = node.group(1)
    assert log.repair_fence == RepairFence(2, 3, 1)
    assert log.last_index == 1 and set(node.repair_fences()) == {1, 2}
    log.stage(None, [entry(2, group=1), entry(3, group=1)])
    assert log.repair_fence is not None  # staged is not durable
    node.sync()
    assert node.group(1).repair_fence is None and node.group(2).repair_fence is not None
    node.close()


# --- crash safety ------------------------------------------------------------------------------


def _sim_wal_with_damage(seed: int) -> tuple[SimFileSystem, list[int]]:
    fs = SimFileSystem(random.Random(seed))
    wal = WAL(D, fs=fs)
    starts = []
    for i in range(1, 5):
        starts.append(wal.segment_ends[0])
        wal.write_batch(
            [
                GroupWrite(1, entries=[entry(i, group=1)], hard_state=HardState(1, 1, i)),
                GroupWrite(2, entries=[entry(i, group=2)], hard_state=HardState(1, 1, i)),
            ]
        )
    (segment,) = wal.segment_paths
    wal.close()
    _flip(fs, segment, starts[2] - 10)  # batch 2 (entries 2 of each group)
    return fs, starts


@pytest.mark.parametrize("seed", range(3))
def test_a_power_cut_at_any_step_of_a_repair_leaves_the_same_repair(seed: int) -> None:
    cut_at = 1
    while True:
        fs, _ = _sim_wal_with_damage(seed)
        fs.crash_after_ops = cut_at
        try:
            wal = WAL(D, fs=fs, repair=True)
            wal.write_batch([GroupWrite(1, entries=[entry(2, term=2, group=1)])])
            wal.close()
            finished = True
        except SimulatedPowerCut:
            finished = False
        fs.crash_after_ops = None
        fs.crash()
        wal = WAL(D, fs=fs, repair=True)
        # Whatever step the power cut hit, the repair comes out the same: group 2 is cut back
        # to entry 1 and fenced; group 1 too, unless its post-repair write became durable
        # (which lifted its fence: a newer term).
        assert wal.group(2).last_index == 1
        assert wal.repair_fence(2) == RepairFence(2, 4, 1)
        g1 = wal.group(1)
        if g1.last_index == 2:
            assert wal.read_entries(1, 2, 3) == [entry(2, term=2, group=1)]
            assert wal.repair_fence(1) is None
        else:
            assert g1.last_index == 1 and wal.repair_fence(1) == RepairFence(2, 4, 1)
        wal.close()
        if finished:
            break
        cut_at += 1
    assert cut_at > 3


# --- the replay rules against a reference ------------------------------------------------------


def _random_history(
    rng: random.Random, fs: SimFileSystem
) -> tuple[list[int], dict[int, list[Entry]], dict[int, HardState]]:
    """Write a random history of appends, truncations and hard states for three groups.
    Returns the batches' offsets and each group's reference log and hard state."""
    wal = WAL(D, fs=fs)
    logs: dict[int, list[Entry]] = {g: [] for g in (1, 2, 3)}
    terms = dict.fromkeys(logs, 1)
    hard: dict[int, HardState] = {}
    starts = []
    for _ in range(rng.randrange(4, 14)):
        writes = []
        for g in sorted(rng.sample(sorted(logs), rng.randrange(1, 4))):
            log = logs[g]
            ents: list[Entry] = []
            hs = None
            if rng.random() < 0.8:
                if log and rng.random() < 0.3:
                    cut = rng.randrange(1, len(log) + 1)  # a new leader replaces a suffix
                    terms[g] += 1
                else:
                    cut = len(log) + 1
                ents = [entry(i, terms[g], g) for i in range(cut, cut + rng.randrange(1, 4))]
                del log[cut - 1 :]
                log.extend(ents)
            new_term = hard.get(g, HardState()).term != terms[g]
            if rng.random() < 0.5 or not ents or new_term:  # Raft persists a new term at once
                hs = HardState(terms[g], rng.choice([None, 1, 2]), 0)
                hard[g] = hs
            writes.append(GroupWrite(g, entries=ents, hard_state=hs))
        starts.append(wal.segment_ends[0])
        wal.write_batch(writes)
    wal.close()
    return starts, logs, hard


@pytest.mark.parametrize("seed", range(60))
def test_repair_leaves_a_prefix_of_the_true_log_and_fences_up_to_its_end(seed: int) -> None:
    rng = random.Random(seed)
    fs = SimFileSystem(rng)
    starts, logs, hard = _random_history(rng, fs)
    (segment,) = [D / n for n in fs.list_dir(D) if n.endswith(".wal")]
    victim = rng.randrange(0, len(starts) - 1)  # never the last batch: that is a torn tail
    _flip(fs, segment, starts[victim + 1] - 3)  # the victim's last body byte
    try:
        wal = WAL(D, fs=fs, repair=True)
    except WALCorruptionError as exc:
        # Only a hard state that nothing later repeats may stop the repair.
        assert "hard state" in str(exc), exc
        return
    for g, log in logs.items():
        if g not in wal.group_ids():
            continue
        group = wal.group(g)
        assert group.hard_state == hard.get(g, HardState())
        kept = wal.read_entries(g, 1, group.last_index + 1)
        assert kept == log[: group.last_index]
        fence = wal.repair_fence(g)
        if fence is None:
            assert group.last_index == len(log)
        else:
            assert (fence.lost_from, fence.acknowledged_index) == (group.last_index + 1, len(log))
            assert fence.fence_term == hard[g].term
