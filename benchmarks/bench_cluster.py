"""A real 3-node kvorum cluster against a 3-node etcd and a 3-node PySyncObj, in one run.

Theory of operation. Every system is started fresh on this machine, measured, and stopped
before the next one starts, so that no two systems ever share the two cores at once; the
whole matrix is then repeated ``runs`` times, interleaved (kvorum, etcd, PySyncObj, kvorum,
...), and each cell reports the median over runs. Ratios are taken only between cells of the
same run set, never against figures from another day.

* kvorum: ``python -m kvorum up --nodes 3`` in a subprocess, in a temporary folder, on free
  ports (WAL fsynced per batch, LMDB state machine, Raft over TCP), waited on until a node
  says it leads. It is measured twice per point: with every connection on the **leader**
  (like etcd here, which the shared harness drives through its leader endpoint), and with the
  connections spread round-robin over **any node** in the order follower, follower, leader —
  what a client library that talks to whichever node it likes would see, so the single-client
  row then runs through a follower (forwarded writes, ReadIndex reads).
* etcd 3.4 and PySyncObj come from the shared peer harness (``/work/shared/bench``):
  ``etcd_cluster.sh`` and ``pysyncobj_kv.py --journal file-fsync --no-batch`` (PySyncObj
  with its journal fsynced per batch, its fastest durable setting). PySyncObj's clients live
  inside its node processes (no client network hop), and it has no linearizable read other
  than a replicated call, so its SET figures are its linearizable-GET figures too.
* Load: the shared closed-loop generator ``loadgen.py`` (100-byte values, unique keys for
  SET, random keys of a preloaded 10,000 for GET; 1, 16 and 64 connections as 1x1, 2x8 and
  2x32 process x connection), with the server PIDs for CPU accounting.
* Physical floor: loopback TCP round trip (C ping-pong) and append+fdatasync of 4 KiB.

``quick=True`` (the CI smoke test) needs none of the peers: it starts the cluster, runs a
tiny built-in asyncio client (4 connections, one request each in flight) for a second of SET
and a second of linearizable GET, and writes a table marked as not being results.

``python benchmarks/bench_cluster.py profile`` is the profiling harness: it starts node 1
under :mod:`cProfile` (worker-thread calls made through ``asyncio.to_thread`` included, in a
profile of their own) and the other two normally, makes node 1 the leader, drives SET at 64
connections and prints where the leader's time goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.run import machine_line  # noqa: E402
from kvorum.cli.status import fetch_status  # noqa: E402

SHARED_BENCH = Path(os.environ.get("KVORUM_SHARED_BENCH", "/work/shared/bench"))
BENCH_HOME = Path(os.environ.get("KVORUM_BENCH_HOME", "/tmp/kvorum-bench"))
BENCH_PYTHON = BENCH_HOME / ".venv" / "bin" / "python"
LEVELS: list[tuple[int, int]] = [(1, 1), (2, 8), (2, 32)]
"""(client processes, connections each): 1, 16 and 64 connections, as in run_all.py."""
WORKLOADS = ("set", "get")
RUNS = int(os.environ.get("KVORUM_BENCH_CLUSTER_RUNS", "2"))
POINT_SECONDS = float(os.environ.get("KVORUM_BENCH_CLUSTER_SECONDS", "5"))
VALUE_BYTES = 100
SOURCE_DIR = os.environ.get("KVORUM_BENCH_SRC")
"""Measure the kvorum under this ``src`` folder (e.g. a ``git archive`` of one commit) instead
of the working tree, which other engineers may be editing while the benchmark runs."""

KVORUM_LEADER = "kvorum (leader)"
KVORUM_ANY = "kvorum (any node)"
ETCD = "etcd 3-node"
PYSYNCOBJ = "PySyncObj 3-node, fsync"
SYSTEMS = (KVORUM_LEADER, KVORUM_ANY, ETCD, PYSYNCOBJ)


# --- a kvorum cluster in a subprocess ------------------------------------------------------


def _free_port_run(count: int, avoid: set[int]) -> int:
    """The first of ``count`` consecutive ports that are free on 127.0.0.1 right now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        ports = range(base, base + count)
        if base + count > 65535 or avoid.intersection(ports):
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in ports:
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"found no {count} consecutive free ports on 127.0.0.1")


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running ``kvorum up`` cluster."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    client_ports: dict[int, int]
    pids: dict[int, int]
    leader_id: int

    @property
    def leader_port(self) -> int:
        return self.client_ports[self.leader_id]

    def any_node_ports(self) -> list[int]:
        """Followers first, the leader last: the round-robin order for "any node"."""
        followers = [p for i, p in sorted(self.client_ports.items()) if i != self.leader_id]
        return [*followers, self.leader_port]


def _kvorum_env(source_dir: str | None = None) -> dict[str, str]:
    """The environment a kvorum process runs in: ``source_dir`` (else ``SOURCE_DIR``), when
    set, goes first on the import path, so that it is the kvorum imported."""
    env = dict(os.environ)
    source_dir = source_dir or SOURCE_DIR
    if source_dir:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_dir, env.get("PYTHONPATH")]))
    return env


def source_label() -> str:
    """Which kvorum code the cluster ran: a pinned source folder, or the working tree's
    commit (flagged when ``src/`` had uncommitted changes)."""
    if SOURCE_DIR:
        return os.environ.get("KVORUM_BENCH_SRC_LABEL", SOURCE_DIR)
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = git("status", "--porcelain", "--", "src")
    return f"working tree at {commit}" + (" with uncommitted changes in src/" if dirty else "")


def _wait_for_leader(client_ports: dict[int, int], timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for node_id, port in sorted(client_ports.items()):
            status = fetch_status(f"127.0.0.1:{port}", timeout_s=0.5)
            if isinstance(status, dict) and status.get("role") == "leader":
                return node_id
        time.sleep(0.1)
    raise RuntimeError(f"no kvorum leader within {timeout_s:g} s")


@contextlib.contextmanager
def kvorum_cluster(
    parent: Path,
    nodes: int = 3,
    lifetime_s: float = 3600,
    *,
    up_args: Sequence[str] = (),
    source_dir: str | None = None,
    start_timeout_s: float = 30,
) -> Iterator[Cluster]:
    """Start a fresh cluster with ``kvorum up`` in a temporary folder under ``parent``; stop
    it (SIGTERM to ``kvorum up``, which stops its nodes) on exit. ``lifetime_s`` bounds the
    cluster's life even if this process dies without cleaning up. ``up_args`` go to
    ``kvorum up`` (e.g. ``--groups 64``); ``source_dir`` runs the kvorum found there."""
    data_dir = Path(tempfile.mkdtemp(prefix="kvorum-cluster-", dir=parent))
    client_base = _free_port_run(nodes, set())
    raft_base = _free_port_run(nodes, set(range(client_base, client_base + nodes)))
    cmd = [
        sys.executable, "-m", "kvorum", "up", "--data-dir", str(data_dir),
        "--nodes", str(nodes), "--client-port", str(client_base),
        "--raft-port", str(raft_base), "--for-seconds", str(lifetime_s), *up_args,
    ]  # fmt: skip
    tree = source_dir or SOURCE_DIR
    if (Path(tree) if tree else ROOT / "src").joinpath("kvorum", "observe").is_dir():
        # No admin endpoint: its port (client + 1000 by default) is not known to be free, and
        # the request counting it turns on would be measured too. (Trees from before it have
        # no such endpoint and no flag.)
        cmd += ["--admin-port", "0"]
    log = open(data_dir / "up.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env=_kvorum_env(source_dir), start_new_session=True)
    try:
        client_ports = {i: client_base + i - 1 for i in range(1, nodes + 1)}
        try:
            leader_id = _wait_for_leader(client_ports, timeout_s=start_timeout_s)
        except RuntimeError as exc:
            log.flush()
            said = (data_dir / "up.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}; kvorum up said:\n{said}") from None
        pids = {i: int((data_dir / f"node{i}.pid").read_text()) for i in client_ports}
        yield Cluster(proc, data_dir, client_ports, pids, leader_id)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


# --- the tiny built-in client (quick mode) -------------------------------------------------


def _resp_command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


async def _read_reply(reader: asyncio.StreamReader) -> bytes | None:
    """One simple-string, error or bulk-string reply (all that SET and GET answer)."""
    line = await reader.readline()
    if line[:1] == b"$":
        size = int(line[1:-2])
        if size < 0:
            return None
        return (await reader.readexactly(size + 2))[:-2]
    if line[:1] == b"+":
        return line[1:-2]
    raise RuntimeError(line.decode(errors="replace").strip())


async def _closed_loop(
    ports: Sequence[int], workload: str, connections: int, duration_s: float
) -> tuple[dict[str, int], list[float]]:
    """Each connection does one request at a time for ``duration_s``; returns the errors
    (count per message) and every successful request's latency in seconds."""
    keyspace = 100
    value = b"x" * VALUE_BYTES
    latencies_s: list[float] = []
    error_kinds: dict[str, int] = {}

    async def one(conn_index: int) -> None:
        port = ports[conn_index % len(ports)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            if workload == "get" and conn_index == 0:
                for k in range(keyspace):
                    writer.write(_resp_command(b"SET", b"key:%d" % k, value))
                    await _read_reply(reader)
            end = time.perf_counter() + duration_s
            n = 0
            while (start := time.perf_counter()) < end:
                n += 1
                if workload == "set":
                    writer.write(_resp_command(b"SET", b"c%d:%d" % (conn_index, n), value))
                else:
                    writer.write(_resp_command(b"GET", b"key:%d" % (n % keyspace)))
                try:
                    await _read_reply(reader)
                except RuntimeError as exc:
                    error_kinds[str(exc)[:60]] = error_kinds.get(str(exc)[:60], 0) + 1
                    continue
                latencies_s.append(time.perf_counter() - start)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    await asyncio.gather(*(one(i) for i in range(connections)))
    return error_kinds, latencies_s


def _builtin_point(ports: Sequence[int], workload: str, connections: int, duration_s: float
                   ) -> dict[str, Any]:
    began = time.perf_counter()
    error_kinds, latencies_s = asyncio.run(_closed_loop(ports, workload, connections, duration_s))
    elapsed_s = time.perf_counter() - began
    ms = sorted(x * 1000 for x in latencies_s)
    return {
        "ops_per_s": len(ms) / elapsed_s,
        "p50_ms": _percentile(ms, 50),
        "p99_ms": _percentile(ms, 99),
        "errors": sum(error_kinds.values()),
        "error_kinds": error_kinds,
    }


def _percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    rank = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return sorted_values[rank]


# --- the shared peer harness ---------------------------------------------------------------


def _peers_available() -> dict[str, bool]:
    have_venv = BENCH_PYTHON.exists() and (SHARED_BENCH / "loadgen.py").exists()
    have_pso = have_venv and subprocess.run(
        [str(BENCH_PYTHON), "-c", "import pysyncobj"], capture_output=True, check=False
    ).returncode == 0
    return {
        "loadgen": have_venv,
        "etcd": have_venv and shutil.which("etcd") is not None
        and (BENCH_HOME / "_gen").is_dir(),
        "pysyncobj": have_pso,
        "pingpong": (BENCH_HOME / "pingpong").exists(),
    }


def _last_json(stdout: str) -> dict[str, Any] | None:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        return None
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def _loadgen(target: str, workload: str, procs: int, conns: int, *, pids: Sequence[int],
             duration_s: float) -> dict[str, Any]:
    cmd = [
        str(BENCH_PYTHON), "loadgen.py", target, "-w", workload, "-c", str(procs),
        "-k", str(conns), "-d", str(duration_s), "-V", str(VALUE_BYTES),
        "--server-pids", ",".join(map(str, pids)),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=SHARED_BENCH, capture_output=True, text=True,
                          timeout=duration_s + 120, check=False)
    result = _last_json(done.stdout)
    if result is None:
        return {"ops_per_s": 0.0, "errors": -1, "failure": done.stderr[-500:]}
    return result


def _sh(command: str, timeout_s: float) -> str:
    done = subprocess.run(command, shell=True, cwd=SHARED_BENCH, capture_output=True,
                          text=True, timeout=timeout_s, check=False)
    if done.returncode:
        raise RuntimeError(f"{command!r} failed: {done.stdout[-300:]} {done.stderr[-300:]}")
    return done.stdout.strip()


def _measure_etcd(record: Callable[[str, str, int, dict[str, Any]], None],
                  duration_s: float) -> None:
    try:
        _sh("./etcd_cluster.sh start", 90)
        leader = _sh("./etcd_cluster.sh leader", 20)
        pids = [int(p) for p in _sh("./etcd_cluster.sh pids", 10).split(",")]
        for workload in WORKLOADS:
            for procs, conns in LEVELS:
                result = _loadgen(f"etcd://{leader}", workload, procs, conns, pids=pids,
                                  duration_s=duration_s)
                record(ETCD, workload, procs * conns, result)
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _sh("./etcd_cluster.sh stop", 60)


def _measure_pysyncobj(record: Callable[[str, str, int, dict[str, Any]], None],
                       duration_s: float) -> None:
    for procs, conns in LEVELS:
        inflight = procs * conns
        cmd = [
            str(BENCH_PYTHON), "pysyncobj_kv.py", "--journal", "file-fsync", "--no-batch",
            "-k", str(inflight), "-d", str(duration_s), "-V", str(VALUE_BYTES),
        ]  # fmt: skip
        done = subprocess.run(cmd, cwd=SHARED_BENCH, capture_output=True, text=True,
                              timeout=duration_s + 150, check=False)
        result = _last_json(done.stdout) or {"ops_per_s": 0.0, "errors": -1}
        # Its only linearizable read is a replicated call: the same figure serves both.
        record(PYSYNCOBJ, "set", inflight, result)
        record(PYSYNCOBJ, "get", inflight, result)


def _measure_kvorum(record: Callable[[str, str, int, dict[str, Any]], None],
                    scratch: Path, duration_s: float, *, source_dir: str | None = None,
                    labels: tuple[str, str] = (KVORUM_LEADER, KVORUM_ANY)) -> None:
    """Every point on one fresh cluster, via the leader and via any node (``labels`` name
    the two in the records; ``source_dir`` runs the kvorum found there)."""
    with kvorum_cluster(scratch, source_dir=source_dir) as cluster:
        pids = list(cluster.pids.values())
        spread = ",".join(f"127.0.0.1:{p}" for p in cluster.any_node_ports())
        targets = {labels[0]: f"resp://127.0.0.1:{cluster.leader_port}",
                   labels[1]: f"resp://{spread}"}
        for workload in WORKLOADS:
            for procs, conns in LEVELS:
                for system, target in targets.items():
                    result = _loadgen(target, workload, procs, conns, pids=pids,
                                      duration_s=duration_s)
                    record(system, workload, procs * conns, result)


def _physical() -> dict[str, float]:
    """Loopback round trip and append+fdatasync p50, in microseconds."""
    floors: dict[str, float] = {}
    if (BENCH_HOME / "pingpong").exists():
        done = subprocess.run([str(BENCH_HOME / "pingpong"), "20000", "64", "5"],
                              capture_output=True, text=True, timeout=60, check=False)
        rtt = _last_json(done.stdout)
        if rtt is not None and "rtt_p50_us" in rtt:
            floors["loopback TCP round trip (C ping-pong, 64 B)"] = float(rtt["rtt_p50_us"])
    done = subprocess.run([str(BENCH_PYTHON), "physical.py", "--iters", "1000", "--max-s", "3"],
                          cwd=SHARED_BENCH, capture_output=True, text=True, timeout=120,
                          check=False)
    for line in done.stdout.splitlines():
        row = json.loads(line) if line.startswith("{") else {}
        if row.get("what") == "append+fdatasync":
            floors["append 4 KiB + fdatasync"] = float(row["p50_us"])
        elif row.get("what") == "loopback_tcp_rtt":
            floors["loopback TCP round trip (Python sockets, 64 B)"] = float(row["p50_us"])
    return floors


# --- tables and chart ----------------------------------------------------------------------

Cell = dict[str, float | None]


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _summarize(raw: list[dict[str, Any]]) -> dict[tuple[str, str, int], Cell]:
    """Median over runs of each metric, per (system, workload, connections)."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for row in raw:
        groups.setdefault((row["system"], row["workload"], row["clients"]), []).append(row)
    cells: dict[tuple[str, str, int], Cell] = {}
    for key, rows in groups.items():
        cpu = [r.get("server_cpu_cores") for r in rows]
        if key[0] == PYSYNCOBJ:
            cpu = [sum(r["node_cpu_cores"]) if r.get("node_cpu_cores") else None for r in rows]
        ops = [float(r.get("ops_per_s") or 0.0) for r in rows]
        cells[key] = {
            "ops_per_s": _median(ops),
            "ops_per_s_min": min(ops),
            "ops_per_s_max": max(ops),
            "p50_ms": _median([r.get("p50_ms") for r in rows]),
            "p99_ms": _median([r.get("p99_ms") for r in rows]),
            "server_cpu_cores": _median(cpu),
            "errors": float(sum(max(0, int(r.get("errors") or 0)) for r in rows)),
            "runs": float(len(rows)),
        }
    return cells


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _floors(cells: dict[tuple[str, str, int], Cell], kvorum: str) -> list[tuple[str, str, bool]]:
    """(floor, the evidence, met?) for one way of connecting to kvorum."""
    def get(system: str, workload: str, clients: int, metric: str) -> float | None:
        return cells.get((system, workload, clients), {}).get(metric)

    out: list[tuple[str, str, bool]] = []
    ops_ratio = _ratio(get(kvorum, "set", 64, "ops_per_s"), get(ETCD, "set", 64, "ops_per_s"))
    k99, e99 = get(kvorum, "set", 64, "p99_ms"), get(ETCD, "set", 64, "p99_ms")
    met = ops_ratio is not None and ops_ratio >= 2 and k99 is not None and e99 is not None \
        and k99 <= e99
    out.append(("SET, 64 clients: >= 2x etcd ops/s and p99 <= etcd's",
                f"{_fmt(ops_ratio)}x; p99 {_fmt(k99)} vs {_fmt(e99)} ms", met))
    k50, e50 = get(kvorum, "set", 1, "p50_ms"), get(ETCD, "set", 1, "p50_ms")
    met = k50 is not None and e50 is not None and k50 <= e50
    out.append(("SET, 1 client: p50 <= etcd's", f"{_fmt(k50, 3)} vs {_fmt(e50, 3)} ms", met))
    ops_ratio = _ratio(get(kvorum, "get", 64, "ops_per_s"), get(ETCD, "get", 64, "ops_per_s"))
    out.append(("linearizable GET, 64 clients: >= 3x etcd ops/s", f"{_fmt(ops_ratio)}x",
                ops_ratio is not None and ops_ratio >= 3))
    ratios = {
        (w, c): _ratio(get(kvorum, w, c, "ops_per_s"), get(PYSYNCOBJ, w, c, "ops_per_s"))
        for w in WORKLOADS for c in (p * k for p, k in LEVELS)
    }
    worst = min((r for r in ratios.values() if r is not None), default=None)
    out.append(("every row: >= 3x PySyncObj (fsynced) ops/s", f"lowest {_fmt(worst)}x",
                worst is not None and all(r is not None and r >= 3 for r in ratios.values())))
    return out


def _report(cells: dict[tuple[str, str, int], Cell], floors_us: dict[str, float], *,
            quick: bool, present: set[str], runs: int, duration_s: float) -> str:
    lines = [
        machine_line() + " — 2 shared cores: clients and all 3 servers of a system share them",
        "",
    ]
    if quick:
        lines += ["(quick smoke run: kvorum only, built-in client, 4 connections spread over "
                  "the nodes; these numbers are not results)", ""]
    else:
        lines += [
            f"Closed loop, {VALUE_BYTES}-byte values, median of {runs} run(s) x "
            f"{duration_s:g} s per point, systems measured one at a time, interleaved. "
            f"kvorum code: {source_label()}. "
            "kvorum (leader): every connection on the leader, as etcd's are (the shared "
            "harness drives etcd through its leader endpoint). kvorum (any node): connections "
            "round-robin over follower, follower, leader, so 1 client runs through a follower. "
            "GET is linearizable everywhere (kvorum: ReadIndex; etcd: default Range). "
            "PySyncObj: journal fsynced per batch, batching off, clients inside its node "
            "processes; its only linearizable read is a replicated call, so its SET figure "
            "stands in its GET rows. Server CPU is cores used by all 3 nodes together. "
            "The two cores are shared with other engineers' jobs, so runs of one cell can "
            "differ by 2-3x (see min..max); compare systems only within this file.",
            "",
        ]
    header = ("| workload | clients | system | ops/s | ops/s min..max over runs | p50 ms | p99 ms "
              "| server CPU | errors |")
    lines += [header, "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for workload in WORKLOADS:
        for clients in sorted({k[2] for k in cells}):
            for system in SYSTEMS:
                cell = cells.get((system, workload, clients))
                if cell is None:
                    continue
                lines.append(
                    f"| {workload.upper()} | {clients} | {system} | {_fmt(cell['ops_per_s'], 0)}"
                    f" | {_fmt(cell['ops_per_s_min'], 0)}..{_fmt(cell['ops_per_s_max'], 0)}"
                    f" | {_fmt(cell['p50_ms'], 3)} | {_fmt(cell['p99_ms'], 3)}"
                    f" | {_fmt(cell['server_cpu_cores'])} | {_fmt(cell['errors'], 0)} |"
                )
    if not quick:
        lines += ["", "Ratios per row (kvorum / peer; ops/s, and p50, p99 latency):", "",
                  "| workload | clients | kvorum via | ops/s vs etcd | p50 vs etcd | "
                  "p99 vs etcd | ops/s vs PySyncObj |", "|---|---:|---|---:|---:|---:|---:|"]
        for workload in WORKLOADS:
            for clients in (p * k for p, k in LEVELS):
                for kvorum in (KVORUM_LEADER, KVORUM_ANY):
                    k = cells.get((kvorum, workload, clients), {})
                    e = cells.get((ETCD, workload, clients), {})
                    s = cells.get((PYSYNCOBJ, workload, clients), {})
                    via = "leader" if kvorum == KVORUM_LEADER else "any node"
                    lines.append(
                        f"| {workload.upper()} | {clients} | {via} | "
                        f"{_fmt(_ratio(k.get('ops_per_s'), e.get('ops_per_s')))}x | "
                        f"{_fmt(_ratio(k.get('p50_ms'), e.get('p50_ms')))}x | "
                        f"{_fmt(_ratio(k.get('p99_ms'), e.get('p99_ms')))}x | "
                        f"{_fmt(_ratio(k.get('ops_per_s'), s.get('ops_per_s')))}x |"
                    )
        if floors_us:
            lines += ["", "Physical floor on this machine (p50):", ""]
            lines += [f"- {name}: {us:.0f} us" for name, us in floors_us.items()]
            lines.append(
                "- so a durable replicated SET cannot beat about client RTT + leader fsync + "
                "peer RTT + follower fsync (the two fsyncs overlap only if the leader sends "
                "before its own fsync)"
            )
        lines += ["", "Floors the project must meet (ratios from this one run):", "",
                  "| floor | kvorum via | evidence | met? |", "|---|---|---|---|"]
        if {ETCD, PYSYNCOBJ} - present:
            lines.append(f"| (peers not measured: {sorted({ETCD, PYSYNCOBJ} - present)}) "
                         "| | | |")
        for kvorum in (KVORUM_LEADER, KVORUM_ANY):
            via = "leader" if kvorum == KVORUM_LEADER else "any node"
            for floor, evidence, met in _floors(cells, kvorum):
                lines.append(f"| {floor} | {via} | {evidence} | {'met' if met else 'NOT met'} |")
    return "\n".join(lines)


def _chart(path: Path, cells: dict[tuple[str, str, int], Cell]) -> None:
    clients = sorted({k[2] for k in cells})
    systems = [s for s in SYSTEMS if any(k[0] == s for k in cells)]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    width = 0.8 / max(1, len(systems))
    for col, workload in enumerate(WORKLOADS):
        for row, (metric, label) in enumerate((("ops_per_s", "ops/s (log)"),
                                               ("p99_ms", "p99 latency, ms (log)"))):
            ax = axes[row][col]
            for i, system in enumerate(systems):
                xs, ys = [], []
                for j, c in enumerate(clients):
                    value = cells.get((system, workload, c), {}).get(metric)
                    if value:
                        xs.append(j + (i - (len(systems) - 1) / 2) * width)
                        ys.append(value)
                hatch = "//" if system == PYSYNCOBJ and workload == "get" else None
                ax.bar(xs, ys, width, label=system, hatch=hatch)
            ax.set_yscale("log")
            ax.set_ylabel(label)
            ax.set_xticks(range(len(clients)), [f"{c} clients" for c in clients])
            ax.grid(axis="y", alpha=0.3)
            if row == 0:
                title = "SET" if workload == "set" else "linearizable GET"
                ax.set_title(title + (" (PySyncObj: its replicated call)"
                                      if workload == "get" and PYSYNCOBJ in systems else ""))
    axes[0][0].legend(fontsize=8)
    fig.suptitle("3-node clusters on one 2-core machine, closed loop, 100-byte values")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the benchmark -------------------------------------------------------------------------


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def run(results_dir: Path, quick: bool) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    # A plain SIGTERM would skip the finally blocks that stop the servers started here.
    previous_handler = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _run(results_dir, quick)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def _run(results_dir: Path, quick: bool) -> None:
    raw: list[dict[str, Any]] = []

    def record(system: str, workload: str, clients: int, result: dict[str, Any]) -> None:
        row = dict(result, system=system, workload=workload, clients=clients)
        raw.append(row)
        print(f"  {system:26} {workload:3} {clients:3} clients: "
              f"{_fmt(row.get('ops_per_s'), 0)} ops/s, p50 {_fmt(row.get('p50_ms'), 3)} ms, "
              f"p99 {_fmt(row.get('p99_ms'), 3)} ms, errors {row.get('errors')} "
              f"{row.get('error_kinds') or ''}", flush=True)

    floors_us: dict[str, float] = {}
    present: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as raw_scratch:
        scratch = Path(raw_scratch)
        if quick:
            with kvorum_cluster(scratch, lifetime_s=120) as cluster:
                for workload in WORKLOADS:
                    result = _builtin_point(cluster.any_node_ports(), workload, 4, 1.0)
                    record(KVORUM_ANY, workload, 4, result)
            runs, duration_s = 1, 1.0
        else:
            runs, duration_s = RUNS, POINT_SECONDS
            have = _peers_available()
            if not have["loadgen"]:
                raise SystemExit(
                    "the full cluster benchmark needs the shared harness: "
                    f"bash {SHARED_BENCH / 'setup.sh'}"
                )
            floors_us = _physical()
            for run_index in range(runs):
                print(f"== run {run_index + 1}/{runs}", flush=True)
                _measure_kvorum(record, scratch, duration_s)
                present |= {KVORUM_LEADER, KVORUM_ANY}
                if have["etcd"]:
                    _measure_etcd(record, duration_s)
                    present.add(ETCD)
                if have["pysyncobj"]:
                    _measure_pysyncobj(record, duration_s)
                    present.add(PYSYNCOBJ)
            with open(results_dir / "cluster.jsonl", "w") as raw_file:
                for row in raw:
                    raw_file.write(json.dumps(row, sort_keys=True) + "\n")
    cells = _summarize(raw)
    table = _report(cells, floors_us, quick=quick, present=present, runs=runs,
                    duration_s=duration_s)
    print(table)
    (results_dir / "cluster.md").write_text(table + "\n")
    _chart(results_dir / "cluster.png", cells)


# --- profiling the leader ------------------------------------------------------------------


def _profiled_node(profile_path: Path, node_args: list[str]) -> None:
    """Run ``kvorum node`` in this process under cProfile. Calls handed to
    ``asyncio.to_thread`` (WAL fsync, LMDB apply) run in worker threads, which cProfile does
    not follow, so each is profiled by its own per-thread profiler and saved beside."""
    import cProfile
    import pstats
    import threading

    from kvorum.cli.node import command

    thread_profiles: list[cProfile.Profile] = []
    local = threading.local()
    original_to_thread = asyncio.to_thread

    async def to_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        def profiled() -> Any:
            prof = getattr(local, "prof", None)
            if prof is None:
                prof = local.prof = cProfile.Profile()
                thread_profiles.append(prof)
            prof.enable()
            try:
                return func(*args, **kwargs)
            finally:
                prof.disable()

        return await original_to_thread(profiled)

    asyncio.to_thread = to_thread
    main = cProfile.Profile()
    main.enable()
    try:
        command.main(node_args, standalone_mode=False)
    finally:
        main.disable()
        main.dump_stats(str(profile_path))
        if thread_profiles:
            merged = pstats.Stats(thread_profiles[0])
            for prof in thread_profiles[1:]:
                merged.add(prof)
            merged.dump_stats(str(profile_path) + ".threads")


def stop_processes(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process still running, wait up to 30 s each, then SIGKILL."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _make_leader(node_id: int, ports: dict[int, int], attempts: int = 10) -> None:
    """Ask whoever leads to hand leadership to ``node_id`` until ``node_id`` says it leads
    (a transfer can lapse when the target is behind, e.g. slowed down by a profiler)."""
    from kvorum.client.resp_client import RespClient

    for _ in range(attempts):
        status = fetch_status(f"127.0.0.1:{ports[node_id]}")
        if isinstance(status, dict) and status.get("role") == "leader":
            return
        leader = _wait_for_leader(ports, 10)
        if leader != node_id:
            with RespClient("127.0.0.1", ports[leader]) as client:
                client.call("KVORUM", "TRANSFER", str(node_id))
        time.sleep(1.0)
    raise RuntimeError(f"node {node_id} did not become the leader")


def profile_leader(
    seconds: float,
    out: Path,
    connections: int = 64,
    profile_follower: bool = False,
    workload: str = "set",
) -> None:
    """Start a 3-node cluster with node 1 under cProfile, make node 1 the leader (node 2 with
    ``profile_follower``, so node 1 is profiled as a follower), drive SET at ``connections``
    connections on the leader for ``seconds``, and print the top of both profiles."""
    import pstats

    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="kvorum-profile-"))
    client_base = _free_port_run(3, set())
    raft_base = _free_port_run(3, set(range(client_base, client_base + 3)))
    spec = ",".join(f"{i}=127.0.0.1:{raft_base + i - 1}/127.0.0.1:{client_base + i - 1}"
                    for i in (1, 2, 3))
    procs: dict[int, subprocess.Popen[bytes]] = {}
    profile_path = out / "leader.prof"
    try:
        for i in (1, 2, 3):
            node_args = ["--id", str(i), "--data-dir", str(data_dir / f"node{i}"), "--peers", spec]
            cmd = [sys.executable, "-m", "kvorum", "node", *node_args]
            if i == 1:
                cmd = [sys.executable, __file__, "_profiled-node", str(profile_path), *node_args]
            log = open(data_dir / f"node{i}.log", "wb")  # noqa: SIM115 - the child owns it
            procs[i] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                        env=_kvorum_env())
        ports = {i: client_base + i - 1 for i in (1, 2, 3)}
        _wait_for_leader(ports, 30)
        leader = 2 if profile_follower else 1
        _make_leader(leader, ports)
        procs_n = 1 if connections == 1 else 2
        result = _loadgen(f"resp://127.0.0.1:{ports[leader]}", workload, procs_n,
                          max(1, connections // procs_n), pids=[procs[1].pid], duration_s=seconds)
        status = fetch_status(f"127.0.0.1:{ports[1]}")
        role = status.get("role") if isinstance(status, dict) else status
        shown = ("ops_per_s", "p50_ms", "p99_ms", "errors", "server_cpu_cores")
        print(f"{workload.upper()} {connections} on node {leader}; node 1 is now {role}:",
              {k: result.get(k) for k in shown})
    finally:
        stop_processes(procs.values())
        shutil.rmtree(data_dir, ignore_errors=True)
    for path in (profile_path, Path(str(profile_path) + ".threads")):
        if path.exists():
            print(f"== {path.name}: top by own time")
            pstats.Stats(str(path)).sort_stats("tottime").print_stats(30)
            print(f"== {path.name}: top by cumulative time")
            pstats.Stats(str(path)).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "_profiled-node":
        _profiled_node(Path(sys.argv[2]), sys.argv[3:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "profile":
        profile_leader(
            float(sys.argv[2]) if len(sys.argv) > 2 else 15.0,
            Path("/tmp/kvorum-prof"),
            int(sys.argv[3]) if len(sys.argv) > 3 else 64,
            profile_follower="follower" in sys.argv[4:],
            workload="get" if "get" in sys.argv[4:] else "set",
        )
    else:
        run(ROOT / "benchmarks" / "results", quick="--quick" in sys.argv)
