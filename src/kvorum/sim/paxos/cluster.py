"""A simulated CASPaxos cluster: N nodes, every one an acceptor and a proposer, on one world.

Theory of operation: :class:`PaxosCluster` is the Paxos plugin's
:class:`~kvorum.sim.plugin.SimCluster`. It starts the nodes
(:class:`~kvorum.sim.paxos.node.PaxosSimNode`), ticks each at its own clock's rate, delivers
the network's messages, and shows every durable round to its observers (the invariant
checker). There is no leader, so no node is a better target for faults than another
(:meth:`focus_node` is None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from kvorum.core.paxos import CasConfig, CasReady, UnsafeSwitches
from kvorum.core.paxos.cas_messages import CasMessage
from kvorum.sim.paxos.node import PaxosSimNode
from kvorum.sim.world import Network, World


class PaxosCluster:
    """N CASPaxos nodes on one :class:`World` (see the module docstring)."""

    def __init__(
        self,
        world: World,
        node_count: int,
        *,
        unsafe: UnsafeSwitches,
        one_round_trip: bool = True,
        backoff_ticks: int = 2,
        request_timeout_ticks: int = 50,
        trace_enabled: bool = True,
    ) -> None:
        self.world = world
        self.node_ids = list(range(1, node_count + 1))
        self._config = CasConfig(
            0,
            tuple(self.node_ids),
            backoff_ticks=backoff_ticks,
            request_timeout_ticks=request_timeout_ticks,
            one_round_trip=one_round_trip,
            unsafe=unsafe,
        )
        self.trace_enabled = trace_enabled
        self.trace_lines: list[str] = []
        self.network = Network(world, self._deliver)
        self.observers: list[Callable[[PaxosSimNode, CasReady], None]] = []
        self.on_node_stopped: list[Callable[[int], None]] = []
        self.nodes = {i: PaxosSimNode(self, i, world.child_rng()) for i in self.node_ids}

    def config_for(self, node_id: int) -> CasConfig:
        return replace(self._config, node_id=node_id)

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()

    def focus_node(self) -> int | None:
        return None

    def trace(self, line: str) -> None:
        if self.trace_enabled:
            self.trace_lines.append(f"{self.world.now_us / 1000:10.1f}ms {line}")

    def schedule_tick(self, node: PaxosSimNode, incarnation: int) -> None:
        self.world.after(node.machine.tick_us, partial(self._tick, node, incarnation))

    def _tick(self, node: PaxosSimNode, incarnation: int) -> None:
        if not node.up or node.incarnation != incarnation:
            return  # that incarnation died; its successor ticks on its own
        node.tick()
        self.schedule_tick(node, incarnation)

    def _deliver(self, msg: Any) -> None:
        message: CasMessage = msg
        self.nodes[message.dst].receive(message)

    def on_durable(self, node: PaxosSimNode, ready: CasReady) -> None:
        for observe in self.observers:
            observe(node, ready)
