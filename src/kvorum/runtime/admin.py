"""What a node says about itself and the admin commands it takes: KVORUM, INFO and ROLE.

Theory of operation: everything here reads the host through read-only views (a core's
:class:`~kvorum.core.raft.RaftStatus`, the host's counters) or asks it to act through
:meth:`NodeHost.run`, which runs the action at the start of the next round; nothing here
touches a core directly. The commands:

- ``KVORUM STATUS [GROUP g]``: JSON. Its top level describes group 0 (role, term, leader,
  commit, applied, progress — what ``kvorum status`` has always shown), plus the node (id,
  incarnation, RNG seed, fsyncs, transport counters, addresses) and every group in brief
  (``groups``: how many, which this node leads, which are quiesced, which are still fetching
  entries storage damage cost them). With ``GROUP g`` the top level describes group g
  instead; its ``repair`` says what a repair of lost entries fetched, from whom and when.
- ``KVORUM MEMBER ADD id raft-addr client-addr [GROUPS g,g,...]`` and ``KVORUM MEMBER REMOVE
  id [GROUPS ...]``: a membership change in every listed group this node leads (default: all
  groups). Groups led elsewhere are named in the error so the caller can ask their leaders.
- ``KVORUM TRANSFER id [GROUPS ...]``: hand leadership of the listed groups this node leads to
  node ``id``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kvorum.core.raft import ConfChange, ConfChangeKind, NotLeader
from kvorum.core.shape import GroupId
from kvorum.host.errors import RequestError, WriteLostError
from kvorum.host.group import RaftGroup
from kvorum.kv.replies import ErrorReply, Reply, Verbatim
from kvorum.runtime.addresses import PeerAddress
from kvorum.server.executor import InfoSections
from kvorum.shard.cluster_protocol import ClusterLayout, SlotRun, cluster_reply

if TYPE_CHECKING:
    from kvorum.runtime.node import KvorumNode

_USAGE = (
    "ERR unknown KVORUM subcommand; try STATUS [GROUP g], MEMBER ADD id raft-addr client-addr "
    "[GROUPS g,...], MEMBER REMOVE id [GROUPS g,...], TRANSFER id [GROUPS g,...]"
)


class Admin:
    """The node's self-description and administration (see the module docstring)."""

    def __init__(self, node: KvorumNode) -> None:
        self._node = node

    # --- status --------------------------------------------------------------------------------

    def status(self, group_id: GroupId = 0) -> dict[str, Any]:
        node = self._node
        host = node.host
        status = host.group(group_id).core.status().to_dict()
        status["group"] = group_id
        status["repair"] = host.group(group_id).repair_status()
        status["applied"] = node.machines[group_id].applied_index()
        now_ms = node.host_world.monotonic_ms()
        status["last_contact_ms"] = {
            str(p): int(now_ms - t) for p, t in sorted(node.last_contact.items())
        }
        stats = host.stats
        totals = _group_totals(host.groups.values())
        status["stats"] = {
            "proposals": totals["proposals"],
            "entries_applied": totals["entries_applied"],
            "fsyncs": stats.syncs,
            "rounds": stats.rounds,
            "reads": node.requests.reads if node.requests else 0,
            "forwards": totals["forwards"],
            "quiesces": stats.quiesces,
            "wakes": stats.wakes,
            "node_heartbeats_sent": stats.node_heartbeats_sent,
        }
        status["node"] = {
            "id": node.config.node_id,
            "incarnation": host.incarnation,
            "seed": node.seed,
            "disk_full": host.disk_full,
        }
        status["groups"] = {
            "count": len(host.groups),
            "leading": sorted(g for g, grp in host.groups.items() if grp.core.is_leader),
            "quiesced": sum(1 for g in host.groups if host.is_quiesced(g)),
            "awake": host.awake_groups(),
            "repairing": sorted(g for g, grp in host.groups.items() if grp.core.fenced),
        }
        if node.transport is not None:
            status["transport"] = node.transport.metrics()
        book = node.addresses.addresses
        status["addresses"] = {str(i): a.client for i, a in sorted(book.items())}
        return status

    def info(self) -> InfoSections:
        node = self._node
        core = node.host.group(0).core
        leader = core.leader_id
        replication: dict[str, str | int] = {
            "role": "master" if core.is_leader else "slave",
            "kvorum_raft_role": core.role.value,
            "kvorum_node_id": node.config.node_id,
            "kvorum_term": core.term,
            "kvorum_leader_id": -1 if leader is None else leader,
            "kvorum_commit_index": core.commit_index,
            "kvorum_applied_index": node.machines[0].applied_index(),
            "kvorum_last_index": core.last_index,
            "kvorum_groups": len(node.host.groups),
            "kvorum_groups_led": sum(1 for g in node.host.groups.values() if g.core.is_leader),
        }
        address = node.addresses.get(leader) if leader is not None else None
        if address is not None and not core.is_leader:
            host, _, port = address.client.rpartition(":")
            replication["master_host"] = host
            replication["master_port"] = int(port)
        keys = sum(m.engine.count() for m in node.machines.values())
        expires = sum(m.engine.expiring_count() for m in node.machines.values())
        keyspace: dict[str, str | int] = {}
        if keys:
            keyspace["db0"] = f"keys={keys},expires={expires},avg_ttl=0"
        return {"replication": replication, "keyspace": keyspace}

    def cluster(self, subcommand: str, args: Sequence[bytes]) -> Reply:
        """``CLUSTER <subcommand>``: Redis Cluster's view (:mod:`kvorum.shard.cluster_protocol`)."""
        return cluster_reply(self.cluster_layout(), subcommand, args)

    def cluster_layout(self) -> ClusterLayout:
        node = self._node
        host = node.host
        runs = []
        epoch = 0
        for gid in node.router.group_ids:
            lo, hi = node.router.slot_span(gid)
            core = host.group(gid).core
            voters = core.conf.voters or frozenset({node.config.node_id})
            leader = core.leader_id
            master = leader if leader in voters else min(voters)
            runs.append(SlotRun(lo, hi - 1, master, tuple(sorted(voters - {master}))))
            epoch = max(epoch, core.term)
        book = node.addresses.addresses
        return ClusterLayout(
            cluster_id=node.config.cluster_id,
            me=node.config.node_id,
            runs=tuple(runs),
            client_addresses={i: a.client for i, a in book.items()},
            epoch=epoch,
        )

    def role(self) -> Reply:
        node = self._node
        core = node.host.group(0).core
        if core.is_leader:
            replicas: list[Reply] = []
            for peer, pr in sorted(core.status().progress.items()):
                address = node.addresses.get(peer)
                if peer == node.config.node_id or address is None:
                    continue
                host, _, port = address.client.rpartition(":")
                replicas.append([host.encode(), port.encode(), str(pr.match_index).encode()])
            return [b"master", core.commit_index, replicas]
        leader = core.leader_id
        address = node.addresses.get(leader) if leader is not None else None
        if address is None:
            return [b"slave", b"", -1, b"connect", -1]
        host, _, port = address.client.rpartition(":")
        return [b"slave", host.encode(), int(port), b"connected", node.machines[0].applied_index()]

    # --- KVORUM --------------------------------------------------------------------------------

    async def command(self, args: Sequence[bytes]) -> Reply:
        if not args:
            return ErrorReply("ERR wrong number of arguments for 'kvorum' command")
        sub = args[0].upper()
        rest = list(args[1:])
        if sub == b"STATUS":
            group_id = 0
            if len(rest) == 2 and rest[0].upper() == b"GROUP":
                parsed = _parse_int(rest[1])
                if parsed is None or parsed not in self._node.host.groups:
                    return ErrorReply("ERR no such group")
                group_id = parsed
            elif rest:
                return ErrorReply(_USAGE)
            return Verbatim(json.dumps(self.status(group_id), sort_keys=True))
        groups, rest = self._groups_option(rest)
        if groups is None:
            return ErrorReply("ERR GROUPS takes a comma list of group ids this node holds")
        if sub == b"MEMBER" and len(rest) >= 2:
            action = rest[0].upper()
            node_id = _parse_int(rest[1])
            if node_id is None or node_id < 1:
                return ErrorReply("ERR node id must be a positive integer")
            if action == b"ADD" and len(rest) == 4:
                raft, client = rest[2].decode(), rest[3].decode()
                context = json.dumps({"raft": raft, "client": client}).encode()
                change = ConfChange(ConfChangeKind.ADD_LEARNER, node_id, True, context)
                self._node.addresses.set(node_id, PeerAddress(raft, client))
                return await self._conf_change(change, groups)
            if action == b"REMOVE" and len(rest) == 2:
                return await self._conf_change(ConfChange(ConfChangeKind.REMOVE, node_id), groups)
        if sub == b"TRANSFER" and len(rest) == 1:
            target = _parse_int(rest[0])
            if target is None or target < 1:
                return ErrorReply("ERR node id must be a positive integer")
            return await self._transfer(target, groups)
        return ErrorReply(_USAGE)

    def _groups_option(self, rest: list[bytes]) -> tuple[list[GroupId] | None, list[bytes]]:
        held = self._node.host.groups
        if len(rest) >= 2 and rest[-2].upper() == b"GROUPS":
            ids = [_parse_int(g) for g in rest[-1].split(b",")]
            if not ids or any(g is None or g not in held for g in ids):
                return None, rest
            return sorted({g for g in ids if g is not None}), rest[:-2]
        return sorted(held), rest

    async def _conf_change(self, change: ConfChange, groups: list[GroupId]) -> Reply:
        led_elsewhere = self._not_led_here(groups)
        if led_elsewhere:
            return ErrorReply(_elsewhere_error(led_elsewhere))
        results = await asyncio.gather(
            *(self._one_conf_change(g, change) for g in groups), return_exceptions=True
        )
        failures = [
            f"group {g}: {r.message if isinstance(r, RequestError) else r!r}"
            for g, r in zip(groups, results, strict=True)
            if isinstance(r, BaseException)
        ]
        if failures:
            errors = [r for r in results if isinstance(r, BaseException)]
            lost = all(isinstance(r, WriteLostError) for r in errors)
            code = "TRYAGAIN" if lost else "ERR"
            return ErrorReply(f"{code} membership change failed in " + "; ".join(failures))
        return "OK"

    async def _one_conf_change(self, group_id: GroupId, change: ConfChange) -> None:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        node = self._node
        node.host.run(group_id, lambda g: g.propose_conf_change(change, fut))
        node.driver.wake()
        await fut

    async def _transfer(self, target: int, groups: list[GroupId]) -> Reply:
        led_elsewhere = self._not_led_here(groups)
        if led_elsewhere:
            return ErrorReply(_elsewhere_error(led_elsewhere))
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for gid in groups:
            fut: asyncio.Future[None] = loop.create_future()
            futures.append(fut)
            self._node.host.run(gid, _transfer_action(target, fut))
        self._node.driver.wake()
        errors = [e for e in await asyncio.gather(*futures, return_exceptions=True) if e]
        if errors:
            return ErrorReply(f"ERR transfer refused: {errors[0]}")
        return "OK"

    def _not_led_here(self, groups: list[GroupId]) -> dict[GroupId, int | None]:
        host = self._node.host
        return {
            g: host.group(g).core.leader_id for g in groups if not host.group(g).core.is_leader
        }


def _transfer_action(target: int, fut: asyncio.Future[None]) -> Callable[[RaftGroup], None]:
    def transfer(group: RaftGroup) -> None:
        try:
            group.core.transfer_leadership(target)
        except (NotLeader, ValueError) as exc:
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(None)

    return transfer


def _elsewhere_error(led: dict[GroupId, int | None]) -> str:
    listed = ", ".join(
        f"{g}@{'?' if leader is None else leader}" for g, leader in sorted(led.items())[:8]
    )
    more = f" and {len(led) - 8} more" if len(led) > 8 else ""
    return f"TRYAGAIN not the leader of groups {listed}{more} (group@leader)"


def _group_totals(groups: Any) -> dict[str, int]:
    totals = {"proposals": 0, "entries_applied": 0, "forwards": 0}
    for group in groups:
        totals["proposals"] += group.stats.proposals
        totals["entries_applied"] += group.stats.entries_applied
        totals["forwards"] += group.stats.forwards
    return totals


def _parse_int(raw: bytes) -> int | None:
    return int(raw) if raw.isdigit() else None
