"""Protocol-aware repair: a server whose storage lost entries it had acknowledged.

Theory of operation (after Alagappan et al., "Protocol-Aware Recovery for Consensus-Based
Storage", FAST 2018). Raft's safety rests on one promise per server: an entry it acknowledged
stays in its log (until a legitimate leader replaces it). Commitment counts that promise —
an entry is committed once a majority acknowledged it — and every election leans on it: a
voter grants its vote only to a candidate whose log is at least as up to date as its own, so
any winner holds every committed entry, because its voters include one that acknowledged it.
A server whose synced log was damaged (a bad sector, bit rot) and cut back on restart has
broken that promise for the entries it lost. Refusing to start is safe but needs an
operator; starting as if nothing happened is not safe: its shorter log could vote a candidate
that lacks a committed entry into office, and the entry would be overwritten.

So the server starts *fenced* (:class:`RepairFence`): it may still follow a leader, accept
and acknowledge entries (those it really holds), answer heartbeats and serve reads, but it
does not campaign, and it grants a vote (or PreVote) only to a candidate whose log provably
holds everything it may have acknowledged (:meth:`RepairFence.covered_by_candidate`: the
candidate's last entry is of a newer term than any it acknowledged in, or of that very term
at or past the last index it held — by Log Matching the candidate's log then equals, up to
there, that of a leader that holds them all). Abstaining is always safe — it is what a server
that is down does — and the exception lets a group in which a majority is fenced still elect
the one server that has the data. It asks the leader for the lost entries (the ``lost_entries`` flag
of :class:`~kvorum.core.raft.messages.AppendEntriesResponse`, see
:meth:`RaftCore._request_repair`), and the leader lowers the follower's match index to the
follower's real last index, which the leader otherwise never does (its defence against a
wiped follower ping-ponging), and replicates from there. Lowering a match index only delays
commitment, so it is always safe; and the follower's log up to its real last index does match
the leader's (it acknowledged that much in the leader's term, and nothing but that leader has
written to it since), so the lowered value is still a true lower bound.

The fence lifts (:meth:`RepairFence.satisfied_by`) once the log again holds everything the
server may have acknowledged, which is the case in either of two ways:

* its last index reaches ``acknowledged_index``, the last index its log had before the damage:
  every entry past ``lost_from - 1`` was written since the restart by a leader whose term is at
  least ``fence_term``, which holds every entry committed with this server's old
  acknowledgements (the leader that counted them, or a later one, by Leader Completeness), and
  Log Matching makes the log equal to that leader's through ``acknowledged_index``;
* or its last entry's term exceeds ``fence_term`` (the term it had reached before the
  damage, so every acknowledgement it ever gave is of that term or older): that entry was
  written by the leader of a newer term, whose log at election time — everything before its
  first own entry — is now this log's prefix. That leader's election either did not count
  this server's vote — then its voters include an intact server from every quorum that
  committed anything with this server's old acknowledgements, and by the election
  restriction it holds those entries — or counted it because its log already covered the
  loss, and holds them for that reason (by induction over the terms after ``fence_term``).
  This is what lets a server repair from a new leader whose log is shorter than the one it
  lost (the lost tail was never committed).

A leader may have counted the fenced server's old acknowledgement, before it heard of the
damage, to commit an entry the server no longer holds. That commitment still stands: the
entry is on the leader and on the rest of the quorum, and no election can pass over it,
since the one server that forgot it votes only for logs that hold it. If nobody else holds
lost entries that were committed (every server that had them is fenced or gone), no leader
can be elected that would drop them: the group waits, which is the only safe outcome, and the
fenced server keeps saying what it is waiting for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvorum.core.raft.messages import NodeId


@dataclass(frozen=True, slots=True)
class RepairFence:
    """A group's log on this server lost entries it had acknowledged (see the module doc)."""

    lost_from: int
    """The first index the damaged log no longer holds (its last index + 1 on restart)."""
    acknowledged_index: int
    """The last index the log held before the damage: the most it may have acknowledged."""
    fence_term: int
    """The term the server had reached before the damage (its hard state's term)."""
    damage: str = field(default="", compare=False)
    """What storage found (file, offset, what the damaged batch held), for messages."""

    def __post_init__(self) -> None:
        if not 1 <= self.lost_from <= self.acknowledged_index:
            raise ValueError(
                f"need 1 <= lost_from <= acknowledged_index, got {self.lost_from}, "
                f"{self.acknowledged_index}"
            )

    def satisfied_by(self, last_index: int, last_term: int) -> bool:
        """Whether *this server's* log, ending at (``last_term``, ``last_index``) and written
        after the damage was found beyond ``lost_from - 1``, again holds what the server
        acknowledged (the fence lifts)."""
        return last_index >= self.acknowledged_index or last_term > self.fence_term

    def covered_by_candidate(self, last_index: int, last_term: int) -> bool:
        """Whether a candidate whose log ends at (``last_term``, ``last_index``) provably
        holds what this server acknowledged, so that the fenced server may vote for it.
        Stricter than :meth:`satisfied_by`: a candidate's entries up to
        ``acknowledged_index`` may be an old leader's, so its length alone proves nothing."""
        return last_term > self.fence_term or (
            last_term == self.fence_term and last_index >= self.acknowledged_index
        )

    def describe(self) -> str:
        return f"entries {self.lost_from}-{self.acknowledged_index}"


@dataclass(frozen=True, slots=True)
class RepairReport:
    """Where a fenced server's repair stands, for status displays."""

    fence: RepairFence
    completed: bool
    repaired_from: NodeId | None = None
    """The leader whose entries completed the repair."""
    completed_at_index: int = 0
    """The server's last index when the fence lifted."""

    def describe(self, group: int) -> str:
        what = f"entries {self.fence.lost_from}-{self.fence.acknowledged_index} of group {group}"
        if self.completed:
            source = "" if self.repaired_from is None else f" from node {self.repaired_from}"
            return f"repaired {what}{source}"
        return (
            f"repairing {what}: lost to storage damage, waiting for a leader to send them "
            "again (not voting in this group until then)"
        )
