"""The scheduler: from the placement driver's state, the operators to run next.

Theory of operation: the PD leader calls :meth:`Scheduler.plan` every round with the PD state,
the operators still running and the time; it answers new operators (data, see
:mod:`kvorum.placement.operators`) and never changes anything itself. Like PD's checkers and
schedulers and CockroachDB's allocator, it works through a fixed order of concerns, each
taking what the per-round budget leaves:

1. **repair** — a range with a replica on a node down for at least ``down_after_ms`` moves
   that replica to a healthy node (learner, promote, remove the dead one); a range with too
   few voters gains one, with too many loses one, and a leftover learner (from an operator
   that was dropped half-way) is removed;
2. **drain** — every replica on a node being removed moves to a healthy node;
3. **split and merge** — :class:`kvorum.sharding.RangePolicy` proposes splits of big or hot
   ranges (a hot range's new half is led from another voter at once, so the halves' load
   lands on two nodes) and merges of small cold neighbours after its cool-down; two
   neighbours merge only once their voters are on the same nodes, so first the right one's
   replicas are moved onto the left one's nodes;
4. **replica balance** — while the fullest healthy node holds more than ``(1 + tolerance)``
   times the mean replica count, or the emptiest fewer than ``(1 - tolerance)`` times it, a
   replica moves from the fullest to the emptiest (smallest range first: fewest bytes);
5. **leader balance** — the same for leaders, by leader transfers among a range's voters.

Budgets keep a cluster from being flooded: at most ``max_moves_per_node`` running replica
changes touch any node, at most ``max_operators_per_round`` new operators per round, and a
range with an operator running is left alone. Ranges with a replica on an unhealthy node are
touched only by repair, so balancing never moves a range that is already short of a voter.

With the scheduler off (SHARD-3's static scheduling) nothing is planned except draining the
nodes an operator removed, because ``kvorum node remove`` is itself the operator's command to
move their replicas; manual ``split``/``merge``/``move`` are built directly with the helpers
in :mod:`kvorum.placement.operators`. :func:`housekeeping` answers the PD commands the leader
should propose itself: marking nodes down whose heartbeats stopped, and finishing the removal
of drained nodes. Splits need fresh range ids: the caller passes ids it reserved with
``AllocRangeIds`` in ``free_range_ids``, and the scheduler pops what it uses.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kvorum.core.shape import NodeId
from kvorum.placement.commands import FinishRemoval, MarkNodeDown, PdCommand
from kvorum.placement.descriptor import RangeDescriptor, RangeId
from kvorum.placement.operators import (
    Operator,
    add_replica,
    merge_ranges,
    move_replica,
    remove_replica,
    split_range,
    transfer_leader,
)
from kvorum.placement.pd_state import NodeState, PdState
from kvorum.sharding import MergeProposal, RangePolicy, RangeStats, SplitProposal


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    replicas: int = 3
    down_after_ms: int = 30 * 60 * 1000
    """A node down this long has its replicas re-made elsewhere (TiKV's max-store-down-time)."""
    heartbeat_timeout_ms: int = 20_000
    """:func:`housekeeping` marks a node down after this long without a heartbeat."""
    max_moves_per_node: int = 4
    max_operators_per_round: int = 256
    replica_tolerance: float = 0.05
    leader_tolerance: float = 0.05
    policy: RangePolicy | None = None
    """None: no automatic splits or merges."""

    def __post_init__(self) -> None:
        if self.replicas < 1 or self.max_moves_per_node < 1 or self.max_operators_per_round < 1:
            raise ValueError("replicas and the budgets must be >= 1")
        if not 0 <= self.replica_tolerance < 1 or not 0 <= self.leader_tolerance < 1:
            raise ValueError("tolerances are fractions in [0, 1)")


def housekeeping(state: PdState, now_ms: int, config: SchedulerConfig) -> list[PdCommand]:
    """PD commands the leader should propose now: nodes whose heartbeats stopped are marked
    down; draining nodes that hold nothing finish their removal."""
    commands: list[PdCommand] = []
    holding: set[NodeId] = set()
    for desc in state.descriptors.values():
        holding.update(desc.nodes())
    for info in state.nodes.values():
        if info.state is NodeState.REMOVED:
            continue
        if (info.down_since_ms is None
                and now_ms - info.last_heartbeat_ms >= config.heartbeat_timeout_ms):
            commands.append(MarkNodeDown(info.node, info.last_heartbeat_ms))
        if info.state is NodeState.DRAINING and info.node not in holding:
            commands.append(FinishRemoval(info.node))
    return commands


@dataclass(slots=True)
class _Round:
    """What one planning round has used so far."""

    config: SchedulerConfig
    moves_on: dict[NodeId, int]
    busy: set[RangeId]
    planned: list[Operator] = field(default_factory=list)

    def full(self) -> bool:
        return len(self.planned) >= self.config.max_operators_per_round

    def can_move(self, nodes: Iterable[NodeId]) -> bool:
        return all(self.moves_on[n] < self.config.max_moves_per_node for n in nodes)

    def add(self, op: Operator, moving: Iterable[NodeId] | None = None) -> None:
        self.planned.append(op)
        self.busy.update(op.touched_ranges())
        for node in op.moving_nodes() if moving is None else moving:
            self.moves_on[node] += 1


class Scheduler:
    """Plans operators; holds only its configuration."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config

    def plan(self, state: PdState, running: Sequence[Operator], now_ms: int,
             free_range_ids: list[RangeId] | None = None) -> list[Operator]:
        """New operators for this round (see the module docstring)."""
        moves_on: dict[NodeId, int] = defaultdict(int)
        busy: set[RangeId] = set()
        for op in running:
            busy.update(op.touched_ranges())
            for node in op.moving_nodes():
                moves_on[node] += 1
        rnd = _Round(self.config, moves_on, busy)
        dead, healthy = self._node_health(state, now_ms)
        counts = dict.fromkeys(healthy, 0)
        # One pass sorts the ranges: those that need repair or sit on a draining node, and
        # the sound ones, which alone are balanced.
        unsound: list[RangeDescriptor] = []
        sound: list[RangeDescriptor] = []
        want = self.config.replicas
        for desc in state.ranges_in_order():
            nodes = desc.nodes()
            for node in nodes:
                if node in counts:
                    counts[node] += 1
            if len(desc.voters()) == want and not desc.has_learners() and nodes <= healthy:
                sound.append(desc)
            else:
                unsound.append(desc)
        if state.scheduler_on:
            self._repair(unsound, rnd, dead, healthy, counts)
        self._drain(state, unsound, rnd, healthy, counts)
        if state.scheduler_on:
            if self.config.policy is not None:
                self._split_and_merge(state, rnd, now_ms, healthy=healthy, counts=counts,
                                      free_range_ids=free_range_ids)
            self._balance_replicas(state, sound, rnd, healthy, counts)
            self._balance_leaders(sound, rnd, healthy)
        return rnd.planned

    # -- what the nodes are --------------------------------------------------------------

    def _node_health(self, state: PdState, now_ms: int) -> tuple[set[NodeId], set[NodeId]]:
        """(nodes down long enough to re-replicate, nodes that may take new replicas)."""
        dead = {n.node for n in state.nodes.values()
                if n.down_since_ms is not None and n.state is not NodeState.REMOVED
                and now_ms - n.down_since_ms >= self.config.down_after_ms}
        healthy = {n.node for n in state.nodes.values() if n.takes_replicas}
        return dead, healthy

    def _target(self, desc: RangeDescriptor, rnd: _Round, healthy: set[NodeId],
                counts: dict[NodeId, int]) -> NodeId | None:
        """The healthy node with the fewest replicas that holds none of ``desc`` and has move
        budget left (ties: lowest id, so plans are deterministic)."""
        holders = desc.nodes()
        best: NodeId | None = None
        for node in healthy:
            if node in holders or not rnd.can_move((node,)):
                continue
            if best is None or (counts[node], node) < (counts[best], best):
                best = node
        return best

    def _move(self, desc: RangeDescriptor, from_node: NodeId, rnd: _Round, *,
              healthy: set[NodeId], counts: dict[NodeId, int], reason: str,
              from_is_dead: bool) -> bool:
        to_node = self._target(desc, rnd, healthy, counts)
        if to_node is None or (not from_is_dead and not rnd.can_move((from_node,))):
            return False
        op = move_replica(desc, from_node, to_node, reason)
        # A dead source does no work in a move, so it spends no budget.
        rnd.add(op, [to_node] if from_is_dead else [to_node, from_node])
        counts[to_node] += 1
        if from_node in counts:
            counts[from_node] -= 1
        return True

    # -- 1. repair, 2. drain ---------------------------------------------------------------

    def _repair(self, unsound: list[RangeDescriptor], rnd: _Round, dead: set[NodeId],
                healthy: set[NodeId], counts: dict[NodeId, int]) -> None:
        want = self.config.replicas
        for desc in unsound:
            if rnd.full():
                return
            if desc.range_id in rnd.busy:
                continue
            voters = desc.voters()
            on_dead = sorted(voters & dead) if dead else []
            if desc.has_learners():
                node = min(desc.learners())
                if rnd.can_move((node,)) or node in dead:
                    rnd.add(remove_replica(desc, node, "a learner left over"), [])
            elif on_dead and len(voters) <= want:
                self._move(desc, on_dead[0], rnd, healthy=healthy, counts=counts,
                           reason=f"node {on_dead[0]} is down", from_is_dead=True)
            elif len(voters) < want:
                to_node = self._target(desc, rnd, healthy, counts)
                if to_node is not None:
                    rnd.add(add_replica(desc, to_node, f"{len(voters)} of {want} voters"))
                    counts[to_node] += 1
            elif len(voters) > want:
                node = on_dead[0] if on_dead else max(voters, key=lambda n: (
                    counts.get(n, 0), n))
                rnd.add(remove_replica(desc, node, f"{len(voters)} of {want} voters"), [])
                if node in counts:
                    counts[node] -= 1

    def _drain(self, state: PdState, unsound: list[RangeDescriptor], rnd: _Round,
               healthy: set[NodeId], counts: dict[NodeId, int]) -> None:
        draining = {n.node for n in state.nodes.values() if n.state is NodeState.DRAINING}
        if not draining:
            return
        for desc in unsound:
            if rnd.full():
                return
            if desc.range_id in rnd.busy:
                continue
            leaving = sorted(desc.nodes() & draining)
            if leaving:
                is_dead = state.nodes[leaving[0]].down_since_ms is not None
                self._move(desc, leaving[0], rnd, healthy=healthy, counts=counts,
                           reason=f"node {leaving[0]} is being removed", from_is_dead=is_dead)

    # -- 3. split and merge --------------------------------------------------------------

    def _split_and_merge(self, state: PdState, rnd: _Round, now_ms: int, *,
                         healthy: set[NodeId], counts: dict[NodeId, int],
                         free_range_ids: list[RangeId] | None) -> None:
        policy = self.config.policy
        if policy is None or state.range_map is None:
            return
        stats = {state.descriptors[rid].start: RangeStats(load.size_bytes, load.ops_per_s,
                                                          load.split_key)
                 for rid, load in state.range_loads.items() if rid in state.descriptors}
        leaders = self._leader_counts(state, healthy)
        when_ms = max(now_ms, state.now_ms)
        for proposal in policy.propose(state.range_map, stats, when_ms):
            if rnd.full():
                return
            if isinstance(proposal, SplitProposal):
                desc = state.range_of(proposal.start)
                if desc.range_id in rnd.busy or not free_range_ids:
                    continue
                new_leader = None
                if proposal.reason.startswith("hot"):
                    others = [n for n in desc.voters() - {desc.leader_hint} if n in healthy]
                    if others:
                        new_leader = min(others, key=lambda n: (leaders.get(n, 0), n))
                rnd.add(split_range(desc, proposal.at, free_range_ids.pop(0),
                                    proposal.reason, new_leader))
            else:
                self._plan_merge(state, rnd, proposal, healthy, counts)

    def _plan_merge(self, state: PdState, rnd: _Round, proposal: MergeProposal,
                    healthy: set[NodeId], counts: dict[NodeId, int]) -> None:
        left = state.range_of(proposal.left_start)
        right = state.range_of(proposal.right_start)
        if left.range_id in rnd.busy or right.range_id in rnd.busy:
            return
        # Reserved for the merge: were the balancer to move either meanwhile, it could undo
        # the lining up below and the two would chase each other for ever.
        rnd.busy.update((left.range_id, right.range_id))
        if not (left.nodes() | right.nodes()) <= healthy:
            return  # repair first
        if left.voters() == right.voters() and not left.learners() and not right.learners():
            rnd.add(merge_ranges(left, right, proposal.reason))
            return
        # Line the right range's replicas up with the left one's, one move at a time.
        extra = sorted(right.nodes() - left.nodes())
        missing = sorted(left.nodes() - right.nodes())
        if extra and missing and rnd.can_move((extra[0], missing[0])):
            rnd.add(move_replica(right, extra[0], missing[0],
                                 f"to merge into r{left.range_id}"))
            counts[missing[0]] += 1
            counts[extra[0]] -= 1

    # -- 4. replica balance, 5. leader balance ---------------------------------------------

    def _balance_replicas(self, state: PdState, sound: list[RangeDescriptor], rnd: _Round,
                          healthy: set[NodeId], counts: dict[NodeId, int]) -> None:
        if len(healthy) < 2:
            return
        tolerance = self.config.replica_tolerance
        mean = sum(counts.values()) / len(counts)
        high, low = mean * (1 + tolerance), mean * (1 - tolerance)
        loads = state.range_loads
        by_size = sorted(sound, key=lambda d: (
            loads[d.range_id].size_bytes if d.range_id in loads else 0, d.range_id))
        on_node: dict[NodeId, list[RangeDescriptor]] = defaultdict(list)
        for desc in by_size:  # so each node's list is smallest first
            for node in desc.nodes():
                on_node[node].append(desc)
        sources = set(healthy)
        while not rnd.full() and sources:
            src = max(sources, key=lambda n: (counts[n], -n))
            dst_pool = [n for n in healthy if n != src and rnd.can_move((n,))]
            if not dst_pool or not rnd.can_move((src,)):
                sources.discard(src)
                continue
            dst = min(dst_pool, key=lambda n: (counts[n], n))
            if counts[src] - counts[dst] <= 1 or (counts[src] <= high and counts[dst] >= low):
                return
            chosen = next((d for d in on_node[src] if d.range_id not in rnd.busy
                           and dst not in d.nodes()), None)
            if chosen is None:
                sources.discard(src)
                continue
            rnd.add(move_replica(chosen, src, dst,
                                 f"replicas: node {src} has {counts[src]}, node {dst} "
                                 f"{counts[dst]}, mean {mean:.1f}"))
            counts[src] -= 1
            counts[dst] += 1

    @staticmethod
    def _leader_counts(state: PdState, healthy: set[NodeId]) -> dict[NodeId, int]:
        leaders = dict.fromkeys(healthy, 0)
        for desc in state.descriptors.values():
            if desc.leader_hint in leaders:
                leaders[desc.leader_hint] += 1
        return leaders

    def _balance_leaders(self, sound: list[RangeDescriptor], rnd: _Round,
                         healthy: set[NodeId]) -> None:
        leaders = dict.fromkeys(healthy, 0)
        for desc in sound:
            if desc.leader_hint in leaders:
                leaders[desc.leader_hint] += 1
        if len(leaders) < 2:
            return
        tolerance = self.config.leader_tolerance
        mean = sum(leaders.values()) / len(leaders)
        high, low = mean * (1 + tolerance), mean * (1 - tolerance)
        led: dict[NodeId, list[RangeDescriptor]] = defaultdict(list)
        for desc in sound:
            if desc.leader_hint in leaders:
                led[desc.leader_hint].append(desc)
        sources = set(leaders)
        while not rnd.full() and sources:
            src = max(sources, key=lambda n: (leaders[n], -n))
            if leaders[src] <= high and min(leaders.values()) >= low:
                return
            fewest = min(leaders.values())
            best: tuple[int, NodeId, RangeDescriptor] | None = None
            for desc in led[src]:
                if desc.range_id in rnd.busy:
                    continue
                for node in desc.voters():
                    if node != src and node in leaders and (
                            best is None or (leaders[node], node) < best[:2]):
                        best = (leaders[node], node, desc)
                if best is not None and best[0] == fewest:
                    break  # cannot do better
            if best is None or leaders[src] - best[0] <= 1:
                sources.discard(src)
                continue
            _, dst, desc = best
            rnd.add(transfer_leader(desc, dst, f"leaders: node {src} has {leaders[src]}, "
                                               f"node {dst} {leaders[dst]}, mean {mean:.1f}"))
            leaders[src] -= 1
            leaders[dst] += 1
