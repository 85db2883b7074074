"""``kvorum member add|remove``: change a running cluster's membership, one server at a time.

``add`` asks the leader of every group to add the node as a non-voting learner that it
promotes to voter by itself once the node has caught up (Raft's single-server change, thesis
§4); the new node is started with ``kvorum node --join`` (for a ``kvorum up`` cluster, ``member
add`` starts it). ``remove`` asks every group's leader to remove a node; a removed leader steps
down once the change commits. A removed id is never reused: a server that lost its data
rejoins under a new id.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import click

from kvorum.cli._cluster import (
    CLUSTER_FILE,
    data_dir_option,
    load_cluster_file,
    peers_from_json,
    peers_to_json,
)
from kvorum.cli.status import cluster_addresses, fetch_status
from kvorum.cli.up import start_node_process
from kvorum.client.resp_client import RespClient, RespError
from kvorum.runtime.node import PeerAddress
from kvorum.runtime.transport import parse_address


def _ask_leader(addresses: dict[str, str], *args: str | int) -> str:
    """Send ``KVORUM MEMBER *args`` for every group to the node leading it, until every group
    has taken the change (leaders may move meanwhile: TRYAGAIN answers are retried)."""
    deadline = time.monotonic() + 30
    last = "no leader found"
    pending: set[int] | None = None
    while time.monotonic() < deadline:
        leaders: dict[int, str] = {}
        for addr in addresses.values():
            st = fetch_status(addr)
            if not isinstance(st, dict):
                continue
            alone = {"count": 1, "leading": [0] if st["role"] == "leader" else []}
            groups = st.get("groups", alone)
            if pending is None:
                pending = set(range(int(groups["count"])))
            for gid in groups["leading"]:
                leaders[int(gid)] = addr
        if pending is not None:
            by_leader: dict[str, list[int]] = {}
            for gid in sorted(pending):
                if gid in leaders:
                    by_leader.setdefault(leaders[gid], []).append(gid)
            for addr, gids in by_leader.items():
                host, port = parse_address(addr)
                listed = ",".join(map(str, gids))
                with RespClient(host, port, timeout_s=10) as c:
                    reply = c.call("KVORUM", "MEMBER", *args, "GROUPS", listed)
                if not isinstance(reply, RespError):
                    pending -= set(gids)
                    continue
                last = reply.message
                if not last.startswith("TRYAGAIN"):
                    raise click.ClickException(last)
            if not pending:
                return "OK"
        time.sleep(0.3)
    raise click.ClickException(last)


@click.group("member")
def command() -> None:
    """Add or remove a node of a running cluster."""


@command.command("add")
@click.argument("node_id", type=int)
@click.option("--raft", "raft_addr", help="The new node's Raft address host:port.")
@click.option("--client", "client_addr", help="The new node's client address host:port.")
@data_dir_option
@click.option("--nodes", help="Or: client addresses of current members, host:port,...")
@click.option(
    "--start/--no-start",
    default=True,
    show_default=True,
    help="For a `kvorum up` cluster: also start the new node's process.",
)
def add(
    node_id: int,
    raft_addr: str | None,
    client_addr: str | None,
    data_dir: Path,
    nodes: str | None,
    start: bool,
) -> None:
    """Add NODE_ID as a learner; the leader promotes it to voter once it has caught up."""
    addresses = cluster_addresses(data_dir, nodes)
    local = nodes is None
    if local:
        cluster = load_cluster_file(data_dir / CLUSTER_FILE)
        peers = peers_from_json(cluster["peers"])
        if node_id in peers:
            raise click.UsageError(f"node {node_id} is already in {data_dir / CLUSTER_FILE}")
        any_peer = peers[min(peers)]
        rhost, rport = parse_address(any_peer.raft)
        chost, cport = parse_address(any_peer.client)
        offset = node_id - min(peers)
        raft_addr = raft_addr or f"{rhost}:{rport + offset}"
        client_addr = client_addr or f"{chost}:{cport + offset}"
        peers[node_id] = PeerAddress(raft_addr, client_addr)
        if start:
            groups = int(cluster.get("groups", 1))
            proc = start_node_process(data_dir, node_id, peers, join=True, groups=groups)
            click.echo(f"started node {node_id} (pid {proc.pid}), log in {data_dir}")
    if raft_addr is None or client_addr is None:
        raise click.UsageError("--raft and --client are required with --nodes")
    _ask_leader(addresses, "ADD", node_id, raft_addr, client_addr)
    if local:
        cluster["peers"] = peers_to_json(peers)
        (data_dir / CLUSTER_FILE).write_text(json.dumps(cluster, indent=2))
    click.echo(f"node {node_id} added as a learner; it becomes a voter once caught up")


@command.command("remove")
@click.argument("node_id", type=int)
@data_dir_option
@click.option("--nodes", help="Or: client addresses of current members, host:port,...")
def remove(node_id: int, data_dir: Path, nodes: str | None) -> None:
    """Remove NODE_ID from the cluster (stop its process afterwards)."""
    addresses = cluster_addresses(data_dir, nodes)
    _ask_leader(addresses, "REMOVE", node_id)
    if nodes is None:
        path = data_dir / CLUSTER_FILE
        cluster = load_cluster_file(path)
        peers = peers_from_json(cluster["peers"])
        peers.pop(node_id, None)
        cluster["peers"] = peers_to_json(peers)
        path.write_text(json.dumps(cluster, indent=2))
        click.echo(f"node {node_id} removed")
        if _stop_local_node(data_dir, node_id):
            click.echo(f"stopped node {node_id}'s process (its data stays in {data_dir})")
        return
    click.echo(f"node {node_id} removed; stop its process (it takes no part any more)")


def _stop_local_node(data_dir: Path, node_id: int) -> bool:
    """Stop a removed node of a ``kvorum up`` cluster (its pid file is in ``data_dir``). The
    ``kvorum up`` supervising it finds the node gone from the cluster file and lets it go."""
    pid_file = data_dir / f"node{node_id}.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True
