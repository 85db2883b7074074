"""``kvorum node``: run one node of a (possibly multi-host) cluster in the foreground."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import click

from kvorum.cli._cluster import node_config_from_toml, parse_peers
from kvorum.client.resp_client import PASSWORD_ENV
from kvorum.host.bootstrap import StorageMismatchError
from kvorum.runtime.node import DataDirInUseError, NodeConfig
from kvorum.runtime.process import NodeFailedError, run, serve
from kvorum.storage.lmdb_keyspace import KeyspaceFormatError
from kvorum.storage.node_log import StorageCorruptionError
from kvorum.storage.snapshots import SnapshotCorruptionError
from kvorum.storage.wal import WALCorruptionError, WALFormatError


@click.command("node")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML file.")
@click.option("--id", "node_id", type=int, help="This node's id (a positive integer).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where this node keeps data.")
@click.option("--peers", help="Every member: ID=RAFT_HOST:PORT/CLIENT_HOST:PORT,...")
@click.option("--cluster-id", default=None, help="Name shared by the cluster's nodes.")
@click.option("--join", is_flag=True, default=None, help="Join a running cluster as a new node.")
@click.option(
    "--snapshot-every",
    type=int,
    default=None,
    help="Snapshot and compact the log every N applied entries (default 20000).",
)
@click.option(
    "--max-value-bytes",
    type=int,
    default=None,
    help="Largest value a client may send (default 512 MiB, as Redis).",
)
@click.option(
    "--groups",
    type=int,
    default=None,
    help="Raft groups the keyspace is cut into, fixed when the cluster is created (default 1).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the node's random choices (to replay a run; default: drawn and logged).",
)
@click.option(
    "--persist-on-loop",
    is_flag=True,
    default=False,
    help="Run each round's fsync on the event loop, not on a disk thread (to compare).",
)
@click.option(
    "--admin",
    default=None,
    help="host:port for the HTTP admin endpoint (/metrics, /status, /health); default none.",
)
@click.option(
    "--persist-in-thread",
    is_flag=True,
    default=False,
    help="Run every round's fsync on the disk thread, however fast the disk (to compare).",
)
@click.option(
    "--read-index-only",
    is_flag=True,
    default=False,
    help="Serve every read by a ReadIndex round, never on a leader lease (to compare).",
)
@click.option("--log-level", default="INFO", show_default=True)
def command(
    config_file: Path | None,
    node_id: int | None,
    data_dir: Path | None,
    peers: str | None,
    cluster_id: str | None,
    join: bool | None,
    snapshot_every: int | None,
    max_value_bytes: int | None,
    groups: int | None,
    seed: int | None,
    persist_on_loop: bool,
    admin: str | None,
    persist_in_thread: bool,
    read_index_only: bool,
    log_level: str,
) -> None:
    """Run one kvorum node: Raft over TCP, data on disk, Redis protocol for clients."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    if config_file is not None:
        overrides: dict[str, object] = {
            "id": node_id,
            "data_dir": str(data_dir) if data_dir else None,
            "cluster_id": cluster_id,
            "join": join,
            "groups": groups,
            "seed": seed,
            "admin": admin,
        }
        if peers:
            overrides["peers"] = {
                str(i): {"raft": a.raft, "client": a.client} for i, a in parse_peers(peers).items()
            }
        config = node_config_from_toml(config_file, overrides)
    else:
        if node_id is None or data_dir is None or peers is None:
            raise click.UsageError("give --config FILE, or all of --id, --data-dir and --peers")
        config = NodeConfig(
            node_id=node_id,
            data_dir=data_dir,
            peers=parse_peers(peers),
            cluster_id=cluster_id or "kvorum",
            join=bool(join),
            groups=groups or 1,
            seed=seed,
            admin=admin,
        )
    if config.groups < 1:
        raise click.BadParameter("must be >= 1", param_hint="--groups")
    if snapshot_every is not None:
        if snapshot_every < 1:
            raise click.BadParameter("must be >= 1", param_hint="--snapshot-every")
        config = replace(config, snapshot_every_entries=snapshot_every)
    if max_value_bytes is not None:
        if max_value_bytes < 1:
            raise click.BadParameter("must be >= 1", param_hint="--max-value-bytes")
        config = replace(config, max_value_bytes=max_value_bytes)
    if persist_on_loop:
        config = replace(config, persist_in_thread=False)
    if config.requirepass is None and os.environ.get(PASSWORD_ENV):
        config = replace(config, requirepass=os.environ[PASSWORD_ENV])
    if persist_in_thread:
        config = replace(config, inline_sync_below_ms=0.0)
    if read_index_only:
        config = replace(config, lease_reads=False)
    if config.node_id not in config.peers:
        raise click.UsageError(f"node {config.node_id} is not in the peer list")
    try:
        run(serve(config))
    except (
        WALCorruptionError,
        WALFormatError,
        SnapshotCorruptionError,
        StorageCorruptionError,
        KeyspaceFormatError,
        StorageMismatchError,
    ) as exc:
        # Acknowledged data is damaged or unreadable: say where, and do not start on top of it.
        click.echo(f"kvorum node {config.node_id}: refusing to start: {exc}", err=True)
        sys.exit(3)
    except (DataDirInUseError, NodeFailedError, OSError) as exc:
        click.echo(f"kvorum node {config.node_id}: {exc}", err=True)
        sys.exit(2)
