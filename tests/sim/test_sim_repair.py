"""Repair from peers under the simulator's faults: a crash that also rots synced log entries.

The fault is injected from here, without a fault kind of its own in the simulator, so the
nodes run on the in-memory logs (``storage="memory"``): every crash of a simulated node also
loses, with the node's own seeded randomness, the synced entries of one of its groups from a
random index on — what the WAL's repair leaves after a damaged batch
(:meth:`MemoryNodeLog.damage`: the log cut back, the group fenced). The node restarts
fenced, and the simulator's checkers (Election Safety, Log Matching, Leader Completeness,
State Machine Safety, no committed entry lost, linearizability, liveness) must all hold.
With either half of repair switched off — the damaged node votes anyway, or the leader
ignores its report — they must fail.

Entries at or before the log's last membership change are never lost here, so the repaired
log still knows the group's voters (open_core judges by them whether repair is possible). And
a group rots on one node at a time, as crashes strike a minority: two servers that both lost
a committed entry, with the one intact copy on a server whose log ends in an older term than
theirs, cannot tell that copy is complete, and their group waits for an operator (the
documented limit of repair).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kvorum.core.raft import EntryKind, UnsafeSwitches
from kvorum.sim.raft import RaftSimOptions, parse_faults, run_seed
from kvorum.sim.raft.node import SimNode
from kvorum.storage.memory import MemoryNodeLog

ALL = parse_faults("all")


@pytest.fixture
def crashes_rot_the_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    damaged: list[str] = []
    crash = SimNode.crash

    def fenced_elsewhere(node: SimNode, gid: int) -> bool:
        for other in node.cluster.nodes.values():
            if other is node:
                continue
            if other.node_log.group(gid).repair_fence is not None:
                return True
            if other.up and other.core(gid).fenced:
                return True
        return False

    def crash_and_rot(node: SimNode) -> None:
        crash(node)
        log = node.node_log
        assert isinstance(log, MemoryNodeLog)
        gid = node.rng.choice(log.group_ids())
        if fenced_elsewhere(node, gid):
            return
        group = log.group(gid)
        first, last = group.first_index, group.last_index
        entries = group.entries(first, last + 1)
        conf = max((e.index for e in entries if e.kind is EntryKind.CONF_CHANGE), default=0)
        start = max(first, conf + 1)
        if start > last:
            return
        lost_from = node.rng.randrange(start, last + 1)
        fence = log.damage(gid, lost_from, f"rot in n{node.id}'s WAL")
        line = f"n{node.id} ROT g{gid}: entries {fence.lost_from}..{last} lost"
        node.cluster.trace(line)
        damaged.append(line)

    monkeypatch.setattr(SimNode, "crash", crash_and_rot)
    yield damaged


def _first_violation(options: RaftSimOptions, seeds: range) -> tuple[int, str] | None:
    for seed in seeds:
        result = run_seed(seed, options)
        if not result.ok:
            assert result.violation is not None
            return seed, result.violation
    return None


@pytest.mark.parametrize(("nodes", "groups"), [(3, 1), (5, 1), (3, 3)])
def test_rotten_logs_are_repaired_without_violations(
    crashes_rot_the_log: list[str], nodes: int, groups: int
) -> None:
    options = RaftSimOptions(
        nodes=nodes, groups=groups, faults=ALL, storage="memory", trace=False
    )
    assert _first_violation(options, range(40)) is None
    assert len(crashes_rot_the_log) > 40, "the fault must have struck often"


def test_teeth_a_rotten_node_that_votes_breaks_safety(crashes_rot_the_log: list[str]) -> None:
    options = RaftSimOptions(
        nodes=3,
        faults=ALL,
        storage="memory",
        trace=False,
        unsafe=UnsafeSwitches(vote_while_repairing=True),
    )
    found = _first_violation(options, range(300))
    assert found is not None, "voting with a rotten log went unnoticed in 300 seeds"
    seed, violation = found
    assert not violation.startswith("Liveness"), (seed, violation)  # safety, not progress


def test_teeth_a_leader_that_ignores_the_report_never_repairs(
    crashes_rot_the_log: list[str],
) -> None:
    options = RaftSimOptions(
        nodes=3,
        faults=ALL,
        storage="memory",
        trace=False,
        unsafe=UnsafeSwitches(ignore_lost_entries=True),
    )
    found = _first_violation(options, range(100))
    assert found is not None, "a fenced node that is never repaired went unnoticed"
    seed, violation = found
    assert violation.startswith("Liveness"), (seed, violation)
