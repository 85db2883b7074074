"""Run seeded Raft simulations and judge them: safety, linearizability, liveness.

Theory of operation: :func:`run_seed` builds a cluster on a fresh :class:`World` from one seed,
runs clients against it through a chaos phase (faults from :mod:`kvorum.sim.faults`), then a
calm phase with every fault repaired. Safety invariants are checked after every event; at the
end the client history is checked for linearizability, and liveness is judged: within a
bounded number of ticks of calm, one leader must rule and every node must have applied
everything committed. Everything random comes from the seed, so a failure is reproduced by its
seed alone, and the same seed gives the same trace byte for byte.
"""

from __future__ import annotations

import hashlib
import random
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from kvorum.core.raft import RaftConfig, UnsafeSwitches
from kvorum.sim.faults import FaultSchedule
from kvorum.sim.linearizability import check_history
from kvorum.sim.raft_cluster import TICK_US, HostSwitches, RaftCluster
from kvorum.sim.raft_invariants import InvariantViolation, RaftInvariants
from kvorum.sim.world import World


@dataclass(frozen=True, slots=True)
class SimOptions:
    nodes: int = 5
    groups: int = 1
    """Raft groups per node (keys are spread over them; each is checked on its own)."""
    faults: frozenset[str] = frozenset()
    chaos_ticks: int = 300
    calm_ticks: int = 150
    liveness_bound_ticks: int = 100
    """After calm begins, a single leader and fully applied nodes are due within this."""
    clients: int = 3
    fault_gap_ticks: int = 25
    leader_crash_p: float = 0.15
    """With crash faults: the chance that a new leader is crashed moments after it wins."""
    max_clock_drift: float = 0.1
    """Clock faults slow or speed a node's ticks by up to this fraction."""
    max_entries_per_append: int | None = None
    """Fix the batch size instead of letting the seed choose it."""
    """Mean time between injected faults; smaller is harsher."""
    lease_reads: bool = False
    unsafe: UnsafeSwitches = field(default_factory=UnsafeSwitches)
    host: HostSwitches = field(default_factory=HostSwitches)
    trace: bool = True


@dataclass(slots=True)
class SimResult:
    seed: int
    violation: str | None
    trace: list[str]
    ops: int
    committed: int
    trace_digest: str

    @property
    def ok(self) -> bool:
        return self.violation is None


def run_seed(seed: int, options: SimOptions) -> SimResult:
    """Run one simulation; never raises for a protocol failure — it is in the result."""
    world = World(seed)
    # Knobs vary by seed too (BUGGIFY-style): tiny batches, windows and snapshot intervals
    # reach paths — probing, pipelining limits, chunked snapshots — that defaults rarely do.
    knobs = random.Random(seed ^ 0x5EED)
    config = RaftConfig(
        election_timeout_ticks=10,
        heartbeat_interval_ticks=2,
        unsafe=options.unsafe,
        max_entries_per_append=options.max_entries_per_append or knobs.choice([1, 2, 16]),
        max_inflight_appends=knobs.choice([1, 4, 8]),
        snapshot_chunk_bytes=knobs.choice([16, 64, 4096]),
        narrow_read_rounds=knobs.choice([True, False]),
    )
    cluster = RaftCluster(
        world,
        options.nodes,
        config,
        groups=options.groups,
        clients=options.clients,
        lease_reads=options.lease_reads,
        snapshot_every_entries=knobs.choice([0, 10, 40]),
        switches=options.host,
        trace_enabled=options.trace,
    )
    checker = RaftInvariants(cluster)
    chaos_end = options.chaos_ticks * TICK_US
    calm_end = chaos_end + options.calm_ticks * TICK_US
    schedule = FaultSchedule(
        cluster,
        options.faults,
        chaos_end,
        options.fault_gap_ticks * TICK_US,
        options.leader_crash_p,
        options.max_clock_drift,
    )
    cluster.start()
    cluster.start_clients()
    schedule.start()
    world.at(chaos_end, cluster.stop_clients)
    violation: str | None = None
    try:
        world.run_until(chaos_end + options.liveness_bound_ticks * TICK_US, checker.after_event)
        violation = _liveness(cluster, checker, options)
        if violation is None:
            world.run_until(calm_end, checker.after_event)
    except InvariantViolation as exc:
        violation = str(exc)
    except Exception as exc:  # a crash of a core or the host is a failure of this seed too
        tb = traceback.format_exc(limit=-6)
        violation = f"Crash: {exc!r}\n{tb}"
    if violation is None:
        result = check_history(cluster.history())
        if not result.ok and result.outcome.value == "violation":
            violation = "Linearizability: " + result.explanation
    trace = cluster.trace_lines
    digest = hashlib.sha256("\n".join(trace).encode()).hexdigest()[:16]
    return SimResult(seed, violation, trace, len(cluster.ops), checker.max_committed, digest)


def _liveness(cluster: RaftCluster, checker: RaftInvariants, options: SimOptions) -> str | None:
    up = [n for n in cluster.nodes.values() if n.up]
    bound = options.liveness_bound_ticks
    for gid in cluster.group_ids:
        cores = {n.id: n.core(gid) for n in up}
        leaders = [i for i, core in cores.items() if core.is_leader]
        if len(leaders) != 1:
            return f"Liveness: g{gid} has {len(leaders)} leaders {bound} ticks after faults stopped"
        leader = cores[leaders[0]]
        commit = leader.commit_index
        if commit < checker.committed_of(gid):
            return (
                f"Liveness: g{gid} leader n{leaders[0]} commit {commit} <"
                f" committed {checker.committed_of(gid)}"
            )
        # Servers removed from the group are not owed the log any more.
        members = leader.conf.members
        behind = [
            f"n{i}@{core.applied_index}"
            for i, core in cores.items()
            if i in members and core.applied_index < commit
        ]
        if behind:
            return (
                f"Liveness: g{gid}: {', '.join(behind)} have not applied commit {commit}"
                f" within {bound} ticks"
            )
    return None


def _run_for_pool(args: tuple[int, SimOptions]) -> SimResult:
    seed, options = args
    result = run_seed(seed, options)
    if result.ok:
        result.trace = []  # only failures need their trace shipped back
    return result


def run_seeds(seeds: range, options: SimOptions, jobs: int = 1) -> Iterator[SimResult]:
    """Run many seeds, in parallel processes when ``jobs > 1``; yields results in seed order."""
    if jobs <= 1:
        for seed in seeds:
            yield _run_for_pool((seed, options))
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_run_for_pool, ((s, options) for s in seeds), chunksize=8)
