"""Catch-up through a snapshot: how much memory a follower needs to catch up, and how long.

Theory of operation: three real node processes take ``KEYS`` SETs of 100-byte values through
the leader (pipelined over one raw socket), with a snapshot every 100 entries so the log
behind the newest snapshot is compacted. Then the follower with the highest id is killed,
its data folder deleted, and it is started again: it can only catch up through the leader's
snapshot. While it does, its ``RssAnon`` (anonymous resident memory, which leaves out the
LMDB map and the page cache) is sampled every 20 ms from ``/proc``, until its key count
equals the leader's. The table puts the peak next to the snapshot's size and the leader's
own ``RssAnon``: memory that grew with the data set would show up as a peak near or above
the snapshot size. ``quick`` (the CI smoke run) loads 2,000 keys.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_cluster import (
    _free_port_run,
    _kvorum_env,
    _wait_for_leader,
    stop_processes,
)
from benchmarks.run import machine_line
from kvorum.client.resp_client import RespClient
from kvorum.server.resp import encode_command

KEYS = (100_000, 200_000, 400_000, 800_000)
"""Data-set sizes: memory that grew with the data would grow down this column."""
VALUE = b"v" * 100
SAMPLE_S = 0.02


def _rss_anon_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def _load(port: int, keys: int) -> None:
    """SET ``keys`` keys through one pipelined connection, 500 requests in flight."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        batch = 500
        for start in range(0, keys, batch):
            count = min(batch, keys - start)
            sock.sendall(b"".join(
                encode_command([b"SET", b"key:%d" % i, VALUE]) for i in range(start, start + count)
            ))
            expected = b"+OK\r\n" * count
            got = b""
            while len(got) < len(expected):
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("the node closed the connection while loading")
                got += chunk
            if got != expected:
                raise RuntimeError(f"unexpected replies while loading: {got[:80]!r}")


def _dbsize(port: int) -> int:
    try:
        with RespClient("127.0.0.1", port, timeout_s=1) as client:
            size = client.call("DBSIZE")
            return size if isinstance(size, int) else -1
    except OSError:
        return -1


def _measure(keys: int) -> tuple[int, float, int, float, int, int]:
    """(keys stored, load s, snapshot bytes, catch-up s, follower peak KiB, leader KiB)."""
    root = Path(tempfile.mkdtemp(prefix="bench-catchup-"))
    client_base = _free_port_run(3, set())
    raft_base = _free_port_run(3, set(range(client_base, client_base + 3)))
    spec = ",".join(f"{i}=127.0.0.1:{raft_base + i - 1}/127.0.0.1:{client_base + i - 1}"
                    for i in (1, 2, 3))
    ports = {i: client_base + i - 1 for i in (1, 2, 3)}
    procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(node_id: int, join: bool = False, peers: str = spec) -> None:
        cmd = [sys.executable, "-m", "kvorum", "node", "--id", str(node_id),
               "--data-dir", str(root / f"n{node_id}"), "--peers", peers, "--snapshot-every", "100"]
        if join:
            cmd.append("--join")
        log = open(root / f"n{node_id}.log", "ab")  # noqa: SIM115 - the child owns it
        procs[node_id] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                          env=_kvorum_env())

    try:
        for node_id in (1, 2, 3):
            start(node_id)
        leader = _wait_for_leader(ports, 30)
        victim = max(i for i in ports if i != leader)
        began = time.monotonic()
        _load(ports[leader], keys)
        load_s = time.monotonic() - began
        time.sleep(1.0)  # let the last snapshot finish
        snapshots = sorted((root / f"n{leader}" / "raft").rglob("*.snap"))
        snapshot_bytes = snapshots[-1].stat().st_size if snapshots else 0
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait()
        shutil.rmtree(root / f"n{victim}")
        # A node that lost its data rejoins as a new member under a new id (as with etcd; a
        # removed id is never reused): removed, then a new server on the same ports is added
        # as a learner, which the leader can only bring up to date by snapshot.
        with RespClient("127.0.0.1", ports[leader], timeout_s=10) as client:
            client.call("KVORUM", "MEMBER", "REMOVE", str(victim))
        newcomer = 4
        raft_address = f"127.0.0.1:{raft_base + victim - 1}"
        client_address = f"127.0.0.1:{ports[victim]}"
        start(newcomer, join=True, peers=f"{spec},{newcomer}={raft_address}/{client_address}")
        with RespClient("127.0.0.1", ports[leader], timeout_s=10) as client:
            client.call("KVORUM", "MEMBER", "ADD", str(newcomer), raft_address, client_address)
        pid = procs[newcomer].pid
        target = _dbsize(ports[leader])
        began = time.monotonic()
        peak_kib = 0
        while time.monotonic() - began < 300:
            peak_kib = max(peak_kib, _rss_anon_kib(pid))
            if _dbsize(ports[victim]) == target:
                break
            time.sleep(SAMPLE_S)
        else:
            raise RuntimeError(f"node {newcomer} did not catch up in 300 s")
        catchup_s = time.monotonic() - began
        leader_kib = _rss_anon_kib(procs[leader].pid)
    finally:
        stop_processes(procs.values())
        shutil.rmtree(root, ignore_errors=True)

    return target, load_s, snapshot_bytes, catchup_s, peak_kib, leader_kib


def run(results_dir: Path, quick: bool) -> None:
    rows = [_measure(keys) for keys in ((2_000,) if quick else KEYS)]
    mib = 1024 * 1024
    lines = [
        "# Catch-up through a snapshot: memory and time",
        "",
        machine_line(),
        "",
        "NOT RESULTS: a --quick smoke run." if quick else
        "SETs of 100-byte values through the leader, a snapshot every 100 entries; "
        "then a follower is killed, its data deleted, and it rejoins under a new id (member "
        "remove, start with --join, member add), catching up by snapshot. RssAnon is anonymous "
        "resident memory (the LMDB map and the page cache are not in it), sampled every "
        f"{SAMPLE_S * 1000:g} ms while the follower catches up.",
        "",
        "| keys | load | newest snapshot | catch-up | follower RssAnon peak | "
        "leader RssAnon after |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {target:,} | {load_s:.1f} s ({target / load_s:,.0f} SET/s) | "
            f"{snapshot_bytes / mib:.1f} MiB | {catchup_s:.1f} s | {peak_kib / 1024:.1f} MiB | "
            f"{leader_kib / 1024:.1f} MiB |"
            for target, load_s, snapshot_bytes, catchup_s, peak_kib, leader_kib in rows
        ),
        "",
        "Reproduce: `python3 dev.py bench catchup`.",
    ]
    table = "\n".join(lines)
    print(table)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "catchup.md").write_text(table + "\n")
