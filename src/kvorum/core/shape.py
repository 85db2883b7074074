"""The one shape every protocol core has, so one host and one simulator drive them all.

A core is fed inputs and drained of outputs::

    core.step(msg)            # a message from a peer (or a timer fed back as a message)
    core.tick()               # one unit of logical time has passed
    ...local requests...      # protocol-specific: propose, read_index, prepare, ...
    if core.has_ready():
        rd = core.ready()     # what to persist, then send, then apply
        host persists rd (fsync), then sends rd.messages, then applies rd's outputs
        core.advance(rd)      # the core learns that rd was carried out

The base :class:`Ready` holds only what every protocol has: messages. Each protocol extends it
with what it needs to persist and to hand to the application (Raft: hard state, entries,
snapshot, committed entries, read states). The invariant that hosts keep for every core:
*nothing in ``rd.messages`` leaves the node before everything ``rd`` asks to persist is
durable*. A core may also hand out messages it has proven safe to send earlier in a field of
its own (Raft's ``early_messages``: a leader's appends, thesis §10.2.1); a host that does
not care sends them with the rest.

Between nodes, a core's message travels in an :class:`Envelope` that names the protocol and
the group it belongs to, so one connection between two nodes carries every group's traffic
and the receiving host knows which core to step. Cores never see envelopes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Generic, NamedTuple, Protocol, TypeVar

NodeId = int
"""Nodes are named by small integers inside cores; hosts map them to addresses."""

GroupId = int
"""A group is one instance of a protocol (one Raft log, one Paxos keyspace) on its members;
a node hosts many. Group 0 of each protocol is the node's default group."""

MsgT = TypeVar("MsgT")
MsgT_contra = TypeVar("MsgT_contra", contravariant=True)


class ProtocolId(IntEnum):
    """Which protocol an envelope's body belongs to. The numbers are part of the wire format:
    never reuse or renumber one."""

    NODE = 0
    """Node-to-node traffic of the host itself: forwarded client requests, coalesced
    heartbeats and liveness (:mod:`kvorum.host.messages`)."""
    RAFT = 1
    PAXOS = 2
    GOSSIP = 3


class Envelope(NamedTuple):
    """A message between two nodes: ``body`` is a message of ``protocol`` for ``group_id``.

    A named tuple rather than a frozen dataclass: one is built for every message a node sends
    and receives, and a tuple is built in a third of the time."""

    protocol: ProtocolId
    group_id: GroupId
    src: NodeId
    dst: NodeId
    body: object


class UnknownGroupError(LookupError):
    """A peer's envelope names a group (or a protocol) this node does not hold.

    The receiving host raises it, with a message saying what it lacks, from the transport's
    ``on_message``; the transport then treats the frame as bad input from that peer: it logs
    the peer and the message, and drops that peer's connection (nothing else).
    """


@dataclass(slots=True)
class Ready(Generic[MsgT]):
    """Outputs common to every core: messages to send once the rest is durable."""

    messages: list[MsgT] = field(default_factory=list)


ReadyT = TypeVar("ReadyT", bound=Ready)  # type: ignore[type-arg]


class Core(Protocol[MsgT_contra, ReadyT]):
    """What a host (simulated or real) needs from any protocol core."""

    @property
    def node_id(self) -> NodeId: ...

    def step(self, msg: MsgT_contra) -> None:
        """Feed one message addressed to this node."""

    def tick(self) -> None:
        """Advance logical time by one tick."""

    def has_ready(self) -> bool:
        """Whether :meth:`ready` would return anything worth doing."""

    def ready(self) -> ReadyT:
        """Collect outputs; the host must carry them out and then call :meth:`advance`."""

    def advance(self, ready: ReadyT) -> None:
        """Tell the core that ``ready`` was persisted, sent and applied."""
