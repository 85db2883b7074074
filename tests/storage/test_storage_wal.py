"""The write-ahead log: framing, group commit, torn tails, corruption, truncation, segments."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvorum.core.raft.messages import Entry, EntryKind, HardState
from kvorum.storage.wal import (
    WAL,
    SnapshotMarker,
    WALClosedError,
    WALCorruptionError,
)


def entry(index: int, term: int = 1, size: int = 20) -> Entry:
    return Entry(term=term, index=index, data=f"e{index}t{term}".encode().ljust(size, b"."))


def fill(wal: WAL, count: int, *, term: int = 1, start: int = 1) -> None:
    for i in range(start, start + count):
        wal.append_and_sync([entry(i, term)], HardState(term=term, vote=1, commit=i - 1))


@pytest.fixture
def count_fdatasync(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    calls: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return lambda: len(calls)


def test_round_trip_survives_reopen(tmp_path: Path) -> None:
    wal = WAL(tmp_path)
    entries = [Entry(1, 1, b"a"), Entry(1, 2, b"", EntryKind.CONF_CHANGE), Entry(2, 3, b"\x00")]
    wal.append_and_sync(entries, HardState(term=2, vote=3, commit=2))
    wal.close()
    again = WAL(tmp_path)
    assert again.recovery.torn_tail is None
    assert again.hard_state == HardState(term=2, vote=3, commit=2)
    assert (again.last_index, again.last_term) == (3, 2)
    assert again.read_entries(1, 4) == entries
    assert again.read_entries(2, 2) == []


def test_a_batch_costs_exactly_one_fdatasync(
    tmp_path: Path, count_fdatasync: Callable[[], int]
) -> None:
    wal = WAL(tmp_path)
    before = count_fdatasync()
    wal.append_and_sync([entry(i) for i in range(1, 257)], HardState(1, 1, 0))
    assert count_fdatasync() - before == 1
    wal.append_and_sync([entry(257)])
    wal.append_and_sync(hard_state=HardState(1, 1, 200))
    assert count_fdatasync() - before == 3


def test_rollover_is_still_one_fdatasync_and_names_sort(
    tmp_path: Path, count_fdatasync: Callable[[], int]
) -> None:
    wal = WAL(tmp_path, segment_bytes=1024)
    before = count_fdatasync()
    fill(wal, 60)
    assert count_fdatasync() - before == 60
    names = [p.name for p in wal.segment_paths]
    assert len(names) >= 3
    assert names == sorted(names)
    on_disk = sorted(p.name for p in tmp_path.iterdir())
    assert on_disk == names
    wal.close()
    again = WAL(tmp_path, segment_bytes=1024)
    assert again.read_entries(1, 61) == [entry(i) for i in range(1, 61)]
    assert again.hard_state == HardState(1, 1, 59)


def test_empty_batch_does_not_sync(tmp_path: Path, count_fdatasync: Callable[[], int]) -> None:
    wal = WAL(tmp_path)
    before = count_fdatasync()
    wal.append_and_sync([])
    assert count_fdatasync() == before


def test_entries_with_a_gap_are_refused(tmp_path: Path) -> None:
    wal = WAL(tmp_path)
    fill(wal, 3)
    with pytest.raises(ValueError, match="between 1 and the log's next index 4"):
        wal.append_and_sync([entry(5)])
    with pytest.raises(ValueError, match="consecutive"):
        wal.append_and_sync([entry(4), entry(6)])
    assert wal.last_index == 3


def test_truncation_replaces_the_suffix_on_replay(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=600, block_bytes=100)
    fill(wal, 20, term=1)
    wal.append_and_sync([entry(8, 2), entry(9, 2)])  # a new leader overwrote 8.. with term 2
    fill(wal, 3, term=2, start=10)
    expected = [entry(i) for i in range(1, 8)] + [entry(i, 2) for i in range(8, 13)]
    assert wal.read_entries(1, 13) == expected
    with pytest.raises(ValueError, match="last_index"):
        wal.read_entries(1, 14)
    wal.close()
    again = WAL(tmp_path, segment_bytes=600, block_bytes=100)
    assert (again.last_index, again.last_term) == (12, 2)
    assert again.read_entries(1, 13) == expected
    assert again.read_entries(8, 9) == [entry(8, 2)]


def test_discarding_marker_resets_the_log(tmp_path: Path) -> None:
    wal = WAL(tmp_path)
    fill(wal, 5)
    wal.append_and_sync(marker=SnapshotMarker(100, 4, discard_log=True))
    assert (wal.last_index, wal.last_term) == (100, 4)
    wal.append_and_sync([entry(101, 4)])
    wal.close()
    again = WAL(tmp_path)
    assert (again.last_index, again.last_term) == (101, 4)
    assert again.read_entries(101, 102) == [entry(101, 4)]
    assert again.marker == SnapshotMarker(100, 4, discard_log=True)


def _last_record_bounds(tmp_path: Path) -> tuple[bytes, int]:
    """Write five entries; return the segment's bytes and where the fifth record starts."""
    wal = WAL(tmp_path / "src")
    fill(wal, 4)
    (segment,) = wal.segment_paths
    start = wal.end_offset
    wal.append_and_sync([entry(5, size=100)])
    end = wal.end_offset
    wal.close()
    return segment.read_bytes()[:end], start


@pytest.mark.parametrize("zero_fill", [False, True], ids=["cut", "zero-filled"])
def test_torn_tail_at_every_byte_of_the_last_record_is_cut(
    tmp_path: Path, zero_fill: bool
) -> None:
    data, start = _last_record_bounds(tmp_path)
    name = "00000000000000000001-00000000000000000001.wal"
    for cut in range(start, len(data)):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        torn = data[:cut] + (bytes(len(data) - cut) if zero_fill else b"")
        (directory / name).write_bytes(torn)
        written = len(data[start:cut].rstrip(b"\x00"))
        wal = WAL(directory)
        tail = wal.recovery.torn_tail
        if written == 0:
            # A cut between records, or only zeros of the next one: the log simply ends.
            assert tail is None
        else:
            assert tail is not None and tail.offset == start, cut
            assert tail.dropped_bytes == written
        # Zeroed, not truncated: nothing but zeros follows the intact records.
        repaired = (directory / name).read_bytes()
        assert repaired[:start] == data[:start]
        assert repaired.count(0, start) == len(repaired) - start
        assert wal.last_index == 4
        assert wal.read_entries(1, 5) == [entry(i) for i in range(1, 5)]
        assert wal.hard_state == HardState(1, 1, 3)
        wal.append_and_sync([entry(5)])  # the repaired log takes new appends
        wal.close()
        assert WAL(directory).read_entries(5, 6) == [entry(5)]


def test_flipped_byte_mid_log_names_file_and_offset(tmp_path: Path) -> None:
    wal = WAL(tmp_path)
    fill(wal, 3)
    (segment,) = wal.segment_paths
    offset = wal.end_offset
    fill(wal, 3, start=4)
    wal.close()
    data = bytearray(segment.read_bytes())
    data[offset + 12] ^= 0x40  # inside record 4's payload; records 5.. are intact
    segment.write_bytes(bytes(data))
    with pytest.raises(WALCorruptionError) as caught:
        WAL(tmp_path)
    assert caught.value.path == segment and caught.value.offset == offset
    assert str(segment) in str(caught.value) and f"offset {offset}" in str(caught.value)


def test_impossible_length_in_an_older_segment_is_corruption(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=512)
    fill(wal, 30)
    first = wal.segment_paths[0]
    wal.close()
    records_end = WAL(tmp_path, segment_bytes=512).segment_ends[0]
    data = bytearray(first.read_bytes())
    # the last record of a *sealed* segment: never a torn tail
    data[records_end - 3 : records_end] = b"\xff\xff\xff"
    first.write_bytes(bytes(data))
    with pytest.raises(WALCorruptionError, match=str(first)):
        WAL(tmp_path, segment_bytes=512)
    data = bytearray(first.read_bytes()[: records_end - 5])
    first.write_bytes(bytes(data))
    with pytest.raises(WALCorruptionError, match="at byte offset"):
        WAL(tmp_path, segment_bytes=512)


def test_missing_middle_segment_is_corruption(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=512)
    fill(wal, 30)
    wal.segment_paths[1].unlink()
    wal.close()
    with pytest.raises(WALCorruptionError, match="segment 2 is missing"):
        WAL(tmp_path, segment_bytes=512)


def test_unpublished_segment_is_ignored(tmp_path: Path) -> None:
    wal = WAL(tmp_path)
    fill(wal, 3)
    wal.close()
    leftover = tmp_path / "00000000000000000002-00000000000000000004.wal.tmp"
    leftover.write_bytes(b"half a segment")
    again = WAL(tmp_path)
    assert again.last_index == 3
    assert not leftover.exists()


def test_compaction_deletes_only_covered_segments(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=512)
    fill(wal, 40)
    segments = list(wal.segment_paths)
    firsts = [int(p.name.split("-")[1].removesuffix(".wal")) for p in segments]
    wal.append_and_sync(marker=SnapshotMarker(25, 1))
    deleted = wal.delete_segments_through(25)
    assert deleted and all(not p.exists() for p in deleted)
    kept = wal.segment_paths
    # every deleted segment's successor starts at or below 26, the first kept one too
    assert int(kept[0].name.split("-")[1].removesuffix(".wal")) <= 26
    assert len(deleted) == sum(1 for f in firsts[1:] if f <= 26)
    assert wal.read_entries(26, 41) == [entry(i) for i in range(26, 41)]
    wal.close()
    again = WAL(tmp_path, segment_bytes=512)
    assert again.marker == SnapshotMarker(25, 1)
    assert again.read_entries(26, 41) == [entry(i) for i in range(26, 41)]
    assert again.hard_state == HardState(1, 1, 39)


def test_a_failed_fsync_poisons_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = WAL(tmp_path)
    fill(wal, 2)

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(OSError):
        wal.append_and_sync([entry(3)])
    monkeypatch.undo()
    with pytest.raises(WALClosedError, match="unusable"):
        wal.append_and_sync([entry(3)])
    assert wal.last_index == 2


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="segment_bytes"):
        WAL(tmp_path, segment_bytes=4)
    with pytest.raises(ValueError, match="block_bytes"):
        WAL(tmp_path, block_bytes=0)


# A model: a list of entries, where appending at index i first drops everything from i on.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 6), st.integers(1, 8)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40)
@given(ops)
def test_replay_matches_a_model_log(script: list[tuple[str, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as raw:
        directory = Path(raw)
        wal = WAL(directory, segment_bytes=700, block_bytes=120)
        model: list[Entry] = []
        term = 1
        for op, back, count in script:
            if op == "reopen":
                wal.close()
                wal = WAL(directory, segment_bytes=700, block_bytes=120)
            else:
                term += 1
                start = max(1, len(model) + 1 - back)
                batch = [entry(i, term) for i in range(start, start + count)]
                wal.append_and_sync(batch, HardState(term=term))
                model = model[: start - 1] + batch
            assert wal.last_index == len(model)
            lo = 1 + len(model) // 3
            assert wal.read_entries(lo, len(model) + 1) == model[lo - 1 :]
        assert wal.read_entries(1, len(model) + 1) == model
        wal.close()


def test_segments_are_zero_filled_ahead_and_zeros_end_the_log(tmp_path: Path) -> None:
    wal = WAL(tmp_path, segment_bytes=64 * 1024)
    fill(wal, 5)
    (segment,) = wal.segment_paths
    end = wal.end_offset
    data = segment.read_bytes()
    # Filled ahead up to the segment size: appends overwrite, the file's size stays put.
    assert len(data) == 64 * 1024 and data.count(0, end) == len(data) - end
    fill(wal, 3, start=6)
    assert segment.stat().st_size == 64 * 1024
    wal.close()
    again = WAL(tmp_path, segment_bytes=64 * 1024)
    assert again.recovery.torn_tail is None and again.last_index == 8
    assert again.read_entries(1, 9) == [entry(i) for i in range(1, 9)]
    # More zeros appended by a crash (size grew, data never came) are still just the end.
    again.close()
    with open(segment, "ab") as f:
        f.write(bytes(4096))
    third = WAL(tmp_path, segment_bytes=64 * 1024)
    assert third.recovery.torn_tail is None and third.last_index == 8
