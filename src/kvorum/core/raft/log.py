"""The Raft log as the core sees it: a snapshot boundary followed by entries in memory.

Theory of operation: the log is ``[snapshot | entries...]``. Everything up to
``snapshot_index`` has been compacted into the application's snapshot; only its index and term
are kept, which is all the consistency check needs at that boundary. Entries after it are held
here (the node compacts regularly, so this stays bounded). Three cursors move forward along it:
``stable_index`` (persisted by the driver), ``committed`` (known to be on a majority) and
``applied`` (handed to the state machine). Entries after ``unstable_from - 1`` have not been
handed to the driver to persist yet. A follower's conflicting suffix is truncated before new
entries are appended — never at or below ``committed``, which would lose a committed entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvorum.core.raft.errors import LogInvariantError
from kvorum.core.raft.messages import Entry


class RaftLog:
    # No ``__slots__``: mypyc refuses them, and a compiled class has a fixed layout anyway.

    def __init__(self, snapshot_index: int = 0, snapshot_term: int = 0) -> None:
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self.entries: list[Entry] = []
        self.committed = snapshot_index
        self.applied = snapshot_index
        self.stable_index = snapshot_index
        self.unstable_from = snapshot_index + 1

    # --- reading ---------------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        return self.snapshot_index + 1

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot_term

    def term(self, index: int) -> int | None:
        """The term of the entry at ``index``; None if compacted away or not there yet."""
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index or index > self.last_index:
            return None
        return self.entries[index - self.snapshot_index - 1].term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.snapshot_index - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with ``lo <= index < hi`` (``lo`` must be after the snapshot)."""
        if lo <= self.snapshot_index:
            raise LogInvariantError(
                f"slice from {lo} reaches into the snapshot at {self.snapshot_index}"
            )
        base = self.snapshot_index + 1
        return self.entries[lo - base : max(lo, hi) - base]

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Whether a log ending at (``last_term``, ``last_index``) is at least as up to date as
        this one — the election restriction (Raft §5.4.1)."""
        return last_term > self.last_term or (
            last_term == self.last_term and last_index >= self.last_index
        )

    def first_index_of_term_before(self, index: int) -> int:
        """The first index of the run of entries with the same term that ends at ``index``."""
        term = self.term(index)
        i = index
        while i - 1 > self.snapshot_index and self.term(i - 1) == term:
            i -= 1
        return i

    def last_index_of_term_at_most(self, index: int, term: int) -> int | None:
        """The largest ``j <= index`` whose entry has ``term``; None if there is none here."""
        j = min(index, self.last_index)
        while j >= self.snapshot_index:
            t = self.term(j)
            if t is None or t < term:
                return None
            if t == term:
                return j
            j -= 1
        return None

    # --- writing ---------------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries``, truncating any existing entries from the first one's index."""
        if not entries:
            return
        first = entries[0].index
        if first <= self.committed:
            raise LogInvariantError(f"truncating at {first} would lose committed {self.committed}")
        if first > self.last_index + 1:
            raise LogInvariantError(f"gap: appending {first} after {self.last_index}")
        del self.entries[first - self.snapshot_index - 1 :]
        self.entries.extend(entries)
        self.unstable_from = min(self.unstable_from, first)
        self.stable_index = min(self.stable_index, first - 1)

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """The index of the first entry that is new or disagrees with ours, else 0."""
        for e in entries:
            if self.term(e.index) != e.term:
                return e.index
        return 0

    def maybe_append(
        self, prev_index: int, prev_term: int, leader_commit: int, entries: Sequence[Entry]
    ) -> int | None:
        """Raft's consistency check and append (RAFT-4): None if ``prev`` does not match,
        else the index of the last entry this message vouches for."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            self.append(entries[conflict - prev_index - 1 :])
        self.commit_to(min(leader_commit, last_new))
        return last_new

    def commit_to(self, index: int) -> bool:
        if index <= self.committed:
            return False
        if index > self.last_index:
            raise LogInvariantError(f"commit {index} beyond last index {self.last_index}")
        self.committed = index
        return True

    def unstable_entries(self) -> list[Entry]:
        if self.unstable_from > self.last_index:
            return []
        return self.slice(self.unstable_from, self.last_index + 1)

    def mark_handed_out(self) -> None:
        self.unstable_from = self.last_index + 1

    def stable_to(self, index: int, term: int) -> None:
        """The driver persisted entries up to (``term``, ``index``)."""
        if self.term(index) == term and index > self.stable_index:
            self.stable_index = index

    def restore(self, index: int, term: int) -> None:
        """Replace the whole log by a snapshot boundary (a follower installing a snapshot)."""
        self.snapshot_index = index
        self.snapshot_term = term
        self.entries = []
        self.committed = index
        self.applied = index
        self.stable_index = index
        self.unstable_from = index + 1

    def compact(self, index: int) -> None:
        """Drop entries up to ``index``, which the application has covered by a snapshot."""
        if index <= self.snapshot_index:
            return
        if index > self.applied:
            raise LogInvariantError(f"compacting to {index} beyond applied {self.applied}")
        term = self.term(index)
        assert term is not None
        del self.entries[: index - self.snapshot_index]
        self.snapshot_index = index
        self.snapshot_term = term
