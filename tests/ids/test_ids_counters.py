"""Multi-master sequences (ID-1), the INCR-style counter (ID-2) and the segment allocator."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvorum.ids import (
    AtomicCounter,
    InMemoryCounter,
    NoSegmentReady,
    SegmentAllocator,
    SegmentPolicy,
    StepSequence,
    multi_master,
)


class FakeClock:
    def __init__(self, now_ms: int = 1_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


# --- multi-master ---------------------------------------------------------------------------


def test_master_i_of_n_hands_out_i_plus_multiples_of_n() -> None:
    masters = multi_master(3)
    assert [m.next_ids(4) for m in masters] == [[1, 4, 7, 10], [2, 5, 8, 11], [3, 6, 9, 12]]


@given(st.integers(1, 7), st.lists(st.integers(0, 6), max_size=200))
def test_masters_never_hand_out_the_same_id(count: int, picks: list[int]) -> None:
    masters = multi_master(count)
    issued = [masters[pick % count].next_id() for pick in picks]
    assert len(set(issued)) == len(issued)
    for value in issued:
        assert sum(m.owns(value) for m in masters) == 1


def test_a_restarted_master_continues_after_its_last_id() -> None:
    master = StepSequence(start=2, step=3, last_issued=8)
    assert master.next_id() == 11
    with pytest.raises(ValueError, match="not in this sequence"):
        StepSequence(start=2, step=3, last_issued=9)


@pytest.mark.parametrize(
    ("start", "step", "message"), [(0, 3, "start must be in"), (4, 3, "start"), (1, 0, "step")]
)
def test_bad_start_or_step_is_rejected(start: int, step: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StepSequence(start, step)


def test_multi_master_needs_a_master() -> None:
    with pytest.raises(ValueError, match="at least one master"):
        multi_master(0)


# --- INCR counter ---------------------------------------------------------------------------


def test_in_memory_counter_behaves_like_incr() -> None:
    counter: AtomicCounter = InMemoryCounter()
    assert counter.incr_by(1) == 1
    assert counter.incr_by(10) == 11
    with pytest.raises(ValueError, match="amount must be >= 1"):
        counter.incr_by(0)
    memory = InMemoryCounter(start=41)
    assert memory.incr() == 42 and memory.calls == 1


# --- segment allocator ----------------------------------------------------------------------

FAST = SegmentPolicy(initial_step=100, min_step=10, max_step=1_000, target_segment_ms=1_000)


def test_one_counter_call_per_segment_and_prefetch_at_ten_percent() -> None:
    counter = InMemoryCounter()
    alloc = SegmentAllocator(FakeClock(), counter=counter, policy=FAST)
    assert alloc.next_id() == 1
    assert counter.calls == 1
    for _ in range(8):
        alloc.next_id()
    assert counter.calls == 1  # 9 of 100 used
    assert alloc.next_id() == 10
    assert counter.calls == 2  # the 10th ID triggered the prefetch
    assert alloc.buffered_ids == 90 + 100


def test_ids_are_dense_unique_and_increasing_in_sync_mode() -> None:
    counter = InMemoryCounter()
    alloc = SegmentAllocator(FakeClock(), counter=counter, policy=FAST)
    ids = [alloc.next_id() for _ in range(1_000)]
    assert ids == list(range(1, 1_001))


def test_two_allocators_on_one_counter_never_collide() -> None:
    counter = InMemoryCounter()
    clock = FakeClock()
    a = SegmentAllocator(clock, counter=counter, policy=FAST)
    b = SegmentAllocator(clock, counter=counter, policy=FAST)
    issued = a.next_ids(250) + b.next_ids(333) + a.next_ids(400) + b.next_ids(10)
    assert len(set(issued)) == len(issued)
    assert max(issued) <= counter.value


def test_step_grows_when_segments_go_fast_and_shrinks_when_slow() -> None:
    clock = FakeClock()
    alloc = SegmentAllocator(clock, counter=InMemoryCounter(), policy=FAST)
    alloc.next_ids(100)  # first segment used up instantly...
    alloc.next_id()  # ...so swapping to the next doubles the step
    assert alloc.step == 200
    for _ in range(5):
        alloc.next_ids(alloc.left_in_segment)
        alloc.next_id()
    assert alloc.step == FAST.max_step  # capped
    for _ in range(9):
        alloc.next_ids(alloc.left_in_segment)
        clock.now_ms += 5_000  # each segment now lasts 5 s, far above the 1 s target
        alloc.next_id()
    assert alloc.step == FAST.min_step  # halved down to the floor


def test_step_stays_when_segments_last_about_the_target() -> None:
    assert FAST.next_step(100, lasted_ms=1_500) == 100
    assert FAST.next_step(100, lasted_ms=999) == 200
    assert FAST.next_step(100, lasted_ms=2_001) == 50


def test_driven_mode_hands_the_fetch_to_the_driver() -> None:
    counter = InMemoryCounter()
    alloc = SegmentAllocator(FakeClock(), policy=FAST)
    with pytest.raises(NoSegmentReady):
        alloc.next_id()
    step = alloc.take_fetch_request()
    assert step == 100
    assert alloc.take_fetch_request() is None  # one request at a time
    alloc.add_segment(counter.incr_by(step), step)
    ids = alloc.next_ids(10)
    assert ids == list(range(1, 11))
    prefetch = alloc.take_fetch_request()
    assert prefetch == 100
    alloc.fetch_failed()  # the RPC failed: asked again
    prefetch = alloc.take_fetch_request()
    assert prefetch == 100
    alloc.next_ids(90)  # current used up while the fetch is still in flight
    with pytest.raises(NoSegmentReady):
        alloc.next_id()
    alloc.add_segment(counter.incr_by(prefetch), prefetch)
    assert alloc.next_id() == 101


def test_driven_mode_keeps_serving_while_the_prefetch_is_in_flight() -> None:
    counter = InMemoryCounter()
    alloc = SegmentAllocator(FakeClock(), policy=FAST)
    first = alloc.take_fetch_request()
    assert first is not None
    alloc.add_segment(counter.incr_by(first), first)
    alloc.next_ids(50)
    step = alloc.take_fetch_request()
    assert step is not None
    alloc.add_segment(counter.incr_by(step), step)  # arrives while 50 IDs remain
    assert alloc.next_ids(60) == list(range(51, 111))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_step": 0}, "min_step"),
        ({"min_step": 10, "max_step": 5, "initial_step": 5}, "max_step"),
        ({"initial_step": 5, "min_step": 10}, "initial_step"),
        ({"target_segment_ms": 0}, "target_segment_ms"),
        ({"prefetch_fraction": 0.0}, "prefetch_fraction"),
    ],
)
def test_bad_policies_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SegmentPolicy(**kwargs)  # type: ignore[arg-type]


@given(st.lists(st.integers(0, 700), max_size=40), st.lists(st.integers(0, 3_000), max_size=40))
def test_segment_ids_are_unique_and_increasing(counts: list[int], gaps_ms: list[int]) -> None:
    clock = FakeClock()
    alloc = SegmentAllocator(clock, counter=InMemoryCounter(), policy=FAST)
    issued: list[int] = []
    for i, count in enumerate(counts):
        clock.now_ms += gaps_ms[i] if i < len(gaps_ms) else 0
        issued.extend(alloc.next_ids(count) if i % 2 else [alloc.next_id() for _ in range(count)])
    assert issued == sorted(set(issued))
