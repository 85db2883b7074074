"""Gossip's vocabulary: what one member says about another, and the messages that carry it.

Theory of operation: everything a member knows about the others travels as small immutable
records. A :class:`MemberUpdate` is one claim about one member — alive, suspect, dead or
left, at an incarnation — and the incarnation orders the claims about that member: the member
alone raises it, to refute a suspicion of itself. A :class:`DownOpinion` is one observer's
own verdict on one target (Sentinel's *subjectively down*, or its retraction), the evidence
from which every member decides *objectively down*. Both ride on the SWIM messages
(:class:`Ping`, :class:`PingReq`, :class:`Ack`, :class:`Gossip`) a few at a time, and a
:class:`PushPull` carries a member's whole state. Messages are frozen, slotted dataclasses
with plain fields, so a simulator may duplicate them and a runtime may encode them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from kvorum.core.shape import NodeId


class MemberState(IntEnum):
    """What one member believes about another. The numbers are part of the wire format."""

    ALIVE = 0
    SUSPECT = 1
    """A probe failed; the member has until its suspicion timeout to refute."""
    DEAD = 2
    """The suspicion ran out (or a push-pull said so and no refutation came)."""
    LEFT = 3
    """It announced that it leaves: never probed again, never a false verdict."""


@dataclass(frozen=True, slots=True)
class MemberUpdate:
    """``source`` claims that ``member`` is in ``state`` at ``incarnation``.

    For a suspicion the source is the accuser, and distinct accusers of the same incarnation
    are the independent confirmations that shorten the suspicion (Lifeguard). A dead claim
    whose source is the member itself means it left."""

    member: NodeId
    incarnation: int
    state: MemberState
    source: NodeId


@dataclass(frozen=True, slots=True)
class DownOpinion:
    """``observer``'s own probes say ``target`` is down (``down``) or reach it again.

    ``seq`` counts the observer's opinions, so a newer one replaces an older one wherever it
    arrives; receivers also forget an opinion once it is older than their validity period, so
    an observer that died cannot hold a target down for ever (as Sentinel forgets stale
    replies)."""

    observer: NodeId
    target: NodeId
    down: bool
    seq: int


Update = MemberUpdate | DownOpinion
"""What piggybacks on SWIM messages."""


@dataclass(frozen=True, slots=True)
class Ping:
    """Are you there? ``seq`` is the prober's, echoed by the ack."""

    src: NodeId
    dst: NodeId
    seq: int
    updates: tuple[Update, ...] = ()


@dataclass(frozen=True, slots=True)
class PingReq:
    """Please ping ``target`` for me and forward its ack (SWIM's indirect probe)."""

    src: NodeId
    dst: NodeId
    seq: int
    target: NodeId
    updates: tuple[Update, ...] = ()


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to a ping with ``seq``; ``about`` is who answered (a relay forwards the
    target's ack with ``about`` = the target)."""

    src: NodeId
    dst: NodeId
    seq: int
    about: NodeId
    updates: tuple[Update, ...] = ()


@dataclass(frozen=True, slots=True)
class Nack:
    """A relay could not reach the target in time, but *it* is reachable: the prober learns
    that the network path to the relay works, so a missing nack says more about the prober's
    own health (Lifeguard)."""

    src: NodeId
    dst: NodeId
    seq: int


@dataclass(frozen=True, slots=True)
class Gossip:
    """Updates only, sent to a few random members every gossip interval."""

    src: NodeId
    dst: NodeId
    updates: tuple[Update, ...]


@dataclass(frozen=True, slots=True)
class PushPull:
    """A member's whole state: every member record and every opinion it holds. The receiver
    merges it and, unless ``reply``, answers with its own (that is how a member joins)."""

    src: NodeId
    dst: NodeId
    members: tuple[MemberUpdate, ...]
    opinions: tuple[tuple[DownOpinion, int], ...]
    """Every opinion held, with its age in ticks: the receiver counts it valid only for what
    is left of its validity, so an old opinion cannot live for ever by being passed on."""
    reply: bool
    join: bool = False
    """Sent by a joining member to a seed, and echoed by the seed's reply: only that reply
    makes the member joined (two members that found only each other are not a cluster)."""


GossipMessage = Ping | PingReq | Ack | Nack | Gossip | PushPull
"""Every message a :class:`~kvorum.core.gossip.node.GossipCore` sends or takes."""
