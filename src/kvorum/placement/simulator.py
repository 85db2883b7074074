"""A deterministic simulator of the placement driver and its scheduler alone.

Theory of operation: no Raft, no network, no keys — only the metadata. The simulator holds
the ranges' own descriptors (what each range's log has committed: the truth) and a
:class:`~kvorum.placement.pd_state.PdState` fed only through its commands, exactly as a PD
group would be. Time is simulated milliseconds. Every ``round_ms`` each running node sends
its heartbeat, the PD leader's :func:`~kvorum.placement.scheduler.housekeeping` commands are
applied, and the scheduler plans; its operators start at once and run their steps one after
another, each taking simulated time (a learner's snapshot takes ``size / bandwidth``, every
other step one commit, ``step_ms``). When a step finishes it is checked against the world as
it is then — the range's epoch is still the one the operator expects, the range still has a
live quorum to commit with, the node it adds or hands leadership to is running — and either
applied (to the truth, then reported to the PD state, which must accept the report) or the
operator is dropped, as a real range would refuse it.

After every applied step the simulator checks (:mod:`kvorum.placement.invariants`): the
truth's and the PD's descriptors each cover the keyspace exactly once; the step kept the
range's fault tolerance (no move leaves a healthy 3-voter range with fewer than 2 of 3 live
voters needed); a split or merge changed the epoch so a stale request is refused; and no
removed node holds a replica. A failed check raises :class:`PlacementViolation`.

Faults are scripted events at simulated times (:class:`NodeDown`, :class:`NodeUp`,
:class:`NodeJoin`, :class:`NodeRemove`, :class:`LoadShift`), or drawn from a seeded
``random.Random`` by :func:`random_events`. The same seed gives the same run.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from random import Random

from kvorum.core.shape import NodeId
from kvorum.kv.key_order import HashOrder
from kvorum.placement.commands import (
    AddNode,
    AllocRangeIds,
    Bootstrap,
    PdCommand,
    RangeLoad,
    RemoveNode,
    ReportLeader,
    ReportMerge,
    ReportReplicas,
    ReportSplit,
    StoreHeartbeat,
)
from kvorum.placement.cover import check_cover
from kvorum.placement.descriptor import (
    DescriptorError,
    Epoch,
    RangeDescriptor,
    RangeId,
    new_range,
    transfer_leader,
)
from kvorum.placement.invariants import check_stale_routing, check_tolerance
from kvorum.placement.operators import (
    AddLearner,
    MergeWith,
    Operator,
    SplitAt,
    Step,
    TransferLeader,
    apply_step,
)
from kvorum.placement.pd_state import NodeState, PdState
from kvorum.placement.scheduler import Scheduler, housekeeping
from kvorum.sharding import SLOT_COUNT


class PlacementViolation(AssertionError):
    """A placement invariant failed in the simulator."""


@dataclass(frozen=True, slots=True)
class NodeDown:
    node: NodeId


@dataclass(frozen=True, slots=True)
class NodeUp:
    node: NodeId


@dataclass(frozen=True, slots=True)
class NodeJoin:
    node: NodeId


@dataclass(frozen=True, slots=True)
class NodeRemove:
    node: NodeId


@dataclass(frozen=True, slots=True)
class LoadShift:
    """Range ``range_id``'s load becomes ``ops_per_s`` (if it still exists)."""

    range_id: RangeId
    ops_per_s: float


SimEvent = NodeDown | NodeUp | NodeJoin | NodeRemove | LoadShift


@dataclass(frozen=True, slots=True)
class SimConfig:
    nodes: int
    ranges: int
    replicas: int = 3
    range_bytes: int = 64 * 1024 * 1024
    """The mean range size; each range is drawn between half and one and a half of it."""
    ops_per_s: float = 100.0
    """Every range's load at the start."""
    round_ms: int = 1_000
    step_ms: int = 20
    snapshot_bytes_per_ms: int = 100_000
    """100 MB/s for a learner's snapshot."""
    initial_nodes: int | None = None
    """Place the first replicas on the first this-many nodes only (the rest join empty, as
    in a scale-out); None: on all."""
    report_loads: bool = True
    check_cover_every_step: bool = True
    capacity_bytes: int = 1 << 40


@dataclass(slots=True)
class SimCounters:
    rounds: int = 0
    rounds_with_operators: int = 0
    operators: int = 0
    operators_done: int = 0
    operators_dropped: int = 0
    steps: int = 0
    moves: int = 0
    """Learners added (each one copies a range)."""
    bytes_moved: int = 0
    leader_transfers: int = 0
    splits: int = 0
    merges: int = 0


@dataclass(slots=True)
class _Running:
    op: Operator
    expected: Epoch
    step_index: int = 0
    done_at_ms: int = 0


@dataclass(order=True, slots=True)
class _Timer:
    at_ms: int
    seq: int
    running: _Running | None = field(compare=False, default=None)
    event: SimEvent | None = field(compare=False, default=None)


class PlacementSim:
    """One simulated cluster; see the module docstring."""

    def __init__(self, config: SimConfig, scheduler: Scheduler, seed: int) -> None:
        self.config = config
        self.scheduler = scheduler
        self.rng = Random(seed)
        self.now_ms = 0
        self.pd = PdState()
        self.truth: dict[RangeId, RangeDescriptor] = {}
        self.sizes: dict[RangeId, int] = {}
        self.loads: dict[RangeId, float] = {}
        self.live: set[NodeId] = set(range(1, config.nodes + 1))
        self.running: list[_Running] = []
        self.counters = SimCounters()
        self.free_range_ids: list[RangeId] = []
        self._timers: list[_Timer] = []
        self._seq = 0
        self._next_round_ms = 0
        self._removed: set[NodeId] = set()
        self._bootstrap()

    # -- setting up ----------------------------------------------------------------------

    def _bootstrap(self) -> None:
        cfg = self.config
        placed = cfg.initial_nodes or cfg.nodes
        if placed < cfg.replicas:
            raise ValueError("fewer nodes than replicas")
        descs = []
        for index, span in enumerate(HashOrder.even_spans(cfg.ranges)):
            voters = [(index + k) % placed + 1 for k in range(cfg.replicas)]
            desc = new_range(index + 1, span.start, span.end, voters, leader_hint=voters[0])
            descs.append(desc)
            self.sizes[desc.range_id] = self.rng.randint(cfg.range_bytes // 2,
                                                         cfg.range_bytes * 3 // 2)
            self.loads[desc.range_id] = cfg.ops_per_s
        nodes = tuple((n, cfg.capacity_bytes) for n in range(1, cfg.nodes + 1))
        self._pd(Bootstrap(tuple(descs), nodes, 0))
        self.truth = {d.range_id: d for d in descs}

    def _pd(self, command: PdCommand) -> None:
        result = self.pd.apply(command)
        if not result.ok:
            raise PlacementViolation(f"the PD refused {type(command).__name__}: {result.detail}")

    def schedule(self, events: Sequence[tuple[int, SimEvent]]) -> None:
        """Fire ``events`` at their simulated times."""
        for at_ms, event in events:
            self._push(_Timer(at_ms, 0, event=event))

    def _push(self, timer: _Timer) -> None:
        self._seq += 1
        timer.seq = self._seq
        heapq.heappush(self._timers, timer)

    # -- running -------------------------------------------------------------------------

    def run(self, until_ms: int) -> None:
        """Simulate up to ``until_ms``."""
        while True:
            next_timer = self._timers[0].at_ms if self._timers else None
            if next_timer is not None and next_timer <= self._next_round_ms:
                if next_timer > until_ms:
                    break
                timer = heapq.heappop(self._timers)
                self.now_ms = max(self.now_ms, timer.at_ms)
                if timer.event is not None:
                    self._fire(timer.event)
                elif timer.running is not None:
                    self._finish_step(timer.running)
            else:
                if self._next_round_ms > until_ms:
                    break
                self.now_ms = self._next_round_ms
                self._round()
                self._next_round_ms += self.config.round_ms
        self.now_ms = max(self.now_ms, until_ms)

    def run_until_quiet(self, max_ms: int, quiet_rounds: int = 2) -> bool:
        """Run until ``quiet_rounds`` rounds in a row plan nothing with nothing running and
        no event pending; False if ``max_ms`` passed first."""
        quiet = 0
        while self.now_ms < max_ms:
            before = self.counters.operators
            self.run(self._next_round_ms)
            idle = (self.counters.operators == before and not self.running
                    and not self._timers)
            quiet = quiet + 1 if idle else 0
            if quiet >= quiet_rounds:
                return True
        return False

    def _round(self) -> None:
        self.counters.rounds += 1
        for beat in self._heartbeats():
            info = self.pd.nodes.get(beat.node)
            if info is not None and info.state is not NodeState.REMOVED:
                self._pd(beat)
        for command in housekeeping(self.pd, self.now_ms, self.scheduler.config):
            self._pd(command)
        self._check_removed_hold_nothing()
        if len(self.free_range_ids) < 16:
            result = self.pd.apply(AllocRangeIds(64))
            assert result.value is not None
            self.free_range_ids.extend(range(result.value, result.value + 64))
        planned = self.scheduler.plan(self.pd, [r.op for r in self.running], self.now_ms,
                                      self.free_range_ids)
        if planned:
            self.counters.rounds_with_operators += 1
        for op in planned:
            self.counters.operators += 1
            running = _Running(op, op.epoch)
            self.running.append(running)
            self._start_step(running)

    def _heartbeats(self) -> list[StoreHeartbeat]:
        """Every running node's heartbeat, gathered in one pass over the ranges."""
        counts: dict[NodeId, list[int]] = {n: [0, 0, 0] for n in self.live}
        led: dict[NodeId, list[RangeLoad]] = {n: [] for n in self.live}
        for desc in self.truth.values():
            size = self.sizes[desc.range_id]
            for node in desc.nodes():
                if node in counts:
                    counts[node][0] += 1
                    counts[node][2] += size
            leader = desc.leader_hint
            if leader in counts:
                counts[leader][1] += 1
                if self.config.report_loads:
                    led[leader].append(RangeLoad(desc.range_id, size, size // 100,
                                                 self.loads[desc.range_id], _split_key(desc)))
        return [StoreHeartbeat(node, self.now_ms, counts[node][0], counts[node][1],
                               counts[node][2], tuple(led[node]))
                for node in sorted(self.live)]

    def _fire(self, event: SimEvent) -> None:
        match event:
            case NodeDown(node):
                if node in self.live:
                    self.live.discard(node)
                    self._elect_away_from(node)
            case NodeUp(node):
                info = self.pd.nodes.get(node)
                if info is not None and info.state is not NodeState.REMOVED:
                    self.live.add(node)
            case NodeJoin(node):
                self._pd(AddNode(node, self.config.capacity_bytes, self.now_ms))
                self.live.add(node)
            case NodeRemove(node):
                self._pd(RemoveNode(node))
            case LoadShift(range_id, ops_per_s):
                if range_id in self.loads:
                    self.loads[range_id] = ops_per_s

    def _elect_away_from(self, node: NodeId) -> None:
        """The ranges ``node`` led elect a live voter, if they still have a live quorum."""
        for desc in list(self.truth.values()):
            if desc.leader_hint != node:
                continue
            live_voters = sorted(n for n in desc.voters() if n in self.live)
            if len(live_voters) > len(desc.voters()) // 2:
                self._set_truth([transfer_leader(desc, self.rng.choice(live_voters))])
                new = self.truth[desc.range_id]
                assert new.leader_hint is not None
                self._pd(ReportLeader(new.range_id, new.leader_hint, new.epoch.conf_version))

    # -- operator steps ------------------------------------------------------------------

    def _step_ms(self, running: _Running, step: Step) -> int:
        if isinstance(step, AddLearner):
            size = self.sizes.get(running.op.range_id, 0)
            return self.config.step_ms + size // self.config.snapshot_bytes_per_ms
        return self.config.step_ms

    def _start_step(self, running: _Running) -> None:
        step = running.op.steps[running.step_index]
        running.done_at_ms = self.now_ms + self._step_ms(running, step)
        self._push(_Timer(running.done_at_ms, 0, running=running))

    def _drop(self, running: _Running) -> None:
        self.running.remove(running)
        self.counters.operators_dropped += 1

    def _can_run(self, running: _Running, step: Step) -> bool:
        desc = self.truth.get(running.op.range_id)
        if desc is None or desc.epoch != running.expected:
            return False  # changed by someone else: the range refuses the stale step
        live_voters = sum(1 for n in desc.voters() if n in self.live)
        if live_voters <= len(desc.voters()) // 2:
            return False  # no quorum to commit the step with
        if isinstance(step, AddLearner | TransferLeader) and step.node not in self.live:
            return False
        return not (isinstance(step, MergeWith) and step.right_range_id not in self.truth)

    def _finish_step(self, running: _Running) -> None:
        op = running.op
        step = op.steps[running.step_index]
        if not self._can_run(running, step):
            self._drop(running)
            return
        try:
            effect = apply_step(self.truth, op.range_id, step)
        except DescriptorError:
            self._drop(running)
            return
        self.counters.steps += 1
        self._set_truth(effect.after, effect.removed_range_id)
        self._check_step(effect.before, effect.after, step)
        self._report(step, effect.after, effect.removed_range_id)
        if isinstance(step, SplitAt | MergeWith) or self.config.check_cover_every_step:
            problems = check_cover(self.pd.descriptors.values())
            if problems:
                raise PlacementViolation(f"at {self.now_ms} ms after {step}: PD: {problems}")
        mine = self.truth.get(op.range_id)
        if mine is not None:
            running.expected = mine.epoch
        running.step_index += 1
        if running.step_index == len(op.steps):
            self.running.remove(running)
            self.counters.operators_done += 1
        else:
            self._start_step(running)

    def _set_truth(self, after: Sequence[RangeDescriptor],
                   removed: RangeId | None = None) -> None:
        for desc in after:
            self.truth[desc.range_id] = desc
        if removed is not None:
            del self.truth[removed]

    def _report(self, step: Step, after: Sequence[RangeDescriptor],
                removed: RangeId | None) -> None:
        match step:
            case AddLearner():
                self.counters.moves += 1
                self.counters.bytes_moved += self.sizes[after[0].range_id]
                self._pd(ReportReplicas(after[0]))
            case TransferLeader():
                self.counters.leader_transfers += 1
                desc = after[0]
                assert desc.leader_hint is not None
                self._pd(ReportLeader(desc.range_id, desc.leader_hint, desc.epoch.conf_version))
            case SplitAt(_, new_id):
                self.counters.splits += 1
                left, right = after
                whole = self.sizes[left.range_id]
                self.sizes[left.range_id], self.sizes[new_id] = whole // 2, whole - whole // 2
                load = self.loads[left.range_id]
                self.loads[left.range_id] = self.loads[new_id] = load / 2
                self._pd(ReportSplit(left, right, self.now_ms))
            case MergeWith(right_id):
                self.counters.merges += 1
                assert removed is not None
                merged = after[0]
                self.sizes[merged.range_id] += self.sizes.pop(right_id)
                self.loads[merged.range_id] += self.loads.pop(right_id)
                self._pd(ReportMerge(merged, right_id, self.now_ms))
            case _:
                self._pd(ReportReplicas(after[0]))

    # -- checks --------------------------------------------------------------------------

    def _check_step(self, before: Sequence[RangeDescriptor],
                    after: Sequence[RangeDescriptor], step: Step) -> None:
        problems: list[str] = []
        reshaped = isinstance(step, SplitAt | MergeWith)
        if reshaped or self.config.check_cover_every_step:
            problems += [f"ranges: {p}" for p in check_cover(self.truth.values())]
        old = {d.range_id: d for d in before}
        for desc in after:
            prior = old.get(desc.range_id)
            if prior is not None:
                problems += check_tolerance(prior, desc, self.live, self.config.replicas)
        problems += check_stale_routing(before, after)
        removed = self._removed
        for desc in after:
            if desc.nodes() & removed:
                problems.append(f"{desc} has a replica on removed node(s) "
                                f"{sorted(desc.nodes() & removed)}")
        if problems:
            raise PlacementViolation(f"at {self.now_ms} ms after {step}: " + "; ".join(problems))

    def _check_removed_hold_nothing(self) -> None:
        self._removed = removed = {n for n, info in self.pd.nodes.items()
                                   if info.state is NodeState.REMOVED}
        if not removed:
            return
        for desc in self.truth.values():
            if desc.nodes() & removed:
                raise PlacementViolation(f"{desc} has a replica on removed node(s) "
                                         f"{sorted(desc.nodes() & removed)}")

    def check_fully_replicated(self) -> list[str]:
        """Problems with the final placement: every range has exactly ``replicas`` voters, no
        learner, all on running nodes that are not being removed."""
        usable = {n for n, info in self.pd.nodes.items()
                  if info.state is NodeState.UP and n in self.live}
        problems = []
        for desc in self.truth.values():
            if (len(desc.voters()) != self.config.replicas or desc.learners()
                    or not desc.nodes() <= usable):
                problems.append(f"{desc}: replicas {desc.replicas}")
        return problems


def _split_key(desc: RangeDescriptor) -> bytes | None:
    """A position in the middle of ``desc``'s slots (hash order), None if it has one slot."""
    first = HashOrder.slot_of(desc.start) if desc.start else 0
    end = SLOT_COUNT if desc.end is None else HashOrder.slot_of(desc.end)
    if end - first < 2:
        return None
    return HashOrder.slot_span((first + end) // 2, end).start


def random_events(rng: Random, nodes: int, ranges: int, duration_ms: int,
                  down_after_ms: int) -> list[tuple[int, SimEvent]]:
    """A seeded fault schedule over ``duration_ms``: one node at a time goes down (for less
    or more than ``down_after_ms``) and comes back, nodes join, a node is removed, and range
    loads shift. Never more than one node down at once, so every range keeps a quorum."""
    events: list[tuple[int, SimEvent]] = []
    at_ms = 0
    next_node = nodes + 1
    members = list(range(1, nodes + 1))
    while True:
        at_ms += rng.randint(duration_ms // 20, duration_ms // 6)
        if at_ms >= duration_ms:
            break
        kind = rng.random()
        if kind < 0.4:
            node = rng.choice(members)
            down_ms = rng.choice([down_after_ms // 3, down_after_ms * 2])
            events.append((at_ms, NodeDown(node)))
            events.append((at_ms + down_ms, NodeUp(node)))
            at_ms += down_ms
        elif kind < 0.6:
            events.append((at_ms, NodeJoin(next_node)))
            members.append(next_node)
            next_node += 1
        elif kind < 0.75 and len(members) > 4:
            node = rng.choice(members)
            members.remove(node)
            events.append((at_ms, NodeRemove(node)))
        else:
            for _ in range(3):
                events.append((at_ms, LoadShift(rng.randint(1, ranges),
                                                rng.choice([0.0, 5.0, 100.0, 5_000.0]))))
    return events
