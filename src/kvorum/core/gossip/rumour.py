"""The seed's gossip, as it draws it: one rumour pushed to ``fanout`` random peers a round.

Theory of operation: a member that holds the rumour picks ``fanout`` distinct peers at random
from those it knows, every round (every tick), and pushes the rumour to them; one that
receives it holds it from then on and pushes it too — "until all are infected". This is the
model the seed's estimate log_f(N) is about (GOSSIP-1..3); SWIM's piggybacking
(:mod:`.node`) spreads membership the same way but mixes it with probing, so the scenarios
measure this core, whose rounds and fanout are exactly the seed's. Each rumour message
carries the path it travelled, so a trace can show how news went around a broken link.
Peers come and go (:meth:`RumourCore.add_peer`, :meth:`RumourCore.remove_peer`): peers are
equals, and churn must not stop the spread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kvorum.core.gossip.node import Rng
from kvorum.core.shape import NodeId, Ready


@dataclass(frozen=True, slots=True)
class Rumour:
    src: NodeId
    dst: NodeId
    rumour_id: int
    path: tuple[NodeId, ...]
    """Members the rumour passed through, its origin first and ``src`` last."""


class RumourCore:
    """One member's push gossip of rumours (see the module docstring)."""

    __slots__ = (
        "_peers",
        "_ready",
        "_rng",
        "fanout",
        "heard",
        "node_id",
        "pushes_received",
        "pushes_sent",
        "round",
    )

    def __init__(self, node_id: NodeId, peers: Iterable[NodeId], fanout: int, rng: Rng) -> None:
        self.node_id = node_id
        self.fanout = fanout
        self._rng = rng
        self._peers = sorted(p for p in set(peers) if p != node_id)
        self.round = 0
        self.heard: dict[int, tuple[int, tuple[NodeId, ...]]] = {}
        """rumour -> (round it first arrived, the path it came by, ending here)"""
        self.pushes_sent = 0
        self.pushes_received = 0
        self._ready: Ready[Rumour] = Ready()

    def originate(self, rumour_id: int) -> None:
        """This member has news (``rumour_id``) the others do not."""
        self.heard.setdefault(rumour_id, (self.round, (self.node_id,)))

    def add_peer(self, peer: NodeId) -> None:
        if peer != self.node_id and peer not in self._peers:
            self._peers.append(peer)
            self._peers.sort()

    def remove_peer(self, peer: NodeId) -> None:
        if peer in self._peers:
            self._peers.remove(peer)

    def step(self, msg: Rumour) -> None:
        self.pushes_received += 1
        self.heard.setdefault(msg.rumour_id, (self.round, (*msg.path, self.node_id)))

    def tick(self) -> None:
        """One round: push every rumour held to ``fanout`` distinct random peers."""
        self.round += 1
        if not self.heard:
            return
        peers = list(self._peers)
        k = min(self.fanout, len(peers))
        # A partial Fisher-Yates shuffle: k distinct peers, uniformly.
        for i in range(k):
            j = i + int(self._rng.random() * (len(peers) - i))
            peers[i], peers[j] = peers[j], peers[i]
        for rumour_id, (_, path) in sorted(self.heard.items()):
            for dst in peers[:k]:
                self.pushes_sent += 1
                self._ready.messages.append(Rumour(self.node_id, dst, rumour_id, path))

    def has_ready(self) -> bool:
        return bool(self._ready.messages)

    def ready(self) -> Ready[Rumour]:
        rd, self._ready = self._ready, Ready()
        return rd

    def advance(self, ready: Ready[Rumour]) -> None:
        """Nothing is durable."""
