"""What a simulated node keeps across a crash: hard state, the newest snapshot, the log.

Theory of operation: the in-memory twin of :mod:`kvorum.storage.raft_log_store`, with the same
contract. :meth:`MemoryStorage.save` carries out a ready's writes the way the WAL does — an
installed snapshot replaces the whole log, new entries replace any stored entries from their
first index on — and :meth:`compact` drops what a snapshot covers. Whatever a crash must lose
is simply never passed to it. Entries are kept in index order, so a save touches only the
tail it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvorum.core.raft import Entry, HardState, RaftReady, Snapshot


@dataclass(slots=True)
class MemoryStorage:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)
    """The log after the snapshot, contiguous and in index order."""

    def save(self, rd: RaftReady) -> None:
        """Persist a ready's writes, as durably as the simulation needs."""
        if rd.snapshot is not None:
            self.snapshot = rd.snapshot
            self.entries = []
        if rd.hard_state is not None:
            self.hard_state = rd.hard_state
        if rd.entries:
            first = rd.entries[0].index
            if self.entries:
                del self.entries[max(0, first - self.entries[0].index) :]
            self.entries.extend(rd.entries)

    def compact(self, snapshot: Snapshot) -> None:
        """Adopt ``snapshot`` and drop the entries it covers."""
        self.snapshot = snapshot
        if self.entries:
            del self.entries[: max(0, snapshot.meta.index - self.entries[0].index + 1)]
