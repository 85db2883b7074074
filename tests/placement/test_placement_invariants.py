"""The per-step checks on their own: fault tolerance and stale routing."""

from __future__ import annotations

from kvorum.placement.descriptor import (
    add_learner,
    merge,
    new_range,
    promote_learner,
    remove_replica,
    split,
    transfer_leader,
)
from kvorum.placement.invariants import check_stale_routing, check_tolerance, tolerance

RANGE = new_range(1, b"", None, [1, 2, 3], leader_hint=1)
ALL = {1, 2, 3, 4}


def test_adding_first_keeps_tolerance_removing_first_loses_it() -> None:
    learner = add_learner(RANGE, 4)
    promoted = promote_learner(learner, 4)
    assert [tolerance(d, ALL) for d in (RANGE, learner, promoted)] == [1, 1, 1]
    assert check_tolerance(RANGE, learner, ALL, 3) == []
    assert check_tolerance(learner, promoted, ALL, 3) == []
    assert check_tolerance(promoted, remove_replica(promoted, 1), ALL, 3) == []
    problems = check_tolerance(RANGE, remove_replica(RANGE, 1), ALL, 3)
    assert len(problems) == 1 and "from 1 to 0" in problems[0]


def test_a_range_short_of_a_voter_may_be_repaired_at_tolerance_zero() -> None:
    live = {2, 3, 4}  # node 1 is dead
    promoted = promote_learner(add_learner(RANGE, 4), 4)
    assert tolerance(RANGE, live) == 0 and tolerance(promoted, live) == 0
    assert check_tolerance(RANGE, promoted, live, 3) == []
    assert check_tolerance(promoted, remove_replica(promoted, 1), live, 3) == []
    # ...but not lose its quorum.
    assert check_tolerance(RANGE, remove_replica(RANGE, 2), live, 3) != []


def test_stale_routing_is_flagged_only_when_bounds_change_without_a_new_version() -> None:
    left, right = split(RANGE, b"m", 2)
    assert check_stale_routing([RANGE], [left, right]) == []
    assert check_stale_routing([left, right], [merge(left, right)]) == []
    assert check_stale_routing([RANGE], [transfer_leader(RANGE, 2)]) == []
    unbumped = left.__class__(1, b"", b"m", RANGE.epoch, RANGE.replicas, 1)
    problems = check_stale_routing([RANGE], [unbumped])
    assert len(problems) == 1 and "stale routing not caught" in problems[0]
