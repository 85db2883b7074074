"""What the WAL keeps in memory per group: its durable state and where its entries are.

Theory of operation: entries are not kept in memory. For each group the log keeps its hard
state, snapshot (index, term), last index and term, the *terms* of its live entries as runs
(``term_starts[k]`` is the first index of a run of entries of ``term_values[k]``; terms change
rarely, so this is a handful of numbers however long the log, and :meth:`GroupIndex.term`
needs no disk read), and *pieces*: byte ranges of whole batches in one segment, each holding
the group's entries ``first .. last`` in order. A new run of entries that simply continues
the last piece within ``block_bytes`` of file extends it; otherwise (a truncation, a new
segment, too long a range, or a quarantined batch in between, which a piece must never
span) it starts a new piece. Reading entries reads the pieces that cover them and picks the
group's run out of each batch by the header's summary.

The rules are Raft's, applied to the pieces the same way at write time and at replay: entries
from index i replace every live entry at an index >= i (pieces from i are dropped, the one
before trimmed); a snapshot marker drops the pieces it fully covers (or, discarding the log,
all of them). A piece pins its segment (``Segment.pieces``): a segment no piece points into
holds nothing a snapshot does not, and may be deleted.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from kvorum.core.raft.messages import HardState
from kvorum.storage.wal.frame import Checkpoint, SnapshotMarker
from kvorum.storage.wal.segments import Segment


@dataclass(slots=True, eq=False)
class Piece:
    segment: Segment
    start: int
    """Offset of the first batch (a batch boundary)."""
    end: int
    """Offset just past the last batch."""
    first: int
    last: int


@dataclass(slots=True, eq=False)
class GroupIndex:
    """One group's durable state in the WAL (see the module docstring)."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot_index: int = 0
    snapshot_term: int = 0
    last_index: int = 0
    last_term: int = 0
    pieces: list[Piece] = field(default_factory=list)
    term_starts: list[int] = field(default_factory=list)
    term_values: list[int] = field(default_factory=list)

    @property
    def marker(self) -> SnapshotMarker | None:
        if self.snapshot_index == 0 and self.snapshot_term == 0:
            return None
        return SnapshotMarker(self.snapshot_index, self.snapshot_term)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.snapshot_index, self.snapshot_term, self.last_index, self.last_term)

    def term(self, index: int) -> int | None:
        """The durable term at ``index``: None outside ``snapshot_index .. last_index``."""
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index or index > self.last_index:
            return None
        k = bisect.bisect_right(self.term_starts, index) - 1
        return self.term_values[k] if k >= 0 else None

    def covered_from(self) -> int:
        """The lowest index whose entry the pieces hold (``last_index + 1`` if none)."""
        return self.pieces[0].first if self.pieces else self.last_index + 1

    # --- the replay rules ----------------------------------------------------------------

    def _drop_pieces_from(self, index: int) -> None:
        pieces = self.pieces
        while pieces and pieces[-1].first >= index:
            pieces.pop().segment.pieces -= 1
        if pieces and pieces[-1].last >= index:
            pieces[-1].last = index - 1

    def _drop_terms_from(self, index: int) -> None:
        k = bisect.bisect_left(self.term_starts, index)
        del self.term_starts[k:]
        del self.term_values[k:]

    def truncate_after(self, index: int) -> None:
        """Drop every entry after ``index`` (a repair cutting the log before lost entries)."""
        if not self.snapshot_index <= index <= self.last_index:
            raise ValueError(
                f"cannot cut the log after {index} (snapshot {self.snapshot_index}, "
                f"last index {self.last_index})"
            )
        term = self.term(index)
        if term is None:
            raise ValueError(f"the term of entry {index} is not known")
        self._drop_pieces_from(index + 1)
        self._drop_terms_from(index + 1)
        self.last_index = index
        self.last_term = term

    def apply_marker(self, marker: SnapshotMarker) -> None:
        if marker.discard_log or marker.index > self.last_index:
            self._drop_pieces_from(0)
            self.term_starts.clear()
            self.term_values.clear()
            self.last_index, self.last_term = marker.index, marker.term
        else:
            pieces = self.pieces
            drop = 0
            while drop < len(pieces) and pieces[drop].last <= marker.index:
                pieces[drop].segment.pieces -= 1
                drop += 1
            del pieces[:drop]
            # Keep the run that covers marker.index + 1 (the first live entry).
            k = bisect.bisect_right(self.term_starts, marker.index + 1) - 1
            if k > 0:
                del self.term_starts[:k]
                del self.term_values[:k]
            if marker.index == self.last_index:
                self.last_term = marker.term
        self.snapshot_index, self.snapshot_term = marker.index, marker.term

    def apply_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Start from a checkpoint (the group's first record in the oldest segment)."""
        self.snapshot_index = checkpoint.snapshot_index
        self.snapshot_term = checkpoint.snapshot_term
        self.last_index = checkpoint.last_index
        self.last_term = checkpoint.last_term
        if checkpoint.last_index > checkpoint.snapshot_index:
            self.term_starts = [checkpoint.last_index]
            self.term_values = [checkpoint.last_term]

    def apply_entries(
        self,
        segment: Segment,
        start: int,
        end: int,
        *,
        first: int,
        terms: list[int],
        block_bytes: int,
    ) -> None:
        """Entries ``first ..`` with ``terms``, written in the batches ``start .. end`` of
        ``segment``. The caller has checked ``snapshot_index < first <= last_index + 1``."""
        last = first + len(terms) - 1
        if first <= self.last_index:
            self._drop_pieces_from(first)
            self._drop_terms_from(first)
        pieces = self.pieces
        tail = pieces[-1] if pieces else None
        if (
            tail is not None
            and tail.segment is segment
            and tail.last == first - 1
            and end - tail.start <= block_bytes
            and tail.end >= segment.quarantined_until
        ):
            tail.end = end
            tail.last = last
        else:
            pieces.append(Piece(segment, start, end, first, last))
            segment.pieces += 1
        starts, values = self.term_starts, self.term_values
        index = first
        for term in terms:
            if not values or values[-1] != term:
                starts.append(index)
                values.append(term)
            index += 1
        self.last_index = last
        self.last_term = terms[-1]
