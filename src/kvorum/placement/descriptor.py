"""A range's descriptor: its id, its bounds, its epoch, its replicas — and the pure changes to it.

Theory of operation: the keyspace (positions in the cluster's key order, see
:mod:`kvorum.kv.key_order`) is cut into ranges ``[start, end)``; each range is one Raft group
and is described by a :class:`RangeDescriptor`. A descriptor is a value: every change
(:func:`split`, :func:`merge`, :func:`add_learner`, :func:`promote_learner`,
:func:`remove_replica`) checks its preconditions and returns new descriptors, or raises
:class:`DescriptorError` naming what did not fit.

The epoch has two numbers, as TiKV's region epoch does (:class:`Epoch`): ``version`` changes
on every split and merge (the range's *bounds* changed), ``conf_version`` on every replica
change (its *membership* changed). Two numbers rather than one because they guard different
things: a client request routed by key is stale only if the bounds changed, so it is checked
against ``version`` alone and a replica move makes no client retry; a membership change or
an operator step planned on one membership is stale if either changed, so it is checked
against both. Either number only grows, so "newer" is well defined, and a merged range takes
``max`` of both ranges' numbers plus one so it is newer than each of them.

:func:`check_epoch` is the test a range applies before serving: a request (or a proposed
change) carrying an older epoch than the range's current one is refused with
:class:`StaleEpochError`, so a request routed by a descriptor from before a split can never
be served for a key the range no longer holds. The leader hint is not part of the epoch:
leadership moves often and only makes a request take one extra hop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import IntEnum

from kvorum.core.shape import NodeId
from kvorum.kv.key_order import KeySpan

RangeId = int
"""Ranges are named by integers the placement driver allocates; never reused."""

UNSAFE_SKIP_EPOCH_BUMP = False
"""TEST ONLY: split and merge leave ``version`` unchanged, so stale requests pass
:func:`check_epoch` — the bug the simulator's stale-routing check must catch."""


class DescriptorError(ValueError):
    """A change does not fit the descriptor(s) it was asked of."""


class StaleEpochError(DescriptorError):
    """A request or change carries an epoch older than the range's current one."""


class Role(IntEnum):
    """A replica's part in its range's Raft group. The numbers are part of the wire format."""

    VOTER = 0
    LEARNER = 1


@dataclass(frozen=True, slots=True, order=True)
class Epoch:
    """How many times a range's membership (``conf_version``) and bounds (``version``) have
    changed."""

    conf_version: int = 1
    version: int = 1


@dataclass(frozen=True, slots=True)
class Replica:
    node: NodeId
    role: Role = Role.VOTER


@dataclass(frozen=True, slots=True)
class RangeDescriptor:
    """Range ``range_id`` holds positions ``start <= p < end`` (``end`` None: to the end)."""

    range_id: RangeId
    start: bytes
    end: bytes | None
    epoch: Epoch
    replicas: tuple[Replica, ...]
    leader_hint: NodeId | None = None
    # Derived from `replicas` once, because schedulers ask for them in every loop.
    _nodes: frozenset[NodeId] = field(init=False, repr=False, compare=False)
    _voters: frozenset[NodeId] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        KeySpan(self.start, self.end)  # raises on an empty or inverted span
        nodes = [r.node for r in self.replicas]
        if len(set(nodes)) != len(nodes):
            raise DescriptorError(f"range {self.range_id}: a node holds two replicas: {nodes}")
        object.__setattr__(self, "_nodes", frozenset(nodes))
        object.__setattr__(self, "_voters", frozenset(
            r.node for r in self.replicas if r.role is Role.VOTER))

    @property
    def span(self) -> KeySpan:
        return KeySpan(self.start, self.end)

    def contains(self, position: bytes) -> bool:
        return self.start <= position and (self.end is None or position < self.end)

    def nodes(self) -> frozenset[NodeId]:
        return self._nodes

    def voters(self) -> frozenset[NodeId]:
        return self._voters

    def learners(self) -> frozenset[NodeId]:
        return self._nodes - self._voters

    def has_learners(self) -> bool:
        return len(self._nodes) != len(self._voters)

    def role_of(self, node: NodeId) -> Role | None:
        for r in self.replicas:
            if r.node == node:
                return r.role
        return None

    def __str__(self) -> str:
        end = "-" if self.end is None else self.end.hex()
        return (f"r{self.range_id}[{self.start.hex() or '-'}, {end}) "
                f"v{self.epoch.version}c{self.epoch.conf_version}")


def new_range(range_id: RangeId, start: bytes, end: bytes | None,
              voters: Iterable[NodeId], leader_hint: NodeId | None = None) -> RangeDescriptor:
    """A fresh range at epoch (1, 1) with ``voters`` (in the given order)."""
    replicas = tuple(Replica(n) for n in voters)
    return RangeDescriptor(range_id, start, end, Epoch(), replicas, leader_hint)


def check_epoch(request_epoch: Epoch, current: Epoch, *, bounds_only: bool = False) -> None:
    """Raise :class:`StaleEpochError` unless ``request_epoch`` is the range's ``current``
    epoch. ``bounds_only``: a key-routed request, stale only when ``version`` differs."""
    if request_epoch.version != current.version or (
        not bounds_only and request_epoch.conf_version != current.conf_version
    ):
        raise StaleEpochError(f"stale epoch {request_epoch}, the range is at {current}")


def _bumped_version(version: int) -> int:
    return version if UNSAFE_SKIP_EPOCH_BUMP else version + 1


def split(desc: RangeDescriptor, at: bytes, new_range_id: RangeId, *,
          expected: Epoch | None = None) -> tuple[RangeDescriptor, RangeDescriptor]:
    """Cut ``desc`` into ``[start, at)`` (keeping its id) and ``[at, end)`` (``new_range_id``,
    same replicas and leader hint). Both get ``version + 1``."""
    if expected is not None:
        check_epoch(expected, desc.epoch)
    if new_range_id == desc.range_id:
        raise DescriptorError(f"split of r{desc.range_id} needs a new range id")
    if at == desc.start or not desc.contains(at):
        raise DescriptorError(f"cannot split {desc} at {at.hex()}: not strictly inside")
    epoch = replace(desc.epoch, version=_bumped_version(desc.epoch.version))
    left = replace(desc, end=at, epoch=epoch)
    right = replace(desc, range_id=new_range_id, start=at, epoch=epoch)
    return left, right


def merge(left: RangeDescriptor, right: RangeDescriptor, *,
          expected_left: Epoch | None = None,
          expected_right: Epoch | None = None) -> RangeDescriptor:
    """Join ``left`` with its right neighbour ``right`` under ``left``'s id. Both must have the
    same voters and no learners (every replica of the merged range holds both halves' data)."""
    if expected_left is not None:
        check_epoch(expected_left, left.epoch)
    if expected_right is not None:
        check_epoch(expected_right, right.epoch)
    if left.end is None or left.end != right.start:
        raise DescriptorError(f"cannot merge {left} and {right}: not adjacent neighbours")
    if left.learners() or right.learners() or left.voters() != right.voters():
        raise DescriptorError(
            f"cannot merge {left} and {right}: replicas differ "
            f"({sorted(left.nodes())} vs {sorted(right.nodes())}) or a learner is present")
    version = max(left.epoch.version, right.epoch.version)
    conf_version = max(left.epoch.conf_version, right.epoch.conf_version)
    epoch = Epoch(conf_version, _bumped_version(version))
    return replace(left, end=right.end, epoch=epoch)


def _with_replicas(desc: RangeDescriptor, replicas: tuple[Replica, ...]) -> RangeDescriptor:
    epoch = replace(desc.epoch, conf_version=desc.epoch.conf_version + 1)
    leader = desc.leader_hint if desc.leader_hint in {r.node for r in replicas} else None
    return replace(desc, replicas=replicas, epoch=epoch, leader_hint=leader)


def add_learner(desc: RangeDescriptor, node: NodeId, *,
                expected: Epoch | None = None) -> RangeDescriptor:
    """``desc`` with a new learner on ``node`` (which holds no replica of it yet)."""
    if expected is not None:
        check_epoch(expected, desc.epoch)
    if desc.role_of(node) is not None:
        raise DescriptorError(f"{desc}: node {node} already holds a replica")
    return _with_replicas(desc, (*desc.replicas, Replica(node, Role.LEARNER)))


def promote_learner(desc: RangeDescriptor, node: NodeId, *,
                    expected: Epoch | None = None) -> RangeDescriptor:
    """``desc`` with its learner on ``node`` made a voter."""
    if expected is not None:
        check_epoch(expected, desc.epoch)
    if desc.role_of(node) is not Role.LEARNER:
        raise DescriptorError(f"{desc}: node {node} is not a learner")
    replicas = tuple(Replica(r.node) if r.node == node else r for r in desc.replicas)
    return _with_replicas(desc, replicas)


def remove_replica(desc: RangeDescriptor, node: NodeId, *,
                   expected: Epoch | None = None) -> RangeDescriptor:
    """``desc`` without its replica on ``node``; never its last voter."""
    if expected is not None:
        check_epoch(expected, desc.epoch)
    role = desc.role_of(node)
    if role is None:
        raise DescriptorError(f"{desc}: node {node} holds no replica")
    if role is Role.VOTER and len(desc.voters()) == 1:
        raise DescriptorError(f"{desc}: cannot remove the last voter (node {node})")
    return _with_replicas(desc, tuple(r for r in desc.replicas if r.node != node))


def transfer_leader(desc: RangeDescriptor, node: NodeId) -> RangeDescriptor:
    """``desc`` with its leader hint on ``node``, a voter. The epoch does not change."""
    if desc.role_of(node) is not Role.VOTER:
        raise DescriptorError(f"{desc}: node {node} is not a voter, cannot lead")
    return replace(desc, leader_hint=node)


DescriptorWire = tuple[int, bytes, bytes | None, int, int, list[tuple[int, int]], int | None]
"""A descriptor as msgpack-able values: (id, start, end, conf_version, version,
[(node, role), ...], leader_hint)."""


def descriptor_to_wire(desc: RangeDescriptor) -> DescriptorWire:
    return (desc.range_id, desc.start, desc.end, desc.epoch.conf_version, desc.epoch.version,
            [(r.node, int(r.role)) for r in desc.replicas], desc.leader_hint)


def descriptor_from_wire(wire: DescriptorWire | list[object]) -> RangeDescriptor:
    range_id, start, end, conf_version, version, replicas, leader = wire
    assert isinstance(range_id, int) and isinstance(start, bytes)
    assert end is None or isinstance(end, bytes)
    assert isinstance(conf_version, int) and isinstance(version, int)
    assert isinstance(replicas, list | tuple)
    assert leader is None or isinstance(leader, int)
    return RangeDescriptor(range_id, start, end, Epoch(conf_version, version),
                           tuple(Replica(int(n), Role(int(role))) for n, role in replicas),
                           leader)
