"""A read-only picture of a Raft core, for hosts, status commands, metrics and checkers.

Theory of operation: drivers must not reach into a core's log or progress table (they are
the core's to change, and reading them half-way through a change shows states that never
exist from outside). :meth:`kvorum.core.raft.RaftCore.status` copies what the outside may
know into a :class:`RaftStatus`: plain, frozen values that stay true for the moment they were
taken. The cheap scalars a host reads on every round (term, role, leader, commit and applied
index) are also properties of the core itself, so the hot path need not build a status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from kvorum.core.raft.messages import ConfState, NodeId
from kvorum.core.raft.repair import RepairReport


class Role(Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """How far the leader believes one member's log matches its own."""

    match_index: int
    next_index: int
    state: str
    """``probe``, ``replicate`` or ``snapshot`` (see :mod:`kvorum.core.raft.progress`)."""
    recent_active: bool


@dataclass(frozen=True, slots=True)
class RaftStatus:
    """One core as of one moment; ``progress`` is empty unless the core leads."""

    node_id: NodeId
    role: Role
    term: int
    vote: NodeId | None
    leader_id: NodeId | None
    commit_index: int
    applied_index: int
    first_index: int
    last_index: int
    last_term: int
    snapshot_index: int
    conf: ConfState
    lead_transferee: NodeId | None = None
    progress: dict[NodeId, PeerStatus] = field(default_factory=dict)
    repair: RepairReport | None = None
    """Entries storage lost and this server fetches again (None: nothing was lost)."""

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for JSON): what ``KVORUM STATUS`` shows per group."""
        return {
            "id": self.node_id,
            "role": self.role.value,
            "term": self.term,
            "vote": self.vote,
            "leader": self.leader_id,
            "commit": self.commit_index,
            "applied": self.applied_index,
            "last_index": self.last_index,
            "snapshot_index": self.snapshot_index,
            "voters": sorted(self.conf.voters),
            "learners": sorted(self.conf.learners),
            "progress": {
                p: {"match": pr.match_index, "next": pr.next_index, "state": pr.state}
                for p, pr in sorted(self.progress.items())
            },
            "repair": None if self.repair is None else repair_dict(self.repair),
        }


def repair_dict(report: RepairReport) -> dict[str, Any]:
    """A repair's state as plain data (see :class:`RaftStatus.to_dict`)."""
    return {
        "lost_from": report.fence.lost_from,
        "acknowledged_index": report.fence.acknowledged_index,
        "completed": report.completed,
        "repaired_from": report.repaired_from,
        "damage": report.fence.damage,
    }
