"""Test harness: a kvorum cluster of real node processes on 127.0.0.1, driven from pytest.

Theory of operation: :class:`Cluster` owns a temporary folder and a set of free ports, picked
at random below the kernel's ephemeral range from a slice of its own per pytest-xdist worker,
and never handed out twice (see :func:`free_ports`: ports from binding port 0 collide with
outgoing connections and with one another once released). Each node is started exactly as an
operator would, ``python -m kvorum node --id N --data-dir ... --peers ...``, with stdout and
stderr appended to ``nodeN.log`` in that folder, so a restarted node's log keeps its history
and a failing test can show it. The cluster is a context manager whose exit kills every
process it started (SIGKILL, then ``wait``), whatever happened in the test; on Linux each
child also asks the kernel to SIGKILL it if the test process itself dies, so no node outlives
its test. Clients are plain synchronous redis-py clients. Waiting is always polling with a
deadline (:func:`wait_until`), never a bare sleep whose length is a guess.

The WAL helpers read segment files with the batch framing documented in
:mod:`kvorum.storage.wal.frame`, so tests can cut or damage a chosen batch and know exactly
which byte offset the node should report.

(A plain module, not a conftest, so mypy does not see two modules named ``conftest``.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from random import Random
from types import TracebackType
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from kvorum.core.raft import Entry, EntryKind
from kvorum.kv.commands import decode_entry
from kvorum.storage.wal.frame import (
    SEGMENT_MAGIC,
    RecordType,
    iter_records,
    parse_batch,
    record_entry,
)

T = TypeVar("T")

HOST = "127.0.0.1"


def _port_pool() -> range:
    """The ports this test process may hand out: below the kernel's ephemeral range (so no
    client's or node's outgoing connection can be sitting on a port a node is about to
    bind), split evenly between pytest-xdist workers (so parallel workers never collide)."""
    first, ephemeral_low = 10_000, 32_768
    with contextlib.suppress(OSError, ValueError, IndexError):
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ephemeral_low = max(ephemeral_low, first + 2_000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    width = (ephemeral_low - first) // workers
    return range(first + index * width, first + (index + 1) * width)


_handed_out: set[int] = set()
_port_rng = Random()


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports, free right now and never handed out before by this
    process (a port given to one node is never reused for another, even after it stops)."""
    pool = _port_pool()
    ports: list[int] = []
    for _ in range(100 * count):
        if len(ports) == count:
            break
        port = _port_rng.choice(pool)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue  # someone else's: try another
        _handed_out.add(port)
        ports.append(port)
    if len(ports) < count:
        raise RuntimeError(f"found only {len(ports)} free ports of {count} in {pool}")
    return ports


def wait_until(
    probe: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something other than None (or False); return that.

    Raises AssertionError naming ``what`` when ``timeout_s`` passes first.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


# Started instead of `python -m kvorum` directly: the child asks the kernel for SIGKILL when
# its parent (the test process) dies, then execs the node in place (same pid; the request
# survives exec). Doing this in the child itself, not in a preexec_fn, keeps Popen safe while
# the test runs client threads.
_LAUNCHER = (
    "import ctypes, os, sys\n"
    "try:\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL\n"
    "except (OSError, AttributeError):\n"
    "    pass  # not Linux: the harness's own cleanup still kills the node\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'kvorum', *sys.argv[1:]])\n"
)


@dataclass(frozen=True, slots=True)
class NodePorts:
    raft_port: int
    client_port: int

    @property
    def raft(self) -> str:
        return f"{HOST}:{self.raft_port}"

    @property
    def client(self) -> str:
        return f"{HOST}:{self.client_port}"


class Cluster:
    """Real ``kvorum node`` processes for node ids ``1..size`` (more can be :meth:`reserve`\\ d
    for joining). Use as a context manager: every started process is killed on exit."""

    def __init__(
        self,
        root: Path,
        size: int,
        snapshot_every: int | None = None,
        *,
        groups: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a cluster needs at least one node, got {size}")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.snapshot_every = snapshot_every
        self.groups = groups
        self.env = env
        """Extra environment for every node process (test-only switches)."""
        self.ports: dict[int, NodePorts] = {}
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.members = list(range(1, size + 1))
        """The ids in the initial peer list every node is started with."""
        for node_id in self.members:
            self.reserve(node_id)

    # --- processes ---------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill_all()

    def reserve(self, node_id: int) -> NodePorts:
        """Pick ports for ``node_id`` (a node that will join later, or an initial member)."""
        raft_port, client_port = free_ports(2)
        self.ports[node_id] = NodePorts(raft_port, client_port)
        return self.ports[node_id]

    def data_dir(self, node_id: int) -> Path:
        return self.root / f"node{node_id}"

    def log_path(self, node_id: int) -> Path:
        return self.root / f"node{node_id}.log"

    def log_text(self, node_id: int) -> str:
        path = self.log_path(node_id)
        return path.read_text(errors="replace") if path.exists() else ""

    def peer_spec(self, ids: list[int]) -> str:
        return ",".join(
            f"{i}={self.ports[i].raft}/{self.ports[i].client}" for i in sorted(ids)
        )

    def start(self, node_id: int, *, join: bool = False) -> subprocess.Popen[bytes]:
        """Start (or restart) one node in the background; its output goes to its log."""
        old = self.procs.get(node_id)
        if old is not None and old.poll() is None:
            raise RuntimeError(f"node {node_id} is still running (pid {old.pid})")
        ids = sorted({*self.members, node_id})
        cmd = [
            sys.executable,
            "-c",
            _LAUNCHER,
            "node",
            "--id",
            str(node_id),
            "--data-dir",
            str(self.data_dir(node_id)),
            "--peers",
            self.peer_spec(ids),
        ]
        if join:
            cmd.append("--join")
        if self.snapshot_every is not None:
            cmd += ["--snapshot-every", str(self.snapshot_every)]
        if self.groups != 1:
            cmd += ["--groups", str(self.groups)]
        env = {**os.environ, **self.env} if self.env else None
        with open(self.log_path(node_id), "ab") as log:
            shown = " ".join(["python -m kvorum", *cmd[3:]])
            log.write(f"=== test harness starts: {shown}\n".encode())
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs[node_id] = proc
        return proc

    def start_all(self) -> None:
        for node_id in self.members:
            self.start(node_id)

    def kill(self, node_id: int) -> None:
        """kill -9 the node and reap it (no chance to flush or close anything)."""
        proc = self.procs[node_id]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, node_id: int, timeout_s: float = 10.0) -> int:
        """SIGTERM the node, wait for a clean exit (SIGKILL if it takes too long); return
        its exit code."""
        proc = self.procs[node_id]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(f"node {node_id} ignored SIGTERM for {timeout_s} s") from None

    def kill_all(self) -> None:
        # Signal all first, then reap: the nodes die as close together as we can make it.
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def running(self, node_id: int) -> bool:
        proc = self.procs.get(node_id)
        return proc is not None and proc.poll() is None

    # --- clients and status ------------------------------------------------------------------

    def client(self, node_id: int, timeout_s: float = 10.0) -> redis.Redis:
        """A synchronous redis-py client of ``node_id`` (one connection at a time).

        redis-py's own retries are off: each call is one attempt, so what the test records
        as acknowledged, failed or slow is exactly what the node answered.
        """
        return redis.Redis(
            host=HOST,
            port=self.ports[node_id].client_port,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            single_connection_client=True,
            retry=Retry(NoBackoff(), 0),
        )

    def status(self, node_id: int) -> dict[str, Any] | None:
        """``KVORUM STATUS`` of a node as a dict; None if it does not answer."""
        if not self.running(node_id):
            return None
        try:
            with self.client(node_id, timeout_s=2.0) as c:
                raw = c.execute_command("KVORUM", "STATUS")
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return None
        status: dict[str, Any] = json.loads(raw)
        return status

    def wait_ready(self, node_id: int, timeout_s: float = 20.0) -> dict[str, Any]:
        """Wait until the node answers ``KVORUM STATUS``; fail at once if it exits."""

        def probe() -> dict[str, Any] | None:
            proc = self.procs[node_id]
            if proc.poll() is not None:
                raise AssertionError(
                    f"node {node_id} exited with code {proc.returncode}:\n"
                    + self.log_text(node_id)[-3000:]
                )
            return self.status(node_id)

        return wait_until(probe, timeout_s, f"node {node_id} to answer KVORUM STATUS")

    def leader(self, among: list[int] | None = None) -> int | None:
        """The node that says it leads, in the newest term, among running nodes."""
        best: tuple[int, int] | None = None
        for node_id in among if among is not None else sorted(self.procs):
            st = self.status(node_id)
            if st is not None and st["role"] == "leader" and (best is None or st["term"] > best[0]):
                best = (st["term"], node_id)
        return None if best is None else best[1]

    def wait_for_leader(self, among: list[int] | None = None, timeout_s: float = 20.0) -> int:
        """Wait until some node leads and every other running node in ``among`` agrees."""
        ids = among if among is not None else [i for i in sorted(self.procs) if self.running(i)]

        def probe() -> int | None:
            leader = self.leader(ids)
            if leader is None:
                return None
            for node_id in ids:
                st = self.status(node_id)
                if st is None or st["leader"] != leader:
                    return None
            return leader

        return self._wait(probe, timeout_s, f"an agreed leader among nodes {ids}")

    def wait_applied(self, node_id: int, index: int, timeout_s: float = 20.0) -> dict[str, Any]:
        """Wait until ``node_id`` has applied at least ``index``; return its status then."""

        def probe() -> dict[str, Any] | None:
            st = self.status(node_id)
            return st if st is not None and st["applied"] >= index else None

        return self._wait(probe, timeout_s, f"node {node_id} to apply index {index}")

    def _wait(self, probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
        """:func:`wait_until`, adding every node's state to the message when it times out."""
        try:
            return wait_until(probe, timeout_s, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.describe()}") from None

    def describe(self) -> str:
        """One line per node: its Raft state, or how it is down (for failure messages)."""
        lines = []
        for node_id in sorted(self.procs):
            proc = self.procs[node_id]
            st = self.status(node_id)
            if proc.poll() is not None:
                lines.append(f"  node {node_id}: exited with code {proc.returncode}")
            elif st is None:
                lines.append(f"  node {node_id}: running, not answering")
            else:
                fields = ("role", "term", "leader", "commit", "applied", "last_index",
                          "snapshot_index", "voters")
                lines.append(f"  node {node_id}: " + " ".join(f"{f}={st[f]}" for f in fields))
        return "\n".join(lines)


def set_with_retry(client: redis.Redis, key: str, value: str, timeout_s: float = 15.0) -> None:
    """SET, retrying while the cluster answers that it has no leader or timed out.

    A retried SET of the same key to the same value is idempotent, so an unknown outcome
    followed by a retry is still exactly "key holds value" once this returns.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if client.set(key, value):
                return
        except (redis.ResponseError, redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


def read_all(client: redis.Redis, keys: list[str], batch: int = 200) -> dict[str, str | None]:
    """Values of ``keys`` read with MGET in batches, decoded as text."""
    out: dict[str, str | None] = {}
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        values = client.mget(chunk)
        for key, value in zip(chunk, values, strict=True):
            out[key] = value.decode() if isinstance(value, bytes) else value
    return out


def missing_or_wrong(client: redis.Redis, expected: dict[str, str]) -> dict[str, object]:
    """Keys whose value on this node differs from ``expected`` (key -> what it holds)."""
    found = read_all(client, sorted(expected))
    return {k: found[k] for k in sorted(expected) if found[k] != expected[k]}


NOT_APPLIED_ERRORS = (redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError)
"""redis-py's classes for ``-CLUSTERDOWN`` and ``-TRYAGAIN``: kvorum uses both only for a
write it knows was not applied."""


def present(client: redis.Redis, keys: list[str]) -> dict[str, str | None]:
    """Those of ``keys`` that exist on this node, with their values."""
    return {k: v for k, v in read_all(client, keys).items() if v is not None}


class Writer:
    """A background thread SETting fresh keys ``<prefix><n>`` through one node, one at a time,
    recording every write the node acknowledged (and when).

    Every key is written once, so outcomes cannot be confused. A write refused with
    ``CLUSTERDOWN`` (no leader: never proposed) or ``TRYAGAIN`` (another entry took its
    place) is recorded in :attr:`refused`: the node promised it was *not* applied, which a
    test can check as strictly as the acknowledged ones. Anything else (``TIMEOUT``, a lost
    connection) is an unknown outcome and only counted in :attr:`errors`.
    """

    def __init__(self, cluster: Cluster, node_id: int, prefix: str) -> None:
        self.node_id = node_id
        self.prefix = prefix
        self.acked: dict[str, str] = {}
        self.acked_at_s: list[float] = []
        """``time.monotonic()`` of each acknowledgement, in order."""
        self.errors: list[str] = []
        self.refused: dict[str, str] = {}
        """Key -> the error that promised the write was not applied."""
        self._client = cluster.client(node_id, timeout_s=10.0)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"writer-{prefix}", daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=20)
        self._client.close()
        if self._thread.is_alive():
            raise AssertionError(f"writer {self.prefix} did not stop")

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def acked_since(self, since_s: float) -> int:
        with self._lock:
            return sum(1 for t in self.acked_at_s if t >= since_s)

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self.acked)

    def refused_keys(self) -> list[str]:
        with self._lock:
            return sorted(self.refused)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            key, value = f"{self.prefix}{n}", f"value-{self.prefix}-{n}"
            n += 1
            try:
                ok = self._client.set(key, value)
            except (redis.RedisError, OSError) as exc:
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    if isinstance(exc, NOT_APPLIED_ERRORS):
                        self.refused[key] = f"{type(exc).__name__}: {exc}"
                self._stop.wait(0.05)
                continue
            if ok:
                with self._lock:
                    self.acked[key] = value
                    self.acked_at_s.append(time.monotonic())


class ResettingPeer:
    """Stands in for a node on its Raft port: accepts each dialler, reads its hello, then
    resets the connection (an RST, as the kernel sends when a process dies with unread data).

    Used as a context manager; :attr:`resets` counts the connections it reset.
    """

    def __init__(self, port: int) -> None:
        self.resets = 0
        self._listener = socket.create_server((HOST, port))
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resetting-peer", daemon=True)
        self._thread.start()

    def __enter__(self) -> ResettingPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1.0)
                with contextlib.suppress(OSError):
                    conn.recv(4096)
                # Linger on, timeout 0: close() sends RST instead of FIN.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.resets += 1


# --- WAL files ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WalBatch:
    """One batch frame of a segment file: where it starts and ends, and its entries."""

    offset: int
    end: int
    seq: int
    entries: tuple[Entry, ...]
    """The entries it carries (of every group; the runtime uses group 0 only)."""


def wal_segments(data_dir: Path) -> list[Path]:
    """A node's WAL segment files, oldest first."""
    return sorted((data_dir / "raft" / "wal").glob("*.wal"))


def wal_batches(segment: Path) -> list[WalBatch]:
    """Every batch in ``segment``, in file order, up to the zeros that end it; ValueError at
    the first byte that is not a whole batch with correct checksums (so a clean parse means
    no garbage is left)."""
    data = segment.read_bytes()
    if data[: len(SEGMENT_MAGIC)] != SEGMENT_MAGIC:
        raise ValueError(f"{segment}: no segment preamble")
    batches = []
    pos = len(SEGMENT_MAGIC)
    while pos < len(data):
        if data.count(0, pos) == len(data) - pos:
            break  # the zeros a segment is filled with ahead of its batches
        header = parse_batch(data, pos)
        if isinstance(header, str):
            raise ValueError(f"{segment}: {header} at {pos}")
        end = pos + header.frame_length
        records = iter_records(data, pos + header.header_length, end)
        entries = tuple(record_entry(r) for r in records if r.record_type is RecordType.ENTRY)
        batches.append(WalBatch(pos, end, header.seq, entries))
        pos = end
    return batches


def entry_set_keys(batch: WalBatch) -> list[str]:
    """The keys the normal entries' SET commands write (an entry packs a batch of writes)."""
    keys = []
    for entry in batch.entries:
        if entry.kind != EntryKind.NORMAL or not entry.data:
            continue  # membership changes and leaders' no-ops
        for _now_ms, args in decode_entry(entry.data):
            if args[0] == b"set":
                keys.append(args[1].decode())
    return keys


@contextlib.contextmanager
def single_node(root: Path, snapshot_every: int | None = None) -> Iterator[Cluster]:
    """A one-node cluster (it elects itself), started and ready, killed on exit."""
    with Cluster(root, 1, snapshot_every=snapshot_every) as cluster:
        cluster.start(1)
        cluster.wait_ready(1)
        cluster.wait_for_leader([1])
        yield cluster
