"""The fault menu, and a seeded schedule that draws from it.

Theory of operation: a run has a chaos phase and a calm phase. During chaos, a
:class:`FaultSchedule` wakes at random intervals and, with the run's own random generator,
picks one fault from those enabled: a partition of a chosen shape (majority/minority, a
bridge node that alone sees both halves, a ring of overlapping majorities, one-way links, the
leader cut off), a crash (often of the leader) with a restart later, a slow disk, or clocks
that drift apart; message loss, duplication and delay spikes are set per run. Rare paths get
extra weight (crash the leader, cut it off), in the spirit of FoundationDB's BUGGIFY. When
chaos ends everything is repaired — partitions healed, nodes restarted, disks and clocks
normal — so that liveness can be judged.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvorum.core.raft import ConfChange, ConfChangeKind, NotLeader
from kvorum.host.group import RaftGroup
from kvorum.host.waiters import CallbackWaiter
from kvorum.sim.raft_cluster import TICK_US, RaftCluster

FAULT_KINDS = (
    "loss",
    "duplicate",
    "delay",
    "partition",
    "crash",
    "disk",
    "clock",
    "membership",
    "transfer",
)
"""Every fault the simulator knows; ``reorder`` is an alias of ``delay`` (random delays
reorder messages)."""


def parse_faults(spec: str) -> frozenset[str]:
    """Parse ``all``, ``none`` or a comma list of fault kinds."""
    if spec in ("all", ""):
        return frozenset(FAULT_KINDS)
    if spec == "none":
        return frozenset()
    kinds = {("delay" if k == "reorder" else k) for k in (p.strip() for p in spec.split(","))}
    unknown = kinds - set(FAULT_KINDS)
    if unknown:
        raise ValueError(
            f"unknown fault kind(s) {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}"
        )
    return frozenset(kinds)


@dataclass(slots=True)
class FaultSchedule:
    cluster: RaftCluster
    faults: frozenset[str]
    chaos_end_us: int
    mean_gap_us: int = 25 * TICK_US
    leader_crash_p: float = 0.15
    max_clock_drift: float = 0.1
    """Clock faults make a node's ticks up to this fraction slower or faster."""

    def start(self) -> None:
        net = self.cluster.network.faults
        rng = self.cluster.world.rng
        if "loss" in self.faults:
            net.loss = rng.choice([0.0, 0.01, 0.05, 0.1])
        if "duplicate" in self.faults:
            net.duplicate = rng.choice([0.0, 0.02, 0.05])
        if "delay" in self.faults:
            net.max_delay_us = rng.choice([2_000, 5_000, 20_000])
            net.slow_p = rng.choice([0.0, 0.01, 0.05])
            net.slow_delay_us = rng.choice([50_000, 200_000])
        if "crash" in self.faults:
            self.cluster.on_new_leader.append(self._maybe_crash_new_leader)
        self._schedule_next()
        self.cluster.world.at(self.chaos_end_us, self.calm)

    def _maybe_crash_new_leader(self, node_id: int) -> None:
        # BUGGIFY: a leader that dies moments after winning leaves the most delicate state
        # behind (entries of older terms half-replicated, its no-op not yet on a majority).
        world = self.cluster.world
        if world.now_us >= self.chaos_end_us:
            return
        roll = world.rng.random()
        if roll < self.leader_crash_p:
            # Log-uniform from 0.1 ms to 20 ms: as often before its first round trip
            # completes as after, since "before" is where the delicate states are.
            when = int(100 * 200 ** world.rng.random())
            world.after(when, lambda: self._crash_node(node_id))
        elif roll < 2 * self.leader_crash_p and "partition" in self.faults:
            # ...or is cut off while clients keep writing to it: its log grows a suffix of
            # its own term that a later leader must overwrite (Figure 8's raw material).
            when = world.rng.randint(500, 20_000)
            world.after(when, lambda: self._isolate(node_id))

    def _isolate(self, node_id: int) -> None:
        c = self.cluster
        links = {(node_id, y) for y in c.node_ids if y != node_id}
        links |= {(y, node_id) for y in c.node_ids if y != node_id}
        c.network.block(c.network.faults.blocked | links)
        c.trace(f"FAULT n{node_id} (new leader) isolated")
        heal_after = c.world.rng.randint(5 * TICK_US, 40 * TICK_US)
        c.world.after(heal_after, lambda: self._unisolate(links))

    def _unisolate(self, links: set[tuple[int, int]]) -> None:
        c = self.cluster
        c.network.block(c.network.faults.blocked - links)

    def _crash_node(self, node_id: int) -> None:
        node = self.cluster.nodes[node_id]
        if node.up and self.cluster.world.now_us < self.chaos_end_us:
            node.crash()
            delay = self.cluster.world.rng.randint(5 * TICK_US, 60 * TICK_US)
            self.cluster.world.after(delay, lambda: self._restart(node_id))

    def _schedule_next(self) -> None:
        world = self.cluster.world
        gap = world.rng.randint(self.mean_gap_us // 2, self.mean_gap_us * 3 // 2)
        if world.now_us + gap < self.chaos_end_us:
            world.after(gap, self._inject)

    def _inject(self) -> None:
        kinds = ("partition", "crash", "disk", "clock", "membership", "transfer")
        choices = [k for k in kinds if k in self.faults]
        if choices:
            kind = self.cluster.world.rng.choice(choices)
            getattr(self, f"_{kind}")()
        self._schedule_next()

    # --- the menu --------------------------------------------------------------------------

    def _leader(self, group_id: int = 0) -> int | None:
        c = self.cluster
        leaders = [n.id for n in c.nodes.values() if n.up and n.core(group_id).is_leader]
        return max(leaders, key=lambda i: c.nodes[i].core(group_id).term) if leaders else None

    def _partition(self) -> None:
        c = self.cluster
        rng = c.world.rng
        ids = list(c.node_ids)
        if len(ids) < 2:
            return  # nothing to cut apart
        rng.shuffle(ids)
        shape = rng.choice(
            ["halves", "halves", "bridge", "ring", "one-way", "isolate-leader", "heal"]
        )
        links: set[tuple[int, int]] = set()
        if shape == "halves":
            cut = rng.randint(1, len(ids) - 1)
            a, b = set(ids[:cut]), set(ids[cut:])
            links = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
        elif shape == "bridge":
            bridge, rest = ids[0], ids[1:]
            a, b = set(rest[: len(rest) // 2]), set(rest[len(rest) // 2 :])
            links = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
            del bridge  # the bridge keeps every link
        elif shape == "ring":
            # Each node reaches only its ring neighbours: overlapping majorities (for 5 nodes).
            pos = {n: i for i, n in enumerate(ids)}
            k = len(ids)
            links = {
                (x, y)
                for x in ids
                for y in ids
                if x != y and (pos[x] - pos[y]) % k not in (1, k - 1)
            }
        elif shape == "one-way":
            links = {(x, y) for x in ids for y in ids if x != y and rng.random() < 0.3}
        elif shape == "isolate-leader":
            leader = self._leader()
            if leader is not None:
                links = {(leader, y) for y in ids if y != leader} | {
                    (y, leader) for y in ids if y != leader
                }
        c.network.block(links)
        c.trace(f"FAULT partition {shape}: {len(links)} links blocked")

    def _crash(self) -> None:
        c = self.cluster
        rng = c.world.rng
        up = [n for n in c.node_ids if c.nodes[n].up]
        if not up:
            return
        leader = self._leader()
        victim = leader if leader is not None and rng.random() < 0.5 else rng.choice(up)
        self._crash_node(victim)

    def _restart(self, node_id: int) -> None:
        node = self.cluster.nodes[node_id]
        if not node.up and not node.decommissioned:
            node.restart()

    def _membership(self) -> None:
        """Remove a voter from every group (keeping at least three), or replace a removed
        server: it is decommissioned for good and a brand-new, empty server with a new id
        joins every group as a learner, promoted once caught up. (A removed id is never
        reused: see :class:`~kvorum.core.raft.ConfState`.)"""
        c = self.cluster
        leaders = {gid: self._leader(gid) for gid in c.group_ids}
        if any(leader is None for leader in leaders.values()):
            return
        confs = {gid: c.nodes[leader].core(gid).conf for gid, leader in leaders.items() if leader}
        members = set().union(*(conf.members for conf in confs.values()))
        removed = [n for n in c.node_ids if n not in members and not c.nodes[n].decommissioned]
        voters = confs[0].voters
        rng = c.world.rng
        if removed and (len(voters) <= 3 or rng.random() < 0.5):
            for node_id in removed:
                c.decommission(node_id)
            node_id = c.add_node()
            change = ConfChange(ConfChangeKind.ADD_LEARNER, node_id, auto_promote=True)
        elif len(voters) > 3:
            change = ConfChange(ConfChangeKind.REMOVE, rng.choice(sorted(voters)))
        else:
            return
        for gid, leader_id in leaders.items():
            assert leader_id is not None
            if change.kind is ConfChangeKind.REMOVE and change.node_id not in confs[gid].members:
                continue
            c.trace(
                f"FAULT membership: g{gid} n{leader_id} proposes {change.kind.name}"
                f" n{change.node_id}"
            )
            self._propose_change(leader_id, gid, change)

    def _propose_change(self, leader_id: int, group_id: int, change: ConfChange) -> None:
        c = self.cluster

        def refused(_: object, error: BaseException | None) -> None:
            if error is not None:
                c.trace(f"  membership change g{group_id} refused: {error}")

        node = c.nodes[leader_id]
        node.host.run(group_id, lambda g: g.propose_conf_change(change, CallbackWaiter(refused)))
        node.pump()

    def _transfer(self) -> None:
        c = self.cluster
        gid = c.world.rng.choice(c.group_ids)
        leader_id = self._leader(gid)
        if leader_id is None:
            return
        leader = c.nodes[leader_id]
        others = sorted(leader.core(gid).conf.voters - {leader_id})
        if not others:
            return
        target = c.world.rng.choice(others)
        c.trace(f"FAULT transfer: g{gid} n{leader_id} hands leadership to n{target}")

        def transfer(group: RaftGroup) -> None:
            try:
                group.core.transfer_leadership(target)
            except (NotLeader, ValueError) as exc:
                c.trace(f"  transfer refused: {exc}")

        leader.host.run(gid, transfer)
        leader.pump()

    def _disk(self) -> None:
        c = self.cluster
        node = c.nodes[c.world.rng.choice(c.node_ids)]
        node.disk_latency_us = c.world.rng.choice([100, 1_000, 5_000, 30_000])
        c.trace(f"FAULT n{node.id} disk latency {node.disk_latency_us / 1000:.0f}ms")

    def _clock(self) -> None:
        c = self.cluster
        node = c.nodes[c.world.rng.choice(c.node_ids)]
        # Lease reads are designed for bounded drift (lease_margin_ticks); the default
        # ±10% stays within it, larger values show what happens beyond it.
        d = self.max_clock_drift
        node.tick_us = int(TICK_US * c.world.rng.uniform(1 - d, 1 + d))
        c.trace(f"FAULT n{node.id} clock tick {node.tick_us / 1000:.2f}ms")

    def calm(self) -> None:
        """End all faults: heal, restart, normal disks and clocks, a reliable network."""
        c = self.cluster
        c.network.heal()
        f = c.network.faults
        f.loss = f.duplicate = f.slow_p = 0.0
        f.max_delay_us = 2_000
        for node in c.nodes.values():
            node.disk_latency_us = 500
            node.tick_us = TICK_US
            if not node.up and not node.decommissioned:
                node.restart()
        c.trace("CALM: all faults repaired")
