"""Raft's vocabulary: log entries, configurations, snapshots and the messages peers exchange.

Everything here is an immutable, slotted dataclass with plain fields (ints, bytes, tuples,
frozensets), so that the simulator can copy and duplicate messages freely and the runtime can
serialise them without a schema of its own. Every message names its sender, its receiver and
the sender's term; Raft's first rule — adopt any newer term seen, ignore older ones — is applied
to all of them in one place (:meth:`kvorum.core.raft.node.RaftCore.step`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

NodeId = int


class EntryKind(IntEnum):
    NORMAL = 0
    """An application command; an empty one is a leader's no-op that commits its term."""
    CONF_CHANGE = 1
    """A single-server membership change (data is an encoded :class:`ConfChange`)."""


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    data: bytes = b""
    kind: EntryKind = EntryKind.NORMAL


# A frozen dataclass's __init__ assigns each field through object.__setattr__, which costs
# as much as the rest of a proposal; writing the slots through their descriptors makes the
# same objects in half the time (Entry has no __post_init__ to skip).
_new_entry = object.__new__
_entry_slots: Any = Entry
_set_term, _set_index = _entry_slots.term.__set__, _entry_slots.index.__set__
_set_data, _set_kind = _entry_slots.data.__set__, _entry_slots.kind.__set__


def normal_entries(term: int, first_index: int, batch: Sequence[bytes]) -> list[Entry]:
    """``[Entry(term, first_index + i, data) for i, data in enumerate(batch)]``, faster:
    the leader builds one entry per proposed command."""
    entries = []
    normal = EntryKind.NORMAL
    index = first_index
    for data in batch:
        entry = _new_entry(Entry)
        _set_term(entry, term)
        _set_index(entry, index)
        _set_data(entry, data)
        _set_kind(entry, normal)
        entries.append(entry)
        index += 1
    return entries


class ConfChangeKind(IntEnum):
    ADD_LEARNER = 0
    PROMOTE = 1
    REMOVE = 2
    ADD_VOTER = 3
    """Used to write a new cluster's initial members into its log (bootstrap), so that the
    log alone says who votes — a node that joins later learns it by replaying the log."""


@dataclass(frozen=True, slots=True)
class ConfChange:
    """Add a non-voting learner, promote a learner to voter, or remove a server.

    One server changes at a time (Ongaro's thesis §4.1), so any two consecutive configurations'
    majorities overlap and no joint consensus is needed. ``auto_promote`` asks the leader to
    promote the learner by itself once it has caught up.
    """

    kind: ConfChangeKind
    node_id: NodeId
    auto_promote: bool = False
    context: bytes = b""
    """Opaque to Raft; the runtime puts the new server's addresses here."""

    def encode(self) -> bytes:
        head = f"{int(self.kind)}:{self.node_id}:{int(self.auto_promote)}:".encode()
        return head + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        kind, node, auto, context = data.split(b":", 3)
        return cls(ConfChangeKind(int(kind)), int(node), auto == b"1", context)


@dataclass(frozen=True, slots=True)
class ConfState:
    """A cluster configuration: who votes, who only listens, who is promoted when caught up,
    and which ids were removed and may never come back.

    Retired ids are why a server that lost its disk must rejoin under a *new* id (as etcd
    requires): a wiped server that reused its old id would replay an old log saying it votes,
    and a lagging voter whose configuration is two changes old could then win an election
    with its vote and that of other removed servers — a majority of a configuration no longer
    in force, missing entries committed since (found by the simulator).
    """

    voters: frozenset[NodeId]
    learners: frozenset[NodeId] = frozenset()
    auto_promote: frozenset[NodeId] = frozenset()
    retired: frozenset[NodeId] = frozenset()

    def apply(self, change: ConfChange) -> ConfState:
        """The configuration after ``change``; changes that are no-ops return ``self``."""
        n = change.node_id
        voters, learners, auto = self.voters, self.learners, self.auto_promote
        retired = self.retired
        if change.kind is ConfChangeKind.ADD_LEARNER:
            if n in voters or n in learners or n in retired:
                return self
            auto = auto | {n} if change.auto_promote else auto
            return ConfState(voters, learners | {n}, auto, retired)
        if change.kind is ConfChangeKind.ADD_VOTER:
            if n in voters or n in retired:
                return self
            return ConfState(voters | {n}, learners - {n}, auto - {n}, retired)
        if change.kind is ConfChangeKind.PROMOTE:
            if n not in learners:
                return self
            return ConfState(voters | {n}, learners - {n}, auto - {n}, retired)
        if n not in voters and n not in learners:
            return self
        return ConfState(voters - {n}, learners - {n}, auto - {n}, retired | {n})

    @property
    def members(self) -> frozenset[NodeId]:
        return self.voters | self.learners


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int
    term: int
    conf: ConfState


class SnapshotData(Protocol):
    """Snapshot bytes a host keeps outside memory (a file), read a slice at a time.

    The core only ever asks a snapshot's data for its length and for the slice it sends next,
    so a host may hand it this instead of ``bytes`` and keep memory independent of the data
    set's size (etcd's raft reads snapshots through its Storage interface the same way).
    """

    def __len__(self) -> int: ...

    def __getitem__(self, part: slice, /) -> bytes: ...


def plain_slice(part: slice, size: int) -> tuple[int, int]:
    """``part``'s start and stop within ``size`` bytes; ValueError for a step other than 1
    (a :class:`SnapshotData` is only ever read in plain slices)."""
    start, stop, step = part.indices(size)
    if step != 1:
        raise ValueError("snapshot data is read in plain slices")
    return start, max(start, stop)


class JoinedSnapshotData:
    """Pieces of snapshot data (bytes, or :class:`SnapshotData` a host stored) read as one
    (a snapshot received chunk by chunk whose chunks the host kept on disk)."""

    __slots__ = ("_pieces", "_size", "_starts")

    def __init__(self, pieces: list[bytes | SnapshotData]) -> None:
        self._pieces = pieces
        self._starts: list[int] = []
        size = 0
        for piece in pieces:
            self._starts.append(size)
            size += len(piece)
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, part: slice, /) -> bytes:
        start, stop = plain_slice(part, self._size)
        out: list[bytes] = []
        for piece, first in zip(self._pieces, self._starts, strict=True):
            end = first + len(piece)
            if end <= start or first >= stop:
                continue
            out.append(bytes(piece[max(start, first) - first : min(stop, end) - first]))
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The application's state as of ``meta.index``, as opaque bytes (in memory, or read
    from where the host keeps them: see :class:`SnapshotData`)."""

    meta: SnapshotMeta
    data: bytes | SnapshotData

    def data_bytes(self) -> bytes:
        """The whole data in memory (for hosts that keep snapshots as bytes, such as the
        simulator, and for a snapshot just received, which the core assembles as bytes)."""
        return self.data if isinstance(self.data, bytes) else self.data[0 : len(self.data)]


@dataclass(frozen=True, slots=True)
class HardState:
    """What Raft must persist before answering: the term, the vote in it, and the commit."""

    term: int = 0
    vote: NodeId | None = None
    commit: int = 0


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestVote:
    src: NodeId
    dst: NodeId
    term: int
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    """A PreVote asks "would you vote for me at ``term``?" without anyone changing term."""
    transfer: bool = False
    """Sent after TimeoutNow: voters skip the leader-lease check (the leader asked for it)."""


@dataclass(frozen=True, slots=True)
class RequestVoteResponse:
    src: NodeId
    dst: NodeId
    term: int
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class AppendEntries:
    src: NodeId
    dst: NodeId
    term: int
    prev_log_index: int
    prev_log_term: int
    entries: tuple[Entry, ...]
    leader_commit: int


@dataclass(frozen=True, slots=True)
class AppendEntriesResponse:
    src: NodeId
    dst: NodeId
    term: int
    success: bool
    match_index: int
    """On success: the follower's log matches the leader's up to here. With ``lost_entries``:
    the follower's last index."""
    rejected_index: int = 0
    """On rejection: the ``prev_log_index`` that did not match (to spot stale rejections)."""
    conflict_index: int = 0
    """On rejection: where the leader should look next (first index of ``conflict_term``, or
    the follower's last index + 1 when its log is too short)."""
    conflict_term: int = 0
    """On rejection: the term of the follower's entry at ``rejected_index`` (0 if none)."""
    lost_entries: bool = False
    """Never with success. The follower lost entries it had acknowledged (storage damage,
    repaired on restart) and its log now ends at ``match_index``: the leader lowers its match
    index for it to that and replicates from there (see :mod:`kvorum.core.raft.repair`). Sent
    as the answer to a rejected append (``rejected_index`` set) or unprompted (0)."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    src: NodeId
    dst: NodeId
    term: int
    leader_commit: int
    round: int
    """Heartbeat round; an acknowledgement of round r confirms leadership as of r's sending,
    which is what ReadIndex and lease reads wait for."""


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    src: NodeId
    dst: NodeId
    term: int
    round: int


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    src: NodeId
    dst: NodeId
    term: int
    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    src: NodeId
    dst: NodeId
    term: int
    snapshot_index: int
    next_offset: int
    """The byte offset the follower expects next (0 after a gap: start over)."""


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    src: NodeId
    dst: NodeId
    term: int


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    src: NodeId
    dst: NodeId
    term: int
    ctx: int


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    src: NodeId
    dst: NodeId
    term: int
    ctx: int
    index: int
    ok: bool


RaftMessage = (
    RequestVote
    | RequestVoteResponse
    | AppendEntries
    | AppendEntriesResponse
    | Heartbeat
    | HeartbeatResponse
    | InstallSnapshot
    | InstallSnapshotResponse
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexResponse
)
"""Every message a Raft core steps (``RaftCore.step`` takes exactly these)."""

RAFT_WIRE_TAGS: dict[type, int] = {
    RequestVote: 0,
    RequestVoteResponse: 1,
    AppendEntries: 2,
    AppendEntriesResponse: 3,
    Heartbeat: 4,
    HeartbeatResponse: 5,
    InstallSnapshot: 6,
    InstallSnapshotResponse: 7,
    TimeoutNow: 8,
    ReadIndexRequest: 9,
    ReadIndexResponse: 10,
}
"""Each Raft message's number on the wire (protocol ``RAFT``). A number is given once and
never changes or passes to another class: a new message takes a new number, and a removed
message's number moves to :data:`RAFT_RETIRED_WIRE_TAGS`."""

RAFT_RETIRED_WIRE_TAGS: frozenset[int] = frozenset({11, 12})
"""Numbers no Raft message may take again: 11 and 12 were ``ClientForward`` and
``ClientForwardReply`` in wire version 1 (forwarding is now the NODE protocol's)."""
