"""Consistent hashing with bounded loads: no node ever goes over ceil(c × average load)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvorum.sharding import BoundedLoadRing, HashRing, ShardingError

NODES = ["a", "b", "c", "d", "e"]

operations = st.lists(
    st.tuples(st.sampled_from(["assign", "release"]), st.integers(min_value=0, max_value=40)),
    min_size=1,
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(ops=operations, balance_factor=st.sampled_from([1.0, 1.1, 1.25, 2.0]))
def test_a_node_receiving_load_is_never_over_capacity(
    ops: list[tuple[str, int]], balance_factor: float
) -> None:
    ring = BoundedLoadRing(NODES, balance_factor=balance_factor, vnodes=20)
    live: list[str] = []
    for kind, number in ops:
        key = f"k{number}"
        if kind == "assign":
            cap = math.ceil(balance_factor * (ring.total_load + 1) / len(NODES) - 1e-9)
            node = ring.assign(key)
            assert ring.loads()[node] <= cap
            live.append(key)
        elif key in live:
            live.remove(key)
            ring.release(key)
        assert ring.total_load == len(live) == sum(ring.loads().values())


@settings(max_examples=30, deadline=None)
@given(count=st.integers(min_value=1, max_value=400))
def test_after_assigning_only_the_maximum_is_bounded(count: int) -> None:
    ring = BoundedLoadRing(NODES, vnodes=20)
    for i in range(count):
        ring.assign(f"req-{i}")
    assert max(ring.loads().values()) <= math.ceil(1.25 * count / len(NODES))


def test_weighted_capacities() -> None:
    ring = BoundedLoadRing({"big": 3.0, "small": 1.0}, balance_factor=1.25, vnodes=50)
    for i in range(400):
        node = ring.assign(f"req-{i}")
        assert ring.loads()[node] <= ring.capacity(node, ring.total_load)
    assert ring.loads()["small"] <= math.ceil(1.25 * 400 / 4)


def test_follows_the_ring_while_under_capacity() -> None:
    plain = HashRing(NODES, vnodes=20)
    bounded = BoundedLoadRing(NODES, balance_factor=100.0, vnodes=20)
    for i in range(200):
        key = f"k{i}"
        assert bounded.assign(key) == plain.lookup(key)


def test_overflow_walks_to_the_next_node_and_release_frees_room() -> None:
    ring = BoundedLoadRing(NODES, balance_factor=1.0, vnodes=20)
    owners = [ring.assign("hot-key") for _ in range(10)]
    # c = 1: capacity is ceil(m / 5), so one key's 10 units spread over all five nodes.
    assert sorted(ring.loads().values()) == [2, 2, 2, 2, 2]
    assert owners[0] == HashRing(NODES, vnodes=20).lookup("hot-key")
    assert ring.release("hot-key") == owners[-1]
    assert ring.total_load == 9


def test_removing_a_node_forgets_its_units() -> None:
    ring = BoundedLoadRing(NODES, vnodes=20)
    for i in range(50):
        ring.assign(f"k{i}")
    held = ring.loads()["c"]
    assert len(ring.assigned_to("c")) == held
    ring.remove_node("c")
    assert ring.total_load == 50 - held
    assert "c" not in ring.loads()
    ring.add_node("f")
    assert ring.loads()["f"] == 0


def test_bad_arguments() -> None:
    with pytest.raises(ShardingError, match="balance_factor must be >= 1"):
        BoundedLoadRing(NODES, balance_factor=0.9)
    with pytest.raises(ShardingError, match="balance_factor must be >= 1"):
        BoundedLoadRing(NODES, balance_factor=math.nan)
    ring = BoundedLoadRing(NODES)
    with pytest.raises(ShardingError, match="no assigned load"):
        ring.release("never-assigned")
    with pytest.raises(ShardingError, match="not present"):
        ring.capacity("zz")
