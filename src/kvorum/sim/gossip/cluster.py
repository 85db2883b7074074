"""The simulated gossip cluster: members on one world, their churn, and ground truth.

Theory of operation: :class:`GossipCluster` is the gossip plugin's
:class:`~kvorum.sim.plugin.SimCluster`. It starts the first members (each joins through one
member started before it), ticks each at its own clock's rate, and delivers the network's
envelopes. It also does what the gossip faults ask — a new member joins through a random
live one, a member leaves (it is retired once its announcement went out), a member pauses —
and it knows the truth the members can only guess: which nodes are up, paused or gone. The
observers (the checker) see every ready each member produces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kvorum.core.gossip import GossipConfig, GossipReady
from kvorum.core.shape import Envelope
from kvorum.sim.gossip.node import GossipSimNode
from kvorum.sim.machine import TICK_US
from kvorum.sim.world import Network, World


class GossipCluster:
    """N gossip members on one :class:`World` (see the module docstring)."""

    def __init__(
        self, world: World, initial_nodes: int, config: GossipConfig, *, trace_enabled: bool
    ) -> None:
        self.world = world
        self.config = config
        self.network = Network(world, self._deliver)
        self.nodes: dict[int, GossipSimNode] = {}
        self.node_ids: list[int] = []
        self.on_node_stopped: list[Callable[[int], None]] = []
        self.observers: list[Any] = []
        self.trace_enabled = trace_enabled
        self.trace_lines: list[str] = []
        self._initial = initial_nodes

    # --- SimCluster ------------------------------------------------------------------------

    def focus_node(self) -> int | None:
        return None  # peers are equals: no node's loss hurts more than another's

    def trace(self, line: str) -> None:
        if self.trace_enabled:
            self.trace_lines.append(f"{self.world.now_us / 1000:10.1f}ms {line}")

    # --- membership ------------------------------------------------------------------------

    def start(self) -> None:
        for _ in range(self._initial):
            self.add_node(announce=False)

    def add_node(self, *, announce: bool = True) -> int:
        """Start a new member under a new id, joining through one random live member."""
        node_id = len(self.node_ids) + 1
        node = GossipSimNode(
            node_id,
            self.config,
            self.world.child_rng(),
            send=self.network.send,
            observe=self._observe,
            seeds=self._restart_seeds,
            on_boot=self._on_boot,
        )
        live = self.live_ids()
        seeds = [self.world.rng.choice(live)] if live else []
        self.nodes[node_id] = node
        self.node_ids.append(node_id)
        node.boot(seeds)
        if announce:
            self.trace(f"n{node_id} JOINS through n{seeds[0] if seeds else '-'}")
        return node_id

    def leave(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.core is None:
            return
        node.core.leave()
        self.trace(f"n{node_id} LEAVES")

    def pause(self, node_id: int, ticks: int) -> None:
        node = self.nodes[node_id]
        if not node.up or node.paused:
            return
        node.paused = True
        self.trace(f"FAULT n{node_id} PAUSED for {ticks} ticks")
        life = node.life

        def wake() -> None:
            if node.life == life and node.paused:
                self.trace(f"n{node_id} resumes")
                node.resume()

        self.world.after(ticks * TICK_US, wake)

    def live_ids(self) -> list[int]:
        """Members up and not leaving."""
        return [
            i
            for i in self.node_ids
            if (core := self.nodes[i].core) is not None and not core.leaving
        ]

    def _restart_seeds(self, node_id: int) -> Sequence[int]:
        """A restarted member knows the addresses of every member there ever was."""
        others = [i for i in self.node_ids if i != node_id and not self.nodes[i].retired]
        self.world.rng.shuffle(others)
        return others[:3]

    # --- time and the network --------------------------------------------------------------

    def _on_boot(self, node: GossipSimNode) -> None:
        # Each life ticks on its own chain, started out of step with the other members'.
        self._schedule_tick(node, self.world.rng.randrange(node.machine.tick_us))

    def _schedule_tick(self, node: GossipSimNode, delay_us: int) -> None:
        life = node.life
        self.world.after(delay_us, lambda: self._tick(node, life))

    def _tick(self, node: GossipSimNode, life: int) -> None:
        if node.life != life or not node.up:
            return
        node.tick()
        core = node.core
        if core is not None and core.leave_announced and not node.retired:
            node.retire()
            self.trace(f"n{node.id} has LEFT (retired)")
            return
        self._schedule_tick(node, node.machine.tick_us)

    def _deliver(self, env: Envelope) -> None:
        node = self.nodes.get(env.dst)
        if node is None or not node.up:
            return
        if self.trace_enabled:
            self.trace(f"n{env.src}->n{env.dst} {_describe(env.body)}")
        node.receive(env)

    def _observe(self, node: GossipSimNode, rd: GossipReady) -> None:
        for obs in self.observers:
            obs.on_ready(node, rd)


def _describe(msg: object) -> str:
    name = type(msg).__name__
    parts = []
    for f in getattr(msg, "__slots__", ()):
        if f in ("src", "dst"):
            continue
        v = getattr(msg, f)
        if f in ("updates", "members", "opinions"):
            v = f"<{len(v)}>"
        parts.append(f"{f}={v}")
    return f"{name}(" + " ".join(parts) + ")"
