"""The leader's view of each follower: how far it matches, what to send next, how much is in
flight.

Theory of operation: a follower's progress is in one of three states. In PROBE the leader does
not know where the follower's log matches its own, so it sends one AppendEntries at a time and
waits for the answer (each rejection moves ``next_index`` back, using the follower's conflict
hints to skip a whole term at once). In REPLICATE the logs are known to match up to
``match_index``, so the leader streams entries optimistically, advancing ``next_index`` as it
sends; the number of unacknowledged appends is bounded by :class:`Inflights`, so a slow
follower cannot make the leader buffer without limit. In SNAPSHOT the follower needs entries
the leader has compacted away, and the leader streams it a snapshot in chunks instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum


class ProgressState(Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


# Not slotted: mypyc refuses ``slots=True``, and compiled, these are fixed-layout classes.
@dataclass
class Inflights:
    """The last index of every AppendEntries sent but not yet acknowledged, oldest first."""

    capacity: int
    last_indexes: deque[int] = field(default_factory=deque)

    def add(self, last_index: int) -> None:
        self.last_indexes.append(last_index)

    def free_to(self, index: int) -> None:
        """Forget every message whose entries are all acknowledged by ``index``."""
        while self.last_indexes and self.last_indexes[0] <= index:
            self.last_indexes.popleft()

    def full(self) -> bool:
        return len(self.last_indexes) >= self.capacity

    def reset(self) -> None:
        self.last_indexes.clear()


@dataclass
class Progress:
    match_index: int
    next_index: int
    inflights: Inflights
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False
    """In PROBE: an append is outstanding, so wait for its answer (or a heartbeat's)."""
    pending_snapshot_index: int = 0
    snapshot_offset: int = 0
    recent_active: bool = False
    """Heard from since the last CheckQuorum; reset every election timeout."""
    acked_round: int = 0
    """The newest heartbeat round this follower acknowledged."""

    def become_probe(self) -> None:
        # After a snapshot the follower holds at least the snapshot's index.
        if self.state is ProgressState.SNAPSHOT:
            self.next_index = max(self.match_index + 1, self.pending_snapshot_index + 1)
        else:
            self.next_index = self.match_index + 1
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot_index = 0
        self.inflights.reset()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next_index = self.match_index + 1
        self.probe_sent = False
        self.inflights.reset()

    def become_snapshot(self, snapshot_index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot_index = snapshot_index
        self.snapshot_offset = 0
        self.inflights.reset()

    def maybe_update(self, index: int) -> bool:
        """Record an acknowledgement up to ``index``; True if it was news."""
        updated = index > self.match_index
        if updated:
            self.match_index = index
            self.probe_sent = False
        self.next_index = max(self.next_index, index + 1)
        return updated

    def is_paused(self) -> bool:
        """Whether the leader should hold further appends to this follower for now."""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True
