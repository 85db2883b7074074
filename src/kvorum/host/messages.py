"""What hosts say to each other, beside their cores' messages (protocol ``NODE``).

Theory of operation: three kinds of traffic belong to the node, not to any one protocol core.

*Forwarding.* A follower does not serve a client's write itself: it hands the write to the
leader of the group the write belongs to (:class:`ForwardRequest`, in an envelope naming that
group) and relays the leader's answer (:class:`ForwardReply`). This is not a Raft message
and carries no Raft term.

*Coalesced heartbeats.* A leader's Raft heartbeats to one peer node, for every group the two
share, travel as one :class:`NodeHeartbeat` per heartbeat interval (CockroachDB's coalesced
heartbeats), and the answers as one :class:`NodeHeartbeatResponse`. Each :class:`GroupBeat`
is exactly one Raft ``Heartbeat`` (and each :class:`GroupBeatAck` one
``HeartbeatResponse``); the receiving host unpacks them and steps every group's core, so the
cores see ordinary Raft messages.

*Liveness and quiescence.* A ``NodeHeartbeat`` goes to every peer every interval even when it
carries no beats: it is how a node knows its peers are alive. A group with nothing to do
stops ticking (it *quiesces*, asked by its leader with a beat whose ``quiesce`` flag is set),
and then nothing about it crosses the network at all. Its followers wake it again when the
leader's node stops sending ``NodeHeartbeat`` for an election timeout, or when that node's
``incarnation`` changes (it restarted, and its groups forgot they led).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvorum.core.shape import GroupId, NodeId


@dataclass(frozen=True, slots=True)
class ForwardRequest:
    """Client writes a follower hands to the group's leader: the write payloads, in order
    (the envelope names the group)."""

    src: NodeId
    dst: NodeId
    req_id: int
    payloads: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ForwardReply:
    """The leader's answer to a :class:`ForwardRequest`: with ``ok`` the packed replies
    (one per payload), else the error text the client is told."""

    src: NodeId
    dst: NodeId
    req_id: int
    ok: bool
    body: bytes


@dataclass(frozen=True, slots=True)
class GroupBeat:
    """One group's Raft heartbeat inside a :class:`NodeHeartbeat`."""

    group_id: GroupId
    term: int
    commit: int
    round: int
    quiesce: bool = False
    """The leader asks the follower to stop ticking this group (it has nothing to do)."""


@dataclass(frozen=True, slots=True)
class GroupBeatAck:
    """One group's answer to a :class:`GroupBeat` (a Raft ``HeartbeatResponse``)."""

    group_id: GroupId
    term: int
    round: int


@dataclass(frozen=True, slots=True)
class NodeHeartbeat:
    """Every heartbeat interval, to every peer node: liveness, plus the Raft heartbeats of
    every group this node leads that the peer is a member of."""

    src: NodeId
    dst: NodeId
    incarnation: int
    """Changes each time the sender starts (a restarted node's groups lead nothing)."""
    beats: tuple[GroupBeat, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeHeartbeatResponse:
    """The answers to one :class:`NodeHeartbeat`'s beats."""

    src: NodeId
    dst: NodeId
    incarnation: int
    acks: tuple[GroupBeatAck, ...] = ()


NodeMessage = ForwardRequest | ForwardReply | NodeHeartbeat | NodeHeartbeatResponse

NODE_WIRE_TAGS: dict[type, int] = {
    ForwardRequest: 0,
    ForwardReply: 1,
    NodeHeartbeat: 2,
    NodeHeartbeatResponse: 3,
}
"""Each NODE message's number on the wire (protocol ``NODE``). A number is given once and
never changes or passes to another class: a new message takes a new number, and a removed
message's number is never used again."""
