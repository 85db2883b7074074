"""The NodeLog / GroupLog contract (kvorum.storage.contracts), for every implementation.

Theory of operation: each test runs against three stores behind one small harness — the
in-memory reference (:class:`~kvorum.storage.memory.MemoryNodeLog`), the durable log on a real
temporary directory, and the durable log on a simulated disk (:class:`SimFileSystem`) whose
crashes lose and tear unsynced writes. ``reopen`` is a clean restart after the last sync;
``crash`` is a power cut (the simulated disk decides the fate of unsynced writes; a real
directory and the reference simply lose what was never synced). The seeded random test at the
end drives the durable log on the simulated disk and the reference side by side through
stages, snapshots, syncs, crashes and power cuts in the middle of a sync, and compares every
group after each step.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvorum.core.raft.messages import ConfState, Entry, HardState, SnapshotMeta
from kvorum.core.shape import GroupId
from kvorum.sim.disk import SimFileSystem, SimulatedPowerCut
from kvorum.storage.contracts import DiskFullError, GroupLog, NodeLog, SnapshotStore
from kvorum.storage.memory import MemoryNodeLog, MemorySnapshotStore
from kvorum.storage.node_log import DurableNodeLog

CONF = ConfState(voters=frozenset({1, 2, 3}))
SIM_ROOT = Path("/node")


def entry(index: int, term: int = 1, tag: str = "") -> Entry:
    return Entry(term=term, index=index, data=f"{tag}{index}/{term}".encode())


class Harness:
    """One implementation, with a way to restart it cleanly and to crash it."""

    log: NodeLog

    def reopen(self) -> None:
        raise NotImplementedError

    def crash(self) -> None:
        raise NotImplementedError

    def snapshots(self, group_id: GroupId) -> SnapshotStore:
        raise NotImplementedError


class MemoryHarness(Harness):
    def __init__(self) -> None:
        self.log = self.memory = MemoryNodeLog()
        self.stores: dict[GroupId, MemorySnapshotStore] = {}

    def reopen(self) -> None:
        self.crash()

    def crash(self) -> None:
        self.log = self.memory = self.memory.crash()
        # What the durable log does on open: adopt a snapshot the log never recorded.
        for g in self.memory.group_ids():
            latest = self.stores[g].latest() if g in self.stores else None
            if latest is not None and latest.index > self.memory.group(g).first_index - 1:
                self.memory.group(g).stage_snapshot(latest)
        self.memory.sync()

    def snapshots(self, group_id: GroupId) -> MemorySnapshotStore:
        return self.stores.setdefault(group_id, MemorySnapshotStore())


class DurableHarness(Harness):
    def __init__(self, directory: Path, fs: SimFileSystem | None, segment_bytes: int) -> None:
        self.directory = directory
        self.fs = fs
        self.segment_bytes = segment_bytes
        self.log = self.durable = self._open()

    def _open(self) -> DurableNodeLog:
        if self.fs is None:
            return DurableNodeLog(self.directory, segment_bytes=self.segment_bytes)
        return DurableNodeLog(self.directory, fs=self.fs, segment_bytes=self.segment_bytes)

    def reopen(self) -> None:
        self.durable.close()
        self.log = self.durable = self._open()

    def crash(self) -> None:
        self.durable.close()
        if self.fs is not None:
            self.fs.crash()
        self.log = self.durable = self._open()

    def snapshots(self, group_id: GroupId) -> SnapshotStore:
        return self.durable.snapshot_store(group_id)


IMPLEMENTATIONS = ["memory", "durable-tmp", "durable-sim"]


@pytest.fixture(params=IMPLEMENTATIONS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "memory":
        yield MemoryHarness()
    elif request.param == "durable-tmp":
        yield DurableHarness(tmp_path, None, 4096)
    else:
        yield DurableHarness(SIM_ROOT, SimFileSystem(random.Random(7)), 4096)


@dataclass(frozen=True)
class GroupState:
    first_index: int
    last_index: int
    last_term: int
    hard_state: HardState
    entries: tuple[Entry, ...]
    terms: tuple[int, ...]


def state_of(log: GroupLog) -> GroupState:
    first, last = log.first_index, log.last_index
    return GroupState(
        first,
        last,
        log.last_term,
        log.hard_state,
        tuple(log.entries(first, last + 1)),
        tuple(log.term(i) for i in range(first - 1, last + 1)),
    )


def states(log: NodeLog) -> dict[GroupId, GroupState]:
    return {g: state_of(log.group(g)) for g in log.group_ids()}


# --- staging and reading ---------------------------------------------------------------------


def test_a_log_that_lost_nothing_has_no_repair_fence(harness: Harness) -> None:
    log = harness.log.create_group(1)
    assert log.repair_fence is None
    log.stage(HardState(1, 1, 0), [entry(1), entry(2)])
    harness.log.sync()
    harness.crash()
    assert harness.log.group(1).repair_fence is None


def test_a_new_group_is_empty_and_staged_writes_read_back_before_sync(harness: Harness) -> None:
    g = harness.log.create_group(1)
    assert (g.group_id, g.first_index, g.last_index, g.last_term) == (1, 1, 0, 0)
    assert g.hard_state == HardState() and g.term(0) == 0 and g.entries(1, 1) == []
    g.stage(HardState(term=2, vote=3, commit=0), [entry(1, 2), entry(2, 2)])
    assert (g.last_index, g.last_term, g.term(1)) == (2, 2, 2)
    assert g.entries(1, 3) == [entry(1, 2), entry(2, 2)]
    assert g.hard_state == HardState(term=2, vote=3, commit=0)
    harness.log.sync()
    assert g.entries(2, 3) == [entry(2, 2)]
    with pytest.raises(ValueError):
        harness.log.create_group(1)
    with pytest.raises(KeyError):
        harness.log.group(99)


def test_bad_stages_are_refused_and_change_nothing(harness: Harness) -> None:
    g = harness.log.create_group(1)
    g.stage(None, [entry(1), entry(2), entry(3)])
    with pytest.raises(ValueError):
        g.stage(None, [entry(5)])  # a gap after 3
    with pytest.raises(ValueError):
        g.stage(None, [entry(2), entry(4)])  # not consecutive
    g.stage_snapshot(SnapshotMeta(2, 1, CONF))
    with pytest.raises(ValueError):
        g.stage(None, [entry(2, 2)])  # inside the snapshot
    with pytest.raises(ValueError):
        g.stage_snapshot(SnapshotMeta(1, 1, CONF))  # older than the current snapshot
    assert (g.first_index, g.last_index) == (3, 3)
    with pytest.raises(LookupError):
        g.entries(2, 3)
    with pytest.raises(ValueError):
        g.entries(3, 5)
    with pytest.raises(LookupError):
        g.term(1)
    with pytest.raises(LookupError):
        g.term(4)


def test_entries_at_a_lower_index_replace_the_suffix(harness: Harness) -> None:
    g = harness.log.create_group(1)
    g.stage(None, [entry(i) for i in range(1, 11)])
    harness.log.sync()
    g.stage(None, [entry(6, 2), entry(7, 2)])  # a new leader overwrote 6..
    assert (g.last_index, g.last_term) == (7, 2)
    expected = [entry(i) for i in range(1, 6)] + [entry(6, 2), entry(7, 2)]
    assert g.entries(1, 8) == expected
    g.stage(None, [entry(7, 3)])  # and again, inside what is still staged
    harness.log.sync()
    harness.reopen()
    g = harness.log.group(1)
    assert g.entries(1, 8) == [*expected[:6], entry(7, 3)]
    assert [g.term(i) for i in (5, 6, 7)] == [1, 2, 3]


def test_the_last_hard_state_staged_wins(harness: Harness) -> None:
    g = harness.log.create_group(1)
    for term in range(1, 6):
        g.stage(HardState(term=term, vote=term % 3, commit=0), [])
    g.stage(None, [entry(1, 5)])  # no hard state: the last one stays
    harness.log.sync()
    harness.reopen()
    assert harness.log.group(1).hard_state == HardState(term=5, vote=2, commit=0)


def test_a_snapshot_that_matches_keeps_the_suffix(harness: Harness) -> None:
    g = harness.log.create_group(1)
    g.stage(None, [entry(i) for i in range(1, 21)])
    harness.log.sync()
    meta = SnapshotMeta(12, 1, CONF)
    harness.snapshots(1).write(meta, [b"state"])
    assert g.stage_snapshot(meta)
    assert (g.first_index, g.last_index, g.term(12)) == (13, 20, 1)
    assert g.entries(13, 21) == [entry(i) for i in range(13, 21)]
    harness.log.sync()
    harness.reopen()
    g = harness.log.group(1)
    assert (g.first_index, g.last_index) == (13, 20)
    assert g.entries(13, 21) == [entry(i) for i in range(13, 21)]


def test_a_snapshot_that_conflicts_discards_the_log(harness: Harness) -> None:
    g = harness.log.create_group(1)
    g.stage(None, [entry(i) for i in range(1, 21)])
    harness.log.sync()
    meta = SnapshotMeta(15, 4, CONF)  # the leader's entry 15 has term 4; ours has term 1
    harness.snapshots(1).write(meta, [b"state"])
    assert not g.stage_snapshot(meta)
    assert (g.first_index, g.last_index, g.last_term) == (16, 15, 4)
    g.stage(None, [entry(16, 4)])
    harness.log.sync()
    harness.reopen()
    g = harness.log.group(1)
    assert (g.first_index, g.last_index, g.last_term) == (16, 16, 4)
    assert g.entries(16, 17) == [entry(16, 4)] and g.term(15) == 4


def test_a_snapshot_past_the_end_discards_the_log(harness: Harness) -> None:
    g = harness.log.create_group(1)
    g.stage(None, [entry(i) for i in range(1, 6)])
    meta = SnapshotMeta(100, 3, CONF)
    harness.snapshots(1).write(meta, [b"state"])
    assert not g.stage_snapshot(meta)
    harness.log.sync()
    harness.crash()
    g = harness.log.group(1)
    assert (g.first_index, g.last_index, g.last_term) == (101, 100, 3)


def test_a_snapshot_over_staged_entries_drops_what_they_replaced(harness: Harness) -> None:
    g = harness.log.create_group(1)
    g.stage(None, [entry(i) for i in range(1, 11)])
    harness.log.sync()
    g.stage(None, [entry(5, 2), entry(6, 2)])  # replaces 5..10
    meta = SnapshotMeta(6, 2, CONF)
    harness.snapshots(1).write(meta, [b"state"])
    assert g.stage_snapshot(meta)
    harness.log.sync()
    harness.reopen()
    g = harness.log.group(1)
    assert (g.first_index, g.last_index, g.last_term) == (7, 6, 2)


def test_many_groups_interleaved(harness: Harness) -> None:
    groups = [harness.log.create_group(g) for g in range(10)]
    for round_number in range(1, 31):
        for g in groups:
            if (round_number + g.group_id) % 3:
                index = g.last_index + 1
                g.stage(HardState(term=1, commit=index - 1), [entry(index, tag=f"g{g.group_id}:")])
        harness.log.sync()
    before = states(harness.log)
    harness.reopen()
    assert states(harness.log) == before
    for group_id in range(10):
        log = harness.log.group(group_id)
        assert log.entries(1, log.last_index + 1) == [
            entry(i, tag=f"g{group_id}:") for i in range(1, log.last_index + 1)
        ]


def test_reopen_after_sync_gives_the_same_state(harness: Harness) -> None:
    a, b = harness.log.create_group(1), harness.log.create_group(2)
    a.stage(HardState(term=3, vote=1, commit=2), [entry(1, 3), entry(2, 3), entry(3, 3)])
    b.stage(HardState(term=1), [])
    harness.log.sync()
    before = states(harness.log)
    harness.reopen()
    assert harness.log.group_ids() == [1, 2]
    assert states(harness.log) == before


def test_a_crash_without_sync_leaves_exactly_the_synced_state(harness: Harness) -> None:
    a = harness.log.create_group(1)
    a.stage(HardState(term=1, commit=1), [entry(1), entry(2)])
    harness.log.sync()
    synced = states(harness.log)
    a.stage(HardState(term=2, commit=2), [entry(2, 2), entry(3, 2)])  # never synced
    harness.log.create_group(2)  # never synced
    harness.crash()
    assert states(harness.log) == synced


def test_a_group_created_and_synced_survives_a_crash(harness: Harness) -> None:
    harness.log.create_group(5)
    harness.log.sync()
    harness.crash()
    assert harness.log.group_ids() == [5]
    assert state_of(harness.log.group(5)) == GroupState(1, 0, 0, HardState(), (), (0,))


# --- the simulated disk only -----------------------------------------------------------------


def sim_harness(seed: int, segment_bytes: int = 4096) -> DurableHarness:
    return DurableHarness(SIM_ROOT, SimFileSystem(random.Random(seed)), segment_bytes)


@pytest.mark.parametrize("seed", range(30))
def test_a_power_cut_mid_sync_leaves_each_group_at_a_sync_boundary(seed: int) -> None:
    h = sim_harness(seed, segment_bytes=2048)
    fs = h.fs
    assert fs is not None
    rng = random.Random(seed)
    groups = [h.log.create_group(g) for g in range(4)]
    h.log.sync()
    history: list[dict[GroupId, GroupState]] = [states(h.log)]
    for _ in range(rng.randint(3, 25)):
        for g in groups:
            index = g.last_index + 1 - rng.randint(0, 1) if g.last_index else 1
            g.stage(HardState(term=2, commit=0), [entry(index, 2, tag="x" * rng.randint(0, 300))])
        h.log.sync()
        history.append(states(h.log))
    for g in groups:
        g.stage(None, [entry(g.last_index + 1, 3, tag="y" * 700)])
    in_flight = states(h.log)  # what the interrupted sync would have made durable
    fs.crash_after_ops = rng.randint(1, 6)
    with contextlib.suppress(SimulatedPowerCut):
        h.log.sync()
    fs.crash()
    reopened = DurableNodeLog(SIM_ROOT, fs=fs, segment_bytes=2048)
    after = states(reopened)
    assert sorted(after) == sorted(history[-1])
    for group_id, state in after.items():
        # never a hole, never a mix: exactly what one sync left, and nothing synced is lost
        assert state in (history[-1][group_id], in_flight[group_id])


def test_disk_full_then_retry_loses_nothing() -> None:
    h = sim_harness(1, segment_bytes=64 * 1024)
    fs = h.fs
    assert fs is not None
    groups = [h.log.create_group(g) for g in range(3)]
    h.log.sync()
    fs.capacity_bytes = fs.used_bytes()
    failures = 0
    for index in range(1, 400):
        for g in groups:
            g.stage(HardState(term=1, commit=index - 1), [entry(index, tag="z" * 500)])
        try:
            h.log.sync()
        except DiskFullError:
            failures += 1
            if failures == 3:
                break
    assert failures == 3
    staged = states(h.log)  # what the groups staged, synced or not
    fs.capacity_bytes = None  # space freed
    h.log.sync()  # the same staged writes, written at last
    assert states(h.log) == staged
    h.crash()
    assert states(h.log) == staged


# --- random operations against the reference ------------------------------------------------


def _step(
    rng: random.Random,
    ref: MemoryHarness,
    sut: DurableHarness,
    term: list[int],
) -> None:
    """One random operation, applied to both."""
    choice = rng.random()
    ids = ref.log.group_ids()
    if choice < 0.05 or not ids:
        new = max(ids, default=-1) + 1 if rng.random() < 0.5 else rng.randint(0, 20)
        if new not in ids:
            ref.log.create_group(new)
            sut.log.create_group(new)
        return
    g = rng.choice(ids)
    a, b = ref.log.group(g), sut.log.group(g)
    if choice < 0.65:
        term[0] += rng.random() < 0.2
        back = rng.randint(0, min(3, a.last_index - a.first_index + 1))
        start = a.last_index + 1 - back
        batch = [entry(i, term[0], tag="d" * rng.randint(0, 120)) for i in
                 range(start, start + rng.randint(0, 5))]
        hs = HardState(term=term[0], vote=rng.choice([None, 1, 2]), commit=0)
        hard_state = hs if rng.random() < 0.6 else None
        a.stage(hard_state, batch)
        b.stage(hard_state, batch)
    elif choice < 0.75:
        if a.last_index >= a.first_index and rng.random() < 0.7:
            index = rng.randint(a.first_index, a.last_index)
            meta = SnapshotMeta(index, a.term(index), CONF)  # keeps the suffix
        else:
            index = a.last_index + rng.randint(0, 5)
            meta = SnapshotMeta(index, term[0] + 1, CONF)  # conflicts: discards
        if meta.index <= a.first_index - 1:
            return  # Raft never installs an older snapshot, nor one index at two terms
        ref.snapshots(g).write(meta, [b"s%d" % meta.index])
        sut.snapshots(g).write(meta, [b"s%d" % meta.index])
        assert a.stage_snapshot(meta) == b.stage_snapshot(meta)
    else:
        ref.log.sync()
        sut.log.sync()


@pytest.mark.parametrize("seed", range(60))
def test_random_operations_and_crashes_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    ref = MemoryHarness()
    sut = sim_harness(seed, segment_bytes=rng.choice([1024, 2048, 8192]))
    fs = sut.fs
    assert fs is not None
    term = [1]
    for _ in range(rng.randint(50, 250)):
        roll = rng.random()
        if roll < 0.04:
            ref.crash()
            sut.crash()
        elif roll < 0.06:
            # A power cut in the middle of a sync: afterwards the log is either as before
            # the sync or as after it (the reference tells which), never anything else.
            before = ref.memory.crash()
            ref.log.sync()
            fs.crash_after_ops = rng.randint(1, 8)
            with contextlib.suppress(SimulatedPowerCut):
                sut.log.sync()
            fs.crash_after_ops = None
            sut.crash()
            got = states(sut.log)
            if got != states(ref.memory.crash()):
                ref.log = ref.memory = before
                ref.crash()
        else:
            _step(rng, ref, sut, term)
        assert states(sut.log) == states(ref.log), f"seed {seed}"


def test_the_random_comparison_has_teeth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break the durable log's rule that a marker leaving no staged entry behind discards the
    log, and the comparison must notice."""
    from kvorum.storage import node_log
    from kvorum.storage.wal import GroupWrite, SnapshotMarker

    real: Callable[[node_log.DurableGroupLog], GroupWrite] = node_log.DurableGroupLog._staged_write

    def never_discards(self: node_log.DurableGroupLog) -> GroupWrite:
        write = real(self)
        if write.marker is None:
            return write
        marker = SnapshotMarker(write.marker.index, write.marker.term, discard_log=False)
        return GroupWrite(write.group_id, marker, write.entries, write.hard_state)

    monkeypatch.setattr(node_log.DurableGroupLog, "_staged_write", never_discards)
    failures = 0
    for seed in range(60):
        try:
            test_random_operations_and_crashes_match_the_reference(seed)
        except AssertionError:
            failures += 1
    assert failures > 0
