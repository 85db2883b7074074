"""The placement driver's replicated state machine: descriptors, nodes, load, scheduling state.

Theory of operation: this is the machine of the placement driver's own Raft group. It holds
the live range descriptors (which tile the keyspace exactly once: :func:`check_cover`), the
nodes with their capacity and state, the last heartbeat of each node and the last load report
of each range, whether the scheduler is on, and the allocator of range ids. It changes only
through :meth:`PdState.apply` of a :mod:`~kvorum.placement.commands` command, which is
deterministic (time comes inside commands; the state's clock is the largest ``now_ms`` seen,
so a new PD leader whose clock is behind cannot make time go backwards), never raises on a
bad command and answers a :class:`PdResult`: applied (with a value for ``AllocRangeIds``) or
refused, with the reason. A refused command changes nothing.

Range reports are accepted only when they are newer than what the PD holds (TiKV's rule):
a membership report needs the same bounds and a higher ``conf_version``; a split report must
cut the known range in two with a higher ``version`` and a new id already allocated; a merge
report must join two known neighbours. So a late or duplicated report (a retry after a PD
leader change) is refused harmlessly, and the cover can never get a gap or an overlap.

Beside the descriptors the state keeps a :class:`kvorum.sharding.RangeMap` of the same
bounds (its shard is the range id as text), which gives the key-to-range lookup and, through
its ``since_ms``, the age of every range that :class:`kvorum.sharding.RangePolicy` needs for
its merge cool-down. :meth:`PdState.snapshot` and :meth:`PdState.restore` save and load the
whole state as msgpack-able values, for the PD group's Raft snapshots.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from kvorum.core.shape import NodeId
from kvorum.placement.commands import (
    AddNode,
    AllocRangeIds,
    Bootstrap,
    FinishRemoval,
    MarkNodeDown,
    PdCommand,
    RangeLoad,
    RemoveNode,
    ReportLeader,
    ReportMerge,
    ReportReplicas,
    ReportSplit,
    SetScheduler,
    StoreHeartbeat,
    load_from_wire,
    load_to_wire,
)
from kvorum.placement.cover import check_cover
from kvorum.placement.descriptor import (
    RangeDescriptor,
    RangeId,
    Role,
    descriptor_from_wire,
    descriptor_to_wire,
)
from kvorum.sharding import KeyRange, RangeMap

SNAPSHOT_FORMAT = 1


class NodeState(IntEnum):
    """A node's administrative state (part of the snapshot format: never renumber)."""

    UP = 0
    DRAINING = 1
    """Being removed: the scheduler moves its replicas away; it takes no new ones."""
    REMOVED = 2
    """Gone for good; its id is never reused."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node: NodeId
    capacity_bytes: int
    state: NodeState = NodeState.UP
    down_since_ms: int | None = None
    """Set by ``MarkNodeDown`` when heartbeats stopped; cleared by the next heartbeat."""
    last_heartbeat_ms: int = 0

    @property
    def takes_replicas(self) -> bool:
        """Whether the scheduler may place a new replica here."""
        return self.state is NodeState.UP and self.down_since_ms is None


@dataclass(frozen=True, slots=True)
class NodeStats:
    """A node's last heartbeat, as it reported it."""

    range_count: int
    leader_count: int
    used_bytes: int


@dataclass(frozen=True, slots=True)
class PdResult:
    ok: bool
    detail: str = ""
    value: int | None = None


_OK = PdResult(True)


def _refused(detail: str) -> PdResult:
    return PdResult(False, detail)


def _shard_name(range_id: RangeId) -> str:
    return str(range_id)


class PdState:
    """The placement driver's state; see the module docstring."""

    def __init__(self) -> None:
        self.descriptors: dict[RangeId, RangeDescriptor] = {}
        self.range_map: RangeMap | None = None
        self.nodes: dict[NodeId, NodeInfo] = {}
        self.node_stats: dict[NodeId, NodeStats] = {}
        self.range_loads: dict[RangeId, RangeLoad] = {}
        self.scheduler_on = True
        self.next_range_id: RangeId = 1
        self.now_ms = 0

    # -- reading -------------------------------------------------------------------------

    def range_of(self, position: bytes) -> RangeDescriptor:
        """The live range holding ``position``."""
        if self.range_map is None:
            raise LookupError("the placement driver is not bootstrapped")
        return self.descriptors[int(self.range_map.lookup(position).shard)]

    def ranges_in_order(self) -> Iterator[RangeDescriptor]:
        if self.range_map is not None:
            for key_range in self.range_map.ranges():
                yield self.descriptors[int(key_range.shard)]

    def replicas_on(self, node: NodeId) -> list[RangeDescriptor]:
        return [d for d in self.descriptors.values() if node in d.nodes()]

    # -- applying ------------------------------------------------------------------------

    def apply(self, command: PdCommand) -> PdResult:
        """Apply one committed command (see the module docstring)."""
        match command:
            case Bootstrap():
                return self._bootstrap(command)
            case AddNode(node, capacity_bytes, now_ms):
                if node in self.nodes:
                    return _refused(f"node {node} is known (state {self.nodes[node].state.name})")
                if capacity_bytes <= 0:
                    return _refused("capacity_bytes must be > 0")
                self._tick(now_ms)
                self.nodes[node] = NodeInfo(node, capacity_bytes, last_heartbeat_ms=self.now_ms)
                return _OK
            case RemoveNode(node):
                info = self.nodes.get(node)
                if info is None or info.state is NodeState.REMOVED:
                    return _refused(f"node {node} is not in the cluster")
                self.nodes[node] = replace(info, state=NodeState.DRAINING)
                return _OK
            case FinishRemoval(node):
                info = self.nodes.get(node)
                if info is None or info.state is not NodeState.DRAINING:
                    return _refused(f"node {node} is not draining")
                held = [d.range_id for d in self.replicas_on(node)]
                if held:
                    return _refused(f"node {node} still holds replicas of {held[:8]}")
                self.nodes[node] = replace(info, state=NodeState.REMOVED)
                self.node_stats.pop(node, None)
                return _OK
            case MarkNodeDown(node, since_ms):
                info = self.nodes.get(node)
                if info is None or info.state is NodeState.REMOVED:
                    return _refused(f"node {node} is not in the cluster")
                if info.down_since_ms is None:
                    self.nodes[node] = replace(info, down_since_ms=since_ms)
                return _OK
            case StoreHeartbeat():
                return self._heartbeat(command)
            case ReportReplicas(desc):
                return self._report_replicas(desc)
            case ReportSplit():
                return self._report_split(command)
            case ReportMerge():
                return self._report_merge(command)
            case ReportLeader(range_id, node, conf_version):
                return self._report_leader(range_id, node, conf_version)
            case SetScheduler(on):
                self.scheduler_on = on
                return _OK
            case AllocRangeIds(count):
                if count <= 0:
                    return _refused("count must be > 0")
                first = self.next_range_id
                self.next_range_id += count
                return PdResult(True, value=first)
        return _refused(f"unknown command {command!r}")  # type: ignore[unreachable]

    def _report_leader(self, range_id: RangeId, node: NodeId, conf_version: int) -> PdResult:
        known = self.descriptors.get(range_id)
        if known is None or known.epoch.conf_version != conf_version:
            return _refused(f"r{range_id} at conf_version {conf_version} is not current")
        if known.role_of(node) is not Role.VOTER:
            return _refused(f"node {node} is not a voter of {known}")
        self.descriptors[range_id] = replace(known, leader_hint=node)
        return _OK

    def _tick(self, now_ms: int) -> None:
        self.now_ms = max(self.now_ms, now_ms)

    def _bootstrap(self, command: Bootstrap) -> PdResult:
        if self.descriptors or self.nodes:
            return _refused("already bootstrapped")
        problems = check_cover(command.descriptors)
        if problems:
            return _refused(f"the first ranges do not cover the keyspace: {problems[:3]}")
        self._tick(command.now_ms)
        for node, capacity_bytes in command.nodes:
            self.nodes[node] = NodeInfo(node, capacity_bytes, last_heartbeat_ms=self.now_ms)
        unknown = {n for d in command.descriptors for n in d.nodes()} - set(self.nodes)
        if unknown:
            self.nodes.clear()
            return _refused(f"replicas on unknown nodes {sorted(unknown)}")
        ordered = sorted(command.descriptors, key=lambda d: d.start)
        self.descriptors = {d.range_id: d for d in ordered}
        self.range_map = RangeMap.from_ranges([
            KeyRange(d.start, d.end, _shard_name(d.range_id), self.now_ms) for d in ordered])
        self.next_range_id = max(self.next_range_id, max(self.descriptors) + 1)
        return _OK

    def _heartbeat(self, beat: StoreHeartbeat) -> PdResult:
        info = self.nodes.get(beat.node)
        if info is None or info.state is NodeState.REMOVED:
            return _refused(f"node {beat.node} is not in the cluster")
        self._tick(beat.now_ms)
        self.nodes[beat.node] = replace(info, down_since_ms=None,
                                        last_heartbeat_ms=max(info.last_heartbeat_ms,
                                                              beat.now_ms))
        self.node_stats[beat.node] = NodeStats(beat.range_count, beat.leader_count,
                                               beat.used_bytes)
        for load in beat.led_ranges:
            desc = self.descriptors.get(load.range_id)
            if desc is None or desc.role_of(beat.node) is not Role.VOTER:
                continue  # a report about a range that since split away or moved: ignore
            self.range_loads[load.range_id] = load
            if desc.leader_hint != beat.node:
                self.descriptors[load.range_id] = replace(desc, leader_hint=beat.node)
        return _OK

    def _report_replicas(self, desc: RangeDescriptor) -> PdResult:
        known = self.descriptors.get(desc.range_id)
        if known is None:
            return _refused(f"unknown range {desc.range_id}")
        if (known.start, known.end) != (desc.start, desc.end):
            return _refused(f"{desc} changed bounds: that is a split or merge report")
        if (desc.epoch.version != known.epoch.version
                or desc.epoch.conf_version <= known.epoch.conf_version):
            return _refused(f"{desc} is not newer than {known}")
        unknown = desc.nodes() - set(self.nodes)
        if unknown:
            return _refused(f"{desc} has replicas on unknown nodes {sorted(unknown)}")
        self.descriptors[desc.range_id] = desc
        return _OK

    def _report_split(self, command: ReportSplit) -> PdResult:
        left, right = command.left, command.right
        known = self.descriptors.get(left.range_id)
        if known is None:
            return _refused(f"unknown range {left.range_id}")
        if right.range_id in self.descriptors or right.range_id >= self.next_range_id:
            return _refused(f"r{right.range_id} is not a fresh allocated id")
        if (left.start, right.end) != (known.start, known.end) or left.end != right.start:
            return _refused(f"{left} + {right} do not cut {known} in two")
        if left.epoch != right.epoch or left.epoch.version <= known.epoch.version:
            return _refused(f"{left} + {right} are not newer than {known}")
        assert self.range_map is not None and left.end is not None
        self._tick(command.now_ms)
        self.range_map.split(left.end, self.now_ms, shard=_shard_name(right.range_id))
        self.descriptors[left.range_id] = left
        self.descriptors[right.range_id] = right
        self.range_loads.pop(left.range_id, None)  # its numbers were for the whole range
        return _OK

    def _report_merge(self, command: ReportMerge) -> PdResult:
        merged, removed_id = command.merged, command.removed_range_id
        left = self.descriptors.get(merged.range_id)
        right = self.descriptors.get(removed_id)
        if left is None or right is None:
            return _refused(f"unknown range r{merged.range_id} or r{removed_id}")
        if left.end != right.start or (merged.start, merged.end) != (left.start, right.end):
            return _refused(f"{merged} is not {left} joined with {right}")
        if (merged.epoch.version <= max(left.epoch.version, right.epoch.version)
                or merged.epoch.conf_version < max(left.epoch.conf_version,
                                                   right.epoch.conf_version)):
            return _refused(f"{merged} is not newer than {left} and {right}")
        assert self.range_map is not None
        self._tick(command.now_ms)
        self.range_map.merge(left.start, self.now_ms, shard=_shard_name(left.range_id))
        self.descriptors[left.range_id] = merged
        del self.descriptors[removed_id]
        self.range_loads.pop(left.range_id, None)
        self.range_loads.pop(removed_id, None)
        return _OK

    # -- snapshots -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as msgpack-able values (descriptors in key order)."""
        ranges = self.range_map.ranges() if self.range_map is not None else []
        return {
            "format": SNAPSHOT_FORMAT,
            "ranges": [[descriptor_to_wire(self.descriptors[int(r.shard)]), r.since_ms]
                       for r in ranges],
            "nodes": [[n.node, n.capacity_bytes, int(n.state), n.down_since_ms,
                       n.last_heartbeat_ms] for n in self.nodes.values()],
            "node_stats": [[node, s.range_count, s.leader_count, s.used_bytes]
                           for node, s in self.node_stats.items()],
            "range_loads": [load_to_wire(x) for x in self.range_loads.values()],
            "scheduler_on": self.scheduler_on,
            "next_range_id": self.next_range_id,
            "now_ms": self.now_ms,
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> PdState:
        """The state :meth:`snapshot` saved."""
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown placement snapshot format {snapshot.get('format')!r}")
        state = cls()
        key_ranges = []
        for wire, since_ms in snapshot["ranges"]:
            desc = descriptor_from_wire(wire)
            state.descriptors[desc.range_id] = desc
            key_ranges.append(KeyRange(desc.start, desc.end, _shard_name(desc.range_id),
                                       since_ms))
        state.range_map = RangeMap.from_ranges(key_ranges) if key_ranges else None
        for node, capacity_bytes, node_state, down_since_ms, last_ms in snapshot["nodes"]:
            state.nodes[node] = NodeInfo(node, capacity_bytes, NodeState(node_state),
                                         down_since_ms, last_ms)
        for node, range_count, leader_count, used_bytes in snapshot["node_stats"]:
            state.node_stats[node] = NodeStats(range_count, leader_count, used_bytes)
        for wire in snapshot["range_loads"]:
            load = load_from_wire(wire)
            state.range_loads[load.range_id] = load
        state.scheduler_on = bool(snapshot["scheduler_on"])
        state.next_range_id = snapshot["next_range_id"]
        state.now_ms = snapshot["now_ms"]
        return state
