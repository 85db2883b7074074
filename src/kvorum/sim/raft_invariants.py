"""Raft's safety properties, checked after every simulated event.

Theory of operation: the checker watches the cluster from outside, the way a model checker
would, and keeps a global record of facts that must never change once established:

- *Election Safety*: the leader of each term (at most one, ever).
- *Log Matching*: every (index, term) ever appended anywhere, with its data and the term of
  the entry before it. Two logs holding the same (index, term) must agree on the data and on
  the previous term; by induction their whole prefixes then agree.
- *Committed entries*: every index any node ever considered committed, with its (term, data).
  A later, different committed entry at that index means a committed entry was lost.
- *Leader Completeness*: a new leader's log must hold every entry committed so far.
- *State Machine Safety*: every node applies the same entry at each index.

A violation raises :class:`InvariantViolation` at once, so the trace ends where it happened.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from kvorum.core.raft import Entry, RaftReady

if TYPE_CHECKING:
    from kvorum.sim.raft_cluster import RaftCluster, SimNode


class InvariantViolation(AssertionError):
    """A Raft safety property was broken; the message says which and where."""


def _digest(data: bytes) -> int:
    return zlib.crc32(data)


class RaftInvariants:
    """Observer that checks Raft's safety properties (see the module docstring)."""

    def __init__(self, cluster: RaftCluster) -> None:
        self.cluster = cluster
        self.leader_of_term: dict[int, int] = {}
        self.appended: dict[tuple[int, int], tuple[int, int | None]] = {}
        self.committed: dict[int, tuple[int, int]] = {}
        self.max_committed = 0
        self.applied: dict[int, tuple[int, int]] = {}
        self._checked_commit: dict[int, int] = {}
        self._completeness_checked: dict[int, int] = {}
        """Per node, the term whose leadership was already checked for completeness."""
        cluster.observers.append(self)

    # --- hooks -----------------------------------------------------------------------------

    def on_ready(self, node: SimNode, rd: RaftReady) -> None:
        log = node.core.log
        for e in rd.entries:
            prev = log.term(e.index - 1)
            fact = (_digest(e.data), prev)
            seen = self.appended.setdefault((e.index, e.term), fact)
            if seen[0] != fact[0] or (seen[1] is not None and prev is not None and seen[1] != prev):
                raise InvariantViolation(
                    f"Log Matching: n{node.id} holds entry {e.term}:{e.index} with different"
                    f" data or predecessor term ({fact}) than seen before ({seen})"
                )

    def on_apply(self, node: SimNode, entry: Entry) -> None:
        fact = (entry.term, _digest(entry.data))
        seen = self.applied.setdefault(entry.index, fact)
        if seen != fact:
            raise InvariantViolation(
                f"State Machine Safety: n{node.id} applied {entry.term}:{entry.index}, but"
                f" term {seen[0]}'s entry was applied at index {entry.index} elsewhere"
            )

    def after_event(self) -> None:
        for node in self.cluster.nodes.values():
            if not node.up:
                continue
            core = node.core
            if core.is_leader:
                holder = self.leader_of_term.setdefault(core.term, node.id)
                if holder != node.id:
                    raise InvariantViolation(
                        f"Election Safety: n{holder} and n{node.id} both lead term {core.term}"
                    )
                if self._completeness_checked.get(node.id) != core.term:
                    self._completeness_checked[node.id] = core.term
                    self._check_leader_completeness(node)
            self._record_commits(node)

    # --- checks ----------------------------------------------------------------------------

    def _record_commits(self, node: SimNode) -> None:
        log = node.core.log
        if log.committed == self._checked_commit.get(node.id):
            return  # the common case: nothing new committed here since the last event
        start = max(self._checked_commit.get(node.id, 0), log.snapshot_index) + 1
        for index in range(start, log.committed + 1):
            e = log.entry(index)
            fact = (e.term, _digest(e.data))
            seen = self.committed.setdefault(index, fact)
            if seen != fact:
                raise InvariantViolation(
                    f"committed entry lost: index {index} was committed in term {seen[0]},"
                    f" but n{node.id} now commits term {e.term}'s entry there"
                )
        self._checked_commit[node.id] = log.committed
        self.max_committed = max(self.max_committed, log.committed)

    def _check_leader_completeness(self, node: SimNode) -> None:
        log = node.core.log
        for index, (term, digest) in self.committed.items():
            if index <= log.snapshot_index:
                continue
            if index > log.last_index or log.entry(index).term != term:
                raise InvariantViolation(
                    f"Leader Completeness: n{node.id} leads term {node.core.term} without"
                    f" committed entry {term}:{index}"
                    f" (its last is {log.last_term}:{log.last_index})"
                )
            if _digest(log.entry(index).data) != digest:
                raise InvariantViolation(
                    f"Leader Completeness: n{node.id}'s entry {term}:{index} differs from the"
                    " committed one"
                )
