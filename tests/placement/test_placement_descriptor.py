"""Range descriptors: split, merge and replica changes check their preconditions and move the
epoch; check_epoch refuses stale requests; the cover check finds gaps and overlaps."""

from __future__ import annotations

import msgpack
import pytest

from kvorum.placement.cover import check_cover
from kvorum.placement.descriptor import (
    DescriptorError,
    Epoch,
    Role,
    StaleEpochError,
    add_learner,
    check_epoch,
    descriptor_from_wire,
    descriptor_to_wire,
    merge,
    new_range,
    promote_learner,
    remove_replica,
    split,
    transfer_leader,
)

WHOLE = new_range(1, b"", None, [1, 2, 3], leader_hint=1)


def test_split_cuts_in_two_bumps_version_and_keeps_replicas() -> None:
    left, right = split(WHOLE, b"m", 2)
    assert (left.range_id, left.start, left.end) == (1, b"", b"m")
    assert (right.range_id, right.start, right.end) == (2, b"m", None)
    assert left.epoch == right.epoch == Epoch(conf_version=1, version=2)
    assert left.replicas == right.replicas == WHOLE.replicas
    assert right.leader_hint == 1
    assert check_cover([left, right]) == []


@pytest.mark.parametrize("at", [b"", b"m"])
def test_split_refuses_a_key_on_or_outside_the_bounds(at: bytes) -> None:
    left, _ = split(WHOLE, b"m", 2)
    with pytest.raises(DescriptorError):
        split(left, at, 3)


def test_split_refuses_a_reused_id_and_a_stale_epoch() -> None:
    with pytest.raises(DescriptorError):
        split(WHOLE, b"m", 1)
    left, _ = split(WHOLE, b"m", 2)
    with pytest.raises(StaleEpochError):
        split(left, b"c", 3, expected=WHOLE.epoch)
    assert split(left, b"c", 3, expected=left.epoch)[1].range_id == 3


def test_merge_joins_neighbours_newer_than_both() -> None:
    left, right = split(WHOLE, b"m", 2)
    right, _ = split(right, b"t", 3)  # right is now [m, t) at version 3
    merged = merge(left, right)
    assert (merged.range_id, merged.start, merged.end) == (1, b"", b"t")
    assert merged.epoch.version == 4 > max(left.epoch.version, right.epoch.version)


def test_merge_refuses_non_neighbours_other_replicas_and_stale_epochs() -> None:
    left, right = split(WHOLE, b"m", 2)
    middle, far = split(right, b"t", 3)
    with pytest.raises(DescriptorError, match="adjacent"):
        merge(left, far)
    with pytest.raises(DescriptorError, match="adjacent"):
        merge(middle, left)  # wrong order
    moved = remove_replica(promote_learner(add_learner(middle, 4), 4), 3)
    with pytest.raises(DescriptorError, match="replicas differ"):
        merge(left, moved)
    with pytest.raises(DescriptorError, match="learner"):
        merge(left, add_learner(middle, 4))
    with pytest.raises(StaleEpochError):
        merge(left, middle, expected_right=right.epoch)


def test_replica_changes_bump_conf_version_and_check_roles() -> None:
    with_learner = add_learner(WHOLE, 4)
    assert with_learner.role_of(4) is Role.LEARNER
    assert with_learner.epoch == Epoch(conf_version=2, version=1)
    assert with_learner.voters() == {1, 2, 3} and with_learner.learners() == {4}
    promoted = promote_learner(with_learner, 4)
    assert promoted.voters() == {1, 2, 3, 4} and promoted.epoch.conf_version == 3
    removed = remove_replica(promoted, 1)
    assert removed.voters() == {2, 3, 4} and removed.epoch.conf_version == 4
    assert removed.leader_hint is None  # its leader left; the next report says who leads
    with pytest.raises(DescriptorError):
        add_learner(WHOLE, 1)  # already holds one
    with pytest.raises(DescriptorError):
        promote_learner(WHOLE, 2)  # a voter, not a learner
    with pytest.raises(DescriptorError):
        remove_replica(WHOLE, 9)
    with pytest.raises(DescriptorError):
        remove_replica(new_range(5, b"", None, [7]), 7)  # the last voter
    with pytest.raises(StaleEpochError):
        remove_replica(promoted, 1, expected=with_learner.epoch)
    with pytest.raises(DescriptorError):
        transfer_leader(with_learner, 4)  # a learner cannot lead
    assert transfer_leader(WHOLE, 3).epoch == WHOLE.epoch  # leadership is not in the epoch


def test_check_epoch_refuses_stale_requests() -> None:
    current = Epoch(conf_version=3, version=5)
    check_epoch(Epoch(3, 5), current)
    check_epoch(Epoch(2, 5), current, bounds_only=True)  # a move does not stale a key request
    with pytest.raises(StaleEpochError):
        check_epoch(Epoch(3, 4), current, bounds_only=True)
    with pytest.raises(StaleEpochError):
        check_epoch(Epoch(2, 5), current)


def test_descriptor_wire_round_trip_through_msgpack() -> None:
    desc = add_learner(split(WHOLE, b"\x01\x02", 9)[1], 4)
    wire = msgpack.unpackb(msgpack.packb(descriptor_to_wire(desc)))
    assert descriptor_from_wire(wire) == desc


def test_cover_catches_a_gap_an_overlap_and_a_missing_end() -> None:
    a, rest = split(WHOLE, b"g", 2)
    b, c = split(rest, b"p", 3)
    assert check_cover([c, a, b]) == []
    gap = check_cover([a, c])
    assert len(gap) == 1 and gap[0].startswith("gap")
    overlap = check_cover([a, rest, c])
    assert any(p.startswith("overlap") for p in overlap)
    assert any("gap" in p for p in check_cover([a, b]))  # nothing after p
    assert any("gap" in p for p in check_cover([b, c]))  # nothing before g
    assert check_cover([]) != []
    assert any("twice" in p for p in check_cover([a, b, c, c]))
