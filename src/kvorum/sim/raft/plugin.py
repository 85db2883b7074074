"""Raft as a simulator plugin: its options, how a run is built, and how it is judged.

Theory of operation: :data:`RAFT` is the :class:`~kvorum.sim.plugin.Plugin` the generic runner
(:mod:`kvorum.sim.runner`) drives. :meth:`RaftPlugin.build` makes a :class:`RaftRun` from one
seed: a :class:`~kvorum.sim.raft.cluster.RaftCluster` whose knobs vary by seed too
(BUGGIFY-style: tiny batches, windows, snapshot intervals and WAL segments reach paths —
probing, pipelining limits, chunked snapshots, log rollover — that defaults rarely do, and
big values make batches that span disk sectors, which torn writes need), the
safety checker (:class:`~kvorum.sim.raft.invariants.RaftInvariants`, after every event), and
Raft's own faults (:class:`~kvorum.sim.raft.faults.RaftFaults`). Liveness is judged per group
once faults have stopped for ``liveness_bound_ticks``: one leader rules, its commit index is
no lower than anything ever committed, every member has applied it, and no node is still
refusing writes for a full disk. The final verdict is the linearizability of every key's
history.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from kvorum.core.raft import RaftConfig, UnsafeSwitches
from kvorum.sim import runner
from kvorum.sim.faults import GENERIC_FAULTS, FaultKind, FaultSchedule
from kvorum.sim.faults import parse_faults as parse_fault_spec
from kvorum.sim.linearizability import check_history
from kvorum.sim.plugin import RunStats
from kvorum.sim.raft.cluster import HostSwitches, RaftCluster
from kvorum.sim.raft.faults import RAFT_FAULTS, RaftFaults
from kvorum.sim.raft.invariants import RaftInvariants
from kvorum.sim.runner import RunOptions, SimResult
from kvorum.sim.world import World

FAULT_KINDS: tuple[FaultKind, ...] = GENERIC_FAULTS + RAFT_FAULTS
"""Every fault a Raft simulation knows."""


@dataclass(frozen=True, slots=True)
class RaftSimOptions(RunOptions):
    groups: int = 1
    """Raft groups per node (keys are spread over them; each is checked on its own)."""
    clients: int = 3
    leader_crash_p: float = 0.15
    """With crash faults: the chance that a new leader is crashed moments after it wins."""
    max_entries_per_append: int | None = None
    """Fix the batch size instead of letting the seed choose it."""
    max_inflight_appends: int | None = None
    """Fix the pipelining window instead of letting the seed choose it."""
    lease_reads: bool = False
    unsafe: UnsafeSwitches = field(default_factory=UnsafeSwitches)
    host: HostSwitches = field(default_factory=HostSwitches)


class RaftRun:
    """One Raft simulation (a :class:`~kvorum.sim.plugin.ProtocolRun`)."""

    def __init__(self, world: World, options: RaftSimOptions) -> None:
        self.options = options
        knobs = random.Random(world.seed ^ 0x5EED)
        chunk_bytes = knobs.choice([16, 64, 4096])
        config = RaftConfig(
            election_timeout_ticks=10,
            heartbeat_interval_ticks=2,
            unsafe=options.unsafe,
            max_entries_per_append=options.max_entries_per_append or knobs.choice([1, 2, 16]),
            max_inflight_appends=options.max_inflight_appends or knobs.choice([1, 4, 8]),
            snapshot_chunk_bytes=chunk_bytes,
            narrow_read_rounds=knobs.choice([True, False]),
        )
        self.cluster = RaftCluster(
            world,
            options.nodes,
            config,
            groups=options.groups,
            clients=options.clients,
            lease_reads=options.lease_reads,
            snapshot_every_entries=knobs.choice([0, 10, 40]),
            switches=options.host,
            trace_enabled=options.trace,
            storage=options.storage,
            segment_bytes=knobs.choice([4096, 16384, 65536]),
            # Big values only with chunks big enough to carry them: a snapshot of big values
            # in 16-byte chunks takes thousands of round trips to send.
            value_padding=knobs.choice([0, 300, 1500]) if chunk_bytes > 16 else 0,
            # Drawn last, so that adding it moved no other knob: both ways a state machine
            # comes back after a crash (kept, as LMDB after a process crash; or rebuilt).
            keyspace_survives_crash=knobs.choice([True, False]),
        )
        self.checker = RaftInvariants(self.cluster)
        self.faults = RaftFaults(self.cluster, leader_crash_p=options.leader_crash_p)

    def start(self) -> None:
        self.cluster.start()
        self.cluster.clients.start()

    def start_faults(self, schedule: FaultSchedule) -> None:
        self.faults.start(schedule)

    def inject(self, kind: str, schedule: FaultSchedule) -> None:
        self.faults.inject(kind, schedule)

    def stop_clients(self) -> None:
        self.cluster.clients.stop()

    def calm(self) -> None:
        """Nothing of Raft's own stays broken: membership changes and transfers are over."""

    def after_event(self) -> None:
        changed = self.cluster.take_changed()
        if changed:
            self.cluster.note_roles(changed)
            self.checker.check(changed)

    def liveness(self) -> str | None:
        cluster = self.cluster
        checker = self.checker
        up = [n for n in cluster.nodes.values() if n.up]
        bound = self.options.liveness_bound_ticks
        full = [f"n{n.id}" for n in up if n.host.disk_full]
        if full:
            return f"Liveness: {', '.join(full)} still refuse writes for a full disk"
        for gid in cluster.group_ids:
            cores = {n.id: n.core(gid) for n in up}
            leaders = [i for i, core in cores.items() if core.is_leader]
            if len(leaders) != 1:
                return (
                    f"Liveness: g{gid} has {len(leaders)} leaders {bound} ticks after faults"
                    " stopped"
                )
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

    def final(self) -> str | None:
        result = check_history(self.cluster.clients.history())
        if not result.ok and result.outcome.value == "violation":
            return "Linearizability: " + result.explanation
        return None

    def stats(self) -> RunStats:
        return RunStats(len(self.cluster.clients.ops), self.checker.max_committed)

    def trace_lines(self) -> list[str]:
        return self.cluster.trace_lines


class RaftPlugin:
    """Raft for the generic simulator."""

    name = "raft"

    @property
    def fault_kinds(self) -> Sequence[FaultKind]:
        return RAFT_FAULTS

    def build(self, world: World, options: RaftSimOptions) -> RaftRun:
        return RaftRun(world, options)


RAFT = RaftPlugin()


def parse_faults(spec: str) -> frozenset[str]:
    """``all``, ``none`` or a comma list of :data:`FAULT_KINDS` names."""
    return parse_fault_spec(spec, FAULT_KINDS)


def run_seed(seed: int, options: RaftSimOptions) -> SimResult:
    """One Raft simulation (see :func:`kvorum.sim.runner.run_seed`)."""
    return runner.run_seed(seed, RAFT, options)


def run_seeds(seeds: range, options: RaftSimOptions, jobs: int = 1) -> Iterator[SimResult]:
    """Many Raft simulations, in seed order (see :func:`kvorum.sim.runner.run_seeds`)."""
    return runner.run_seeds(seeds, RAFT, options, jobs)
