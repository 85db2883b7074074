"""Shared by the cluster commands: describing peers on the command line and in files."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import click

from kvorum.runtime.node import NodeConfig, PeerAddress

DEFAULT_DATA_DIR = Path("kvorum-data")
CLUSTER_FILE = "cluster.json"

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="A `kvorum up` cluster's folder.",
)
"""The ``--data-dir`` option of every command that finds a `kvorum up` cluster."""


def parse_peers(spec: str) -> dict[int, PeerAddress]:
    """``1=RAFT/CLIENT,2=RAFT/CLIENT`` (each address host:port) as a peer map."""
    peers: dict[int, PeerAddress] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        node, sep, addrs = item.partition("=")
        raft, sep2, client = addrs.partition("/")
        if not (sep and sep2 and node.isdigit() and raft and client):
            raise click.BadParameter(f"{item!r}: expected ID=RAFT_HOST:PORT/CLIENT_HOST:PORT")
        peers[int(node)] = PeerAddress(raft, client)
    if not peers:
        raise click.BadParameter("no peers given")
    return peers


def peers_to_json(peers: dict[int, PeerAddress]) -> dict[str, Any]:
    return {str(i): {"raft": a.raft, "client": a.client} for i, a in sorted(peers.items())}


def peers_from_json(raw: dict[str, Any]) -> dict[int, PeerAddress]:
    return {int(i): PeerAddress(a["raft"], a["client"]) for i, a in raw.items()}


def load_cluster_file(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise click.UsageError(
            f"{path} not found: start a cluster with `kvorum up` first"
        ) from None
    return data


def node_config_from_toml(path: Path, overrides: dict[str, object]) -> NodeConfig:
    """A node's configuration from a TOML file (see README), with command-line overrides."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.UsageError(f"cannot read {path}: {exc}") from None
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        peers = peers_from_json(raw["peers"])
        return NodeConfig(
            node_id=int(raw["id"]),
            data_dir=Path(raw["data_dir"]),
            peers=peers,
            cluster_id=str(raw.get("cluster_id", "kvorum")),
            join=bool(raw.get("join", False)),
            tick_ms=int(raw.get("tick_ms", 20)),
            election_timeout_ticks=int(raw.get("election_timeout_ticks", 15)),
            groups=int(raw.get("groups", 1)),
            seed=None if raw.get("seed") is None else int(raw["seed"]),
            admin=None if raw.get("admin") is None else str(raw["admin"]),
            requirepass=None if raw.get("requirepass") is None else str(raw["requirepass"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise click.UsageError(f"{path}: bad node configuration ({exc!r})") from None
