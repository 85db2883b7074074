"""In-memory storage that keeps the contracts of :mod:`kvorum.storage.contracts`.

Theory of operation: the reference implementation, for unit tests, the interaction harness
and anything else that wants storage without files. Each group's log is two layers: what the
last :meth:`MemoryNodeLog.sync` made *durable*, and the writes *staged* since. Reads see both
(as a real node reads its own unsynced writes back from the page cache). :meth:`crash` returns
what a restarted node would find: the durable layer only, as if the power went out. Staged
writes are kept as operations and replayed onto the durable layer by ``sync``, so the same
truncation rules apply to both layers. :meth:`MemoryNodeLog.damage` plays what the WAL's
repair leaves after synced data was damaged: a group's log cut back before its first lost
entry, with a :class:`~kvorum.core.raft.RepairFence` that ``sync`` lifts once the durable
log satisfies it (as the WAL does).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from kvorum.core.raft.messages import Entry, HardState, SnapshotMeta
from kvorum.core.raft.repair import RepairFence
from kvorum.core.shape import GroupId


@dataclass(slots=True)
class _LogState:
    """One group's log: entries after the snapshot boundary, and the hard state."""

    snapshot_index: int = 0
    snapshot_term: int = 0
    entries: list[Entry] = field(default_factory=list)
    hard_state: HardState = field(default_factory=HardState)
    repair_fence: RepairFence | None = None

    def copy(self) -> _LogState:
        entries = list(self.entries)
        return _LogState(
            self.snapshot_index, self.snapshot_term, entries, self.hard_state, self.repair_fence
        )

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self.entries)

    def term(self, index: int) -> int:
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index:
            raise LookupError(f"entry {index} is compacted (snapshot at {self.snapshot_index})")
        if index > self.last_index:
            raise LookupError(f"entry {index} is past the last index {self.last_index}")
        return self.entries[index - self.snapshot_index - 1].term

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        if first <= self.snapshot_index:
            raise ValueError(
                f"entry {first} is inside the snapshot (first index is {self.snapshot_index + 1})"
            )
        if first > self.last_index + 1:
            raise ValueError(f"entry {first} leaves a gap after {self.last_index}")
        for before, after in pairwise(entries):
            if after.index != before.index + 1:
                raise ValueError(f"entries must be consecutive: {after.index} after {before.index}")
        del self.entries[first - self.snapshot_index - 1 :]
        self.entries.extend(entries)

    def adopt_snapshot(self, meta: SnapshotMeta) -> bool:
        keep = False
        if self.snapshot_index <= meta.index <= self.last_index:
            keep = self.term(meta.index) == meta.term
        if keep:
            del self.entries[: meta.index - self.snapshot_index]
        else:
            self.entries = []
        self.snapshot_index, self.snapshot_term = meta.index, meta.term
        return keep


_Op = tuple[str, object]


class MemoryGroupLog:
    """One group's log inside a :class:`MemoryNodeLog` (see :class:`GroupLog`)."""

    def __init__(self, group_id: GroupId, durable: _LogState) -> None:
        self._group_id = group_id
        self._durable = durable
        self._view = durable.copy()
        self._staged: list[_Op] = []

    @property
    def group_id(self) -> GroupId:
        return self._group_id

    @property
    def first_index(self) -> int:
        return self._view.snapshot_index + 1

    @property
    def last_index(self) -> int:
        return self._view.last_index

    @property
    def last_term(self) -> int:
        return self._view.term(self._view.last_index)

    @property
    def hard_state(self) -> HardState:
        return self._view.hard_state

    @property
    def repair_fence(self) -> RepairFence | None:
        return self._durable.repair_fence

    def term(self, index: int) -> int:
        if index == 0:
            return 0
        return self._view.term(index)

    def entries(self, lo: int, hi: int) -> list[Entry]:
        view = self._view
        if lo < self.first_index:
            raise LookupError(f"entry {lo} is compacted (first index is {self.first_index})")
        if not lo <= hi <= view.last_index + 1:
            raise ValueError(f"need {self.first_index} <= lo <= hi <= {view.last_index + 1}")
        base = view.snapshot_index + 1
        return view.entries[lo - base : hi - base]

    def stage(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        self._view.append(entries)  # validates before anything is staged
        if entries:
            self._staged.append(("entries", list(entries)))
        if hard_state is not None:
            self._view.hard_state = hard_state
            self._staged.append(("hard_state", hard_state))

    def stage_snapshot(self, meta: SnapshotMeta) -> bool:
        if meta.index < self._view.snapshot_index:
            raise ValueError(
                f"snapshot {meta.index} is older than the current one "
                f"({self._view.snapshot_index})"
            )
        kept = self._view.adopt_snapshot(meta)
        self._staged.append(("snapshot", meta))
        return kept

    def _sync(self) -> None:
        durable = self._durable
        for kind, value in self._staged:
            if kind == "entries":
                assert isinstance(value, list)
                durable.append(value)
            elif kind == "hard_state":
                assert isinstance(value, HardState)
                durable.hard_state = value
            else:
                assert isinstance(value, SnapshotMeta)
                durable.adopt_snapshot(value)
        self._staged.clear()
        fence = durable.repair_fence
        if fence is not None and fence.satisfied_by(
            durable.last_index, durable.term(durable.last_index)
        ):
            durable.repair_fence = None


class MemoryNodeLog:
    """Every group's log on one node, in memory (see :class:`NodeLog`)."""

    def __init__(self, durable: dict[GroupId, _LogState] | None = None) -> None:
        self._durable: dict[GroupId, _LogState] = durable if durable is not None else {}
        self._groups = {g: MemoryGroupLog(g, s) for g, s in self._durable.items()}
        self._new: set[GroupId] = set()
        self.syncs = 0
        """How many times :meth:`sync` ran (tests count fsyncs with it)."""
        self.low_on_space = False
        """What :meth:`space_low` says (tests set it)."""

    def group_ids(self) -> list[GroupId]:
        return sorted(self._groups)

    def group(self, group_id: GroupId) -> MemoryGroupLog:
        return self._groups[group_id]

    def create_group(self, group_id: GroupId) -> MemoryGroupLog:
        if group_id in self._groups:
            raise ValueError(f"group {group_id} already exists")
        log = MemoryGroupLog(group_id, _LogState())
        self._groups[group_id] = log
        self._new.add(group_id)
        return log

    def sync(self) -> None:
        for group_id in sorted(self._new):
            self._durable[group_id] = self._groups[group_id]._durable
        self._new.clear()
        for log in self._groups.values():
            if log._staged:
                log._sync()
        self.syncs += 1

    def space_low(self) -> bool:
        return self.low_on_space

    def crash(self) -> MemoryNodeLog:
        """What a node restarted after a power cut finds: only what was synced."""
        return MemoryNodeLog({g: s.copy() for g, s in self._durable.items()})

    def damage(self, group_id: GroupId, lost_from: int, damage: str = "") -> RepairFence:
        """Lose ``group_id``'s synced entries from ``lost_from`` on, as the WAL's repair of
        damaged batches leaves them (call it on a log fresh from :meth:`crash`): the log cut
        back, and a fence up to its old last index, in terms up to its hard state's."""
        state = self._durable[group_id]
        if self._groups[group_id]._staged:
            raise ValueError(f"group {group_id} has staged writes; damage a crashed log")
        if not state.snapshot_index < lost_from <= state.last_index:
            raise ValueError(
                f"group {group_id} holds entries {state.snapshot_index + 1}..{state.last_index},"
                f" cannot lose them from {lost_from}"
            )
        acknowledged, term = state.last_index, state.hard_state.term
        old = state.repair_fence
        if old is not None:
            acknowledged = max(acknowledged, old.acknowledged_index)
            term = max(term, old.fence_term)
        term = max(term, state.term(state.last_index))
        del state.entries[lost_from - state.snapshot_index - 1 :]
        state.repair_fence = RepairFence(lost_from, acknowledged, term, damage)
        self._groups[group_id] = MemoryGroupLog(group_id, state)
        return state.repair_fence

    def close(self) -> None:
        self._groups = {}


class MemorySnapshotStore:
    """One group's snapshots in memory (see :class:`SnapshotStore`); chunk boundaries are
    kept, and so are the newest ``keep`` snapshots, as the file store keeps them."""

    def __init__(self, keep: int = 2) -> None:
        self._snapshots: dict[SnapshotMeta, list[bytes]] = {}
        self._keep = keep

    def latest(self) -> SnapshotMeta | None:
        return max(self._snapshots, key=_age_order, default=None)

    def write(self, meta: SnapshotMeta, chunks: Iterable[bytes]) -> None:
        data = [bytes(c) for c in chunks]  # a failing iterator publishes nothing
        self._snapshots[meta] = data
        for old in sorted(self._snapshots, key=_age_order)[: -self._keep]:
            del self._snapshots[old]

    def data(self, meta: SnapshotMeta) -> bytes:
        return b"".join(self._snapshots[meta])

    def chunks(self, meta: SnapshotMeta) -> Iterator[bytes]:
        return iter(list(self._snapshots[meta]))


def _age_order(meta: SnapshotMeta) -> tuple[int, int]:
    """Snapshots order by index, then term (as the file store's names sort)."""
    return meta.index, meta.term
