"""The PD state machine: deterministic apply of every command, reports accepted only when
newer, the cover kept, snapshots and commands round-tripping through msgpack."""

from __future__ import annotations

import msgpack
import pytest

from kvorum.placement.commands import (
    AddNode,
    AllocRangeIds,
    Bootstrap,
    FinishRemoval,
    MarkNodeDown,
    PdCommand,
    RangeLoad,
    RemoveNode,
    ReportLeader,
    ReportMerge,
    ReportReplicas,
    ReportSplit,
    SetScheduler,
    StoreHeartbeat,
    command_from_wire,
    command_to_wire,
)
from kvorum.placement.cover import check_cover
from kvorum.placement.descriptor import (
    add_learner,
    merge,
    new_range,
    promote_learner,
    remove_replica,
    split,
)
from kvorum.placement.pd_state import NodeState, PdState

NODES = ((1, 100), (2, 100), (3, 100), (4, 100))
FIRST = new_range(1, b"", None, [1, 2, 3], leader_hint=1)


def booted() -> PdState:
    state = PdState()
    assert state.apply(Bootstrap((FIRST,), NODES, now_ms=10)).ok
    return state


def node_state(state: PdState, node: int) -> NodeState:
    return state.nodes[node].state  # read afresh: each apply may change it


def test_bootstrap_once_and_only_with_a_cover() -> None:
    state = booted()
    assert state.next_range_id == 2
    assert not state.apply(Bootstrap((FIRST,), NODES, 10)).ok
    left, _ = split(FIRST, b"m", 2)
    assert not PdState().apply(Bootstrap((left,), NODES, 0)).ok  # a gap
    assert not PdState().apply(Bootstrap((FIRST,), ((1, 100),), 0)).ok  # unknown nodes


def test_split_report_needs_an_allocated_id_and_a_newer_epoch() -> None:
    state = booted()
    left, right = split(FIRST, b"m", 2)
    refused = state.apply(ReportSplit(left, right, 20))
    assert not refused.ok and "allocated" in refused.detail
    assert state.apply(AllocRangeIds(5)).value == 2
    assert state.next_range_id == 7
    assert state.apply(ReportSplit(left, right, 20)).ok
    assert check_cover(state.descriptors.values()) == []
    assert state.range_of(b"z").range_id == 2
    assert state.range_of(b"a").range_id == 1
    # A duplicate (a retry after a PD leader change) is refused and changes nothing.
    assert not state.apply(ReportSplit(left, right, 30)).ok
    assert check_cover(state.descriptors.values()) == []


def test_split_report_that_does_not_cut_the_known_range_is_refused() -> None:
    state = booted()
    state.apply(AllocRangeIds(5))
    left, right = split(FIRST, b"m", 2)
    other_left, other_right = split(FIRST, b"p", 3)
    assert state.apply(ReportSplit(left, right, 20)).ok
    assert not state.apply(ReportSplit(other_left, other_right, 30)).ok
    assert check_cover(state.descriptors.values()) == []


def test_merge_report_joins_neighbours_and_refuses_stale() -> None:
    state = booted()
    state.apply(AllocRangeIds(5))
    left, right = split(FIRST, b"m", 2)
    state.apply(ReportSplit(left, right, 20))
    merged = merge(left, right)
    assert not state.apply(ReportMerge(merged, 3, 30)).ok  # not the right neighbour
    assert state.apply(ReportMerge(merged, 2, 30)).ok
    assert list(state.descriptors) == [1]
    assert check_cover(state.descriptors.values()) == []
    assert not state.apply(ReportMerge(merged, 2, 40)).ok


def test_replica_reports_need_a_newer_conf_version() -> None:
    state = booted()
    learner = add_learner(FIRST, 4)
    assert not state.apply(ReportReplicas(FIRST)).ok  # not newer
    assert state.apply(ReportReplicas(learner)).ok
    promoted = promote_learner(learner, 4)
    removed = remove_replica(promoted, 1)
    assert state.apply(ReportReplicas(removed)).ok  # skipping a report is fine: newer wins
    assert not state.apply(ReportReplicas(promoted)).ok  # late: older than what PD holds
    assert state.descriptors[1].voters() == {2, 3, 4}
    assert not state.apply(ReportReplicas(add_learner(removed, 9))).ok  # unknown node


def test_leader_reports_and_heartbeats_move_the_leader_hint() -> None:
    state = booted()
    assert state.apply(ReportLeader(1, 2, FIRST.epoch.conf_version)).ok
    assert state.descriptors[1].leader_hint == 2
    assert not state.apply(ReportLeader(1, 4, FIRST.epoch.conf_version)).ok  # not a voter
    assert not state.apply(ReportLeader(1, 3, 99)).ok  # another membership
    load = RangeLoad(1, size_bytes=500, keys=5, ops_per_s=12.5, split_key=b"k")
    assert state.apply(StoreHeartbeat(3, 50, 1, 1, 500, (load,))).ok
    assert state.descriptors[1].leader_hint == 3
    assert state.range_loads[1] == load
    assert state.node_stats[3].used_bytes == 500


def test_nodes_down_heartbeat_drain_and_removal() -> None:
    state = booted()
    assert state.apply(MarkNodeDown(2, since_ms=40)).ok
    assert state.nodes[2].down_since_ms == 40 and not state.nodes[2].takes_replicas
    assert state.apply(MarkNodeDown(2, since_ms=90)).ok
    assert state.nodes[2].down_since_ms == 40  # down since the first time
    assert state.apply(StoreHeartbeat(2, 100, 1, 0, 0, ())).ok
    back = state.nodes[2]
    assert back.down_since_ms is None and back.last_heartbeat_ms == 100
    assert not state.apply(FinishRemoval(4)).ok  # not draining
    assert state.apply(RemoveNode(3)).ok
    assert node_state(state, 3) is NodeState.DRAINING
    refused = state.apply(FinishRemoval(3))
    assert not refused.ok and "still holds" in refused.detail
    moved = remove_replica(promote_learner(add_learner(FIRST, 4), 4), 3)
    assert state.apply(ReportReplicas(moved)).ok
    assert state.apply(FinishRemoval(3)).ok
    assert node_state(state, 3) is NodeState.REMOVED
    assert not state.apply(AddNode(3, 100, 200)).ok  # ids are never reused
    assert not state.apply(StoreHeartbeat(3, 200, 0, 0, 0, ())).ok
    assert state.apply(AddNode(5, 100, 200)).ok


def test_the_clock_never_goes_backwards() -> None:
    state = booted()
    state.apply(StoreHeartbeat(1, 500, 1, 1, 0, ()))
    state.apply(StoreHeartbeat(2, 300, 1, 0, 0, ()))  # a new PD leader's clock is behind
    assert state.now_ms == 500
    state.apply(AllocRangeIds(1))
    left, right = split(FIRST, b"m", 2)
    assert state.apply(ReportSplit(left, right, 100)).ok  # would be "backwards" for RangeMap
    assert state.range_map is not None
    assert {r.since_ms for r in state.range_map.ranges()} == {500}


def every_command() -> list[PdCommand]:
    left, right = split(FIRST, b"m", 2)
    return [
        Bootstrap((FIRST,), NODES, 10),
        AddNode(5, 100, 20),
        AllocRangeIds(3),
        StoreHeartbeat(1, 30, 1, 1, 64, (RangeLoad(1, 64, 2, 3.5, b"m"),)),
        ReportSplit(left, right, 40),
        ReportReplicas(add_learner(right, 4)),
        ReportLeader(1, 2, left.epoch.conf_version),
        MarkNodeDown(3, 50),
        RemoveNode(5),
        FinishRemoval(5),
        SetScheduler(on=False),
        ReportMerge(merge(left, right), 2, 60),
    ]


def test_commands_round_trip_through_msgpack() -> None:
    for command in every_command():
        wire = msgpack.unpackb(msgpack.packb(command_to_wire(command)))
        assert command_from_wire(wire) == command


def test_apply_is_deterministic_and_snapshots_round_trip() -> None:
    one, two = PdState(), PdState()
    results = [one.apply(c) for c in every_command()]
    assert results == [two.apply(command_from_wire(command_to_wire(c)))
                       for c in every_command()]
    assert [r.ok for r in results] == [True] * 11 + [False]  # merged from a stale r2
    blob = msgpack.packb(one.snapshot())
    restored = PdState.restore(msgpack.unpackb(blob))
    assert msgpack.packb(restored.snapshot()) == blob
    assert restored.descriptors == one.descriptors
    assert restored.nodes == one.nodes
    assert not restored.scheduler_on
    assert restored.range_of(b"x").range_id == 2
    # The restored machine goes on exactly as the original does.
    assert restored.apply(AllocRangeIds(1)) == one.apply(AllocRangeIds(1))
    with pytest.raises(ValueError):
        PdState.restore({"format": 99})
