"""Gossip membership as a simulator plugin: its options, how a run is built and judged.

Theory of operation: :data:`GOSSIP` is the :class:`~kvorum.sim.plugin.Plugin` the generic
runner drives. A run starts 8 to 20 members (the seed chooses, unless ``nodes`` is set), each
joining through one member started before it, and lets faults strike for ``chaos_ticks``:
the generic ones that need no disk and gossip's own pauses, joins and leaves. The checker
(:class:`~kvorum.sim.gossip.checker.GossipChecker`) checks its invariants after every event;
``liveness_bound_ticks`` after the faults stop every live member must see every other live
member alive (:data:`LIVENESS_BOUND_TICKS`: 3 s of virtual time at 10 ms ticks — a few
suspicion timeouts and push-pull rounds; measured convergence is printed beside it).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from kvorum.core.gossip import GossipConfig, GossipUnsafe
from kvorum.sim import runner
from kvorum.sim.faults import GENERIC_FAULTS, FaultKind, FaultSchedule
from kvorum.sim.faults import parse_faults as parse_fault_spec
from kvorum.sim.gossip.checker import GossipChecker
from kvorum.sim.gossip.cluster import GossipCluster
from kvorum.sim.gossip.faults import GOSSIP_FAULTS, GossipFaults
from kvorum.sim.machine import TICK_US
from kvorum.sim.plugin import RunStats
from kvorum.sim.runner import RunOptions, SimResult
from kvorum.sim.world import World

_WITHOUT_A_DISK = ("loss", "duplicate", "delay", "partition", "crash", "clock")
FAULT_KINDS: tuple[FaultKind, ...] = (
    tuple(k for k in GENERIC_FAULTS if k.name in _WITHOUT_A_DISK) + GOSSIP_FAULTS
)
"""Every fault a gossip simulation knows (gossip keeps nothing on disk)."""

LIVENESS_BOUND_TICKS = 300


@dataclass(frozen=True, slots=True)
class GossipSimOptions(RunOptions):
    nodes: int = 0
    """Members at the start; 0: the seed picks 8 to 20."""
    chaos_ticks: int = 600
    calm_ticks: int = 400
    liveness_bound_ticks: int = LIVENESS_BOUND_TICKS
    unsafe: GossipUnsafe = field(default_factory=GossipUnsafe)


class GossipRun:
    """One gossip simulation (a :class:`~kvorum.sim.plugin.ProtocolRun`)."""

    def __init__(self, world: World, options: GossipSimOptions) -> None:
        knobs = random.Random(world.seed ^ 0x6055)
        nodes = options.nodes or knobs.randint(8, 20)
        config = GossipConfig(unsafe=options.unsafe)
        self.cluster = GossipCluster(world, nodes, config, trace_enabled=options.trace)
        self.checker = GossipChecker(self.cluster)
        self.faults = GossipFaults(self.cluster)
        self._calm_us = options.chaos_ticks * TICK_US

    def start(self) -> None:
        self.cluster.start()
        self.checker.watch_convergence(self._calm_us)

    def start_faults(self, schedule: FaultSchedule) -> None:
        """Nothing to hook: no node is a leader to pick on."""

    def inject(self, kind: str, schedule: FaultSchedule) -> None:
        self.faults.inject(kind, schedule)

    def stop_clients(self) -> None:
        """No clients: members are the workload."""

    def calm(self) -> None:
        for node in self.cluster.nodes.values():
            if node.paused:
                node.resume()

    def after_event(self) -> None:
        self.checker.check()

    def liveness(self) -> str | None:
        problems = self.checker.unconverged()
        if not problems:
            return None
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        return (
            f"Liveness: {self.cluster.world.now_us // TICK_US - self._calm_us // TICK_US}"
            f" ticks after faults stopped: " + "; ".join(problems[:5]) + more
        )

    def final(self) -> str | None:
        return None

    def stats(self) -> RunStats:
        return RunStats(self.cluster.network.sent, len(self.cluster.live_ids()))

    def trace_lines(self) -> list[str]:
        return self.cluster.trace_lines


class GossipPlugin:
    name = "gossip"

    @property
    def fault_kinds(self) -> Sequence[FaultKind]:
        return GOSSIP_FAULTS

    def build(self, world: World, options: GossipSimOptions) -> GossipRun:
        return GossipRun(world, options)


GOSSIP = GossipPlugin()


def parse_faults(spec: str) -> frozenset[str]:
    """``all``, ``none`` or a comma list of :data:`FAULT_KINDS` names."""
    return parse_fault_spec(spec, FAULT_KINDS)


def run_seed(seed: int, options: GossipSimOptions) -> SimResult:
    return runner.run_seed(seed, GOSSIP, options)


def run_seeds(seeds: range, options: GossipSimOptions, jobs: int = 1) -> Iterator[SimResult]:
    return runner.run_seeds(seeds, GOSSIP, options, jobs)
