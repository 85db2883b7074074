"""The commands of the placement driver's state machine, and their msgpack-able wire form.

Theory of operation: the placement driver (PD) keeps the cluster's metadata in one Raft
group; every change to it is one of the commands below, proposed by the PD leader (or sent to
it by a node), committed in the PD group's log and applied by
:meth:`kvorum.placement.pd_state.PdState.apply` on every PD replica in the same order. So a
command must carry everything apply needs — including the time, ``now_ms``, read from the
proposer's clock — and apply must read nothing else. Commands are frozen dataclasses;
:func:`command_to_wire` turns one into a list of plain values (ints, bytes, floats, lists)
that msgpack encodes, led by a tag that is part of the wire format (never reuse or renumber
one), and :func:`command_from_wire` turns it back.

Who proposes what: ``Bootstrap`` once, when the cluster is created; ``AddNode`` and
``RemoveNode`` from the operator's ``kvorum node add|remove`` (removal starts a drain);
``FinishRemoval`` by the PD leader once a draining node holds nothing; ``MarkNodeDown`` by the
PD leader when a node's heartbeats stop; ``StoreHeartbeat`` by every node, periodically;
``ReportReplicas``, ``ReportSplit`` and ``ReportMerge`` by a range's leader once the change
committed in the range's own log, ``ReportLeader`` by a range's new leader;
``SetScheduler`` from ``kvorum scheduler on|off``; ``AllocRangeIds`` by the PD leader before it
plans splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from kvorum.core.shape import NodeId
from kvorum.placement.descriptor import (
    RangeDescriptor,
    RangeId,
    descriptor_from_wire,
    descriptor_to_wire,
)


@dataclass(frozen=True, slots=True)
class RangeLoad:
    """What a range's leader reports about it: bytes and keys stored, operations per second
    over the last window, and a suggested split position (None: cannot split)."""

    range_id: RangeId
    size_bytes: int
    keys: int
    ops_per_s: float
    split_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """The first descriptors of a new cluster (they must cover the keyspace) and its nodes."""

    descriptors: tuple[RangeDescriptor, ...]
    nodes: tuple[tuple[NodeId, int], ...]  # (node, capacity_bytes)
    now_ms: int


@dataclass(frozen=True, slots=True)
class AddNode:
    node: NodeId
    capacity_bytes: int
    now_ms: int


@dataclass(frozen=True, slots=True)
class RemoveNode:
    """Start draining ``node``: the scheduler moves every replica off it."""

    node: NodeId


@dataclass(frozen=True, slots=True)
class FinishRemoval:
    """A drained node leaves for good; refused while it still holds a replica."""

    node: NodeId


@dataclass(frozen=True, slots=True)
class MarkNodeDown:
    node: NodeId
    since_ms: int


@dataclass(frozen=True, slots=True)
class StoreHeartbeat:
    """A node's periodic report: its counts and bytes, and the load of the ranges it leads
    (which also tells the PD who leads them)."""

    node: NodeId
    now_ms: int
    range_count: int
    leader_count: int
    used_bytes: int
    led_ranges: tuple[RangeLoad, ...]


@dataclass(frozen=True, slots=True)
class ReportReplicas:
    """A range's membership changed (same bounds, newer ``conf_version``)."""

    descriptor: RangeDescriptor


@dataclass(frozen=True, slots=True)
class ReportSplit:
    left: RangeDescriptor
    right: RangeDescriptor
    now_ms: int


@dataclass(frozen=True, slots=True)
class ReportMerge:
    merged: RangeDescriptor
    removed_range_id: RangeId
    now_ms: int


@dataclass(frozen=True, slots=True)
class ReportLeader:
    """A range's leadership moved to ``node`` (a voter of the range at ``conf_version``)."""

    range_id: RangeId
    node: NodeId
    conf_version: int


@dataclass(frozen=True, slots=True)
class SetScheduler:
    on: bool


@dataclass(frozen=True, slots=True)
class AllocRangeIds:
    """Reserve ``count`` new range ids; the result's ``value`` is the first of them."""

    count: int


PdCommand = (Bootstrap | AddNode | RemoveNode | FinishRemoval | MarkNodeDown | StoreHeartbeat
             | ReportReplicas | ReportSplit | ReportMerge | ReportLeader | SetScheduler
             | AllocRangeIds)


class CommandTag(IntEnum):
    """Wire tags of the commands: part of the format, never reuse or renumber one."""

    BOOTSTRAP = 1
    ADD_NODE = 2
    REMOVE_NODE = 3
    FINISH_REMOVAL = 4
    MARK_NODE_DOWN = 5
    STORE_HEARTBEAT = 6
    REPORT_REPLICAS = 7
    REPORT_SPLIT = 8
    REPORT_MERGE = 9
    SET_SCHEDULER = 10
    ALLOC_RANGE_IDS = 11
    REPORT_LEADER = 12


def load_to_wire(load: RangeLoad) -> list[Any]:
    return [load.range_id, load.size_bytes, load.keys, load.ops_per_s, load.split_key]


def load_from_wire(wire: list[Any]) -> RangeLoad:
    range_id, size_bytes, keys, ops_per_s, split_key = wire
    return RangeLoad(range_id, size_bytes, keys, float(ops_per_s), split_key)


def command_to_wire(command: PdCommand) -> list[Any]:
    """``command`` as plain values for msgpack, tag first."""
    match command:
        case Bootstrap(descriptors, nodes, now_ms):
            return [CommandTag.BOOTSTRAP, [descriptor_to_wire(d) for d in descriptors],
                    [list(n) for n in nodes], now_ms]
        case AddNode(node, capacity_bytes, now_ms):
            return [CommandTag.ADD_NODE, node, capacity_bytes, now_ms]
        case RemoveNode(node):
            return [CommandTag.REMOVE_NODE, node]
        case FinishRemoval(node):
            return [CommandTag.FINISH_REMOVAL, node]
        case MarkNodeDown(node, since_ms):
            return [CommandTag.MARK_NODE_DOWN, node, since_ms]
        case StoreHeartbeat(node, now_ms, range_count, leader_count, used_bytes, led):
            return [CommandTag.STORE_HEARTBEAT, node, now_ms, range_count, leader_count,
                    used_bytes, [load_to_wire(x) for x in led]]
        case ReportReplicas(descriptor):
            return [CommandTag.REPORT_REPLICAS, descriptor_to_wire(descriptor)]
        case ReportSplit(left, right, now_ms):
            return [CommandTag.REPORT_SPLIT, descriptor_to_wire(left), descriptor_to_wire(right),
                    now_ms]
        case ReportMerge(merged, removed_range_id, now_ms):
            return [CommandTag.REPORT_MERGE, descriptor_to_wire(merged), removed_range_id,
                    now_ms]
        case ReportLeader(range_id, node, conf_version):
            return [CommandTag.REPORT_LEADER, range_id, node, conf_version]
        case SetScheduler(on):
            return [CommandTag.SET_SCHEDULER, on]
        case AllocRangeIds(count):
            return [CommandTag.ALLOC_RANGE_IDS, count]
    raise TypeError(f"not a placement command: {command!r}")


def command_from_wire(wire: list[Any]) -> PdCommand:
    """The command ``wire`` encodes; raises ValueError on an unknown tag."""
    tag, *rest = wire
    match CommandTag(tag):
        case CommandTag.BOOTSTRAP:
            descs, nodes, now_ms = rest
            return Bootstrap(tuple(descriptor_from_wire(d) for d in descs),
                             tuple((int(n), int(c)) for n, c in nodes), now_ms)
        case CommandTag.ADD_NODE:
            return AddNode(*rest)
        case CommandTag.REMOVE_NODE:
            return RemoveNode(*rest)
        case CommandTag.FINISH_REMOVAL:
            return FinishRemoval(*rest)
        case CommandTag.MARK_NODE_DOWN:
            return MarkNodeDown(*rest)
        case CommandTag.STORE_HEARTBEAT:
            node, now_ms, range_count, leader_count, used_bytes, led = rest
            return StoreHeartbeat(node, now_ms, range_count, leader_count, used_bytes,
                                  tuple(load_from_wire(x) for x in led))
        case CommandTag.REPORT_REPLICAS:
            return ReportReplicas(descriptor_from_wire(rest[0]))
        case CommandTag.REPORT_SPLIT:
            left, right, now_ms = rest
            return ReportSplit(descriptor_from_wire(left), descriptor_from_wire(right), now_ms)
        case CommandTag.REPORT_MERGE:
            merged, removed, now_ms = rest
            return ReportMerge(descriptor_from_wire(merged), removed, now_ms)
        case CommandTag.REPORT_LEADER:
            return ReportLeader(*rest)
        case CommandTag.SET_SCHEDULER:
            return SetScheduler(bool(rest[0]))
        case CommandTag.ALLOC_RANGE_IDS:
            return AllocRangeIds(*rest)
    raise ValueError(f"unknown placement command tag {tag}")  # pragma: no cover
