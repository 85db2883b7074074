"""The Raft core pure Python against the same core compiled with mypyc, side by side.

Theory of operation: ``python3 dev.py compile`` puts extension modules built from the core's
hot modules beside their sources in ``src/``. This benchmark copies ``src/kvorum`` without
them into a temporary folder, so that two kvorum trees of the same source exist: *python*
(the copy) and *mypyc* (``src/``). Every measurement runs in a fresh process whose import path
starts with one of the two, and each process reports which build it really ran
(:func:`kvorum.corebuild.raft_core_build`; for a cluster, every node's ``INFO server``), so a
mislabelled side stops the run. The two sides take turns, round after round, each round
starting with the side that went second in the one before, and each round yields one ratio
per measurement (mypyc / python): on a shared 2-core machine a neighbour's load moves both
sides of a round together, so the ratios, reported as median and min..max, are what to read,
never one absolute figure. Three measurements:

1. the core alone: committed entries per CPU-second of :mod:`benchmarks.bench_raft_core`'s
   in-process cluster (3 nodes, batched and unbatched);
2. the simulator: seeds per CPU-second of ``kvorum sim raft --faults all`` (5 nodes, the
   durable storage, 1 and 4 groups);
3. a real 3-node ``kvorum up`` cluster: SET and GET at 64 clients (the shared harness's load
   generator), at 1 group and at 64 groups led from one node.

With ``--quick`` (the test suite's smoke run) and no compiled build, both sides run pure
Python, which keeps the harness working without pretending to measure anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_cluster as bc  # noqa: E402
from benchmarks.run import machine_line  # noqa: E402
from kvorum.client.resp_client import RespClient  # noqa: E402
from kvorum.corebuild import raft_core_build  # noqa: E402

PURE, COMPILED = "python", "mypyc"
ROUNDS = int(os.environ.get("KVORUM_BENCH_MYPYC_ROUNDS", "4"))
PARTS = os.environ.get("KVORUM_BENCH_MYPYC_PARTS", "core,sim,cluster")
SIM_SEEDS = int(os.environ.get("KVORUM_BENCH_MYPYC_SIM_SEEDS", "25"))
"""Seeds per side per round (the sides run the same seeds)."""
CLUSTER_SECONDS = float(os.environ.get("KVORUM_BENCH_MYPYC_SECONDS", "4"))
CLUSTER_GROUPS = (1, 64)
CLIENT_PROCS, CLIENT_CONNS = 2, 32
"""64 clients: two load-generator processes of 32 connections each."""

CHILD = """
import json, sys, time
from kvorum.corebuild import raft_core_build
part, size = sys.argv[1], int(sys.argv[2])
out = {"build": raft_core_build()}
if part == "core":
    from benchmarks import bench_raft_core as b
    out["batched"] = b.measure(3, True, size * 10, 3).entries_per_cpu_s
    out["unbatched"] = b.measure(3, False, size, 3).entries_per_cpu_s
else:
    from benchmarks import bench_sim as b
    for groups in (1, 4):
        cpu_s, _ = b.measure("durable", groups, range(size))
        out[f"{groups} group(s)"] = size / cpu_s
print(json.dumps(out))
"""


@contextlib.contextmanager
def pure_copy() -> Iterator[str]:
    """``src/kvorum`` without any compiled module: the pure side's import root."""
    with tempfile.TemporaryDirectory(prefix="kvorum-pure-") as raw:
        shutil.copytree(
            ROOT / "src" / "kvorum",
            Path(raw) / "kvorum",
            ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"),
        )
        yield raw


def in_child(source_dir: str, part: str, size: int) -> dict[str, Any]:
    """Run one in-process measurement in a fresh interpreter importing kvorum from
    ``source_dir``; its figures, and the build it ran."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([source_dir, str(ROOT)]))
    done = subprocess.run([sys.executable, "-c", CHILD, part, str(size)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{part} child failed: {done.stderr[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _info_server(port: int, timeout_s: float = 30) -> object:
    """``INFO server`` of the node on ``port``, waiting for it to listen: ``kvorum up``
    reports a leader before every node may be serving, more so on a loaded machine."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with RespClient("127.0.0.1", port) as client:
                return client.call("INFO", "server")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def cluster_build(cluster: bc.Cluster) -> str:
    """What every node of ``cluster`` says its Raft core is (``INFO server``)."""
    builds = set()
    for port in cluster.client_ports.values():
        info = _info_server(port)
        text = info.decode() if isinstance(info, bytes) else str(info)
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        builds.add(fields.get("kvorum_raft_core", "unknown").strip())
    return ",".join(sorted(builds))


def in_cluster(scratch: Path, source_dir: str, groups: int, duration_s: float,
               ) -> dict[str, Any]:
    """SET and GET ops/s at 64 clients on a fresh 3-node cluster run from ``source_dir``."""
    from benchmarks import bench_groups as bg

    with bc.kvorum_cluster(scratch, up_args=["--groups", str(groups)],
                           source_dir=source_dir) as cluster:
        if groups > 1:
            bg.gather_leaders(cluster, groups)
        out: dict[str, Any] = {"build": cluster_build(cluster)}
        target = f"resp://127.0.0.1:{cluster.leader_port}"
        pids = list(cluster.pids.values())
        for workload in ("set", "get"):
            result = bc._loadgen(target, workload, CLIENT_PROCS, CLIENT_CONNS, pids=pids,
                                 duration_s=duration_s)
            if result.get("errors"):
                print(f"    {workload}: errors {result.get('errors')} "
                      f"{result.get('error_kinds') or result.get('failure') or ''}", flush=True)
            out[f"{groups} group(s) {workload.upper()} 64"] = float(result.get("ops_per_s", 0))
        return out



def _cluster_measure(scratch: Path, groups: int) -> Callable[[str], dict[str, Any]]:
    return lambda source_dir: in_cluster(scratch, source_dir, groups, CLUSTER_SECONDS)


def _figure(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def _ratio_rows(figures: dict[str, dict[str, list[float]]]) -> list[str]:
    rows = []
    for metric, sides in figures.items():
        pure, compiled = sides[PURE], sides[COMPILED]
        ratios = [c / p for p, c in zip(pure, compiled, strict=True) if p > 0]
        if not ratios:
            continue
        rows.append(
            f"| {metric} | {len(ratios)} | {statistics.median(ratios):.2f}x "
            f"| {min(ratios):.2f}..{max(ratios):.2f}x "
            f"| {_figure(statistics.median(pure))} | {_figure(statistics.median(compiled))} |"
        )
    return rows


def run(results_dir: Path, quick: bool) -> None:
    compiled_here = raft_core_build() == COMPILED
    if not compiled_here and not quick:
        raise SystemExit("bench mypyc compares against a compiled core: "
                         "run `python3 dev.py compile` first")
    load_before = os.getloadavg()
    parts = {p.strip() for p in PARTS.split(",") if p.strip()}
    rounds = 2 if quick else ROUNDS
    core_size, sim_seeds = (200, 1) if quick else (20_000, SIM_SEEDS)
    if quick or not bc._peers_available()["loadgen"]:
        parts.discard("cluster")  # needs the shared harness's load generator
    # metric -> side -> one figure per round
    figures: dict[str, dict[str, list[float]]] = {}
    with pure_copy() as pure_dir, tempfile.TemporaryDirectory(prefix="bench-mypyc-") as raw:
        scratch = Path(raw)
        sources = {PURE: pure_dir, COMPILED: str(ROOT / "src")}
        measures: list[tuple[str, Callable[[str], dict[str, Any]]]] = []
        if "core" in parts:
            measures.append(("core", lambda d: in_child(d, "core", core_size)))
        if "sim" in parts:
            measures.append(("sim", lambda d: in_child(d, "sim", sim_seeds)))
        if "cluster" in parts:
            for groups in CLUSTER_GROUPS:
                measures.append((f"cluster {groups}", _cluster_measure(scratch, groups)))
        for round_index in range(rounds):
            order = [PURE, COMPILED] if round_index % 2 == 0 else [COMPILED, PURE]
            for name, measure in measures:
                for side in order:
                    out = measure(sources[side])
                    build = out.pop("build")
                    expected = side if compiled_here else PURE
                    if build != expected:
                        raise SystemExit(f"the {side} side ran a {build!r} core")
                    print(f"  round {round_index + 1} {name:10} {side:6} "
                          + ", ".join(f"{k} {_figure(v)}" for k, v in out.items()), flush=True)
                    for metric, value in out.items():
                        label = {"core": "core, 3 nodes, ", "sim": "sim, "}.get(name, "cluster, ")
                        figures.setdefault(label + metric, {PURE: [], COMPILED: []})[
                            side].append(value)
    lines = [
        "# Raft core: pure Python against mypyc, side by side",
        "",
        machine_line(),
        "",
        f"Both sides are the same source (`src/`); the *mypyc* side runs the modules "
        f"`python3 dev.py compile` built (its processes report `{COMPILED}`), the *python* "
        f"side a copy of `src/kvorum` without them. {rounds} rounds, the sides taking turns "
        "to go first; a ratio is mypyc / python within one round. Core: committed entries per "
        f"CPU-second ({core_size * 10:,} batched, {core_size:,} unbatched entries, best of 3). "
        f"Sim: seeds per CPU-second (`--faults all`, 5 nodes, durable storage, {sim_seeds} "
        f"seeds per side per round). Cluster: ops/s at 64 clients ({CLIENT_PROCS} load "
        f"generators of {CLIENT_CONNS} connections, {CLUSTER_SECONDS:g} s per point) on a "
        "fresh 3-node `kvorum up` per side and round, every group led from one node.",
        "",
        "Load average (1, 5, 15 min) when the run began: "
        + ", ".join(f"{x:.2f}" for x in load_before) + "; when it ended: "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
        + f" (a shared {os.cpu_count()}-core machine: a load far above that means the sides "
        "shared the CPUs with other work, and the wide min..max ranges show it).",
        "",
        *([] if compiled_here else ["**Quick run without a compiled core: both sides are "
                                    "pure Python; these are not results.**", ""]),
        "| measurement | rounds | mypyc / python (median) | min..max | python (median) "
        "| mypyc (median) |",
        "|---|---:|---:|---:|---:|---:|",
        *_ratio_rows(figures),
    ]
    table = "\n".join(lines)
    print(table)
    (results_dir / "mypyc.md").write_text(table + "\n")


if __name__ == "__main__":
    run(ROOT / "benchmarks" / "results", quick="--quick" in sys.argv)
