"""Gossip's own faults: pauses and churn.

Theory of operation: besides the generic faults that make sense without a disk (loss,
duplication, delay, partitions, crashes, clock drift), gossip is tested against what it is
for: a member that *pauses* — a stop-the-world GC or a starved CPU, from 50 ms to 1.5 s —
and must not be declared dead by a healthy majority when the pause is short, or must refute
when it wakes; new members *joining* through one live member; and members *leaving*
gracefully. Churn keeps between 5 and 24 members alive.
"""

from __future__ import annotations

from kvorum.sim.faults import FaultKind, FaultSchedule
from kvorum.sim.gossip.cluster import GossipCluster

GOSSIP_FAULTS: tuple[FaultKind, ...] = (
    FaultKind("pause", "a member stops (a GC pause, a starved CPU) for 50 ms to 1.5 s"),
    FaultKind("join", "a new member joins through one live member"),
    FaultKind("leave", "a member leaves gracefully"),
)
MIN_LIVE = 5
MAX_LIVE = 24


class GossipFaults:
    def __init__(self, cluster: GossipCluster) -> None:
        self.cluster = cluster

    def inject(self, kind: str, schedule: FaultSchedule) -> None:
        c = self.cluster
        rng = c.world.rng
        live = c.live_ids()
        if kind == "pause":
            awake = [i for i in live if not c.nodes[i].paused]
            if awake:
                c.pause(rng.choice(awake), rng.choice([5, 10, 20, 50, 150]))
        elif kind == "join":
            if len(live) < MAX_LIVE:
                c.add_node()
        elif kind == "leave" and len(live) > MIN_LIVE:
            c.leave(rng.choice(live))
