"""The scheduler: it balances replicas and leaders, repairs only after the down time, drains
removed nodes, splits hot ranges and spreads them, merges cold ones after the cool-down,
respects its budgets, and with the scheduler off moves nothing."""

from __future__ import annotations

from collections import Counter

from kvorum.placement.commands import MarkNodeDown, RemoveNode, SetScheduler
from kvorum.placement.operators import AddLearner, OperatorKind, RemoveReplica, TransferLeader
from kvorum.placement.pd_state import NodeState
from kvorum.placement.scheduler import Scheduler, SchedulerConfig, housekeeping
from kvorum.placement.simulator import LoadShift, NodeDown, PlacementSim, SimConfig
from kvorum.sharding import RangePolicy

DOWN_AFTER_MS = 60_000


def make_sim(*, nodes: int = 6, ranges: int = 24, initial_nodes: int | None = 3,
             policy: RangePolicy | None = None, range_bytes: int = 4_000_000,
             max_moves_per_node: int = 4, seed: int = 7) -> PlacementSim:
    config = SchedulerConfig(down_after_ms=DOWN_AFTER_MS, heartbeat_timeout_ms=5_000,
                             policy=policy, max_moves_per_node=max_moves_per_node)
    sim_config = SimConfig(nodes=nodes, ranges=ranges, initial_nodes=initial_nodes,
                           range_bytes=range_bytes)
    return PlacementSim(sim_config, Scheduler(config), seed=seed)


def replica_counts(sim: PlacementSim) -> Counter[int]:
    counts: Counter[int] = Counter()
    for desc in sim.truth.values():
        counts.update(desc.nodes())
    return counts


def leader_counts(sim: PlacementSim) -> Counter[int]:
    return Counter(d.leader_hint for d in sim.truth.values() if d.leader_hint is not None)


def test_converges_to_balanced_replicas_and_leaders() -> None:
    sim = make_sim()
    before = replica_counts(sim)
    assert before[4] == before[5] == before[6] == 0  # three nodes joined empty
    assert sim.run_until_quiet(max_ms=600_000)
    replicas, leaders = replica_counts(sim), leader_counts(sim)
    assert set(replicas) == set(range(1, 7))
    assert max(replicas.values()) - min(replicas.values()) <= 1  # mean 12: within 10%
    assert max(leaders.values()) - min(leaders.values()) <= 1  # mean 4
    assert sim.check_fully_replicated() == []
    assert sim.counters.moves >= 36 - 1  # the new nodes needed about half the replicas
    # Quiet means quiet: another planning round proposes nothing.
    assert sim.scheduler.plan(sim.pd, [], sim.now_ms, [100]) == []


def test_scheduler_off_moves_nothing_even_with_a_node_down_for_long() -> None:
    sim = make_sim()
    sim.pd.apply(SetScheduler(on=False))
    truth = dict(sim.truth)
    sim.schedule([(1_000, NodeDown(1))])
    sim.run(until_ms=DOWN_AFTER_MS * 3)
    assert sim.counters.operators == 0
    assert sim.truth.keys() == truth.keys()
    assert all(sim.truth[i].nodes() == truth[i].nodes() for i in truth)
    assert sim.pd.nodes[1].down_since_ms is not None  # it was noticed, just not acted on


def test_scheduler_off_still_drains_a_node_the_operator_removes() -> None:
    sim = make_sim(initial_nodes=None)
    sim.pd.apply(SetScheduler(on=False))
    sim.pd.apply(RemoveNode(2))
    assert sim.run_until_quiet(max_ms=600_000)
    assert sim.pd.nodes[2].state is NodeState.REMOVED
    assert 2 not in replica_counts(sim)
    assert sim.counters.moves == 12  # exactly its replicas, nothing else moved


def test_repairs_a_down_node_only_after_the_down_time() -> None:
    sim = make_sim(initial_nodes=None)
    assert sim.run_until_quiet(max_ms=600_000)
    held = {d.range_id for d in sim.truth.values() if 3 in d.nodes()}
    moves = sim.counters.moves
    sim.schedule([(sim.now_ms + 1_000, NodeDown(3))])
    sim.run(until_ms=sim.now_ms + DOWN_AFTER_MS // 2)
    assert sim.counters.moves == moves  # down, but not for long enough
    assert sim.pd.nodes[3].down_since_ms is not None
    sim.run(until_ms=sim.now_ms + DOWN_AFTER_MS)  # quiet while it waits: run past the wait
    assert sim.run_until_quiet(max_ms=sim.now_ms + 10 * DOWN_AFTER_MS)
    assert sim.counters.moves - moves == len(held)
    assert all(3 not in d.nodes() and len(d.voters()) == 3 for d in sim.truth.values())


def test_budget_limits_moves_per_node_and_operators_per_round() -> None:
    sim = make_sim(nodes=10, ranges=60, initial_nodes=4, max_moves_per_node=1)
    ops = sim.scheduler.plan(sim.pd, [], 0, [])
    per_node = Counter(n for op in ops for n in op.moving_nodes())
    assert ops and max(per_node.values()) == 1
    tight = Scheduler(SchedulerConfig(max_operators_per_round=3))
    assert len(tight.plan(sim.pd, [], 0, [])) == 3
    # Operators already running spend the budget and keep their ranges to themselves.
    again = sim.scheduler.plan(sim.pd, ops, 0, [])
    busy = {op.range_id for op in ops}
    assert all(op.range_id not in busy for op in again)
    again_per_node = Counter(n for op in [*ops, *again] for n in op.moving_nodes())
    assert max(again_per_node.values()) == 1


def test_a_move_adds_before_it_removes_and_hands_leadership_over() -> None:
    sim = make_sim()
    ops = sim.scheduler.plan(sim.pd, [], 0, [])
    moves = [op for op in ops if op.kind is OperatorKind.MOVE_REPLICA]
    assert moves
    for op in moves:
        kinds = [type(s) for s in op.steps]
        assert kinds.index(AddLearner) < kinds.index(RemoveReplica)
        removed = next(s.node for s in op.steps if isinstance(s, RemoveReplica))
        if sim.truth[op.range_id].leader_hint == removed:
            assert kinds.index(TransferLeader) < kinds.index(RemoveReplica)


def test_housekeeping_marks_silent_nodes_down_and_finishes_drained_ones() -> None:
    sim = make_sim(initial_nodes=None)
    config = sim.scheduler.config
    assert housekeeping(sim.pd, 1_000, config) == []
    commands = housekeeping(sim.pd, config.heartbeat_timeout_ms, config)
    assert {c.node for c in commands if isinstance(c, MarkNodeDown)} == set(range(1, 7))


POLICY = RangePolicy(split_size_bytes=1 << 40, split_load_ops=1_000.0,
                     merge_size_bytes=20_000, merge_load_ops=10.0, cooldown_ms=30_000)


def test_splits_a_hot_range_and_leads_its_halves_from_two_nodes() -> None:
    sim = make_sim(initial_nodes=None, policy=POLICY)
    assert sim.run_until_quiet(max_ms=600_000)
    assert sim.counters.splits == 0
    hot = sim.truth[5]
    sim.schedule([(sim.now_ms + 1, LoadShift(5, 1_500.0))])
    assert sim.run_until_quiet(max_ms=sim.now_ms + 600_000)
    assert sim.counters.splits == 1
    left = sim.truth[5]
    right = next(d for d in sim.truth.values() if d.start == left.end)
    assert (left.start, right.end) == (hot.start, hot.end)
    assert left.leader_hint != right.leader_hint


def test_merges_cold_small_neighbours_only_after_the_cool_down() -> None:
    sim = make_sim(nodes=5, ranges=8, initial_nodes=None, policy=POLICY, range_bytes=8_000)
    sim.schedule([(1, LoadShift(i, 0.0)) for i in range(1, 9)])
    sim.run(until_ms=POLICY.cooldown_ms - 1_000)
    assert sim.counters.merges == 0
    assert sim.run_until_quiet(max_ms=2_000_000)
    # Sizes are 4-12 kB and merges stop at 20 kB together: fewer, bigger ranges.
    assert sim.counters.merges >= 2
    assert len(sim.truth) == 8 - sim.counters.merges
    assert sim.check_fully_replicated() == []
