"""Gossip membership (SWIM + Lifeguard) and rumour spreading, as pure cores.

Where things are: ``messages`` (member updates, down-opinions, the SWIM messages),
``config`` (the knobs, in ticks), ``suspicion`` (Lifeguard's shrinking suspicion timeout),
``awareness`` (local health: a slow member slows its own probing), ``broadcasts``
(piggybacked updates, each sent λ·log N times), ``verdicts`` (SDOWN opinions → ODOWN
verdicts, Sentinel-style), ``node`` (:class:`GossipCore`, one member) and ``rumour``
(:class:`RumourCore`, the seed's push gossip with fanout f, for GOSSIP-1..3). A host carries
one :class:`GossipCore` per node, in :class:`~kvorum.core.shape.Envelope` objects of protocol
:attr:`~kvorum.core.shape.ProtocolId.GOSSIP`, and acts on the verdicts it emits.
"""

from kvorum.core.gossip.config import GossipConfig, GossipUnsafe
from kvorum.core.gossip.messages import (
    Ack,
    DownOpinion,
    Gossip,
    GossipMessage,
    MemberState,
    MemberUpdate,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Update,
)
from kvorum.core.gossip.node import GossipCore, GossipReady, MemberChange, MemberView, Rng
from kvorum.core.gossip.rumour import Rumour, RumourCore
from kvorum.core.gossip.verdicts import OdownTally, Verdict

__all__ = [
    "Ack",
    "DownOpinion",
    "Gossip",
    "GossipConfig",
    "GossipCore",
    "GossipMessage",
    "GossipReady",
    "GossipUnsafe",
    "MemberChange",
    "MemberState",
    "MemberUpdate",
    "MemberView",
    "Nack",
    "OdownTally",
    "Ping",
    "PingReq",
    "PushPull",
    "Rng",
    "Rumour",
    "RumourCore",
    "Update",
    "Verdict",
]
