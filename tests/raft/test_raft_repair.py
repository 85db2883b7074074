"""Protocol-aware repair in the Raft core: the fence and the leader's reset, with teeth.

The transcripts ``testdata/repair.txt`` and ``testdata/repair_safety.txt`` show the behaviour
step by step; these tests replay their stories with each test-only switch of
:class:`~kvorum.core.raft.UnsafeSwitches` that breaks repair, and check that the switch
makes a checker fail (a committed entry missing from a leader's log; a follower that is
never repaired), while the unbroken core passes the same checker.
"""

from __future__ import annotations

from pathlib import Path
from random import Random

import pytest

from kvorum.core.raft import (
    ConfState,
    Entry,
    HardState,
    RaftConfig,
    RaftCore,
    RepairFence,
    UnsafeSwitches,
)
from kvorum.core.raft.errors import LogInvariantError
from kvorum.core.raft.messages import AppendEntriesResponse
from kvorum.sim.interaction import InteractionEnv, parse_script

TESTDATA = Path(__file__).parent / "testdata"


def _stories(name: str) -> list[list[str]]:
    """The commands of each story (an ``init`` line starts one) of a transcript file."""
    stories: list[list[str]] = []
    for block in parse_script((TESTDATA / name).read_text()):
        if block.command.startswith("init"):
            stories.append([])
        stories[-1].append(block.command)
    return stories


def _env(init: str, unsafe: UnsafeSwitches) -> InteractionEnv:
    words = init.split()
    seed = next(int(w.split("=")[1]) for w in words if w.startswith("seed="))
    return InteractionEnv(int(words[1]), RaftConfig(unsafe=unsafe), seed)


def _leader_lacks_committed_entry(env: InteractionEnv) -> str | None:
    """Leader Completeness, checked against what nodes *applied* (so a committed entry
    that a damaged disk lost still counts): a leader's log must hold every applied entry."""
    leader = env.leader()
    if leader is None:
        return None
    core = env.core(leader)
    for node in env.nodes.values():
        for index, data in node.applied:
            if index <= core.snapshot_index or index > core.last_index:
                if index > core.last_index:
                    return f"leader {leader} lacks entry {index} applied by {node.node_id}"
                continue
            (entry,) = core.entries(index, index + 1)
            if entry.data != data:
                return (
                    f"leader {leader} has {entry.data!r} at {index}, where node "
                    f"{node.node_id} applied {data!r}"
                )
    return None


def _run_checking_completeness(story: list[str], unsafe: UnsafeSwitches) -> str | None:
    env = _env(story[0], unsafe)
    for command in story[1:]:
        try:
            env.run_command(command)
        except LogInvariantError as exc:  # a follower asked to drop a committed entry
            return f"{command}: {exc}"
        violation = _leader_lacks_committed_entry(env)
        if violation is not None:
            return f"{command}: {violation}"
    return None


def test_the_fence_keeps_a_committed_entry_through_an_election() -> None:
    story = _stories("repair_safety.txt")[0]
    assert _run_checking_completeness(story, UnsafeSwitches()) is None


def test_teeth_a_damaged_server_that_votes_elects_a_leader_without_a_committed_entry() -> None:
    story = _stories("repair_safety.txt")[0]
    violation = _run_checking_completeness(story, UnsafeSwitches(vote_while_repairing=True))
    assert violation is not None
    assert "lacks entry 2" in violation or "at 2" in violation, violation


def _fenced_at_end_of_first_story(unsafe: UnsafeSwitches) -> bool:
    """Story 1 of repair.txt (the leader's heartbeat, the notice, the re-sent entries): is
    node 2 still fenced at its end?"""
    story = _stories("repair.txt")[0]
    env = _env(story[0], unsafe)
    for command in story[1:]:
        env.run_command(command)
    return env.core(2).fenced


def test_the_leader_lowers_match_and_repairs_the_follower() -> None:
    assert not _fenced_at_end_of_first_story(UnsafeSwitches())


def test_teeth_a_leader_that_ignores_the_lost_flag_never_repairs_the_follower() -> None:
    assert _fenced_at_end_of_first_story(UnsafeSwitches(ignore_lost_entries=True))


def test_a_fenced_follower_neither_campaigns_nor_grants_and_says_what_it_waits_for() -> None:
    env = InteractionEnv(3, seed=4)
    env.campaign(1)
    env.stabilize()
    env.propose(1, b"a", b"b")
    env.stabilize()
    env.crash(1)
    env.damage(3, 2)
    core = env.core(3)
    assert core.fenced
    report = core.status().repair
    assert report is not None and not report.completed
    assert report.describe(7).startswith("repairing entries 2-3 of group 7")
    assert core.status().to_dict()["repair"]["acknowledged_index"] == 3
    sent_before = len(env.sent)
    env.tick(3, 5 * env.config.election_timeout_ticks)
    sent = env.sent[sent_before:]
    # Only notices: never a RequestVote, and at most one notice per voter per timeout.
    assert sent and all(
        isinstance(m, AppendEntriesResponse) and m.lost_entries and m.match_index == 1
        for m in sent
    )
    assert core.role.value == "follower" and core.term == 1


def test_a_fence_already_satisfied_by_the_log_is_lifted_at_start() -> None:
    # E.g. a crash after the lost entries were fetched again but before storage recorded it.
    entries = [Entry(1, 1), Entry(1, 2), Entry(2, 3)]
    conf = ConfState(frozenset({1, 2, 3}))
    for fence in (RepairFence(2, 3, 2), RepairFence(2, 5, 1)):  # by index, by newer term
        core = RaftCore(
            1, conf, RaftConfig(), Random(1), hard_state=HardState(2), entries=entries,
            repair_fence=fence,
        )
        report = core.repair
        assert report is not None and report.completed and not core.fenced
    core = RaftCore(
        1, conf, RaftConfig(), Random(1), hard_state=HardState(2), entries=entries,
        repair_fence=RepairFence(2, 4, 2),
    )
    assert core.fenced


@pytest.mark.parametrize("lost_from, acknowledged", [(0, 3), (4, 3)])
def test_a_fence_must_name_a_real_range(lost_from: int, acknowledged: int) -> None:
    with pytest.raises(ValueError, match="lost_from"):
        RepairFence(lost_from, acknowledged, 1)


def test_the_lifting_rule() -> None:
    fence = RepairFence(lost_from=5, acknowledged_index=9, fence_term=3)
    assert not fence.satisfied_by(8, 3)
    assert fence.satisfied_by(9, 3)
    assert fence.satisfied_by(6, 4)  # a newer leader's entry: its log holds what counted
    # A candidate's log must prove more: a long log of an older term proves nothing.
    assert fence.satisfied_by(20, 2) and not fence.covered_by_candidate(20, 2)
    assert not fence.covered_by_candidate(8, 3)
    assert fence.covered_by_candidate(9, 3) and fence.covered_by_candidate(1, 4)
