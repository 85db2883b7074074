"""Majority arithmetic: where a vote is counted and where a commit index is decided.

Theory of operation: Raft needs two questions answered over the set of voters, and both are
pure functions of per-voter numbers. *Did this election succeed?* — a candidate wins with
votes from a majority, loses once a majority refused. *What is committed?* — the highest index
that a majority of voters hold, which is the majority-th largest of their match indexes. The
same "majority-th largest" gives the newest heartbeat round a majority acknowledged (ReadIndex)
and so the instant from which a lease is known to hold. Learners never appear here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import Enum

from kvorum.core.raft.messages import NodeId


class VoteResult(Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def majority(voter_count: int) -> int:
    """How many voters make a majority of ``voter_count``."""
    return voter_count // 2 + 1


def tally_votes(voters: Collection[NodeId], votes: Mapping[NodeId, bool]) -> VoteResult:
    """Count the votes cast by ``voters`` (votes from non-voters are ignored)."""
    need = majority(len(voters))
    granted = sum(1 for v in voters if votes.get(v) is True)
    refused = sum(1 for v in voters if votes.get(v) is False)
    if granted >= need:
        return VoteResult.WON
    if refused > len(voters) - need:
        return VoteResult.LOST
    return VoteResult.PENDING


def quorum_value(voters: Collection[NodeId], value_of: Mapping[NodeId, int]) -> int:
    """The largest value that at least a majority of voters have reached.

    Used for the commit index (values are match indexes) and for the newest heartbeat round
    a majority acknowledged. A voter missing from ``value_of`` counts as 0.
    """
    if not voters:
        return 0
    values = sorted((value_of.get(v, 0) for v in voters), reverse=True)
    return values[majority(len(values)) - 1]
