"""The format-2 WAL: batches for many groups, group commit, segments, torn tails, corruption."""

from __future__ import annotations

import errno
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvorum.core.raft.messages import Entry, EntryKind, HardState
from kvorum.sim.disk import SECTOR_BYTES, SimFileSystem
from kvorum.storage.contracts import DiskFullError
from kvorum.storage.wal import (
    WAL,
    GroupWrite,
    SnapshotMarker,
    WALClosedError,
    WALCorruptionError,
    WALFormatError,
    faults,
)
from kvorum.storage.wal.frame import SEGMENT_MAGIC

D = Path("/node/wal")


def entry(index: int, term: int = 1, size: int = 20, group: int = 0) -> Entry:
    return Entry(term=term, index=index, data=f"g{group}e{index}t{term}".encode().ljust(size, b"."))


def append(wal: WAL, groups: tuple[int, ...], index: int, *, term: int = 1, size: int = 20) -> None:
    wal.write_batch(
        [
            GroupWrite(
                g,
                entries=[entry(index, term, size, g)],
                hard_state=HardState(term=term, vote=1, commit=index - 1),
            )
            for g in groups
        ]
    )


def sim(seed: int = 1) -> SimFileSystem:
    return SimFileSystem(random.Random(seed))


@pytest.fixture
def count_fdatasync(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    calls: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return lambda: len(calls)


@pytest.fixture
def unsafe_no_torn_tail_repair() -> Iterator[None]:
    faults.UNSAFE_DISABLE_TORN_TAIL_REPAIR = True
    try:
        yield
    finally:
        faults.UNSAFE_DISABLE_TORN_TAIL_REPAIR = False


def test_round_trip_of_many_groups_survives_reopen(tmp_path: Path) -> None:
    wal = WAL(tmp_path)
    kinds = [Entry(1, 1, b"a"), Entry(1, 2, b"", EntryKind.CONF_CHANGE), Entry(2, 3, b"\x00")]
    wal.write_batch(
        [
            GroupWrite(7, entries=kinds, hard_state=HardState(term=2, vote=3, commit=2)),
            GroupWrite(3, hard_state=HardState(term=5, vote=None, commit=0)),
            GroupWrite(9, marker=SnapshotMarker(40, 2), entries=[Entry(2, 41, b"x")]),
        ]
    )
    wal.close()
    again = WAL(tmp_path)
    assert again.recovery.torn_tail is None
    assert again.group_ids() == [3, 7, 9]
    assert again.group(7).hard_state == HardState(term=2, vote=3, commit=2)
    assert again.group(3).hard_state == HardState(term=5, vote=None, commit=0)
    assert (again.group(7).last_index, again.group(7).last_term) == (3, 2)
    assert again.read_entries(7, 1, 4) == kinds
    assert again.read_entries(9, 41, 42) == [Entry(2, 41, b"x")]
    assert (again.group(9).snapshot_index, again.group(9).term(40)) == (40, 2)
    with pytest.raises(LookupError):
        again.read_entries(9, 40, 41)


def test_a_batch_of_many_groups_costs_exactly_one_fdatasync(
    tmp_path: Path, count_fdatasync: Callable[[], int]
) -> None:
    wal = WAL(tmp_path)
    before = count_fdatasync()
    append(wal, tuple(range(500)), 1)
    assert count_fdatasync() - before == 1
    wal.write_batch([GroupWrite(g, entries=[entry(2, group=g)]) for g in range(0, 500, 7)])
    assert count_fdatasync() - before == 2
    wal.write_batch([])  # nothing to write: no sync
    assert count_fdatasync() - before == 2


def test_rollover_is_still_one_fdatasync_and_names_sort(
    tmp_path: Path, count_fdatasync: Callable[[], int]
) -> None:
    wal = WAL(tmp_path, segment_bytes=2048)
    before = count_fdatasync()
    for i in range(1, 61):
        append(wal, (1, 2), i)
    assert count_fdatasync() - before == 60
    names = [p.name for p in wal.segment_paths]
    assert len(names) >= 3 and names == sorted(names)
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    wal.close()
    again = WAL(tmp_path, segment_bytes=2048)
    for g in (1, 2):
        assert again.read_entries(g, 1, 61) == [entry(i, group=g) for i in range(1, 61)]
        assert again.group(g).hard_state == HardState(1, 1, 59)


def test_entries_that_do_not_fit_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    wal = WAL(tmp_path)
    append(wal, (1,), 1)
    seq = wal.next_seq
    with pytest.raises(ValueError, match="next index 2"):
        wal.write_batch([GroupWrite(1, entries=[entry(3)])])
    with pytest.raises(ValueError, match="consecutive"):
        wal.write_batch([GroupWrite(1, entries=[entry(2), entry(4)])])
    with pytest.raises(ValueError, match="twice"):
        wal.write_batch([GroupWrite(1), GroupWrite(1)])
    assert wal.next_seq == seq and wal.group(1).last_index == 1


def test_truncation_replaces_a_groups_suffix_and_leaves_others_alone(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=4096, block_bytes=300)
    for i in range(1, 21):
        append(wal, (1, 2), i)
    wal.write_batch([GroupWrite(1, entries=[entry(8, 2, group=1), entry(9, 2, group=1)])])
    for i in range(10, 13):
        wal.write_batch([GroupWrite(1, entries=[entry(i, 2, group=1)])])
    expected = [entry(i, group=1) for i in range(1, 8)]
    expected += [entry(i, 2, group=1) for i in range(8, 13)]
    assert wal.read_entries(1, 1, 13) == expected
    assert wal.read_entries(2, 1, 21) == [entry(i, group=2) for i in range(1, 21)]
    with pytest.raises(LookupError):
        wal.read_entries(1, 1, 14)
    wal.close()
    again = WAL(tmp_path, segment_bytes=4096, block_bytes=300)
    assert (again.group(1).last_index, again.group(1).last_term) == (12, 2)
    assert again.read_entries(1, 1, 13) == expected
    assert [again.group(1).term(i) for i in (1, 7, 8, 12)] == [1, 1, 2, 2]
    assert again.read_entries(2, 5, 21) == [entry(i, group=2) for i in range(5, 21)]


def test_a_discarding_marker_resets_the_groups_log(tmp_path: Path) -> None:
    wal = WAL(tmp_path)
    for i in range(1, 6):
        append(wal, (1,), i)
    wal.write_batch([GroupWrite(1, marker=SnapshotMarker(100, 4, discard_log=True))])
    assert (wal.group(1).last_index, wal.group(1).last_term) == (100, 4)
    wal.write_batch([GroupWrite(1, entries=[entry(101, 4)])])
    wal.close()
    again = WAL(tmp_path)
    assert (again.group(1).last_index, again.group(1).last_term) == (101, 4)
    assert again.read_entries(1, 101, 102) == [entry(101, 4)]
    assert again.group(1).marker == SnapshotMarker(100, 4)


# --- torn tails ------------------------------------------------------------------------------


def _unsynced_batch(fs: SimFileSystem) -> tuple[Path, int, int]:
    """Sync four batches for groups 1 and 2, then write a fifth (large) batch without
    syncing it; returns the segment, and where the fifth batch starts and ends."""
    wal = WAL(D, fs=fs)
    for i in range(1, 5):
        append(wal, (1, 2), i)
    (segment,) = wal.segment_paths
    start = wal.segment_ends[0]
    # The fifth batch is written as usual, but its fdatasync lies: nothing reaches the disk
    # until the crash decides.
    fs.lying_fsync_rate = 1.0
    append(wal, (1, 2), 5, size=3000)
    fs.lying_fsync_rate = 0.0
    end = wal.segment_ends[0]
    return segment, start, end


def _check_cut(fs: SimFileSystem, start: int, wal: WAL | None = None) -> None:
    wal = wal or WAL(D, fs=fs)
    tail = wal.recovery.torn_tail
    assert tail is not None and tail.offset == start
    for g in (1, 2):
        assert wal.group(g).last_index == 4
        assert wal.read_entries(g, 1, 5) == [entry(i, group=g) for i in range(1, 5)]
        assert wal.group(g).hard_state == HardState(1, 1, 3)
    (segment,) = wal.segment_paths
    assert fs.read_file(segment)[start:].count(0) == len(fs.read_file(segment)) - start
    append(wal, (1, 2), 5)  # the repaired log takes new batches, at the cut
    wal.close()
    again = WAL(D, fs=fs)
    assert again.recovery.torn_tail is None
    assert again.read_entries(1, 5, 6) == [entry(5, group=1)]


def test_the_issues_case_a_batch_missing_only_its_first_sector_is_cut() -> None:
    """Issue 8: every 512-byte sector of an unsynced batch reached the disk except the
    first. Format 1 called that corruption and refused to start for ever."""
    fs = sim()
    segment, start, end = _unsynced_batch(fs)
    first_sector = start - start % SECTOR_BYTES
    assert end - first_sector > 4 * SECTOR_BYTES
    fs.crash(keep=lambda offset, length, sector: sector != first_sector)
    data = fs.read_file(segment)
    assert data[start:first_sector + SECTOR_BYTES].count(0) == first_sector + SECTOR_BYTES - start
    assert data[first_sector + SECTOR_BYTES : end].count(0) < 100  # later sectors are there
    _check_cut(fs, start)


def test_without_the_repair_the_issues_case_stops_the_node(
    unsafe_no_torn_tail_repair: None,
) -> None:
    fs = sim()
    _, start, _ = _unsynced_batch(fs)
    first_sector = start - start % SECTOR_BYTES
    fs.crash(keep=lambda offset, length, sector: sector != first_sector)
    with pytest.raises(WALCorruptionError, match="zeros where a batch header should be") as caught:
        WAL(D, fs=fs)
    assert caught.value.offset == start and caught.value.lost is None


@pytest.mark.parametrize("seed", range(40))
def test_any_tear_of_an_unsynced_batch_is_cut(seed: int) -> None:
    fs = sim(seed)
    _, start, _ = _unsynced_batch(fs)
    fs.crash()
    wal = WAL(D, fs=fs)
    if wal.group(1).last_index == 5:  # the whole batch landed: nothing to cut
        assert wal.recovery.torn_tail is None
        assert wal.read_entries(2, 5, 6) == [entry(5, size=3000, group=2)]
        return
    if wal.recovery.torn_tail is None:  # nothing of it landed: the log just ends
        assert wal.group(1).last_index == 4
        return
    _check_cut(fs, start, wal)


def test_a_torn_batch_whose_header_survived_says_what_it_held() -> None:
    fs = sim()
    _, start, end = _unsynced_batch(fs)
    last_sector = (end - 1) - (end - 1) % SECTOR_BYTES
    fs.crash(keep=lambda offset, length, sector: sector != last_sector)
    wal = WAL(D, fs=fs)
    tail = wal.recovery.torn_tail
    assert tail is not None and tail.offset == start and tail.lost is not None
    assert [(x.group_id, x.first_index, x.last_index, x.hard_state) for x in tail.lost] == [
        (1, 5, 5, True),
        (2, 5, 5, True),
    ]


@pytest.mark.parametrize("zero_fill", [False, True], ids=["cut", "zero-filled"])
def test_torn_tail_at_every_byte_of_the_last_batch_on_a_real_disk(
    tmp_path: Path, zero_fill: bool
) -> None:
    source = tmp_path / "src"
    wal = WAL(source)
    for i in range(1, 5):
        append(wal, (1,), i)
    start = wal.segment_ends[0]
    append(wal, (1,), 5, size=100)
    end = wal.segment_ends[0]
    (segment,) = wal.segment_paths
    wal.close()
    data = segment.read_bytes()[:end]
    for cut in range(start, end + 1, 3):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        torn = data[:cut] + (bytes(end - cut) if zero_fill else b"")
        (directory / segment.name).write_bytes(torn)
        again = WAL(directory)
        tail = again.recovery.torn_tail
        if torn == data:  # only zero bytes were missing: the batch is whole after all
            assert tail is None and again.group(1).last_index == 5
            continue
        if data[start:cut].count(0) == cut - start:
            assert tail is None
        else:
            assert tail is not None and tail.offset == start, cut
        assert again.group(1).last_index == 4
        assert again.read_entries(1, 1, 5) == [entry(i, group=1) for i in range(1, 5)]
        again.close()


def test_a_real_process_torn_by_the_test_switch_restarts(tmp_path: Path) -> None:
    """KVORUM_TEST_TEAR_WRITES=n: the n-th batch is written without its first sector and the
    process dies on the spot; the next open cuts that batch and keeps everything before."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from kvorum.core.raft.messages import Entry, HardState
        from kvorum.storage.wal import WAL, GroupWrite
        wal = WAL(Path(sys.argv[1]))
        for i in range(1, 11):
            wal.write_batch([GroupWrite(g, entries=[Entry(1, i, b"x" * 900)],
                                        hard_state=HardState(1, 1, i)) for g in (1, 2)])
            print("ack", i, flush=True)
        """
    )
    env = dict(os.environ, **{faults.TEAR_WRITES_ENV: "6"})
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    assert child.stdout.split() == [w for i in range(1, 6) for w in ("ack", str(i))]
    wal = WAL(tmp_path)
    assert wal.recovery.torn_tail is not None
    for g in (1, 2):
        assert wal.group(g).last_index == 5
        assert [e.index for e in wal.read_entries(g, 1, 6)] == [1, 2, 3, 4, 5]


# --- corruption ------------------------------------------------------------------------------


def _three_batches(tmp_path: Path) -> tuple[Path, list[int]]:
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


def test_a_damaged_body_before_a_valid_batch_is_corruption_with_what_was_lost(
    tmp_path: Path,
) -> None:
    segment, starts = _three_batches(tmp_path)
    data = bytearray(segment.read_bytes())
    data[starts[2] - 10] ^= 0x40  # inside batch 2's body; batch 3 is whole
    segment.write_bytes(bytes(data))
    with pytest.raises(WALCorruptionError) as caught:
        WAL(tmp_path)
    error = caught.value
    assert error.path == segment and error.offset == starts[1]
    assert f"{segment} at byte offset {starts[1]}" in str(error)
    assert error.lost is not None
    assert [(x.group_id, x.first_index, x.last_index, x.hard_state) for x in error.lost] == [
        (1, 2, 2, True),
        (2, 3, 4, False),
    ]
    assert "group 2: entries 3..4" in str(error)
    assert segment.read_bytes() == bytes(data)  # left as it was for an operator


def test_a_damaged_header_before_a_valid_batch_says_the_groups_are_unknown(
    tmp_path: Path,
) -> None:
    segment, starts = _three_batches(tmp_path)
    data = bytearray(segment.read_bytes())
    data[starts[1] + 6] ^= 0x01  # the batch's sequence number
    segment.write_bytes(bytes(data))
    with pytest.raises(WALCorruptionError, match="groups affected are unknown") as caught:
        WAL(tmp_path)
    assert caught.value.offset == starts[1] and caught.value.lost is None


def test_damage_in_an_older_segment_is_corruption(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=1024)
    for i in range(1, 31):
        append(wal, (1,), i)
    first = wal.segment_paths[0]
    ends = wal.segment_ends
    wal.close()
    data = bytearray(first.read_bytes())
    data[ends[0] - 3] ^= 0xFF  # the last batch of a sealed segment: never a torn tail
    first.write_bytes(bytes(data))
    with pytest.raises(WALCorruptionError, match=str(first)):
        WAL(tmp_path, segment_bytes=1024)


def test_a_missing_middle_segment_is_corruption(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=1024)
    for i in range(1, 31):
        append(wal, (1,), i)
    wal.segment_paths[1].unlink()
    wal.close()
    with pytest.raises(WALCorruptionError, match="segment 2 is missing"):
        WAL(tmp_path, segment_bytes=1024)


def test_an_unpublished_segment_is_ignored(tmp_path: Path) -> None:
    wal = WAL(tmp_path)
    append(wal, (1,), 1)
    wal.close()
    leftover = tmp_path / f"{2:020d}.wal.tmp"
    leftover.write_bytes(SEGMENT_MAGIC + b"half a segment")
    again = WAL(tmp_path)
    assert again.group(1).last_index == 1 and not leftover.exists()


def test_a_format_1_wal_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000001-00000000000000000001.wal").write_bytes(b"\x00" * 64)
    with pytest.raises(WALFormatError, match="format-1 WAL") as caught:
        WAL(tmp_path)
    assert caught.value.found == "00000000000000000001-00000000000000000001.wal"
    assert "format 2" in str(caught.value)


# --- segments and compaction -----------------------------------------------------------------


def test_a_segment_goes_once_every_groups_entries_in_it_are_snapshotted(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=2048)
    for i in range(1, 41):
        append(wal, (1, 2), i)
    segments = list(wal.segment_paths)
    assert len(segments) >= 4
    assert wal.pinning_groups() == [1, 2]
    wal.write_batch([GroupWrite(1, marker=SnapshotMarker(35, 1))])
    assert wal.segment_paths == segments  # group 2 still needs them all
    assert wal.pinning_groups() == [2]
    wal.write_batch([GroupWrite(2, marker=SnapshotMarker(30, 1))])
    kept = wal.segment_paths
    assert len(kept) < len(segments) and all(not p.exists() for p in segments[: -len(kept)])
    assert wal.read_entries(1, 36, 41) == [entry(i, group=1) for i in range(36, 41)]
    assert wal.read_entries(2, 31, 41) == [entry(i, group=2) for i in range(31, 41)]
    wal.close()
    again = WAL(tmp_path, segment_bytes=2048)
    assert again.group(1).marker == SnapshotMarker(35, 1)
    assert again.read_entries(2, 31, 41) == [entry(i, group=2) for i in range(31, 41)]
    assert again.group(2).hard_state == HardState(1, 1, 39)
    assert [again.group(g).last_index for g in (1, 2)] == [40, 40]


def test_an_idle_group_keeps_its_state_when_its_segments_go(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=2048)
    wal.write_batch([GroupWrite(5, hard_state=HardState(term=9, vote=2, commit=0))])
    for i in range(1, 41):
        append(wal, (1,), i)
    wal.write_batch([GroupWrite(1, marker=SnapshotMarker(40, 1))])
    assert len(wal.segment_paths) == 1
    wal.close()
    again = WAL(tmp_path, segment_bytes=2048)
    assert again.group_ids() == [1, 5]
    assert again.group(5).hard_state == HardState(term=9, vote=2, commit=0)
    assert (again.group(1).snapshot_index, again.group(1).last_index) == (40, 40)


def test_a_failed_fdatasync_poisons_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = WAL(tmp_path)
    append(wal, (1,), 1)

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(OSError, match="Input/output"):
        append(wal, (1,), 2)
    monkeypatch.undo()
    with pytest.raises(WALClosedError, match="unusable"):
        append(wal, (1,), 2)
    with pytest.raises(WALClosedError):
        wal.read_entries(1, 1, 2)


def test_a_full_disk_raises_disk_full_and_the_same_batch_succeeds_later() -> None:
    fs = sim()
    wal = WAL(D, fs=fs, segment_bytes=64 * 1024)
    append(wal, (1, 2), 1)
    fs.capacity_bytes = fs.used_bytes()  # no room for anything new
    for i in range(2, 200):
        try:
            append(wal, (1, 2), i, size=900)
        except DiskFullError:
            break
    else:
        pytest.fail("the disk never filled up")
    full_at = i
    with pytest.raises(DiskFullError):
        append(wal, (1, 2), full_at, size=900)  # still full: still refused, log still usable
    assert wal.group(1).last_index == full_at - 1
    fs.capacity_bytes = None
    append(wal, (1, 2), full_at, size=900)
    wal.close()
    fs.crash()
    again = WAL(D, fs=fs, segment_bytes=64 * 1024)
    assert again.recovery.torn_tail is None
    assert [e.index for e in again.read_entries(2, 1, full_at + 1)] == list(range(1, full_at + 1))


def test_a_full_disk_during_rollover_leaves_the_log_usable() -> None:
    fs = sim()
    wal = WAL(D, fs=fs, segment_bytes=1024)
    i = 0
    while len(wal.segment_paths) < 2:
        i += 1
        append(wal, (1,), i)
    fs.capacity_bytes = fs.used_bytes()
    with pytest.raises(DiskFullError):
        for _ in range(10):
            i += 1
            append(wal, (1,), i)
    assert wal.group(1).last_index == i - 1
    assert not any(n.endswith(".tmp") for n in fs.list_dir(D))
    fs.capacity_bytes = None
    append(wal, (1,), i)
    wal.close()
    again = WAL(D, fs=fs, segment_bytes=1024)
    assert [e.index for e in again.read_entries(1, 1, i + 1)] == list(range(1, i + 1))


def test_segments_are_zero_filled_ahead_and_zeros_end_the_log(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=64 * 1024)
    append(wal, (1,), 1)
    (segment,) = wal.segment_paths
    end = wal.segment_ends[0]
    data = segment.read_bytes()
    assert len(data) == 64 * 1024 and data.count(0, end) == len(data) - end
    append(wal, (1,), 2)
    assert segment.stat().st_size == 64 * 1024
    wal.close()
    with open(segment, "ab") as f:
        f.write(bytes(4096))  # the size grew in a crash but the data never came
    again = WAL(tmp_path, segment_bytes=64 * 1024)
    assert again.recovery.torn_tail is None and again.group(1).last_index == 2


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="segment_bytes"):
        WAL(tmp_path, segment_bytes=4)
    with pytest.raises(ValueError, match="block_bytes"):
        WAL(tmp_path, block_bytes=0)


# A model per group: a list of entries, where writing at index i first drops everything from i.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 3), st.integers(0, 6), st.integers(1, 8)),
        st.tuples(st.just("snapshot"), st.integers(0, 3), st.integers(0, 10), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40)
@given(ops)
def test_replay_matches_a_model_of_every_group(script: list[tuple[str, int, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as raw:
        directory = Path(raw)
        wal = WAL(directory, segment_bytes=1500, block_bytes=200)
        model: dict[int, tuple[int, list[Entry]]] = {}  # group -> (snapshot index, entries)
        term = 1
        for op, group, back, count in script:
            snap, log = model.get(group, (0, []))
            last = snap + len(log)
            if op == "reopen":
                wal.close()
                wal = WAL(directory, segment_bytes=1500, block_bytes=200)
            elif op == "append":
                term += 1
                start = max(snap + 1, last + 1 - back)
                batch = [entry(i, term, group=group) for i in range(start, start + count)]
                wal.write_batch([GroupWrite(group, entries=batch, hard_state=HardState(term))])
                model[group] = (snap, log[: start - snap - 1] + batch)
            elif last > snap:
                index = min(last, snap + 1 + back)
                marker = SnapshotMarker(index, log[index - snap - 1].term)
                wal.write_batch([GroupWrite(group, marker=marker)])
                model[group] = (index, log[index - snap :])
            for g, (s, entries) in model.items():
                assert wal.group(g).last_index == s + len(entries)
                assert wal.read_entries(g, s + 1, s + len(entries) + 1) == entries
        wal.close()
