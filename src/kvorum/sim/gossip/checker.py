"""What a gossip run must get right, judged against the truth the simulator knows.

Theory of operation: after every event :meth:`GossipChecker.check` looks at the members
that produced output since the last look: each live member must see itself alive, and no
member's record of another may go back to a lower incarnation (incarnations only grow;
within one life of the observer — a restarted one starts empty). Once faults have stopped
for the liveness bound, :meth:`GossipChecker.liveness` demands convergence: every live member
sees every other live member ALIVE — so no member stays suspect or dead after it came back
and refuted — and no one sees a member that left as alive. It also counts, as statistics
rather than failures, every *dead* verdict a member reached about a node that was in fact
running (false deaths: partitions, pauses and loss cause them by design, and Lifeguard's job is
to make them rare) and every ODOWN verdict about one, and measures how many ticks after
calm began the cluster converged.
"""

from __future__ import annotations

from kvorum.core.gossip import GossipReady, MemberState
from kvorum.sim.gossip.cluster import GossipCluster
from kvorum.sim.gossip.node import GossipSimNode
from kvorum.sim.machine import TICK_US
from kvorum.sim.plugin import InvariantViolation


class GossipChecker:
    def __init__(self, cluster: GossipCluster) -> None:
        self.cluster = cluster
        self.stats = cluster.world.stats
        self._changed: set[int] = set()
        self._seen_inc: dict[tuple[int, int, int], int] = {}
        """(observer, observer's life, member) -> highest incarnation seen"""
        self.converged_tick: int | None = None
        cluster.observers.append(self)

    # --- observation -----------------------------------------------------------------------

    def on_ready(self, node: GossipSimNode, rd: GossipReady) -> None:
        self._changed.add(node.id)
        nodes = self.cluster.nodes
        for change in rd.changes:
            key = (node.id, node.life, change.member)
            before = self._seen_inc.get(key, -1)
            if change.incarnation < before:
                raise InvariantViolation(
                    f"n{node.id} took n{change.member} back from incarnation {before} to"
                    f" {change.incarnation}"
                )
            self._seen_inc[key] = change.incarnation
            self.cluster.trace(
                f"n{node.id} sees n{change.member} {change.state.name} inc"
                f" {change.incarnation}"
            )
            if change.state == MemberState.DEAD and change.member != node.id:
                self.stats["dead verdicts"] += 1
                target = nodes.get(change.member)
                if target is not None and target.up and not target.paused:
                    self.stats["false dead verdicts"] += 1
                    if not self.cluster.network.faults.blocked:
                        # No partition anywhere: only loss, delay or slowness misled it.
                        self.stats["false dead verdicts without a partition"] += 1
        for verdict in rd.verdicts:
            self.cluster.trace(
                f"n{node.id} VERDICT n{verdict.member} {'ODOWN' if verdict.down else 'up'}"
                f" evidence {sorted(verdict.evidence)}"
            )
            if verdict.down:
                self.stats["odown verdicts"] += 1
                target = nodes.get(verdict.member)
                if target is not None and target.up and not target.paused:
                    self.stats["false odown verdicts"] += 1

    # --- judgement -------------------------------------------------------------------------

    def check(self) -> None:
        """The invariants, for the members that changed since the last call."""
        if not self._changed:
            return
        changed, self._changed = self._changed, set()
        for node_id in changed:
            core = self.cluster.nodes[node_id].core
            if core is None or core.leaving:
                continue
            own = core.state_of(node_id)
            if own is None or own[0] != MemberState.ALIVE:
                raise InvariantViolation(f"n{node_id} sees itself as {own}")

    def unconverged(self) -> list[str]:
        """What stops every live member from seeing every other live member alive."""
        nodes = self.cluster.nodes
        live = [i for i in self.cluster.live_ids() if not nodes[i].paused]
        problems: list[str] = []
        for o in live:
            core = nodes[o].core
            assert core is not None
            if not core.joined:
                problems.append(f"n{o} has not joined")
                continue
            for m in live:
                seen = core.state_of(m)
                if seen is None or seen[0] != MemberState.ALIVE:
                    member_core = nodes[m].core
                    inc = member_core.incarnation if member_core is not None else "?"
                    what = (
                        f"does not know n{m}"
                        if seen is None
                        else f"sees n{m} {seen[0].name} at incarnation {seen[1]}"
                    )
                    problems.append(f"n{o} {what} (n{m} is up at incarnation {inc})")
            for gone in self.cluster.node_ids:
                if nodes[gone].retired:
                    seen = core.state_of(gone)
                    if seen is not None and seen[0] == MemberState.ALIVE:
                        problems.append(f"n{o} sees n{gone} ALIVE though it left")
        return problems

    def watch_convergence(self, calm_us: int) -> None:
        """From calm on, note when the cluster first converges (a statistic)."""
        world = self.cluster.world

        def poll() -> None:
            if self.converged_tick is not None:
                return
            if not self.unconverged():
                self.converged_tick = (world.now_us - calm_us) // TICK_US
                self.stats["ticks to converge after calm"] = self.converged_tick
                return
            world.after(TICK_US, poll)

        world.at(calm_us, poll)
