"""Raft as a pure state machine: :class:`RaftCore` and its vocabulary.

Where things are: ``messages`` (entries, configurations, RPCs), ``log`` (the in-memory log and
its cursors), ``config`` (a server's tuning), ``ready`` (what the driver must do each round),
``quorum`` (where votes are counted and the commit index decided), ``progress``
(the leader's per-follower replication state), ``repair`` (a server whose storage lost
acknowledged entries: fenced from elections until repaired), ``node`` (the core itself, with
one handler per role).
"""

from kvorum.core.raft.bootstrap import bootstrap_log
from kvorum.core.raft.config import RaftConfig, UnsafeSwitches
from kvorum.core.raft.messages import (
    ConfChange,
    ConfChangeKind,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Snapshot,
    SnapshotMeta,
)
from kvorum.core.raft.node import NotLeader, ProposalDropped, RaftCore
from kvorum.core.raft.ready import RaftReady, ReadState
from kvorum.core.raft.repair import RepairFence, RepairReport
from kvorum.core.raft.status import PeerStatus, RaftStatus, Role

__all__ = [
    "ConfChange",
    "ConfChangeKind",
    "ConfState",
    "Entry",
    "EntryKind",
    "HardState",
    "NotLeader",
    "PeerStatus",
    "ProposalDropped",
    "RaftConfig",
    "RaftCore",
    "RaftReady",
    "RaftStatus",
    "ReadState",
    "RepairFence",
    "RepairReport",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "UnsafeSwitches",
    "bootstrap_log",
]
