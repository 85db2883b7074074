"""The placement scheduler in its simulator: how evenly it balances, how many moves it takes,
what a round of planning costs, and what re-replicating a dead node's third of the ranges
costs.

Theory of operation: everything runs in :mod:`kvorum.placement.simulator` (simulated time,
no Raft, no network), so the simulated figures (moves, bytes, rounds, simulated seconds) do
not depend on the machine; only the scheduler's CPU per round is measured, with
``time.process_time`` around :meth:`Scheduler.plan`. Two experiments:

* **scale-out balancing** — N nodes, R ranges of 3 replicas (sizes 32-96 MiB), first placed
  evenly on 70% of the nodes; the other 30% join empty, so they need about 30% of all
  replicas, and hold no leader. The scheduler runs (one round per simulated second, at most
  4 running moves per node, snapshots at 100 MB/s) until it plans nothing. Reported: the
  largest deviation of any node's replica and leader count from the mean, before and after;
  moves (learners added), leader transfers, rounds that planned something, simulated time,
  bytes copied, and the scheduler's CPU per round (mean and worst).
* **a node killed holding a third of the ranges** — 9 nodes, so each holds 1/3 of the
  ranges; one is killed; after ``down_after_ms`` (60 s here; 30 min by default, as TiKV) its
  replicas are re-made on the others. Reported: moves, bytes, and simulated time from the
  kill and from the decision until every range has 3 voters again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from benchmarks.run import machine_line
from kvorum.core.shape import NodeId
from kvorum.placement.operators import Operator
from kvorum.placement.pd_state import PdState
from kvorum.placement.scheduler import Scheduler, SchedulerConfig
from kvorum.placement.simulator import NodeDown, PlacementSim, SimConfig

SEED = 20_261_202
DOWN_AFTER_MS = 60_000
MIB = 1024 * 1024


class TimedScheduler(Scheduler):
    """A scheduler that records the CPU seconds of every plan."""

    def __init__(self, config: SchedulerConfig) -> None:
        super().__init__(config)
        self.cpu_s: list[float] = []

    def plan(self, state: PdState, running: Sequence[Operator], now_ms: int,
             free_range_ids: list[int] | None = None) -> list[Operator]:
        start = time.process_time()
        try:
            return super().plan(state, running, now_ms, free_range_ids)
        finally:
            self.cpu_s.append(time.process_time() - start)


def _counts(sim: PlacementSim) -> tuple[Counter[NodeId], Counter[NodeId]]:
    replicas: Counter[NodeId] = Counter(dict.fromkeys(sim.live, 0))
    leaders: Counter[NodeId] = Counter(dict.fromkeys(sim.live, 0))
    for desc in sim.truth.values():
        replicas.update(desc.nodes())
        if desc.leader_hint is not None:
            leaders[desc.leader_hint] += 1
    return replicas, leaders


def _deviation(counts: Counter[NodeId]) -> float:
    """The largest distance of any node's count from the mean, as a fraction of the mean."""
    mean = sum(counts.values()) / len(counts)
    return max(abs(c - mean) for c in counts.values()) / mean


@dataclass(frozen=True, slots=True)
class Balance:
    nodes: int
    ranges: int
    replica_dev_before: float
    leader_dev_before: float
    replica_dev_after: float
    leader_dev_after: float
    moves: int
    leader_transfers: int
    rounds: int
    simulated_s: float
    bytes_moved: int
    cpu_ms_mean: float
    cpu_ms_max: float
    replicas_before: list[int]
    replicas_after: list[int]
    leaders_after: list[int]


def balance(nodes: int, ranges: int) -> Balance:
    scheduler = TimedScheduler(SchedulerConfig(down_after_ms=DOWN_AFTER_MS))
    config = SimConfig(nodes=nodes, ranges=ranges, initial_nodes=round(nodes * 0.7),
                       report_loads=False, check_cover_every_step=ranges <= 1_000)
    sim = PlacementSim(config, scheduler, seed=SEED)
    replicas_before, leaders_before = _counts(sim)
    settled = sim.run_until_quiet(max_ms=24 * 3600 * 1000)
    assert settled, f"{nodes} nodes, {ranges} ranges did not settle"
    assert sim.check_fully_replicated() == []
    replicas_after, leaders_after = _counts(sim)
    counters = sim.counters
    return Balance(
        nodes, ranges, _deviation(replicas_before), _deviation(leaders_before),
        _deviation(replicas_after), _deviation(leaders_after), counters.moves,
        counters.leader_transfers, counters.rounds_with_operators, sim.now_ms / 1000,
        counters.bytes_moved, 1000 * sum(scheduler.cpu_s) / len(scheduler.cpu_s),
        1000 * max(scheduler.cpu_s), sorted(replicas_before.values()),
        sorted(replicas_after.values()), sorted(leaders_after.values()))


@dataclass(frozen=True, slots=True)
class Kill:
    nodes: int
    ranges: int
    held: int
    moves: int
    bytes_moved: int
    since_kill_s: float
    since_decision_s: float
    rounds: int


def kill(ranges: int) -> Kill:
    nodes = 9
    scheduler = Scheduler(SchedulerConfig(down_after_ms=DOWN_AFTER_MS,
                                          heartbeat_timeout_ms=10_000))
    config = SimConfig(nodes=nodes, ranges=ranges, report_loads=False,
                       check_cover_every_step=ranges <= 1_000)
    sim = PlacementSim(config, scheduler, seed=SEED)
    assert sim.run_until_quiet(max_ms=3600 * 1000)
    held = sum(1 for d in sim.truth.values() if 1 in d.nodes())
    moves, moved, rounds = (sim.counters.moves, sim.counters.bytes_moved,
                            sim.counters.rounds_with_operators)
    killed_ms = sim.now_ms + 500
    sim.schedule([(killed_ms, NodeDown(1))])
    sim.run(until_ms=killed_ms + DOWN_AFTER_MS)
    while any(1 in d.nodes() or len(d.voters()) != 3 for d in sim.truth.values()):
        sim.run(until_ms=sim.now_ms + 100)
    healed_ms = sim.now_ms
    marked = sim.pd.nodes[1].down_since_ms
    assert marked is not None
    return Kill(nodes, ranges, held, sim.counters.moves - moves,
                sim.counters.bytes_moved - moved, (healed_ms - killed_ms) / 1000,
                (healed_ms - marked - DOWN_AFTER_MS) / 1000,
                sim.counters.rounds_with_operators - rounds)


def table(balances: list[Balance], kills: list[Kill]) -> str:
    lines = [
        "# Placement: the scheduler in its simulator",
        "",
        machine_line(),
        "",
        "Scale-out: ranges of 3 replicas (32-96 MiB) placed evenly on 70% of the nodes, the "
        "other 30% join empty; the scheduler runs one round per simulated second (at most 4 "
        "running moves per node, 256 new operators per round, snapshots at 100 MB/s) until "
        "it plans nothing. Deviation: the farthest any node is from the mean count. Moves: "
        "learners added (each copies a range). CPU: `Scheduler.plan` per round, measured; "
        "everything else is simulated and does not depend on the machine.",
        "",
        "| nodes | ranges | replicas dev. before | after | leaders dev. before | after | "
        "moves | leader transfers | rounds | simulated s | GiB copied | plan CPU ms/round "
        "(mean) | (max) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in balances:
        lines.append(
            f"| {b.nodes} | {b.ranges:,} | {100 * b.replica_dev_before:.0f}% | "
            f"{100 * b.replica_dev_after:.1f}% | {100 * b.leader_dev_before:.0f}% | "
            f"{100 * b.leader_dev_after:.1f}% | {b.moves:,} | {b.leader_transfers:,} | "
            f"{b.rounds} | {b.simulated_s:.0f} | {b.bytes_moved / 2**30:.0f} | "
            f"{b.cpu_ms_mean:.1f} | {b.cpu_ms_max:.1f} |")
    lines += [
        "",
        f"A node killed holding a third of the ranges (9 nodes, 3 replicas): the PD marks it "
        f"down 10 s after its last heartbeat, counting the down time from that heartbeat, and "
        f"re-replicates its ranges once it has been down {DOWN_AFTER_MS // 1000} s (TiKV's "
        "default is 30 min). Time to fully replicated counts from the kill, and from the "
        "moment the scheduler may act.",
        "",
        "| nodes | ranges | ranges on the dead node | moves | GiB copied | rounds | "
        "s from the kill | s from the decision |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k in kills:
        lines.append(
            f"| {k.nodes} | {k.ranges:,} | {k.held:,} | {k.moves:,} | "
            f"{k.bytes_moved / 2**30:.1f} | {k.rounds} | {k.since_kill_s:.0f} | "
            f"{k.since_decision_s:.0f} |")
    return "\n".join(lines)


def chart(b: Balance, path: Path) -> None:
    fig = Figure(figsize=(10, 4.5))
    replicas_ax, leaders_ax = fig.subplots(1, 2)
    xs = list(range(b.nodes))
    replicas_ax.plot(xs, b.replicas_before, label="before", color="tab:gray")
    replicas_ax.plot(xs, b.replicas_after, label="after", color="tab:blue")
    mean = sum(b.replicas_after) / b.nodes
    replicas_ax.axhspan(mean * 0.9, mean * 1.1, color="tab:green", alpha=0.15,
                        label="mean ± 10%")
    replicas_ax.set_title(f"Replicas per node ({b.nodes} nodes, {b.ranges:,} ranges)")
    replicas_ax.set_xlabel("nodes, sorted")
    replicas_ax.legend()
    leaders_ax.plot(xs, b.leaders_after, color="tab:blue", label="after")
    lead_mean = sum(b.leaders_after) / b.nodes
    leaders_ax.axhspan(lead_mean * 0.9, lead_mean * 1.1, color="tab:green", alpha=0.15,
                       label="mean ± 10%")
    leaders_ax.set_ylim(0, lead_mean * 1.5)
    leaders_ax.set_title("Leaders per node after balancing")
    leaders_ax.set_xlabel("nodes, sorted")
    leaders_ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(results_dir: Path, quick: bool) -> None:
    sizes = [(10, 100)] if quick else [(10, 100), (30, 1_000), (100, 10_000)]
    kill_sizes = [90] if quick else [900, 3_000]
    balances = [balance(nodes, ranges) for nodes, ranges in sizes]
    kills = [kill(ranges) for ranges in kill_sizes]
    text = table(balances, kills)
    print(text)
    (results_dir / "placement.md").write_text(text + "\n")
    chart(balances[-1], results_dir / "placement.png")
