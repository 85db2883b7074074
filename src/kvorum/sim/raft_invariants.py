"""Raft's safety properties, checked for every group after every simulated event.

Theory of operation: the checker watches the cluster from outside, the way a model checker
would, and keeps, per group, a record of facts that must never change once established:

- *Election Safety*: the leader of each term (at most one, ever).
- *Log Matching*: every (index, term) ever appended anywhere, with its data and the term of
  the entry before it. Two logs holding the same (index, term) must agree on the data and on
  the previous term; by induction their whole prefixes then agree.
- *Committed entries*: every index any node ever considered committed, with its (term, data).
  A later, different committed entry at that index means a committed entry was lost.
- *Leader Completeness*: a new leader's log must hold every entry committed so far.
- *State Machine Safety*: every node applies the same entry at each index.

A violation raises :class:`InvariantViolation` at once, so the trace ends where it happened.
Groups are independent Raft instances, so every fact is kept per group.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kvorum.core.raft import Entry, RaftCore, RaftReady
from kvorum.core.shape import GroupId

if TYPE_CHECKING:
    from kvorum.host.group import RaftGroup
    from kvorum.sim.raft_cluster import RaftCluster, SimNode


class InvariantViolation(AssertionError):
    """A Raft safety property was broken; the message says which and where."""


def _digest(data: bytes) -> int:
    return zlib.crc32(data)


@dataclass(slots=True)
class _GroupFacts:
    leader_of_term: dict[int, int] = field(default_factory=dict)
    appended: dict[tuple[int, int], tuple[int, int | None]] = field(default_factory=dict)
    committed: dict[int, tuple[int, int]] = field(default_factory=dict)
    max_committed: int = 0
    applied: dict[int, tuple[int, int]] = field(default_factory=dict)
    checked_commit: dict[int, int] = field(default_factory=dict)
    completeness_checked: dict[int, int] = field(default_factory=dict)
    """Per node, the term whose leadership was already checked for completeness."""


class RaftInvariants:
    """Observer that checks Raft's safety properties (see the module docstring)."""

    def __init__(self, cluster: RaftCluster) -> None:
        self.cluster = cluster
        self.groups: dict[GroupId, _GroupFacts] = {g: _GroupFacts() for g in cluster.group_ids}
        cluster.observers.append(self)

    @property
    def max_committed(self) -> int:
        """The highest commit index of group 0 (what liveness compares against)."""
        return self.groups[0].max_committed

    def committed_of(self, group_id: GroupId) -> int:
        return self.groups[group_id].max_committed

    # --- hooks -----------------------------------------------------------------------------

    def on_ready(self, node: SimNode, group: RaftGroup, rd: RaftReady) -> None:
        facts = self.groups[group.group_id]
        core = group.core
        for e in rd.entries:
            prev = core.term_at(e.index - 1)
            fact = (_digest(e.data), prev)
            seen = facts.appended.setdefault((e.index, e.term), fact)
            if seen[0] != fact[0] or (seen[1] is not None and prev is not None and seen[1] != prev):
                raise InvariantViolation(
                    f"Log Matching: g{group.group_id} n{node.id} holds entry {e.term}:{e.index}"
                    f" with different data or predecessor term ({fact}) than seen before ({seen})"
                )

    def on_apply(self, node: SimNode, group: RaftGroup, entries: list[Entry]) -> None:
        facts = self.groups[group.group_id]
        for entry in entries:
            fact = (entry.term, _digest(entry.data))
            seen = facts.applied.setdefault(entry.index, fact)
            if seen != fact:
                raise InvariantViolation(
                    f"State Machine Safety: g{group.group_id} n{node.id} applied"
                    f" {entry.term}:{entry.index}, but term {seen[0]}'s entry was applied at"
                    f" index {entry.index} elsewhere"
                )

    def after_event(self) -> None:
        """Check the nodes the last event touched (the others have not changed)."""
        cluster = self.cluster
        touched = cluster.touched
        if not touched:
            return
        nodes = [cluster.nodes[i] for i in sorted(touched)]
        touched.clear()
        for node in nodes:
            if not node.up:
                continue
            for gid, group in node.host.groups.items():
                facts = self.groups[gid]
                core = group.core
                if core.is_leader:
                    holder = facts.leader_of_term.setdefault(core.term, node.id)
                    if holder != node.id:
                        raise InvariantViolation(
                            f"Election Safety: g{gid}: n{holder} and n{node.id} both lead"
                            f" term {core.term}"
                        )
                    if facts.completeness_checked.get(node.id) != core.term:
                        facts.completeness_checked[node.id] = core.term
                        self._check_leader_completeness(gid, node.id, core)
                self._record_commits(gid, node.id, core)

    # --- checks ----------------------------------------------------------------------------

    def _record_commits(self, gid: GroupId, node_id: int, core: RaftCore) -> None:
        facts = self.groups[gid]
        commit = core.commit_index
        if commit == facts.checked_commit.get(node_id):
            return  # the common case: nothing new committed here since the last event
        start = max(facts.checked_commit.get(node_id, 0), core.snapshot_index) + 1
        if start <= commit:
            for e in core.entries(start, commit + 1):
                fact = (e.term, _digest(e.data))
                seen = facts.committed.setdefault(e.index, fact)
                if seen != fact:
                    raise InvariantViolation(
                        f"committed entry lost: g{gid} index {e.index} was committed in term"
                        f" {seen[0]}, but n{node_id} now commits term {e.term}'s entry there"
                    )
        facts.checked_commit[node_id] = commit
        facts.max_committed = max(facts.max_committed, commit)

    def _check_leader_completeness(self, gid: GroupId, node_id: int, core: RaftCore) -> None:
        facts = self.groups[gid]
        first = core.snapshot_index + 1
        last = core.last_index
        held = {e.index: e for e in core.entries(first, last + 1)} if first <= last else {}
        for index, (term, digest) in facts.committed.items():
            if index < first:
                continue
            entry = held.get(index)
            if entry is None or entry.term != term:
                raise InvariantViolation(
                    f"Leader Completeness: g{gid} n{node_id} leads term {core.term} without"
                    f" committed entry {term}:{index} (its last is {core.last_term}:{last})"
                )
            if _digest(entry.data) != digest:
                raise InvariantViolation(
                    f"Leader Completeness: g{gid} n{node_id}'s entry {term}:{index} differs"
                    " from the committed one"
                )
