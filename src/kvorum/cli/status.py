"""``kvorum status``: every node's role, term, commit and applied index, and last contact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kvorum.cli._cluster import (
    CLUSTER_FILE,
    data_dir_option,
    load_cluster_file,
    peers_from_json,
)
from kvorum.client.resp_client import RespClient, RespError
from kvorum.runtime.transport import parse_address


def fetch_status(client_addr: str, timeout_s: float = 1.0) -> dict[str, Any] | str:
    """A node's ``KVORUM STATUS`` as a dict, or a short text saying why there is none."""
    host, port = parse_address(client_addr)
    try:
        with RespClient(host, port, timeout_s) as c:
            reply = c.call("KVORUM", "STATUS")
    except PermissionError as exc:
        return str(exc)
    except OSError as exc:
        return f"unreachable ({exc.__class__.__name__})"
    if isinstance(reply, RespError):
        return reply.message
    if not isinstance(reply, bytes):
        return f"unexpected reply {reply!r}"
    status: dict[str, Any] = json.loads(reply)
    return status


def cluster_addresses(data_dir: Path, nodes: str | None) -> dict[str, str]:
    if nodes:
        return {addr: addr for addr in nodes.split(",")}
    cluster = load_cluster_file(data_dir / CLUSTER_FILE)
    return {str(i): a.client for i, a in sorted(peers_from_json(cluster["peers"]).items())}


def find_leader(addresses: dict[str, str]) -> str | None:
    """The client address of the node that says it leads (the newest term wins)."""
    best: tuple[int, str] | None = None
    for addr in addresses.values():
        st = fetch_status(addr)
        is_leader = isinstance(st, dict) and st.get("role") == "leader"
        if is_leader and isinstance(st, dict) and (best is None or st["term"] > best[0]):
            best = (st["term"], addr)
    return best[1] if best else None


def _groups_column(status: dict[str, Any]) -> str:
    groups = status.get("groups")
    if not isinstance(groups, dict):
        return "-"
    return f"{len(groups['leading'])}/{groups['count']} ({groups['awake']})"


@click.command("status")
@data_dir_option
@click.option("--nodes", help="Or: client addresses host:port,... to ask directly.")
@click.option("--json", "as_json", is_flag=True, help="Print raw JSON.")
def command(data_dir: Path, nodes: str | None, as_json: bool) -> None:
    """Show every node's role, term, commit and applied index (of group 0), how many groups it
    leads and how many are awake (not quiesced), and when it last heard from each peer."""
    addresses = cluster_addresses(data_dir, nodes)
    rows = []
    for name, addr in addresses.items():
        st = fetch_status(addr)
        if as_json:
            click.echo(json.dumps({"node": name, "address": addr, "status": st}))
            continue
        if isinstance(st, str):
            rows.append((name, addr, st, "", "", "", "", "", "", ""))
            continue
        contact = st.get("last_contact_ms", {})
        last = ", ".join(f"n{p}:{ms}ms" for p, ms in contact.items()) or "-"
        rows.append(
            (
                str(st["id"]),
                addr,
                st["role"],
                str(st["term"]),
                str(st["leader"] if st["leader"] is not None else "-"),
                str(st["commit"]),
                str(st["applied"]),
                str(st["last_index"]),
                _groups_column(st),
                last,
            )
        )
    if as_json:
        return
    header = (
        "node",
        "address",
        "role",
        "term",
        "leader",
        "commit",
        "applied",
        "last",
        "groups led/all (awake)",
        "last contact",
    )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
