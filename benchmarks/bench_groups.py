"""Many Raft groups per node: what idle groups cost, what 64 busy groups serve, and what the
multi-group runtime did to the single-group figures.

Theory of operation. Three measurements, each on fresh 3-node ``kvorum up`` clusters on
loopback started by :func:`bench_cluster.kvorum_cluster` (free ports, a temporary folder):

1. **Idle cost.** For each group count G (1, 100, 1,000, 10,000) a cluster of G groups is
   started and left alone. Start-up is timed from spawning ``kvorum up`` until group 0 has a
   leader, then until every node reports all G groups quiesced (``KVORUM STATUS``: no group
   ticks or heartbeats). After a short settle, each node's CPU (utime + stime from
   ``/proc/PID/stat``) is read over a window, as a share of one core, with its fsyncs and the
   bytes it wrote to storage (``/proc/PID/io``) over the same window; then its memory
   (``VmRSS`` and ``RssAnon`` from ``/proc/PID/status``). Memory per group is the node's
   RssAnon above the 1-group cluster's, divided by G - 1: Python's heap, without the shared
   libraries and LMDB's file-backed map that RSS also counts. Every figure is the worst of
   the three nodes.
2. **Throughput.** 3 nodes with 1 group and with 64 groups, each with the round's fsync on
   the disk thread (``persist_in_thread``, the default) and on the event loop
   (``--persist-on-loop``), then etcd, in one run, interleaved, ``runs`` times. The shared
   ``loadgen.py`` drives SET (unique keys, so spread over every group) and linearizable GET
   (random keys of a preloaded 10,000, likewise) at 1, 16 and 64 connections. The 64-group
   cluster's leaderships are first gathered on one node (``KVORUM TRANSFER``) and every
   connection goes there, exactly as the 1-group rows drive group 0's leader: the only
   difference is the number of groups. One more row runs 64 groups as they come up, leaders
   spread over the nodes by their elections, with connections spread over every node.
3. **No regression.** ``bench cluster``'s kvorum rows (via the leader and via any node, SET
   and GET at 1, 16 and 64 connections) for the commit before the multi-group work
   (``BEFORE_COMMIT``, the old single-group node, exported with ``git archive`` and run from
   the same venv through ``PYTHONPATH``) and for the working tree, in the same run, the two
   taking turns to go first. The dependencies did not change in between, so one venv serves both.

The cores are shared with other engineers' work, so only ratios between cells of this one
run mean anything; each cell is the median over runs, with min..max shown where it matters.

``quick=True`` (the smoke test) needs no peer harness: idle clusters of 1 and 50 groups with a
short window, then SET and GET for a second each with the built-in client on each of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_cluster as bc  # noqa: E402
from benchmarks.run import machine_line  # noqa: E402
from kvorum.cli.status import fetch_status  # noqa: E402
from kvorum.client.resp_client import RespClient  # noqa: E402

GROUP_COUNTS = tuple(
    int(g) for g in os.environ.get("KVORUM_BENCH_GROUPS_COUNTS", "1,100,1000,10000").split(",")
)
QUICK_GROUP_COUNTS = (1, 50)
IDLE_WINDOW_S = float(os.environ.get("KVORUM_BENCH_GROUPS_IDLE_S", "15"))
IDLE_SETTLE_S = 3.0
THROUGHPUT_GROUPS = 64
RUNS = int(os.environ.get("KVORUM_BENCH_GROUPS_RUNS", "2"))
POINT_SECONDS = float(os.environ.get("KVORUM_BENCH_GROUPS_SECONDS", "5"))
BEFORE_COMMIT = os.environ.get("KVORUM_BENCH_BEFORE", "8d923df")
"""The last commit with the single-group ``RaftNode``, for the no-regression pair."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKLOADS = ("set", "get")

ONE = "1 group"
ONE_LOOP = "1 group, fsync on loop"
MANY = f"{THROUGHPUT_GROUPS} groups"
MANY_LOOP = f"{THROUGHPUT_GROUPS} groups, fsync on loop"
MANY_SPREAD = f"{THROUGHPUT_GROUPS} groups, leaders spread, any node"
ETCD = bc.ETCD
KVORUM_CONFIGS: dict[str, tuple[int, bool, bool]] = {
    # label: (groups, fsync on the loop, leaders and clients spread over the nodes)
    ONE: (1, False, False),
    ONE_LOOP: (1, True, False),
    MANY: (THROUGHPUT_GROUPS, False, False),
    MANY_LOOP: (THROUGHPUT_GROUPS, True, False),
    MANY_SPREAD: (THROUGHPUT_GROUPS, False, True),
}
SYSTEMS = (*KVORUM_CONFIGS, ETCD)
BEFORE_LEADER, BEFORE_ANY = f"before ({BEFORE_COMMIT}), leader", f"before ({BEFORE_COMMIT}), any"
AFTER_LEADER, AFTER_ANY = "after (this tree), leader", "after (this tree), any"
REGRESSION_SYSTEMS = (BEFORE_LEADER, AFTER_LEADER, BEFORE_ANY, AFTER_ANY)

Record = Callable[[str, str, int, dict[str, Any]], None]


# --- /proc -------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and RssShmem of ``pid``, in KiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[name] = int(rest.split()[0])
    return out


def storage_write_bytes(pid: int) -> int:
    """Bytes ``pid`` caused to be sent to storage (``write_bytes`` of ``/proc/PID/io``)."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


# --- cluster helpers ---------------------------------------------------------------------------


def _status(port: int, timeout_s: float = 2.0) -> dict[str, Any] | None:
    status = fetch_status(f"127.0.0.1:{port}", timeout_s=timeout_s)
    return status if isinstance(status, dict) else None


def _wait(what: str, timeout_s: float, check: Callable[[], bool], every_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every_s)
    raise RuntimeError(f"{what}: not within {timeout_s:g} s")


def _all_quiesced(cluster: bc.Cluster, groups: int) -> bool:
    for port in cluster.client_ports.values():
        status = _status(port)
        if status is None or status["groups"]["quiesced"] != groups:
            return False
    return True


def _leaders(cluster: bc.Cluster) -> dict[int, list[int]]:
    """Which groups each node leads now."""
    led: dict[int, list[int]] = {}
    for node_id, port in cluster.client_ports.items():
        status = _status(port)
        led[node_id] = list(status["groups"]["leading"]) if status else []
    return led


def gather_leaders(cluster: bc.Cluster, groups: int, timeout_s: float = 60) -> None:
    """Hand the leadership of every group to ``cluster.leader_id`` (group 0's leader)."""
    target = cluster.leader_id

    def gathered() -> bool:
        led = _leaders(cluster)
        if len(led.get(target, [])) == groups:
            return True
        for node_id, led_here in led.items():
            if node_id == target or not led_here:
                continue
            port = cluster.client_ports[node_id]
            with contextlib.suppress(Exception), RespClient("127.0.0.1", port) as client:
                groups_arg = ",".join(map(str, led_here))
                client.call("KVORUM", "TRANSFER", str(target), "GROUPS", groups_arg)
        return False

    _wait_all_led(cluster, groups, timeout_s)
    _wait(f"gather {groups} leaderships on node {target}", timeout_s, gathered, every_s=1.0)


def _wait_all_led(cluster: bc.Cluster, groups: int, timeout_s: float) -> None:
    def all_led() -> bool:
        return sum(len(v) for v in _leaders(cluster).values()) >= groups

    _wait(f"a leader for each of {groups} groups", timeout_s, all_led)


def _start_timeout_s(groups: int) -> float:
    return 60 + groups * 0.05


# --- 1. idle cost ------------------------------------------------------------------------------


def measure_idle(scratch: Path, groups: int, window_s: float, settle_s: float,
                 ) -> dict[str, Any]:
    """Start a cluster of ``groups`` groups, let them quiesce, and measure each node."""
    began = time.monotonic()
    row: dict[str, Any] = {"groups": groups}
    with bc.kvorum_cluster(scratch, up_args=["--groups", str(groups)],
                           start_timeout_s=_start_timeout_s(groups)) as cluster:
        row["leader_s"] = time.monotonic() - began
        try:
            _wait(f"{groups} groups quiesced on every node", _quiesce_wait_s(groups),
                  lambda: _all_quiesced(cluster, groups), every_s=0.5)
            row["quiesced_s"] = time.monotonic() - began
        except RuntimeError:
            # Measured anyway, and said so: how many were quiesced is in the row.
            row["quiesced_s"] = None
            for node_id, port in cluster.client_ports.items():
                status = _status(port) or {}
                brief = {k: v for k, v in (status.get("groups") or {}).items() if k != "leading"}
                print(f"  node {node_id}: groups {brief}, stats {status.get('stats')}",
                      flush=True)
        time.sleep(settle_s)
        pids = cluster.pids
        fsyncs0 = {i: _fsyncs(cluster, i) for i in pids}
        cpu0 = {i: cpu_seconds(p) for i, p in pids.items()}
        io0 = {i: storage_write_bytes(p) for i, p in pids.items()}
        t0 = time.monotonic()
        time.sleep(window_s)
        elapsed_s = time.monotonic() - t0
        cpu1 = {i: cpu_seconds(p) for i, p in pids.items()}
        io1 = {i: storage_write_bytes(p) for i, p in pids.items()}
        fsyncs1 = {i: _fsyncs(cluster, i) for i in pids}
        row["window_s"] = elapsed_s
        row["nodes"] = {
            str(i): {
                "cpu_share": (cpu1[i] - cpu0[i]) / elapsed_s,
                "fsyncs": fsyncs1[i] - fsyncs0[i],
                "storage_write_bytes": io1[i] - io0[i],
                **memory_kib(p),
            }
            for i, p in pids.items()
        }
        row["quiesced_after"] = {str(i): _quiesced(cluster, i) for i in pids}
        row["still_quiesced"] = _all_quiesced(cluster, groups)
    return row


def _quiesced(cluster: bc.Cluster, node_id: int) -> int:
    status = _status(cluster.client_ports[node_id], timeout_s=10)
    return int(status["groups"]["quiesced"]) if status else -1


def _quiesce_wait_s(groups: int) -> float:
    """How long to wait for every group to quiesce before measuring anyway."""
    return 60 + groups * 0.012


def _fsyncs(cluster: bc.Cluster, node_id: int) -> int:
    status = _status(cluster.client_ports[node_id])
    return int(status["stats"]["fsyncs"]) if status else -1


def _worst(row: dict[str, Any], metric: str) -> float:
    return max(float(n[metric]) for n in row["nodes"].values())


def idle_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per group count: the worst node's CPU share, RssAnon and RSS, and memory per group
    above the 1-group baseline (RssAnon and RSS), node by node."""
    base = next((r for r in rows if r["groups"] == 1), None)
    out = []
    for row in rows:
        g = row["groups"]
        per_anon = per_rss = None
        if base is not None and g > 1:
            per_anon = max(
                (n["RssAnon"] - base["nodes"][i]["RssAnon"]) / (g - 1)
                for i, n in row["nodes"].items()
            )
            per_rss = max(
                (n["VmRSS"] - base["nodes"][i]["VmRSS"]) / (g - 1)
                for i, n in row["nodes"].items()
            )
        out.append({
            "groups": g,
            "leader_s": row["leader_s"],
            "quiesced_s": row["quiesced_s"],
            "cpu_share": _worst(row, "cpu_share"),
            "fsyncs": _worst(row, "fsyncs"),
            "storage_write_bytes": _worst(row, "storage_write_bytes"),
            "rss_kib": _worst(row, "VmRSS"),
            "anon_kib": _worst(row, "RssAnon"),
            "anon_per_group_kib": per_anon,
            "rss_per_group_kib": per_rss,
            "still_quiesced": row["still_quiesced"],
            "fewest_quiesced": min(row["quiesced_after"].values()),
        })
    return out


# --- 2. throughput -----------------------------------------------------------------------------


@contextlib.contextmanager
def _throughput_cluster(scratch: Path, label: str) -> Iterator[tuple[bc.Cluster, str]]:
    """A cluster for one throughput config, ready to measure, and the loadgen target."""
    groups, on_loop, spread = KVORUM_CONFIGS[label]
    up_args = ["--groups", str(groups), *(["--persist-on-loop"] if on_loop else [])]
    with bc.kvorum_cluster(scratch, up_args=up_args) as cluster:
        if spread:
            _wait_all_led(cluster, groups, 60)
            ports = ",".join(f"127.0.0.1:{p}" for p in cluster.any_node_ports())
            target = f"resp://{ports}"
        else:
            if groups > 1:
                gather_leaders(cluster, groups)
            target = f"resp://127.0.0.1:{cluster.leader_port}"
        yield cluster, target


def measure_kvorum_throughput(record: Record, scratch: Path, label: str, duration_s: float,
                              ) -> None:
    with _throughput_cluster(scratch, label) as (cluster, target):
        pids = list(cluster.pids.values())
        for workload in WORKLOADS:
            for procs, conns in bc.LEVELS:
                result = bc._loadgen(target, workload, procs, conns, pids=pids,
                                     duration_s=duration_s)
                record(label, workload, procs * conns, result)


# --- 3. no regression --------------------------------------------------------------------------


@contextlib.contextmanager
def before_source(commit: str) -> Iterator[str | None]:
    """``src/`` of ``commit``, exported into a temporary folder (None if git cannot)."""
    with tempfile.TemporaryDirectory(prefix="kvorum-before-") as raw:
        archive = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT,
                                 capture_output=True, check=False)
        if archive.returncode != 0:
            print(f"  cannot export {commit}: {archive.stderr.decode()[-200:]}", flush=True)
            yield None
            return
        subprocess.run(["tar", "-x", "-C", raw], input=archive.stdout, check=True)
        yield str(Path(raw) / "src")


# --- tables and chart --------------------------------------------------------------------------


def _summarize(raw: list[dict[str, Any]]) -> dict[tuple[str, str, int], bc.Cell]:
    return bc._summarize(raw)


def _fmt(value: float | None, digits: int = 2) -> str:
    return bc._fmt(value, digits)


def _floors(idle: list[dict[str, Any]], cells: dict[tuple[str, str, int], bc.Cell],
            ) -> list[tuple[str, str, bool | None]]:
    """(floor, evidence, met? — None when not measured)."""
    out: list[tuple[str, str, bool | None]] = []
    by_g = {r["groups"]: r for r in idle}
    r1000 = by_g.get(1000)
    if r1000 is not None:
        cpu = r1000["cpu_share"]
        out.append(("1,000 idle groups: <= 2% of a core", f"{cpu * 100:.2f}% (worst node)",
                    cpu <= 0.02))
        per = r1000["anon_per_group_kib"]
        out.append(("1,000 idle groups: <= 64 KiB each",
                    f"{_fmt(per, 1)} KiB RssAnon per group (worst node)",
                    per is not None and per <= 64))
    else:
        out.append(("1,000 idle groups", "not measured", None))

    def get(system: str, workload: str, clients: int, metric: str = "ops_per_s"
            ) -> float | None:
        return cells.get((system, workload, clients), {}).get(metric)

    for workload in WORKLOADS:
        for clients in (1, 16, 64):
            many, one = get(MANY, workload, clients), get(ONE, workload, clients)
            if many is None or one is None:
                continue
            ratio = many / one if one else None
            out.append((f"{workload.upper()} {clients} clients: 64 groups >= 1 group ops/s",
                        f"{_fmt(many, 0)} vs {_fmt(one, 0)} ({_fmt(ratio)}x)",
                        ratio is not None and ratio >= 1.0))
    many, etcd = get(MANY, "set", 64), get(ETCD, "set", 64)
    if many is not None and etcd:
        out.append(("SET 64 clients: 64 groups >= 2.5x etcd", f"{_fmt(many / etcd)}x",
                    many / etcd >= 2.5))
    k50, e50 = get(MANY, "set", 1, "p50_ms"), get(ETCD, "set", 1, "p50_ms")
    if k50 is not None and e50 is not None:
        out.append(("SET 1 client: 64 groups p50 <= etcd's", f"{k50:.3f} vs {e50:.3f} ms",
                    k50 <= e50))
    return out


def _report(idle: list[dict[str, Any]], cells: dict[tuple[str, str, int], bc.Cell],
            regression: dict[tuple[str, str, int], bc.Cell], *, quick: bool, runs: int,
            duration_s: float, window_s: float, peers: bool) -> str:
    lines = [machine_line() + " — 2 shared cores: clients and all 3 nodes share them", ""]
    if quick:
        lines += ["(quick smoke run: small group counts, short windows, built-in client; "
                  "these numbers are not results)", ""]
    lines += [
        f"kvorum code: {bc.source_label()}. Every figure below comes from this one run; the "
        "cores are shared with other engineers' jobs, so compare cells of this file with "
        "each other (ratios), not with other days.",
        "",
        "## 1. Idle groups",
        "",
        f"A 3-node cluster on loopback per group count, left idle. CPU is a share of one core "
        f"over {window_s:g} s after every group quiesced; fsyncs and storage writes are over "
        "the same window; memory is read after it. Each column is the worst of the three "
        "nodes. Memory per group is RssAnon (the Python heap; RSS also counts shared "
        "libraries and LMDB's file-backed map) above the 1-group cluster's, over G - 1. "
        "Start-up: from spawning `kvorum up` until group 0 has a leader, and until every node "
        "holds all G groups quiesced.",
        "",
        "| groups | leader after s | all quiesced after s | CPU, share of a core | fsyncs "
        "| storage writes | RSS MiB | RssAnon MiB | KiB per group (RssAnon) | KiB per group "
        "(RSS) | all still quiesced (else the fewest on a node) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in idle:
        lines.append(
            f"| {r['groups']:,} | {r['leader_s']:.1f} | {_quiesced_cell(r)} "
            f"| {r['cpu_share'] * 100:.2f}% | {r['fsyncs']:.0f} "
            f"| {r['storage_write_bytes'] / 1024:.0f} KiB | {r['rss_kib'] / 1024:.1f} "
            f"| {r['anon_kib'] / 1024:.1f} | {_fmt(r['anon_per_group_kib'], 1)} "
            f"| {_fmt(r['rss_per_group_kib'], 1)} "
            f"| {'yes' if r['still_quiesced'] else 'no: ' + format(r['fewest_quiesced'], ',')} |"
        )
    lines += [
        "",
        "## 2. Throughput: 64 groups against 1 group and etcd",
        "",
        f"Closed loop, 100-byte values, median of {runs} run(s) x {duration_s:g} s per point, "
        "systems measured one at a time, interleaved. SET keys are unique and GET keys random "
        "among 10,000 preloaded, so both spread over every group. Unless marked 'spread', "
        "every group's leadership is first gathered on one node and every connection goes "
        "there (as etcd's go to its leader): 1 and 64 groups differ only in the number of "
        "groups. 'fsync on loop' runs every round's fsync on the event loop "
        "(`persist_in_thread=False`); the other rows run it on the loop while recent syncs "
        "took under 1 ms and on the disk thread otherwise, so 'disk thread / loop' below "
        "compares that default with the loop. GETs are linearizable: on the leader's lease, "
        "else after a ReadIndex round. Server CPU is cores used by all 3 nodes.",
        "",
        "| workload | clients | system | ops/s | min..max | p50 ms | p99 ms | server CPU "
        "| server CPU us per op | errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    others = sorted({k[0] for k in cells} - set(SYSTEMS))
    lines += _cell_rows(cells, [*SYSTEMS, *others])
    if not quick:
        lines += ["", "Ratios (same run): ", "",
                  "| workload | clients | 64 groups / 1 group | 64 / 1, fsync on loop "
                  "| disk thread / loop, 1 group | disk thread / loop, 64 groups "
                  "| 64 groups / etcd |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for workload in WORKLOADS:
            for _, (procs, conns) in enumerate(bc.LEVELS):
                c = procs * conns

                def ops(system: str, w: str = workload, n: int = c) -> float | None:
                    return cells.get((system, w, n), {}).get("ops_per_s")

                lines.append(
                    f"| {workload.upper()} | {c} | {_fmt(bc._ratio(ops(MANY), ops(ONE)))}x "
                    f"| {_fmt(bc._ratio(ops(MANY_LOOP), ops(ONE_LOOP)))}x "
                    f"| {_fmt(bc._ratio(ops(ONE), ops(ONE_LOOP)))}x "
                    f"| {_fmt(bc._ratio(ops(MANY), ops(MANY_LOOP)))}x "
                    f"| {_fmt(bc._ratio(ops(MANY), ops(ETCD)))}x |"
                )
        if not peers:
            lines += ["", "(etcd was not measured: run `bash ../shared/bench/setup.sh`)"]
    if regression:
        lines += [
            "",
            "## 3. No regression: `bench cluster`'s kvorum rows, before and after",
            "",
            f"Before: commit {BEFORE_COMMIT} (the single-group node, before the host), "
            "exported with `git archive` and run from the same venv; after: this tree. "
            f"Both 1 group, alternating in this run, median of {runs} run(s).",
            "",
            "| workload | clients | via | before ops/s | after ops/s | after / before "
            "| before p50 ms | after p50 ms | before p99 ms | after p99 ms "
            "| before min..max | after min..max |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for workload in WORKLOADS:
            for procs, conns in bc.LEVELS:
                c = procs * conns
                for via, (b_sys, a_sys) in (("leader", (BEFORE_LEADER, AFTER_LEADER)),
                                            ("any node", (BEFORE_ANY, AFTER_ANY))):
                    b = regression.get((b_sys, workload, c), {})
                    a = regression.get((a_sys, workload, c), {})
                    lines.append(
                        f"| {workload.upper()} | {c} | {via} | {_fmt(b.get('ops_per_s'), 0)} "
                        f"| {_fmt(a.get('ops_per_s'), 0)} "
                        f"| {_fmt(bc._ratio(a.get('ops_per_s'), b.get('ops_per_s')))}x "
                        f"| {_fmt(b.get('p50_ms'), 3)} | {_fmt(a.get('p50_ms'), 3)} "
                        f"| {_fmt(b.get('p99_ms'), 3)} | {_fmt(a.get('p99_ms'), 3)} "
                        f"| {_fmt(b.get('ops_per_s_min'), 0)}..{_fmt(b.get('ops_per_s_max'), 0)} "
                        f"| {_fmt(a.get('ops_per_s_min'), 0)}..{_fmt(a.get('ops_per_s_max'), 0)} |"
                    )
    if not quick:
        lines += ["", "## Floors", "", "| floor | evidence | met? |", "|---|---|---|"]
        for floor, evidence, met in _floors(idle, cells):
            verdict = "not measured" if met is None else ("met" if met else "NOT met")
            lines.append(f"| {floor} | {evidence} | {verdict} |")
        lines += ["", "Why the throughput floors are not met on this machine, what each change "
                  "bought, mypyc measured, and 10,000 groups: `benchmarks/groups_profile.md`."]
    return "\n".join(lines)


def _quiesced_cell(row: dict[str, Any]) -> str:
    if row["quiesced_s"] is not None:
        return f"{row['quiesced_s']:.1f}"
    return f"not all in {_quiesce_wait_s(row['groups']):.0f} s"


def _cell_rows(cells: dict[tuple[str, str, int], bc.Cell], systems: Sequence[str]) -> list[str]:
    rows = []
    for workload in WORKLOADS:
        for clients in sorted({k[2] for k in cells}):
            for system in systems:
                cell = cells.get((system, workload, clients))
                if cell is None:
                    continue
                cpu, ops = cell["server_cpu_cores"], cell["ops_per_s"]
                us_per_op = cpu * 1e6 / ops if cpu is not None and ops else None
                rows.append(
                    f"| {workload.upper()} | {clients} | {system} | {_fmt(cell['ops_per_s'], 0)}"
                    f" | {_fmt(cell['ops_per_s_min'], 0)}..{_fmt(cell['ops_per_s_max'], 0)}"
                    f" | {_fmt(cell['p50_ms'], 3)} | {_fmt(cell['p99_ms'], 3)}"
                    f" | {_fmt(cell['server_cpu_cores'])} | {_fmt(us_per_op, 0)}"
                    f" | {_fmt(cell['errors'], 0)} |"
                )
    return rows


def _chart(path: Path, idle: list[dict[str, Any]],
           cells: dict[tuple[str, str, int], bc.Cell]) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    xs = [r["groups"] for r in idle]
    ax = axes[0]
    if xs:
        ax.plot(xs, [r["cpu_share"] * 100 for r in idle], "o-")
    ax.axhline(2.0, color="red", linestyle="--", linewidth=1, label="floor at 1,000 groups")
    ax.set_xscale("log")
    ax.set_xlabel("idle groups per node")
    ax.set_ylabel("CPU, % of one core (worst node)")
    ax.set_title("Idle CPU")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    per = [(r["groups"], r["anon_per_group_kib"]) for r in idle if r["anon_per_group_kib"]]
    if per:
        ax.plot([g for g, _ in per], [k for _, k in per], "o-")
    ax.axhline(64, color="red", linestyle="--", linewidth=1, label="floor at 1,000 groups")
    ax.set_xscale("log")
    ax.set_xlabel("idle groups per node")
    ax.set_ylabel("KiB per group (RssAnon above 1 group)")
    ax.set_title("Memory per idle group")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[2]
    systems = [s for s in SYSTEMS if any(k[0] == s for k in cells)]
    clients = sorted({k[2] for k in cells})
    width = 0.8 / max(1, len(systems))
    for i, system in enumerate(systems):
        bx, by = [], []
        for j, c in enumerate(clients):
            value = cells.get((system, "set", c), {}).get("ops_per_s")
            if value and value > 0:
                bx.append(j + (i - (len(systems) - 1) / 2) * width)
                by.append(value)
        ax.bar(bx, by, width, label=system)
    if systems:
        ax.set_yscale("log")
    ax.set_xticks(range(len(clients)), [f"{c} clients" for c in clients])
    ax.set_ylabel("SET ops/s (log)")
    ax.set_title("SET throughput, 3 nodes")
    if systems:
        ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Many Raft groups per node (2 shared cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the benchmark ------------------------------------------------------------------------------


def run(results_dir: Path, quick: bool) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    previous_handler = signal.signal(signal.SIGTERM, bc._exit_on_sigterm)
    try:
        _run(results_dir, quick, sections=_sections())
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def _sections() -> set[str]:
    """Which parts to run (``KVORUM_BENCH_GROUPS_PARTS=idle,throughput,regression``)."""
    raw = os.environ.get("KVORUM_BENCH_GROUPS_PARTS", "idle,throughput,regression")
    return {p.strip() for p in raw.split(",") if p.strip()}


def _run(results_dir: Path, quick: bool, sections: set[str]) -> None:
    raw: list[dict[str, Any]] = []
    reg_raw: list[dict[str, Any]] = []
    idle_rows: list[dict[str, Any]] = []

    def recorder(into: list[dict[str, Any]]) -> Record:
        def record(system: str, workload: str, clients: int, result: dict[str, Any]) -> None:
            row = dict(result, system=system, workload=workload, clients=clients)
            into.append(row)
            print(f"  {system:40} {workload:3} {clients:3} clients: "
                  f"{_fmt(row.get('ops_per_s'), 0)} ops/s, p50 {_fmt(row.get('p50_ms'), 3)} ms, "
                  f"p99 {_fmt(row.get('p99_ms'), 3)} ms, errors {row.get('errors')} "
                  f"{row.get('error_kinds') or row.get('failure') or ''}", flush=True)
        return record

    window_s = 2.0 if quick else IDLE_WINDOW_S
    runs, duration_s = (1, 1.0) if quick else (RUNS, POINT_SECONDS)
    peers = False
    with tempfile.TemporaryDirectory(prefix="bench-groups-") as raw_scratch:
        scratch = Path(raw_scratch)
        if "idle" in sections:
            counts = QUICK_GROUP_COUNTS if quick else GROUP_COUNTS
            for groups in counts:
                print(f"== idle: {groups} groups", flush=True)
                row = measure_idle(scratch, groups, window_s, 0.5 if quick else IDLE_SETTLE_S)
                idle_rows.append(row)
                worst = max(row["nodes"].values(), key=lambda n: n["cpu_share"])
                quiesced = row["quiesced_s"]
                print(f"  leader after {row['leader_s']:.1f} s, all quiesced after "
                      f"{'-' if quiesced is None else format(quiesced, '.1f')} s "
                      f"({row['quiesced_after']}); worst CPU {worst['cpu_share'] * 100:.2f}%; "
                      f"RssAnon {[n['RssAnon'] for n in row['nodes'].values()]} KiB", flush=True)
        if quick:
            record = recorder(raw)
            for groups in QUICK_GROUP_COUNTS:
                with bc.kvorum_cluster(scratch, lifetime_s=120,
                                       up_args=["--groups", str(groups)]) as cluster:
                    for workload in WORKLOADS:
                        result = bc._builtin_point(cluster.any_node_ports(), workload, 4, 1.0)
                        record(f"{groups} groups, any node", workload, 4, result)
        else:
            have = bc._peers_available()
            if ("throughput" in sections or "regression" in sections) and not have["loadgen"]:
                raise SystemExit("the throughput parts need the shared harness: "
                                 f"bash {bc.SHARED_BENCH / 'setup.sh'}")
            peers = have["etcd"]
            with before_source(BEFORE_COMMIT) as before_src:
                for run_index in range(runs):
                    if "throughput" in sections:
                        print(f"== throughput, run {run_index + 1}/{runs}", flush=True)
                        for label in KVORUM_CONFIGS:
                            measure_kvorum_throughput(recorder(raw), scratch, label, duration_s)
                        if peers:
                            bc._measure_etcd(recorder(raw), duration_s)
                    if "regression" in sections and before_src is not None:
                        print(f"== no regression, run {run_index + 1}/{runs}", flush=True)
                        pair = [(before_src, (BEFORE_LEADER, BEFORE_ANY)),
                                (str(ROOT / "src"), (AFTER_LEADER, AFTER_ANY))]
                        if run_index % 2:
                            pair.reverse()  # neither side always goes first
                        for source_dir, labels in pair:
                            bc._measure_kvorum(recorder(reg_raw), scratch, duration_s,
                                               source_dir=source_dir, labels=labels)
    with open(results_dir / "groups.jsonl", "w") as raw_file:
        for row in idle_rows:
            raw_file.write(json.dumps({"part": "idle", **row}, sort_keys=True) + "\n")
        for row in raw:
            raw_file.write(json.dumps({"part": "throughput", **row}, sort_keys=True) + "\n")
        for row in reg_raw:
            raw_file.write(json.dumps({"part": "regression", **row}, sort_keys=True) + "\n")
    idle = idle_summary(idle_rows)
    cells = _summarize(raw)
    regression = _summarize(reg_raw)
    table = _report(idle, cells, regression, quick=quick, runs=runs, duration_s=duration_s,
                    window_s=window_s, peers=peers)
    print(table)
    (results_dir / "groups.md").write_text(table + "\n")
    _chart(results_dir / "groups.png", idle, cells)


if __name__ == "__main__":
    run(ROOT / "benchmarks" / "results", quick="--quick" in sys.argv)
