"""Operators: what the scheduler asks a range to do, as a short list of typed steps.

Theory of operation: an :class:`Operator` names a range, the epoch the scheduler saw when it
planned (a step is refused by the range if the epoch moved on — someone else changed the range
meanwhile — and the operator is then dropped), a reason, and its steps, run one after another
by the range's leader. The steps are a small closed set; each is one entry in the range's own
Raft log (or, for a leader transfer, one Raft round):

* :class:`AddLearner` — a non-voting replica on a node; it catches up through a snapshot, so
  this is the step that copies the range's bytes;
* :class:`PromoteLearner` — the caught-up learner becomes a voter;
* :class:`RemoveReplica` — a replica leaves the group;
* :class:`TransferLeader` — leadership moves to a voter (of the operator's range, or of
  ``range_id`` when given: the new half of a hot split);
* :class:`SplitAt` — the range splits at a position, its right half becoming ``new_range_id``;
* :class:`MergeWith` — the range absorbs its right neighbour ``right_range_id``.

A *move* of a replica from node A to node B is add learner B, promote B, (transfer the
leadership away from A if A leads), remove A. These are single-server membership changes,
and we choose them over joint consensus: with one voter added or removed at a time, the old
and new majorities always intersect, so each step is safe on its own (the Raft core already
refuses a second change until the first is committed); and adding before removing keeps a
range of 3 healthy voters able to lose one more node at every step (3 voters, then 4 of which
3 make a quorum, then 3 again). Joint consensus would only be needed to swap voters
*atomically* — when placement constraints (zones) make the 4-voter middle state unsafe, as
CockroachDB found — and kvorum has no zones yet. Removing before adding would leave 2 voters,
both needed: one more failure and the range is stuck; :data:`UNSAFE_REMOVE_BEFORE_ADD` builds
moves that way so the simulator can prove it notices.

:func:`apply_step` is the pure effect of a step on the descriptors (what the range's log
commits), for the simulator and for tests; the runtime runs the same steps as Raft
membership changes and split/merge entries and reports the results to the placement driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from kvorum.core.shape import NodeId
from kvorum.placement import descriptor as desc_ops
from kvorum.placement.descriptor import Epoch, RangeDescriptor, RangeId

UNSAFE_REMOVE_BEFORE_ADD = False
"""TEST ONLY: moves remove the old replica before adding the new one."""


@dataclass(frozen=True, slots=True)
class AddLearner:
    node: NodeId


@dataclass(frozen=True, slots=True)
class PromoteLearner:
    node: NodeId


@dataclass(frozen=True, slots=True)
class RemoveReplica:
    node: NodeId


@dataclass(frozen=True, slots=True)
class TransferLeader:
    node: NodeId
    range_id: RangeId | None = None
    """None: the operator's range; else another range (the right half of a split)."""


@dataclass(frozen=True, slots=True)
class SplitAt:
    at: bytes
    new_range_id: RangeId


@dataclass(frozen=True, slots=True)
class MergeWith:
    right_range_id: RangeId


Step = AddLearner | PromoteLearner | RemoveReplica | TransferLeader | SplitAt | MergeWith


class OperatorKind(Enum):
    MOVE_REPLICA = "move"
    ADD_REPLICA = "add"
    REMOVE_REPLICA = "remove"
    TRANSFER_LEADER = "transfer-leader"
    SPLIT = "split"
    MERGE = "merge"


@dataclass(frozen=True, slots=True)
class Operator:
    """Steps for range ``range_id``, planned at ``epoch``."""

    kind: OperatorKind
    range_id: RangeId
    epoch: Epoch
    steps: tuple[Step, ...]
    reason: str

    def moving_nodes(self) -> frozenset[NodeId]:
        """The nodes whose replica set this operator changes (for per-node move limits)."""
        return frozenset(s.node for s in self.steps if isinstance(s, AddLearner | RemoveReplica))

    def touched_ranges(self) -> frozenset[RangeId]:
        """Every range this operator changes: no other operator may run on them meanwhile."""
        ids = {self.range_id}
        for s in self.steps:
            if isinstance(s, MergeWith):
                ids.add(s.right_range_id)
            elif isinstance(s, SplitAt):
                ids.add(s.new_range_id)
        return frozenset(ids)


def _away_from(desc: RangeDescriptor, node: NodeId, prefer: NodeId | None) -> NodeId | None:
    """A voter other than ``node`` to lead instead: ``prefer`` if it is a voter."""
    if prefer is not None and prefer != node:
        return prefer
    others = sorted(desc.voters() - {node})
    return others[0] if others else None


def move_replica(desc: RangeDescriptor, from_node: NodeId, to_node: NodeId,
                 reason: str) -> Operator:
    """Move ``desc``'s replica from ``from_node`` to ``to_node``: add a learner, promote it,
    hand leadership over if ``from_node`` leads, remove the old replica."""
    adding: tuple[Step, ...] = (AddLearner(to_node), PromoteLearner(to_node))
    removing: tuple[Step, ...] = (RemoveReplica(from_node),)
    if desc.leader_hint == from_node:
        removing = (TransferLeader(to_node), *removing)
    if UNSAFE_REMOVE_BEFORE_ADD:
        if desc.leader_hint == from_node:
            other = _away_from(desc, from_node, None)
            removing = ((TransferLeader(other),) if other is not None else ()) + (
                RemoveReplica(from_node),)
        steps = removing + adding
    else:
        steps = adding + removing
    return Operator(OperatorKind.MOVE_REPLICA, desc.range_id, desc.epoch, steps, reason)


def add_replica(desc: RangeDescriptor, to_node: NodeId, reason: str) -> Operator:
    return Operator(OperatorKind.ADD_REPLICA, desc.range_id, desc.epoch,
                    (AddLearner(to_node), PromoteLearner(to_node)), reason)


def remove_replica(desc: RangeDescriptor, node: NodeId, reason: str) -> Operator:
    steps: tuple[Step, ...] = (RemoveReplica(node),)
    if desc.leader_hint == node:
        other = _away_from(desc, node, None)
        if other is not None:
            steps = (TransferLeader(other), *steps)
    return Operator(OperatorKind.REMOVE_REPLICA, desc.range_id, desc.epoch, steps, reason)


def transfer_leader(desc: RangeDescriptor, to_node: NodeId, reason: str) -> Operator:
    return Operator(OperatorKind.TRANSFER_LEADER, desc.range_id, desc.epoch,
                    (TransferLeader(to_node),), reason)


def split_range(desc: RangeDescriptor, at: bytes, new_range_id: RangeId, reason: str,
                new_leader: NodeId | None = None) -> Operator:
    """Split ``desc`` at ``at``; ``new_leader``: hand the right half's leadership there (a
    hot range's halves then serve from two nodes at once)."""
    steps: tuple[Step, ...] = (SplitAt(at, new_range_id),)
    if new_leader is not None:
        steps = (*steps, TransferLeader(new_leader, new_range_id))
    return Operator(OperatorKind.SPLIT, desc.range_id, desc.epoch, steps, reason)


def merge_ranges(left: RangeDescriptor, right: RangeDescriptor, reason: str) -> Operator:
    return Operator(OperatorKind.MERGE, left.range_id, left.epoch,
                    (MergeWith(right.range_id),), reason)


@dataclass(frozen=True, slots=True)
class StepEffect:
    """What a step committed: descriptors that changed (new values, old values), and the id of
    a range that ceased to exist (a merge's right half)."""

    before: tuple[RangeDescriptor, ...]
    after: tuple[RangeDescriptor, ...]
    removed_range_id: RangeId | None = None


def apply_step(descriptors: Mapping[RangeId, RangeDescriptor], range_id: RangeId,
               step: Step) -> StepEffect:
    """The effect of ``step`` of an operator on range ``range_id``; raises
    :class:`~kvorum.placement.descriptor.DescriptorError` if it does not fit."""
    desc = descriptors.get(range_id)
    if desc is None:
        raise desc_ops.DescriptorError(f"range {range_id} no longer exists")
    match step:
        case AddLearner(node):
            return StepEffect((desc,), (desc_ops.add_learner(desc, node),))
        case PromoteLearner(node):
            return StepEffect((desc,), (desc_ops.promote_learner(desc, node),))
        case RemoveReplica(node):
            return StepEffect((desc,), (desc_ops.remove_replica(desc, node),))
        case TransferLeader(node, other_id):
            target = desc if other_id is None else descriptors.get(other_id)
            if target is None:
                raise desc_ops.DescriptorError(f"range {other_id} no longer exists")
            return StepEffect((target,), (desc_ops.transfer_leader(target, node),))
        case SplitAt(at, new_range_id):
            if new_range_id in descriptors:
                raise desc_ops.DescriptorError(f"range id {new_range_id} is taken")
            return StepEffect((desc,), desc_ops.split(desc, at, new_range_id))
        case MergeWith(right_id):
            right = descriptors.get(right_id)
            if right is None:
                raise desc_ops.DescriptorError(f"range {right_id} no longer exists")
            return StepEffect((desc, right), (desc_ops.merge(desc, right),), right_id)
    raise TypeError(f"not a step: {step!r}")  # pragma: no cover

