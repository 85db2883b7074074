"""Redis Cluster's view of a kvorum cluster: CLUSTER SLOTS, SHARDS, NODES, MYID, INFO, KEYSLOT.

Theory of operation: a Redis Cluster client (``redis.cluster.RedisCluster``, ``redis-cli -c``)
routes each key by its hash slot to the node the cluster names as that slot's master. In
kvorum a run of slots is one Raft group, and the natural master of a run is the node leading
its group, the voters its replicas; so a node describes the layout it sees right now: for
each group, its slot run, its leader (or, while a group has none, its lowest voter, since any
kvorum node serves any key by forwarding and a client that guessed wrong only pays a hop),
and its other voters. Unlike Redis, a node may be master of some runs and replica of others.

Node ids are what Redis uses: 40 hexadecimal characters, here a hash of the cluster's name
and the node's number, so every node names every other the same way without being told.
Everything here is pure: :class:`ClusterLayout` is a snapshot the node builds per request,
and :func:`cluster_reply` turns a subcommand into the reply Redis would give.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from kvorum.kv.replies import ErrorReply, Reply, Verbatim
from kvorum.sharding._slots import SLOT_COUNT, key_slot


def cluster_node_id(cluster_id: str, node_id: int) -> str:
    """The 40-character Redis Cluster id of kvorum node ``node_id`` in ``cluster_id``."""
    return hashlib.sha1(f"kvorum:{cluster_id}:{node_id}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SlotRun:
    """One group's slots ``[first, last]`` (inclusive, as Redis prints them) and who serves
    them: ``master`` first, then the other voters."""

    first: int
    last: int
    master: int
    replicas: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ClusterLayout:
    """What one node knows of the cluster at one moment."""

    cluster_id: str
    me: int
    runs: tuple[SlotRun, ...]
    client_addresses: dict[int, str]
    """Every known node's client address, ``host:port``."""
    epoch: int = 0
    """Bumps when leadership or membership changes (the highest term over the groups)."""

    def node_id(self, node: int) -> str:
        return cluster_node_id(self.cluster_id, node)

    def endpoint(self, node: int) -> tuple[str, int]:
        host, _, port = self.client_addresses.get(node, "?:0").rpartition(":")
        return host, int(port)


def cluster_reply(layout: ClusterLayout, subcommand: str, args: Sequence[bytes]) -> Reply:
    """The reply to ``CLUSTER <subcommand> args...`` (``args`` after the subcommand)."""
    if subcommand == "slots":
        return _slots(layout)
    if subcommand == "shards":
        return _shards(layout)
    if subcommand == "nodes":
        return Verbatim(_nodes(layout))
    if subcommand == "myid":
        return layout.node_id(layout.me).encode()
    if subcommand == "info":
        return Verbatim(_info(layout))
    if subcommand == "keyslot":
        return key_slot(args[0])
    return ErrorReply(f"ERR unknown subcommand '{subcommand}'. Try CLUSTER HELP.")


def _node_entry(layout: ClusterLayout, node: int) -> list[Reply]:
    host, port = layout.endpoint(node)
    return [host.encode(), port, layout.node_id(node).encode()]


def _slots(layout: ClusterLayout) -> Reply:
    out: list[Reply] = []
    for run in layout.runs:
        entry: list[Reply] = [run.first, run.last, _node_entry(layout, run.master)]
        entry += [_node_entry(layout, r) for r in run.replicas]
        out.append(entry)
    return out


def _shards(layout: ClusterLayout) -> Reply:
    out: list[Reply] = []
    for run in layout.runs:
        nodes: list[Reply] = []
        for node, role in [(run.master, b"master"), *((r, b"replica") for r in run.replicas)]:
            host, port = layout.endpoint(node)
            nodes.append({
                b"id": layout.node_id(node).encode(),
                b"port": port,
                b"ip": host.encode(),
                b"endpoint": host.encode(),
                b"role": role,
                b"replication-offset": 0,
                b"health": b"online",
            })  # fmt: skip
        out.append({b"slots": [run.first, run.last], b"nodes": nodes})
    return out


def _nodes(layout: ClusterLayout) -> str:
    """One line per node, as Redis prints them: every node is shown as a master, holding
    the slot runs whose groups it leads (a node that leads none holds no slots)."""
    slots_of: dict[int, list[str]] = {node: [] for node in layout.client_addresses}
    for run in layout.runs:
        slots_of.setdefault(run.master, []).append(
            str(run.first) if run.first == run.last else f"{run.first}-{run.last}"
        )
    lines = []
    for node in sorted(slots_of):
        host, port = layout.endpoint(node)
        flags = "myself,master" if node == layout.me else "master"
        fields = [layout.node_id(node), f"{host}:{port}@0", flags, "-", "0", "0",
                  str(layout.epoch), "connected", *slots_of[node]]  # fmt: skip
        lines.append(" ".join(fields))
    return "\n".join(lines) + "\n"


def _info(layout: ClusterLayout) -> str:
    assigned = sum(run.last - run.first + 1 for run in layout.runs)
    masters = {run.master for run in layout.runs}
    fields = {
        "cluster_enabled": 1,
        "cluster_state": "ok" if assigned == SLOT_COUNT else "fail",
        "cluster_slots_assigned": assigned,
        "cluster_slots_ok": assigned,
        "cluster_slots_pfail": 0,
        "cluster_slots_fail": 0,
        "cluster_known_nodes": len(layout.client_addresses),
        "cluster_size": len(masters),
        "cluster_current_epoch": layout.epoch,
        "cluster_my_epoch": layout.epoch,
    }
    return "".join(f"{k}:{v}\r\n" for k, v in fields.items())
