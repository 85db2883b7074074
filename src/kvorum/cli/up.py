"""``kvorum up``: start a local cluster of real node processes and keep it running.

Each node is its own process (``python -m kvorum node``) with its own data folder, talking to
the others over TCP on 127.0.0.1. The cluster's layout is written to ``cluster.json`` in the
data folder, so running ``kvorum up`` again resumes the same nodes on the same data, and
``kvorum status`` / ``kvorum member`` find them. Ctrl-C stops every node cleanly.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from kvorum.cli._cluster import (
    CLUSTER_FILE,
    DEFAULT_DATA_DIR,
    load_cluster_file,
    peers_from_json,
    peers_to_json,
)
from kvorum.cli._ports import taken_ports
from kvorum.cli.status import fetch_status
from kvorum.runtime.node import PeerAddress


def _kvorum_command() -> str:
    """How to run kvorum from a shell: the script beside this interpreter (a venv's bin),
    else plain ``kvorum``."""
    script = Path(sys.executable).parent / "kvorum"
    if script.exists():
        try:
            return str(script.relative_to(Path.cwd()))
        except ValueError:
            return str(script)
    return "kvorum"


def peer_spec(peers: dict[int, PeerAddress]) -> str:
    return ",".join(f"{i}={a.raft}/{a.client}" for i, a in sorted(peers.items()))


def _die_with_parent() -> None:
    """In the child before exec: have the kernel SIGTERM it if `kvorum up` dies, however
    it dies (a kill -9 of `up` must not leave a cluster running unseen). Linux only."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_node_process(
    data_dir: Path,
    node_id: int,
    peers: dict[int, PeerAddress],
    join: bool = False,
    die_with_parent: bool = False,
    groups: int = 1,
    persist_on_loop: bool = False,
    admin: str | None = None,
    read_index_only: bool = False,
    persist_in_thread: bool = False,
) -> subprocess.Popen[bytes]:
    """Start one node as a child process, its log in ``data_dir/nodeN.log``; with
    ``die_with_parent`` it stops when the starting process goes away."""
    log = open(data_dir / f"node{node_id}.log", "ab")  # noqa: SIM115 - the child owns it
    cmd = [
        sys.executable,
        "-m",
        "kvorum",
        "node",
        "--id",
        str(node_id),
        "--data-dir",
        str(data_dir / f"node{node_id}"),
        "--peers",
        peer_spec(peers),
        "--groups",
        str(groups),
    ]
    if join:
        cmd.append("--join")
    if persist_on_loop:
        cmd.append("--persist-on-loop")
    if admin is not None:
        cmd += ["--admin", admin]
    if read_index_only:
        cmd.append("--read-index-only")
    if persist_in_thread:
        cmd.append("--persist-in-thread")
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
    )
    (data_dir / f"node{node_id}.pid").write_text(str(proc.pid))
    return proc


def wait_for_leader(peers: dict[int, PeerAddress], timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for node_id, addr in sorted(peers.items()):
            st = fetch_status(addr.client, timeout_s=0.5)
            if isinstance(st, dict) and st.get("role") == "leader":
                return node_id
        time.sleep(0.1)
    return None


def stop_processes(procs: dict[int, subprocess.Popen[bytes]], timeout_s: float = 10.0) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stop_other_nodes(data_dir: Path, ours: set[int]) -> None:
    """Stop nodes that `kvorum member add` started in this folder while the cluster ran."""
    for pid_file in sorted(data_dir.glob("node*.pid")):
        node_id = pid_file.stem.removeprefix("node")
        if not node_id.isdigit() or int(node_id) in ours:
            continue
        with contextlib.suppress(OSError, ValueError):  # already gone
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink(missing_ok=True)


@click.command("up")
@click.option("--nodes", default=3, show_default=True, help="How many nodes (a new cluster).")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="Where the cluster keeps its data; reused on restart.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--client-port",
    default=7001,
    show_default=True,
    help="Node i serves Redis clients on this port + i - 1.",
)
@click.option(
    "--raft-port", default=17001, show_default=True, help="Node i talks Raft on this port + i - 1."
)
@click.option(
    "--admin-port",
    type=int,
    default=None,
    help="Node i serves /metrics, /status and /health over HTTP on this port + i - 1 "
    "(default: the client port + 1000; 0: no admin endpoint).",
)
@click.option(
    "--groups",
    default=1,
    show_default=True,
    help="Raft groups the keyspace is cut into (a new cluster; each node hosts every group).",
)
@click.option(
    "--persist-on-loop",
    is_flag=True,
    default=False,
    help="Nodes run each round's fsync on the event loop, not on a disk thread (to compare).",
)
@click.option(
    "--restart",
    is_flag=True,
    default=False,
    help="Supervise: start a node again when it exits (after 1 s, doubling to 30 s if it "
    "keeps exiting).",
)
@click.option(
    "--persist-in-thread",
    is_flag=True,
    default=False,
    help="Nodes run every round's fsync on the disk thread, however fast the disk (to compare).",
)
@click.option(
    "--read-index-only",
    is_flag=True,
    default=False,
    help="Nodes serve every read by a ReadIndex round, never on a leader lease (to compare).",
)
@click.option(
    "--for-seconds",
    type=float,
    default=None,
    help="Stop by itself after this long (for scripts); default: until Ctrl-C.",
)
def command(
    nodes: int,
    data_dir: Path,
    host: str,
    client_port: int,
    raft_port: int,
    admin_port: int | None,
    groups: int,
    persist_on_loop: bool,
    restart: bool,
    persist_in_thread: bool,
    read_index_only: bool,
    for_seconds: float | None,
) -> None:
    """Start a local cluster of NODES processes and keep it running until Ctrl-C."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cluster_file = data_dir / CLUSTER_FILE
    if cluster_file.exists():
        cluster = load_cluster_file(cluster_file)
        peers = peers_from_json(cluster["peers"])
        groups = int(cluster.get("groups", 1))
        click.echo(f"resuming the {len(peers)}-node cluster in {data_dir}")
        _say_what_resuming_ignores(click.get_current_context(), cluster_file)
    else:
        if nodes < 1:
            raise click.BadParameter("need at least one node", param_hint="--nodes")
        if groups < 1:
            raise click.BadParameter("need at least one group", param_hint="--groups")
        peers = {
            i: PeerAddress(f"{host}:{raft_port + i - 1}", f"{host}:{client_port + i - 1}")
            for i in range(1, nodes + 1)
        }
        admin_base = client_port + 1000 if admin_port is None else admin_port
        cluster = {"peers": peers_to_json(peers), "groups": groups, "admin_port_base": admin_base}
        cluster_file.write_text(json.dumps(cluster, indent=2))
        shape = f"{nodes}-node cluster" + (f" of {groups} Raft groups" if groups > 1 else "")
        click.echo(f"starting a new {shape} in {data_dir}")
    admins = _admin_addresses(cluster, peers)
    busy = taken_ports([a for p in peers.values() for a in (p.client, p.raft)]
                       + list(admins.values()))  # fmt: skip
    if busy:
        click.echo("cannot start: these ports are taken", err=True)
        for line in busy:
            click.echo(f"  {line}", err=True)
        click.echo(
            "stop what holds them, or start a new cluster elsewhere "
            "(--data-dir, --client-port, --raft-port)",
            err=True,
        )
        sys.exit(2)
    procs = {
        i: start_node_process(
            data_dir,
            i,
            peers,
            die_with_parent=True,
            groups=groups,
            persist_on_loop=persist_on_loop,
            read_index_only=read_index_only,
            persist_in_thread=persist_in_thread,
            admin=admins.get(i),
        )
        for i in sorted(peers)
    }
    interrupted = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        leader = wait_for_leader(peers, timeout_s=15)
        for i, addr in sorted(peers.items()):
            mark = "  (leader)" if i == leader else ""
            http = f"  http://{admins[i]}/metrics" if i in admins else ""
            click.echo(f"  node {i}: redis://{addr.client}{http}  pid {procs[i].pid}{mark}")
        if leader is None:
            click.echo("no leader elected yet; see the node logs in " + str(data_dir))
        first = peers[min(peers)].client
        h, _, p = first.rpartition(":")
        kvorum = _kvorum_command()
        click.echo(f"try:  redis-cli -h {h} -p {p} SET greeting hello")
        click.echo(f"      {kvorum} status --data-dir {data_dir}")
        click.echo("Ctrl-C stops the cluster; running `kvorum up` again resumes it.")
        began = time.monotonic()
        reported: set[int] = set()
        restarts = _Restarts()
        while not interrupted:
            now = time.monotonic()
            if for_seconds is not None and now - began >= for_seconds:
                break
            for i, proc in list(procs.items()):
                if proc.poll() is not None and i not in reported:
                    reported.add(i)
                    log_file = data_dir / f"node{i}.log"
                    if _removed(cluster_file, i):
                        click.echo(f"node {i} was removed from the cluster and has stopped")
                        del procs[i]
                        reported.discard(i)
                    elif restart:
                        delay_s = restarts.exited(i, now)
                        click.echo(
                            f"node {i} exited with code {proc.returncode}; starting it again "
                            f"in {delay_s:.0f} s (see {log_file})"
                        )
                    else:
                        click.echo(
                            f"node {i} exited with code {proc.returncode}; see {log_file} "
                            "(`kvorum up --restart` starts exited nodes again)"
                        )
            for i in restarts.due(now):
                procs[i] = start_node_process(
                    data_dir, i, peers, die_with_parent=True, groups=groups,
                    persist_on_loop=persist_on_loop, read_index_only=read_index_only,
                    persist_in_thread=persist_in_thread, admin=admins.get(i),
                )
                reported.discard(i)
                click.echo(f"node {i} started again, pid {procs[i].pid}")
            if len(reported) == len(procs) and not restart:  # (none left counts too)
                click.echo("every node has exited", err=True)
                break
            time.sleep(0.2)
    finally:
        click.echo("stopping the cluster ...")
        stop_processes(procs)
        _stop_other_nodes(data_dir, set(procs))
        for i in procs:
            (data_dir / f"node{i}.pid").unlink(missing_ok=True)
        click.echo("stopped")
    if len(reported) == len(procs) or (os.environ.get("KVORUM_UP_STRICT") and reported):
        sys.exit(1)


def _say_what_resuming_ignores(ctx: click.Context, cluster_file: Path) -> None:
    """A resumed cluster keeps the shape it was made with: say so for each option given."""
    for name in ("nodes", "host", "client_port", "raft_port", "admin_port", "groups"):
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
            flag = "--" + name.replace("_", "-")
            click.echo(
                f"  {flag} ignored: a resumed cluster keeps the addresses and groups in "
                f"{cluster_file} (a new --data-dir starts a new cluster)"
            )


def _admin_addresses(cluster: dict[str, Any], peers: dict[int, PeerAddress]) -> dict[int, str]:
    """Each node's admin endpoint: the cluster's admin port base + id - 1 on the node's client
    host (a cluster made before the endpoint existed: the client port + 1000). None: 0."""
    first = min(peers)
    base = cluster.get("admin_port_base")
    if base is None:
        base = int(peers[first].client.rpartition(":")[2]) + 1000
    if not base:
        return {}
    return {
        i: f"{a.client.rpartition(':')[0]}:{int(base) + i - first}" for i, a in peers.items()
    }


def _removed(cluster_file: Path, node_id: int) -> bool:
    """Whether ``kvorum member remove`` took ``node_id`` out of the cluster file."""
    try:
        peers = peers_from_json(load_cluster_file(cluster_file)["peers"])
    except (OSError, ValueError, KeyError, click.ClickException):
        return False
    return node_id not in peers


class _Restarts:
    """When to start each exited node again: after 1 s, doubling up to 30 s while it keeps
    exiting within a minute of its last start (a node that cannot start must not spin)."""

    def __init__(self) -> None:
        self._delay_s: dict[int, float] = {}
        self._started_at: dict[int, float] = {}
        self._due_at: dict[int, float] = {}

    def exited(self, node_id: int, now: float) -> float:
        previous = self._delay_s.get(node_id)
        ran_s = now - self._started_at.get(node_id, -1e9)
        delay_s = 1.0 if previous is None or ran_s > 60 else min(previous * 2, 30.0)
        self._delay_s[node_id] = delay_s
        self._due_at[node_id] = now + delay_s
        return delay_s

    def due(self, now: float) -> list[int]:
        ready = [i for i, at in self._due_at.items() if at <= now]
        for i in ready:
            del self._due_at[i]
            self._started_at[i] = now
        return ready
