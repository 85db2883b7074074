"""What a Raft core hands its driver each round: :class:`RaftReady` and the reads it clears.

Theory of operation: :meth:`~kvorum.core.raft.node.RaftCore.ready` collects everything the
driver must carry out, in order — persist the hard state, entries and snapshot, send the
messages, apply the committed entries, serve the reads — into one :class:`RaftReady`, which
extends the :class:`~kvorum.core.shape.Ready` every protocol core shares. It lives apart from
the core's code, in plain Python, because the core may be compiled with mypyc
(``python3 dev.py compile``) and a compiled class cannot inherit the interpreted ``Ready``;
so hosts and tests see the same classes whichever way the core runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvorum.core.raft.messages import Entry, HardState, RaftMessage, Snapshot
from kvorum.core.shape import Ready


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read may be served, linearizably, once the state machine has applied ``index``."""

    ctx: int
    index: int


@dataclass(slots=True)
class RaftReady(Ready[RaftMessage]):
    """What the driver must do, in this order: persist, send, apply; then ``advance``."""

    early_messages: list[RaftMessage] = field(default_factory=list)
    """A leader's appends and heartbeats, which may be sent *before* this ready is persisted
    (thesis §10.2.1: the leader writes its own disk in parallel with replicating). Safe
    because the leader counts its own copy of an entry only once ``advance`` reports it
    durable, and because nothing in them depends on this ready's term or vote."""
    hard_state: HardState | None = None
    must_sync: bool = False
    """Whether the writes must be fsynced before ``messages`` go out: new entries, a
    snapshot, or a changed term or vote. A hard state that only moves the commit index
    need not be (the commit index is volatile state in Raft; it is relearnt)."""
    entries: list[Entry] = field(default_factory=list)
    """Append these; any persisted entry at or after ``entries[0].index`` is replaced."""
    snapshot: Snapshot | None = None
    """Persist and install this snapshot (replacing state machine and log) before applying."""
    committed_entries: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    failed_reads: list[int] = field(default_factory=list)
    """Contexts of reads that cannot be served here (no leader, leadership lost)."""

    @property
    def all_messages(self) -> list[RaftMessage]:
        """Every message, for drivers that send everything after persisting."""
        return self.early_messages + self.messages if self.early_messages else self.messages
