"""CASPaxos as a simulator plugin: its options, how a run is built, and how it is judged.

Theory of operation: :data:`PAXOS` is the :class:`~kvorum.sim.plugin.Plugin` the generic
runner (:mod:`kvorum.sim.runner`) drives. :meth:`PaxosPlugin.build` makes a :class:`PaxosRun`
from one seed: a :class:`~kvorum.sim.paxos.cluster.PaxosCluster` whose knobs vary by seed too
(the back-off window, and whether the one-round-trip path is on), many concurrent clients
on a few keys (:class:`~kvorum.sim.paxos.clients.PaxosClients`), and the safety checker
(:class:`~kvorum.sim.paxos.invariants.PaxosInvariants`) on every durable round. Every generic
fault applies: loss, duplication, reordering, partitions, crashes that lose unsynced writes,
power cuts inside a sync, slow and full disks, failing fsyncs, clock drift. Paxos has no
faults of its own. Liveness: when chaos ends every node reads every key; each read must
succeed within ``liveness_bound_ticks``. The final verdict is the linearizability of every
key's history.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

from kvorum.core.paxos import Get, UnsafeSwitches
from kvorum.sim import runner
from kvorum.sim.faults import GENERIC_FAULTS, FaultKind, FaultSchedule
from kvorum.sim.faults import parse_faults as parse_fault_spec
from kvorum.sim.linearizability import check_history
from kvorum.sim.machine import TICK_US
from kvorum.sim.paxos.clients import PaxosClients
from kvorum.sim.paxos.cluster import PaxosCluster
from kvorum.sim.paxos.invariants import PaxosInvariants
from kvorum.sim.plugin import RunStats
from kvorum.sim.runner import RunOptions, SimResult
from kvorum.sim.world import World

FAULT_KINDS: tuple[FaultKind, ...] = GENERIC_FAULTS
"""Every fault a Paxos simulation knows: the generic menu."""

PROBE_ID_BASE = 1 << 40
"""Request ids of the liveness probes (clients' ids are their operation numbers)."""


@dataclass(frozen=True, slots=True)
class PaxosSimOptions(RunOptions):
    clients: int = 8
    keys: int = 3
    request_timeout_ticks: int = 50
    check_acceptor_rules: bool = True
    """Check the acceptor's rule directly (off: leave it to the other checkers)."""
    check_chosen_states: bool = True
    """Check one value per ballot and chosen states (off: only linearizability judges)."""
    unsafe: UnsafeSwitches = field(default_factory=UnsafeSwitches)


class PaxosRun:
    """One CASPaxos simulation (a :class:`~kvorum.sim.plugin.ProtocolRun`)."""

    def __init__(self, world: World, options: PaxosSimOptions) -> None:
        self.options = options
        knobs = random.Random(world.seed ^ 0xCA5)
        self.cluster = PaxosCluster(
            world,
            options.nodes,
            unsafe=options.unsafe,
            one_round_trip=knobs.choice([True, True, False]),
            backoff_ticks=knobs.choice([1, 2, 4]),
            request_timeout_ticks=options.request_timeout_ticks,
            trace_enabled=options.trace,
        )
        self.keys = [f"k{i}" for i in range(options.keys)]
        self.clients = PaxosClients(
            self.cluster, options.clients, self.keys, options.request_timeout_ticks + 10
        )
        self.checker = PaxosInvariants(
            self.cluster,
            check_rules=options.check_acceptor_rules,
            check_chosen=options.check_chosen_states,
        )
        self._probes: dict[tuple[int, str], bool] = {}
        self._next_probe = PROBE_ID_BASE

    def start(self) -> None:
        self.cluster.start()
        self.clients.start()

    def start_faults(self, schedule: FaultSchedule) -> None:
        """No faults of Paxos's own, and no leader to pick on."""

    def inject(self, kind: str, schedule: FaultSchedule) -> None:
        raise ValueError(f"Paxos has no fault {kind!r} of its own")

    def stop_clients(self) -> None:
        self.clients.stop()

    def calm(self) -> None:
        """Faults are over: every node reads every key (liveness probes)."""
        for node_id in self.cluster.node_ids:
            for key in self.keys:
                self._probes[(node_id, key)] = False
                self._probe(node_id, key)

    def _probe(self, node_id: int, key: str) -> None:
        node = self.cluster.nodes[node_id]
        if not node.up:
            self.cluster.world.after(5 * TICK_US, partial(self._probe, node_id, key))
            return
        self._next_probe += 1
        node.request(self._next_probe, key, Get(), partial(self._probed, node_id, key))

    def _probed(
        self, node_id: int, key: str, _rid: int, _result: object, error: str | None, _k: bool
    ) -> None:
        if error is None:
            self._probes[(node_id, key)] = True
        else:
            self.cluster.world.after(TICK_US, partial(self._probe, node_id, key))

    def after_event(self) -> None:
        """Safety is checked as rounds become durable (the checker observes them)."""

    def liveness(self) -> str | None:
        stuck = sorted(f"n{n}:{k}" for (n, k), done in self._probes.items() if not done)
        if stuck:
            return (
                f"Liveness: reads not answered {self.options.liveness_bound_ticks} ticks after"
                f" faults stopped: {', '.join(stuck)}"
            )
        return None

    def final(self) -> str | None:
        result = check_history(self.clients.history())
        if not result.ok and result.outcome.value == "violation":
            return "Linearizability: " + result.explanation
        return None

    def stats(self) -> RunStats:
        return RunStats(len(self.clients.ops), self.checker.chosen_count)

    def trace_lines(self) -> list[str]:
        return self.cluster.trace_lines


class PaxosPlugin:
    """CASPaxos for the generic simulator."""

    name = "paxos"

    @property
    def fault_kinds(self) -> Sequence[FaultKind]:
        return ()

    def build(self, world: World, options: PaxosSimOptions) -> PaxosRun:
        return PaxosRun(world, options)


PAXOS = PaxosPlugin()


def parse_faults(spec: str) -> frozenset[str]:
    """``all``, ``none`` or a comma list of :data:`FAULT_KINDS` names."""
    return parse_fault_spec(spec, FAULT_KINDS)


def run_seed(seed: int, options: PaxosSimOptions) -> SimResult:
    """One CASPaxos simulation (see :func:`kvorum.sim.runner.run_seed`)."""
    return runner.run_seed(seed, PAXOS, options)


def run_seeds(seeds: range, options: PaxosSimOptions, jobs: int = 1) -> Iterator[SimResult]:
    """Many CASPaxos simulations, in seed order (see :func:`kvorum.sim.runner.run_seeds`)."""
    return runner.run_seeds(seeds, PAXOS, options, jobs)
