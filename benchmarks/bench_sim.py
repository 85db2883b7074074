"""Simulated seeds per CPU-second: nodes on in-memory logs against the real WAL on a sim disk.

Theory of operation: the simulator's cost decides how many seeds CI can afford
(``kvorum sim raft --seeds 1000`` at one group and at four). This runs the same seeds of
``kvorum sim raft --faults all`` (5 nodes) with each storage — ``memory`` (the in-memory
reference logs) and ``durable`` (the real WAL and snapshot files on each node's
:class:`~kvorum.sim.disk.SimFileSystem`, the default) — at one and at four groups, in this one
process, and reports seeds per CPU-second. CPU time, not wall time, because these machines
are shared: a busy neighbour slows the wall clock, not the work. The ratio to the memory row
of the same group count is what to read; the absolute figures move with the machine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.run import machine_line
from kvorum.sim.raft import RaftSimOptions, parse_faults, run_seed

CONFIGS = (("memory", 1), ("durable", 1), ("memory", 4), ("durable", 4))


def measure(storage: str, groups: int, seeds: range) -> tuple[float, int]:
    """CPU seconds to run ``seeds``, and the client operations they issued."""
    options = RaftSimOptions(
        groups=groups, faults=parse_faults("all"), storage=storage, trace=False
    )
    ops = 0
    start = time.process_time()
    for seed in seeds:
        result = run_seed(seed, options)
        ops += result.ops
    return time.process_time() - start, ops


def run(results_dir: Path, quick: bool) -> None:
    seeds = range(2) if quick else range(int(os.environ.get("KVORUM_BENCH_SIM_SEEDS", "100")))
    rows = []
    base: dict[int, float] = {}
    for storage, groups in CONFIGS:
        cpu_s, ops = measure(storage, groups, seeds)
        rate = len(seeds) / cpu_s
        base.setdefault(groups, rate)
        rows.append(
            f"| {storage} | {groups} | {len(seeds)} | {cpu_s:.1f} | {rate:.2f} |"
            f" {rate / base[groups]:.2f} | {ops} |"
        )
        print(rows[-1], flush=True)
    lines = [
        "# Simulator: seeds per CPU-second",
        "",
        machine_line(),
        "",
        f"`kvorum sim raft --faults all`, 5 nodes, seeds 0..{len(seeds) - 1}, one process.",
        "",
        "| storage | groups | seeds | CPU s | seeds per CPU-s | vs memory | client ops |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    (results_dir / "sim.md").write_text("\n".join(lines))
