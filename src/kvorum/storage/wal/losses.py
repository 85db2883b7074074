"""Replaying around quarantined batches: what each group lost, and the fence it leaves.

Theory of operation: a quarantined batch (:mod:`kvorum.storage.wal.quarantine`) cannot be
read, but its header's summary says per group which entries it wrote (``first .. last``) and
whether it wrote a hard state or a snapshot marker. Replay goes on without it and keeps, per
group, the *real* log (what the segments still hold, in :class:`GroupIndex`) and, while they
differ, the last index the log would have had without the damage (the *virtual* last index):
the group has a *hole*.

* The lost batch's entries replaced everything from ``first`` on, so the real log is cut to
  ``first - 1`` and the virtual last index becomes ``last``.
* Later entries that start at or before the real log's end replace the hole: it closes, and
  replay is back to normal. Later entries that start further on follow lost entries: they
  are dropped too (a log has no gaps), and only move the virtual last index.
* A later snapshot marker covers what it covers: at or past the virtual last index (or
  discarding the log) it closes the hole; inside the hole the real log continues after it.
* A checkpoint (a segment's first batch, repeating every group's state) written before the
  repair matches the virtual log; one written after it, the real log (and closes the hole).

When replay ends, a group whose hole is still open lost entries it had acknowledged: it gets a
:class:`~kvorum.core.raft.RepairFence` (lost from the real last index + 1, acknowledged up to
the virtual last index, in terms up to its hard state's), and its node must fetch them from
peers before it votes again. What cannot be repaired this way is refused
(:class:`Unrepairable`): a lost hard state that no later record repeats (the vote in it could
be for a term nobody else remembers, and voting twice in a term breaks Election Safety), a
lost snapshot marker (its index and term are not in the summary), a lost checkpoint of the
oldest segment (nothing before it says what the groups held), and a summary that does not fit
the log around it. A lost checkpoint of any later segment costs nothing: it only repeated
what the segments before it say.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvorum.core.raft.repair import RepairFence
from kvorum.core.shape import GroupId
from kvorum.storage.wal.frame import Checkpoint, SnapshotMarker
from kvorum.storage.wal.groups import GroupIndex
from kvorum.storage.wal.quarantine import QuarantinedBatch


class Unrepairable(Exception):
    """A quarantined batch took something with it that peers cannot give back."""

    def __init__(self, batch: QuarantinedBatch, why: str) -> None:
        super().__init__(why)
        self.batch = batch
        self.why = why


@dataclass(slots=True)
class _Hole:
    virtual_last: int
    batch: QuarantinedBatch
    """The newest quarantined batch that cost the group entries."""
    top_term: int = 0
    """The newest term of an entry dropped for following lost ones."""


class LossTracker:
    """The holes of every group during one replay (see the module docstring)."""

    def __init__(self, groups: dict[GroupId, GroupIndex]) -> None:
        self._groups = groups
        self._holes: dict[GroupId, _Hole] = {}
        self._lost_hard_state: dict[GroupId, QuarantinedBatch] = {}

    # --- a quarantined batch -----------------------------------------------------------

    def lose(self, batch: QuarantinedBatch, *, base_of_log: bool) -> None:
        """Replay ``batch`` as lost. ``base_of_log``: it is the oldest segment's checkpoint."""
        summaries = batch.lost
        if summaries and all(s.checkpoint for s in summaries):
            if base_of_log:
                raise Unrepairable(
                    batch,
                    "it is the oldest segment's checkpoint, and no other segment says what "
                    "the groups held before it",
                )
            return  # it only repeated what the segments before it say
        for s in summaries:
            g = s.group_id
            if s.checkpoint or s.snapshot_marker:
                what = "a checkpoint" if s.checkpoint else "a snapshot marker"
                raise Unrepairable(
                    batch, f"group {g}: it held {what}, whose index and term are lost with it"
                )
            group = self._groups.get(g)
            if group is None:
                group = self._groups[g] = GroupIndex()
            if s.last_index:
                hole = self._holes.get(g)
                end = hole.virtual_last if hole is not None else group.last_index
                if not group.snapshot_index < s.first_index <= min(s.last_index, end + 1):
                    raise Unrepairable(
                        batch,
                        f"group {g}: its entries {s.first_index}..{s.last_index} do not follow "
                        f"the log (snapshot {group.snapshot_index}, last index {end})",
                    )
                if s.first_index <= group.last_index:
                    try:
                        group.truncate_after(s.first_index - 1)
                    except ValueError as exc:
                        raise Unrepairable(batch, f"group {g}: {exc}") from exc
                self._holes[g] = _Hole(s.last_index, batch)
            if s.hard_state:
                self._lost_hard_state[g] = batch

    # --- the records that follow -------------------------------------------------------

    def end_of_log(self, group_id: GroupId, group: GroupIndex) -> int:
        """The last index later records must fit: the virtual one while a hole is open."""
        hole = self._holes.get(group_id)
        return group.last_index if hole is None else hole.virtual_last

    def check_checkpoint(self, group_id: GroupId, group: GroupIndex, cp: Checkpoint) -> bool:
        """Whether checkpoint ``cp`` agrees with the log (before or after the repair)."""
        if cp.snapshot_index != group.snapshot_index:
            return False
        hole = self._holes.get(group_id)
        if hole is None:
            return cp.last_index == group.last_index
        if cp.last_index == hole.virtual_last:
            return True  # written before the repair
        if cp.last_index == group.last_index:
            del self._holes[group_id]  # written after it: the real log is the log
            return True
        return False

    def keep_entries(
        self, group_id: GroupId, group: GroupIndex, first: int, terms: list[int]
    ) -> bool:
        """Whether entries ``first ..`` (of ``terms``) go into the log (else they follow lost
        ones and are dropped)."""
        hole = self._holes.get(group_id)
        if hole is None:
            return True
        if first <= group.last_index + 1:
            del self._holes[group_id]
            return True
        hole.virtual_last = first + len(terms) - 1
        hole.top_term = max(hole.top_term, *terms)
        return False

    def apply_marker(self, group_id: GroupId, group: GroupIndex, marker: SnapshotMarker) -> None:
        group.apply_marker(marker)
        hole = self._holes.get(group_id)
        if hole is not None and (marker.discard_log or marker.index >= hole.virtual_last):
            del self._holes[group_id]

    def hard_state_seen(self, group_id: GroupId) -> None:
        self._lost_hard_state.pop(group_id, None)

    # --- the end -----------------------------------------------------------------------

    def fences(self, new: set[int]) -> dict[GroupId, RepairFence]:
        """The fence of every group whose hole is still open and was opened or widened by a
        batch numbered in ``new`` (quarantined by this replay: older ones already have
        theirs). Raises :class:`Unrepairable` for a lost hard state nothing repeated."""
        for g, batch in sorted(self._lost_hard_state.items()):
            raise Unrepairable(
                batch,
                f"group {g}: it held the group's hard state (term and vote), and no later "
                "record repeats it",
            )
        out = {}
        for g, hole in sorted(self._holes.items()):
            if hole.batch.batch_seq not in new:
                continue
            group = self._groups[g]
            out[g] = RepairFence(
                lost_from=group.last_index + 1,
                acknowledged_index=hole.virtual_last,
                # A server's term is at least that of every entry it holds; the maximum
                # guards against a log whose hard state was never written.
                fence_term=max(group.hard_state.term, group.last_term, hole.top_term),
                damage=hole.batch.damage,
            )
        return out
