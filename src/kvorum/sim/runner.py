"""Run seeded simulations of any protocol and judge them: safety, liveness, the final verdict.

Theory of operation: :func:`run_seed` makes a fresh :class:`~kvorum.sim.world.World` from one
seed, has the plugin build its run on it (:class:`~kvorum.sim.plugin.ProtocolRun`), and drives
it through a chaos phase — faults drawn by a :class:`~kvorum.sim.faults.FaultSchedule` — and
then a calm phase with every fault repaired. The run's invariants are checked after every
event; ``liveness_bound_ticks`` after calm begins the run is asked whether it has recovered,
and at the end for its final verdict (a protocol checks its clients' history there). A
violation, or any exception escaping a node (a crash of a core or a host is a failure of the
seed too), ends the run and is reported with the seed. Everything random comes from the
seed, so a failure is reproduced by its seed alone, and the same seed gives the same trace
byte for byte.

Test-only storage breaks (:attr:`RunOptions.break_torn_tail_repair`) are switched on for the
duration of one run and off again, in whichever process runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from kvorum.sim.faults import FaultSchedule
from kvorum.sim.machine import TICK_US
from kvorum.sim.plugin import InvariantViolation, Plugin
from kvorum.sim.world import World
from kvorum.storage.wal import faults as wal_faults

# Nodes log what they repair (a torn tail cut, a failed snapshot); with no handler configured
# Python would print those warnings on stderr mid-run. Whoever configures logging still
# receives them: this only stops the last-resort printing.
logging.getLogger("kvorum").addHandler(logging.NullHandler())


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What every protocol's run has; a plugin's options extend this."""

    nodes: int = 5
    faults: frozenset[str] = frozenset()
    chaos_ticks: int = 300
    calm_ticks: int = 150
    liveness_bound_ticks: int = 100
    """After calm begins, the run must have recovered within this."""
    fault_gap_ticks: int = 25
    """Mean time between injected faults; smaller is harsher."""
    max_clock_drift: float = 0.1
    """Clock faults slow or speed a node's ticks by up to this fraction."""
    storage: str = "durable"
    """``durable``: the real WAL and snapshot files on each node's simulated disk;
    ``memory``: the in-memory reference storage (faster; disk faults have nothing to hit)."""
    break_torn_tail_repair: bool = False
    """TEST ONLY: the WAL refuses to open on a torn tail instead of cutting it."""
    trace: bool = True


@dataclass(slots=True)
class SimResult:
    seed: int
    violation: str | None
    trace: list[str]
    ops: int
    committed: int
    trace_digest: str
    stats: dict[str, int] = field(default_factory=dict)
    """What happened, counted by name (:attr:`kvorum.sim.world.World.stats`)."""

    @property
    def ok(self) -> bool:
        return self.violation is None


OptionsT = TypeVar("OptionsT", bound=RunOptions)


@contextlib.contextmanager
def _storage_breaks(options: RunOptions) -> Iterator[None]:
    before = wal_faults.UNSAFE_DISABLE_TORN_TAIL_REPAIR
    wal_faults.UNSAFE_DISABLE_TORN_TAIL_REPAIR = options.break_torn_tail_repair
    try:
        yield
    finally:
        wal_faults.UNSAFE_DISABLE_TORN_TAIL_REPAIR = before


def run_seed(seed: int, plugin: Plugin[OptionsT], options: OptionsT) -> SimResult:
    """Run one simulation; never raises for a protocol failure — it is in the result."""
    world = World(seed)
    with _storage_breaks(options):
        run = plugin.build(world, options)
        chaos_end = options.chaos_ticks * TICK_US
        calm_end = chaos_end + options.calm_ticks * TICK_US
        schedule = FaultSchedule(
            run,
            options.faults,
            chaos_end,
            protocol_kinds=plugin.fault_kinds,
            mean_gap_us=options.fault_gap_ticks * TICK_US,
            max_clock_drift=options.max_clock_drift,
        )
        run.start()
        schedule.start()
        world.at(chaos_end, run.stop_clients)
        violation: str | None = None
        try:
            world.run_until(chaos_end + options.liveness_bound_ticks * TICK_US, run.after_event)
            violation = run.liveness()
            if violation is None:
                world.run_until(calm_end, run.after_event)
        except InvariantViolation as exc:
            violation = str(exc)
        except Exception as exc:
            tb = traceback.format_exc(limit=-6)
            violation = f"Crash: {exc!r}\n{tb}"
        if violation is None:
            violation = run.final()
    trace = run.trace_lines()
    digest = hashlib.sha256("\n".join(trace).encode()).hexdigest()[:16]
    stats = run.stats()
    return SimResult(
        seed, violation, trace, stats.ops, stats.committed, digest, dict(world.stats)
    )


def _run_for_pool(args: tuple[int, Plugin[OptionsT], OptionsT]) -> SimResult:
    seed, plugin, options = args
    result = run_seed(seed, plugin, options)
    if result.ok:
        result.trace = []  # only failures need their trace shipped back
    return result


def run_seeds(
    seeds: range, plugin: Plugin[OptionsT], options: OptionsT, jobs: int = 1
) -> Iterator[SimResult]:
    """Run many seeds, in parallel processes when ``jobs > 1``; yields results in seed order."""
    if jobs <= 1:
        for seed in seeds:
            yield _run_for_pool((seed, plugin, options))
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_run_for_pool, ((s, plugin, options) for s in seeds), chunksize=8)
