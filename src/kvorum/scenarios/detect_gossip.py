"""DETECT-1 over gossip membership: SDOWN on one observer, ODOWN once a quorum agrees.

Theory of operation: the third part of DETECT-1 (:mod:`kvorum.scenarios.detect`) runs ten
:class:`~kvorum.core.gossip.GossipCore` members in the simulator
(:class:`~kvorum.sim.gossip.cluster.GossipCluster`, 10 ms ticks) and does to them what the
seed's heartbeat section is about. A cut link between two members is no death: SWIM's
indirect probes (the seed's limited retries) reach the target through others. One observer
cut off from everyone thinks everyone is down (SDOWN), yet no ODOWN follows, since no one
agrees with it. A member that pauses for 3 s goes SDOWN on its first observer, ODOWN once a
majority's opinions have gossiped round, and up again when it wakes and refutes. A member
that pauses for 300 ms is suspected at most, never declared dead (Lifeguard).
"""

from __future__ import annotations

from kvorum.core.gossip import GossipConfig, GossipReady, MemberState
from kvorum.scenarios.registry import Printer
from kvorum.sim.gossip.cluster import GossipCluster
from kvorum.sim.gossip.node import GossipSimNode
from kvorum.sim.machine import TICK_US
from kvorum.sim.partitions import cut_apart, isolate
from kvorum.sim.world import World

SEED = 11
MEMBERS = 10


class _Watch:
    """Records every change of state, verdict and SDOWN opinion, with its time."""

    def __init__(self, cluster: GossipCluster) -> None:
        self.cluster = cluster
        self.events: list[tuple[int, int, str, int, str]] = []
        """(time ms, observer, kind, member, detail)"""
        self._sdown: set[tuple[int, int]] = set()
        cluster.observers.append(self)

    def on_ready(self, node: GossipSimNode, rd: GossipReady) -> None:
        now = self.cluster.world.now_us // 1000
        for c in rd.changes:
            self.events.append((now, node.id, c.state.name, c.member, f"inc {c.incarnation}"))
        for v in rd.verdicts:
            kind = "ODOWN" if v.down else "UP"
            self.events.append((now, node.id, kind, v.member, f"evidence {sorted(v.evidence)}"))
        core = node.core
        if core is not None:
            for view in core.members():
                key = (node.id, view.member)
                if view.sdown and key not in self._sdown:
                    self._sdown.add(key)
                    self.events.append((now, node.id, "SDOWN", view.member, ""))
                elif not view.sdown and key in self._sdown:
                    self._sdown.discard(key)

    def since(self, t_ms: int) -> list[tuple[int, int, str, int, str]]:
        return [e for e in self.events if e[0] >= t_ms]


def gossip_part(out: Printer) -> tuple[bool, str]:
    world = World(SEED)
    cluster = GossipCluster(world, MEMBERS, GossipConfig(), trace_enabled=False)
    watch = _Watch(cluster)
    cluster.start()
    ids = list(range(1, MEMBERS + 1))

    def run(ticks: int) -> int:
        world.run_until(world.now_us + ticks * TICK_US)
        return world.now_us // 1000

    t = run(100)
    out(f"gossip: {MEMBERS} SWIM members, 10 ms ticks, probe every 100 ms; joined by {t} ms")

    # 1. one cut link
    cluster.network.block(cut_apart({1}, {7}))
    t1 = world.now_us // 1000
    run(200)
    cluster.network.heal()
    suspected = [e for e in watch.since(t1) if e[3] == 7 and e[2] in ("SUSPECT", "SDOWN")]
    link_ok = not suspected
    out(
        f"  link n1-n7 cut for 2 s: n7 suspected {len(suspected)} times — relays answered"
        " n1's indirect probes, so a missing reply proved nothing"
    )

    # 2. one observer cut off from everyone
    run(100)
    t2 = world.now_us // 1000
    cluster.network.block(isolate(2, ids))
    run(300)
    sdown_by_2 = sorted({e[3] for e in watch.since(t2) if e[1] == 2 and e[2] == "SDOWN"})
    odown_from_2 = [e for e in watch.since(t2) if e[2] == "ODOWN" and e[3] != 2]
    cluster.network.heal()
    run(200)
    lone_ok = bool(sdown_by_2) and not odown_from_2
    out(
        f"  n2 cut off for 3 s: n2 saw {len(sdown_by_2)} members SDOWN"
        f" ({', '.join(f'n{m}' for m in sdown_by_2)}), and ODOWN followed for"
        f" {len(odown_from_2)} of them: one observer's view is not enough"
    )

    # 3. a long pause
    t3 = world.now_us // 1000
    cluster.pause(7, 300)
    run(300)
    cluster.nodes[7].resume()
    run(150)
    events = watch.since(t3)
    first_sdown = next((e for e in events if e[2] == "SDOWN" and e[3] == 7), None)
    odowns = [e for e in events if e[2] == "ODOWN" and e[3] == 7]
    deads = [e for e in events if e[2] == "DEAD" and e[3] == 7]
    ups = [e for e in events if e[2] == "UP" and e[3] == 7]
    if first_sdown:
        out(f"  n7 paused for 3 s at {t3} ms: first SDOWN by n{first_sdown[1]} at"
            f" +{first_sdown[0] - t3} ms")
    if odowns:
        first = odowns[0]
        out(
            f"    ODOWN first at n{first[1]} at +{first[0] - t3} ms ({first[4]}), at"
            f" {len({e[1] for e in odowns})} members by +{odowns[-1][0] - t3} ms; declared"
            f" dead by {len({e[1] for e in deads})} members"
        )
    core7 = cluster.nodes[7].core
    if ups:
        out(
            f"    woke at +3000 ms and refuted (incarnation now"
            f" {core7.incarnation if core7 else '?'});"
            f" ODOWN cleared at {len({e[1] for e in ups})} members by +{ups[-1][0] - t3} ms"
        )
    pause_ok = bool(first_sdown and odowns and ups) and (
        first_sdown is not None and first_sdown[0] <= odowns[0][0]
    )
    alive_now = all(
        (core := cluster.nodes[o].core) is not None
        and core.state_of(7) is not None
        and core.state_of(7)[0] == MemberState.ALIVE  # type: ignore[index]
        for o in ids
    )

    # 4. a short pause
    t4 = world.now_us // 1000
    cluster.pause(5, 30)
    run(30)
    cluster.nodes[5].resume()
    run(200)
    short = watch.since(t4)
    short_suspect = {e[1] for e in short if e[3] == 5 and e[2] == "SUSPECT"}
    short_dead = {e[1] for e in short if e[3] == 5 and e[2] == "DEAD"}
    short_odown = {e[1] for e in short if e[3] == 5 and e[2] == "ODOWN"}
    slow_ok = not short_dead and not short_odown
    out(
        f"  n5 paused for 300 ms: suspected by {len(short_suspect)}, declared dead by"
        f" {len(short_dead)}, ODOWN at {len(short_odown)}: a slow member is not a dead one"
    )
    ok = link_ok and lone_ok and pause_ok and alive_now and slow_ok
    phrase = (
        f"cut link bridged by relays, lone SDOWN of {len(sdown_by_2)} made no ODOWN, 3 s pause"
        f" ODOWN +{odowns[0][0] - t3 if odowns else -1} ms after it and cleared on refutation,"
        f" 300 ms pause never dead"
    )
    return ok, phrase
