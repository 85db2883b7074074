"""What a host needs from storage, as small protocols with one contract each.

Theory of operation: a node hosts many Raft groups, and every group needs three things kept
for it — its log, its hard state (term, vote, commit) and its snapshots — plus a state machine
that applies what the log commits. The host (:mod:`kvorum.host`) reaches all of them only
through the protocols below, so the same host runs over durable storage in a real node (the
shared WAL, snapshot files, LMDB) and over in-memory storage in tests, and each protocol has
one contract test suite that every implementation must pass (``tests/storage/contracts/``).

Writes are *staged* per group and made durable for all groups at once by
:meth:`NodeLog.sync` — one write and one ``fdatasync`` per drive round however many groups
wrote — which is what lets thousands of groups share one disk. Nothing a group staged may be
relied on (acknowledged, or sent in a message that promises it) before ``sync`` returns. If
``sync`` raises :class:`DiskFullError` nothing was lost: the staged writes are still staged
and the next ``sync`` tries again. Any other error from ``sync`` means the node can no longer
promise anything and must stop.

Threading: every method is called from one thread at a time. A host may run ``sync`` on a
worker thread, but then calls nothing else on the log until it returns. Snapshot files may be
written (:meth:`SnapshotStore.write`) on a worker thread while the log is in use.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from kvorum.core.raft.messages import Entry, HardState, SnapshotData, SnapshotMeta
from kvorum.core.raft.repair import RepairFence
from kvorum.core.shape import GroupId


class DiskFullError(OSError):
    """The disk has no room for what was staged. Nothing acknowledged is lost and nothing
    staged was dropped: the same ``sync`` succeeds once space is freed."""


class LogStore(Protocol):
    """One group's Raft log after its newest snapshot (the read side)."""

    @property
    def first_index(self) -> int:
        """The first index :meth:`entries` can return: the snapshot's index + 1."""

    @property
    def last_index(self) -> int:
        """The index of the last entry, staged or durable (the snapshot's if none)."""

    @property
    def last_term(self) -> int: ...

    def term(self, index: int) -> int:
        """The term of the entry at ``index`` (the snapshot's term at its index, 0 at 0).
        Raises LookupError below the snapshot or past the last index."""

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """The entries ``lo <= index < hi``. Raises LookupError if ``lo`` is compacted away
        and ValueError unless ``first_index <= lo <= hi <= last_index + 1``."""


class StableStore(Protocol):
    """One group's hard state: the term, the vote cast in it, and the commit index."""

    @property
    def hard_state(self) -> HardState:
        """The last hard state staged (all zero for a new group)."""


class GroupLog(LogStore, StableStore, Protocol):
    """The writable log of one group inside a :class:`NodeLog`."""

    @property
    def group_id(self) -> GroupId: ...

    @property
    def repair_fence(self) -> RepairFence | None:
        """Set while the durable log lacks entries it had acknowledged, cut back when storage
        repaired damage to synced data: the group's Raft core must stay out of elections
        until it has them again (:mod:`kvorum.core.raft.repair`). Storage lifts it once the
        durable log satisfies it; None for a log that never lost anything."""

    def stage(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        """Queue ``entries`` and then ``hard_state`` to become durable at the next sync.

        ``entries`` are consecutive and start at or below ``last_index + 1``; an entry at
        index i replaces every entry at an index >= i (Raft's rule for a conflicting suffix).
        Raises ValueError for a gap, or for entries inside the snapshot."""

    def stage_snapshot(self, meta: SnapshotMeta) -> bool:
        """Record that the snapshot ``meta`` — already durable in this group's
        :class:`SnapshotStore` — now holds every entry up to ``meta.index``.

        If the log holds ``meta``'s last entry (same index and term) the entries after it are
        kept; otherwise the whole log is discarded and continues at ``meta.index + 1``
        (Raft's InstallSnapshot rule). Returns whether the suffix was kept. Durable at the next
        sync; entries the snapshot covers may be deleted from disk after that. Raises
        ValueError for a snapshot older than the current one."""


class NodeLog(Protocol):
    """Every group's log on one node, made durable together."""

    def group_ids(self) -> list[GroupId]:
        """The groups this node holds, in ascending order."""

    def group(self, group_id: GroupId) -> GroupLog:
        """The log of ``group_id``; KeyError if the node does not hold it."""

    def create_group(self, group_id: GroupId) -> GroupLog:
        """A new, empty log for ``group_id`` (durable at the next sync); ValueError if the
        group exists."""

    def sync(self) -> None:
        """Make everything staged by every group durable, with one ``fdatasync``.

        Returns only when it would survive a crash. :class:`DiskFullError`: nothing lost,
        retry later. Any other exception: the log refuses further use."""

    def space_low(self) -> bool:
        """Whether the disk is about to run out: the log still takes Raft's own writes, but
        a host should refuse new client writes until this turns false again. Measured anew
        on every call (cheap enough to ask once a tick)."""

    def close(self) -> None:
        """Release files; staged writes not yet synced are dropped (as a crash would)."""


class SnapshotStore(Protocol):
    """One group's snapshots: the state machine's bytes as of a log index, with the Raft
    metadata that goes with them (index, term, configuration)."""

    def latest(self) -> SnapshotMeta | None:
        """The newest complete snapshot, checked end to end; None if there is none."""

    def write(self, meta: SnapshotMeta, chunks: Iterable[bytes]) -> None:
        """Store a snapshot and make it durable before returning (safe on a worker thread).
        A crash before it returns leaves the previous snapshot as the latest. The previous
        snapshot stays readable (a leader may still be sending it); older ones may go."""

    def data(self, meta: SnapshotMeta) -> SnapshotData:
        """``meta``'s bytes, read a slice at a time (what the leader streams to a follower),
        without holding them in memory. Cheap: it does not read the snapshot through (the
        store checked it end to end when it wrote it, or when :meth:`latest` found it), so a
        host may call it on a thread that must not block for long."""

    def chunks(self, meta: SnapshotMeta) -> Iterator[bytes]:
        """``meta``'s bytes as the chunks they were written in (what the state machine
        restores from); the checksum is verified by the time the iterator ends."""


class StateMachine(Protocol):
    """What a group's log drives: deterministic, and atomic with the index it has applied.

    Every entry, including a leader's empty no-op and a membership change, is applied in
    order and its index recorded *in the same atomic write* as its effects, so after a crash
    :meth:`applied_index` says exactly where to resume: an entry is never applied twice nor
    skipped.
    """

    def applied_index(self) -> int:
        """The index of the last entry whose effects are stored (0 if none)."""

    def apply(self, entries: Sequence[Entry]) -> Sequence[object | None]:
        """Apply committed ``entries`` (consecutive, starting at ``applied_index() + 1``; any
        at or below it are skipped and get None). One result per entry: what the client that
        proposed it is told, or None for entries that carry no command."""

    def snapshot(self) -> tuple[int, Iterator[bytes]]:
        """A point-in-time copy: the applied index it reflects and its bytes in chunks.
        The view is taken when this is called; the chunks may be read later, on another
        thread, while entries go on being applied."""

    def restore(self, chunks: Iterator[bytes], applied_index: int) -> None:
        """Replace the whole state with a snapshot made by :meth:`snapshot`."""
