"""The placement simulator: random faults over many seeds break no invariant and end fully
replicated; its checks have teeth (removing before adding, or a split that does not bump the
epoch, is caught); the same seed gives the same run."""

from __future__ import annotations

from functools import cache
from random import Random

import pytest

from kvorum.placement import descriptor, operators
from kvorum.placement.scheduler import Scheduler, SchedulerConfig
from kvorum.placement.simulator import (
    LoadShift,
    NodeUp,
    PlacementSim,
    PlacementViolation,
    SimConfig,
    SimCounters,
    random_events,
)
from kvorum.sharding import RangePolicy

DOWN_AFTER_MS = 30_000
POLICY = RangePolicy(split_size_bytes=40_000_000, split_load_ops=2_000.0,
                     merge_size_bytes=30_000_000, merge_load_ops=10.0, cooldown_ms=20_000)


SEEDS = range(25)


def run_seed(seed: int, duration_ms: int = 400_000) -> PlacementSim:
    rng = Random(seed)
    nodes = rng.randint(5, 8)
    ranges = rng.randint(10, 40)
    config = SchedulerConfig(down_after_ms=DOWN_AFTER_MS, heartbeat_timeout_ms=3_000,
                             policy=POLICY, max_moves_per_node=rng.randint(1, 4))
    sim_config = SimConfig(nodes=nodes, ranges=ranges, range_bytes=16_000_000,
                           initial_nodes=rng.choice([None, nodes - 1]))
    sim = PlacementSim(sim_config, Scheduler(config), seed=seed)
    events = random_events(rng, nodes, ranges, duration_ms, DOWN_AFTER_MS)
    sim.schedule(events)
    sim.run(until_ms=duration_ms)
    # Every node that went down comes back; the cluster then settles.
    sim.schedule([(sim.now_ms + 1, NodeUp(n)) for n in range(1, nodes + 30)])
    sim.run(until_ms=sim.now_ms + DOWN_AFTER_MS)
    assert sim.run_until_quiet(max_ms=sim.now_ms + 3_000_000), f"seed {seed} never settled"
    return sim


cached_run = cache(run_seed)  # the tests below only read a finished run


@pytest.mark.parametrize("seed", SEEDS)
def test_random_faults_break_nothing_and_end_fully_replicated(seed: int) -> None:
    sim = cached_run(seed)
    assert sim.check_fully_replicated() == []


def test_the_random_runs_exercise_every_kind_of_change() -> None:
    total = SimCounters()
    for seed in SEEDS:
        counters = cached_run(seed).counters
        for name in ("moves", "leader_transfers", "splits", "merges", "operators_dropped"):
            setattr(total, name, getattr(total, name) + getattr(counters, name))
    assert total.moves and total.leader_transfers and total.splits and total.merges
    assert total.operators_dropped  # some operators met a world that had changed


def test_same_seed_same_run() -> None:
    one, two = run_seed(3), run_seed(3)
    assert one.counters == two.counters
    assert one.truth == two.truth
    assert one.pd.snapshot() == two.pd.snapshot()


def balancing_sim() -> PlacementSim:
    config = SchedulerConfig(down_after_ms=DOWN_AFTER_MS, policy=POLICY)
    return PlacementSim(SimConfig(nodes=6, ranges=20, initial_nodes=3, range_bytes=16_000_000),
                        Scheduler(config), seed=1)


def test_removing_before_adding_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operators, "UNSAFE_REMOVE_BEFORE_ADD", True)
    with pytest.raises(PlacementViolation, match="tolerance fell from 1 to 0"):
        balancing_sim().run_until_quiet(max_ms=600_000)


def test_a_split_without_an_epoch_bump_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = balancing_sim()
    assert sim.run_until_quiet(max_ms=600_000)
    monkeypatch.setattr(descriptor, "UNSAFE_SKIP_EPOCH_BUMP", True)
    sim.schedule([(sim.now_ms + 1, LoadShift(4, 5_000.0))])
    with pytest.raises(PlacementViolation, match="stale routing not caught"):
        sim.run_until_quiet(max_ms=sim.now_ms + 600_000)


def test_without_the_switches_the_same_runs_pass() -> None:
    sim = balancing_sim()
    assert sim.run_until_quiet(max_ms=600_000)
    sim.schedule([(sim.now_ms + 1, LoadShift(4, 5_000.0))])
    assert sim.run_until_quiet(max_ms=sim.now_ms + 600_000)
    assert sim.counters.splits >= 1
