"""Snowflake: layout validation, decode round trips, clock jumps, exhaustion, batches."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kvorum.ids._clock as clock_module
from kvorum.ids import (
    KVORUM_EPOCH_MS,
    ClockMovedBackwards,
    ClockOutOfRange,
    ClockStalled,
    LayoutError,
    MustWait,
    Snowflake,
    SnowflakeLayout,
)

START_MS = KVORUM_EPOCH_MS + 1_000_000


class FakeClock:
    """A clock that moves only when told to; its sleep advances it and records the waits."""

    def __init__(self, now_ms: int = START_MS) -> None:
        self.now_ms = now_ms
        self.slept_ms: list[int] = []

    def __call__(self) -> int:
        return self.now_ms

    def sleep(self, duration_ms: int) -> None:
        self.slept_ms.append(duration_ms)
        self.now_ms += duration_ms


def make(clock: FakeClock, worker_id: int = 3, **kwargs: object) -> Snowflake:
    return Snowflake(worker_id, clock, sleep_ms=clock.sleep, **kwargs)  # type: ignore[arg-type]


# --- layout ---------------------------------------------------------------------------------


def test_default_layout_is_the_seeds_1_41_10_12() -> None:
    layout = SnowflakeLayout()
    assert (layout.unused_bits, layout.time_bits, layout.worker_bits, layout.sequence_bits) == (
        1,
        41,
        10,
        12,
    )
    assert layout.ids_per_ms == 4096
    assert layout.max_worker_id == 1023
    assert layout.describe().startswith("1 unused | 41 time")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_bits": 42}, "64 bits"),  # 42 + 10 + 12 = 64 > 63
        ({"time_bits": 41, "worker_bits": 11, "sequence_bits": 12}, "has only 63"),
        ({"time_bits": 0}, "time_bits must be at least 1"),
        ({"sequence_bits": 0}, "sequence_bits must be at least 1"),
        ({"worker_bits": -1}, "must not be negative"),
        ({"epoch_ms": -5}, "epoch_ms"),
        ({"worker_bits": 2.5}, "must be an int"),
    ],
)
def test_bad_layouts_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        SnowflakeLayout(**kwargs)  # type: ignore[arg-type]


def test_a_full_63_bit_layout_is_accepted() -> None:
    layout = SnowflakeLayout(time_bits=43, worker_bits=8, sequence_bits=12)
    assert layout.unused_bits == 1


@pytest.mark.parametrize("worker_id", [-1, 1024, 5000])
def test_worker_ids_out_of_range_are_rejected(worker_id: int) -> None:
    with pytest.raises(LayoutError, match=f"worker_id {worker_id} is outside"):
        make(FakeClock(), worker_id=worker_id)


def test_worker_id_range_follows_a_custom_layout() -> None:
    layout = SnowflakeLayout(time_bits=41, worker_bits=4, sequence_bits=8)
    make(FakeClock(), worker_id=15, layout=layout)
    with pytest.raises(LayoutError):
        make(FakeClock(), worker_id=16, layout=layout)


def test_epoch_in_the_future_is_rejected() -> None:
    clock = FakeClock(1_000_000)
    with pytest.raises(ClockOutOfRange, match="in the future"):
        make(clock, layout=SnowflakeLayout(epoch_ms=2_000_000))


def test_clock_past_the_time_field_is_rejected() -> None:
    layout = SnowflakeLayout(time_bits=10, epoch_ms=0)
    with pytest.raises(ClockOutOfRange, match="past the layout"):
        make(FakeClock(5_000), layout=layout)
    clock = FakeClock(1_023)
    gen = make(clock, layout=layout)
    gen.next_id()
    clock.now_ms = 1_024
    with pytest.raises(ClockOutOfRange):
        gen.next_id()


@given(
    time_bits=st.integers(1, 41),
    worker_bits=st.integers(0, 10),
    sequence_bits=st.integers(1, 12),
    data=st.data(),
)
def test_compose_and_decode_round_trip(
    time_bits: int, worker_bits: int, sequence_bits: int, data: st.DataObject
) -> None:
    layout = SnowflakeLayout(time_bits, worker_bits, sequence_bits, epoch_ms=1_000)
    unix_ms = data.draw(st.integers(1_000, layout.last_unix_ms))
    worker_id = data.draw(st.integers(0, layout.max_worker_id))
    sequence = data.draw(st.integers(0, layout.max_sequence))
    snowflake_id = layout.compose(unix_ms, worker_id, sequence)
    assert 0 <= snowflake_id < 2**63
    parts = layout.decode(snowflake_id)
    assert (parts.unix_ms, parts.worker_id, parts.sequence) == (unix_ms, worker_id, sequence)


def test_decode_rejects_ids_outside_the_layout() -> None:
    layout = SnowflakeLayout()
    with pytest.raises(LayoutError):
        layout.decode(-1)
    with pytest.raises(LayoutError):
        layout.decode(1 << 63)


# --- generation -----------------------------------------------------------------------------


def test_ids_decode_to_clock_worker_and_sequence() -> None:
    clock = FakeClock()
    gen = make(clock, worker_id=7)
    first, second = gen.next_id(), gen.next_id()
    clock.now_ms += 1
    third = gen.next_id()
    decode = gen.layout.decode
    assert decode(first) == type(decode(first))(START_MS, 7, 0)
    assert decode(second).sequence == 1
    assert decode(third).unix_ms == START_MS + 1 and decode(third).sequence == 0
    assert first < second < third


def test_exhausted_sequence_waits_for_the_next_millisecond() -> None:
    clock = FakeClock()
    gen = make(clock)
    ids = [gen.next_id() for _ in range(4096)]
    assert clock.now_ms == START_MS and not clock.slept_ms
    overflow = gen.next_id()
    assert clock.slept_ms == [1]
    assert gen.layout.decode(overflow).unix_ms == START_MS + 1
    assert gen.layout.decode(overflow).sequence == 0
    assert overflow > ids[-1]


def test_small_backward_jump_is_waited_out() -> None:
    clock = FakeClock()
    gen = make(clock, max_backward_ms=5)
    before = gen.next_id()
    clock.now_ms -= 5
    after = gen.next_id()
    assert clock.slept_ms == [5]
    assert after > before
    # Waited until the last issued millisecond, then continued its sequence.
    assert gen.layout.decode(after).unix_ms == START_MS
    assert gen.layout.decode(after).sequence == 1


def test_large_backward_jump_raises_with_the_amount() -> None:
    clock = FakeClock()
    gen = make(clock, max_backward_ms=5)
    gen.next_id()
    clock.now_ms -= 6
    with pytest.raises(ClockMovedBackwards, match="backwards by 6 ms") as info:
        gen.next_id()
    assert info.value.behind_ms == 6
    assert info.value.max_backward_ms == 5
    assert not clock.slept_ms
    clock.now_ms = START_MS + 1  # recovers once the clock is ahead again
    assert gen.layout.decode(gen.next_id()).unix_ms == START_MS + 1


def test_batch_raises_too_on_a_large_backward_jump() -> None:
    clock = FakeClock()
    gen = make(clock)
    gen.next_id()
    clock.now_ms -= 1_000
    with pytest.raises(ClockMovedBackwards):
        gen.next_ids(10)


def test_issue_at_is_sans_io_and_says_until_when_to_wait() -> None:
    gen = Snowflake(0, lambda: START_MS)
    run = gen.issue_at(START_MS, 5000)
    assert len(run) == 4096 and list(run) == sorted(run)
    with pytest.raises(MustWait) as info:
        gen.issue_at(START_MS, 1)
    assert info.value.until_ms == START_MS + 1
    with pytest.raises(MustWait) as info:
        gen.issue_at(START_MS - 2, 1)
    assert info.value.until_ms == START_MS
    assert len(gen.issue_at(START_MS + 1, 3)) == 3


def test_batch_spans_milliseconds_and_matches_single_issue() -> None:
    batch_clock, single_clock = FakeClock(), FakeClock()
    batch = make(batch_clock).next_ids(10_000)
    single_gen = make(single_clock)
    single = [single_gen.next_id() for _ in range(10_000)]
    assert batch == single
    assert batch_clock.slept_ms == [1, 1]  # 10,000 IDs = 4096 + 4096 + 1808
    assert len(set(batch)) == 10_000 and batch == sorted(batch)
    assert make(FakeClock()).next_ids(0) == []


def test_without_sleep_a_stalled_fake_clock_fails_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(clock_module, "SPIN_READS_LIMIT", 1000)
    gen = Snowflake(0, lambda: START_MS)
    gen.next_ids(4096)
    with pytest.raises(ClockStalled, match="pass a sleep"):
        gen.next_id()


def test_without_sleep_waits_spin_until_the_clock_moves() -> None:
    readings = iter([START_MS] * 4098 + [START_MS + 1] * 10)
    gen = Snowflake(0, lambda: next(readings))
    gen.next_ids(4096)
    assert gen.layout.decode(gen.next_id()).unix_ms == START_MS + 1


# Clock steps: forward 0..3 ms, or back 1..8 ms (some within the 5 ms threshold, some beyond).
clock_steps = st.lists(
    st.tuples(st.integers(-8, 3), st.integers(1, 3000), st.booleans()), max_size=30
)


@given(clock_steps)
def test_ids_from_one_generator_never_repeat_or_decrease(
    steps: list[tuple[int, int, bool]],
) -> None:
    clock = FakeClock()
    gen = make(clock, layout=SnowflakeLayout(sequence_bits=8), max_backward_ms=5)
    issued: list[int] = []
    for step_ms, count, batched in steps:
        clock.now_ms += step_ms
        try:
            if batched:
                issued.extend(gen.next_ids(count))
            else:
                issued.extend(gen.next_id() for _ in range(min(count, 300)))
        except ClockMovedBackwards as exc:
            assert exc.behind_ms > 5
            clock.now_ms += exc.behind_ms  # the operator fixes the clock
    assert issued == sorted(issued)
    assert len(set(issued)) == len(issued)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), min_size=1, max_size=60))
def test_ids_from_different_workers_never_collide(steps: list[tuple[int, int]]) -> None:
    clock = FakeClock()
    workers = [make(clock, worker_id=w, layout=SnowflakeLayout(sequence_bits=2)) for w in (0, 1, 2)]
    issued: list[int] = []
    for advance_ms, worker in steps:
        clock.now_ms += advance_ms
        issued.extend(workers[worker].next_ids(3))
    assert len(set(issued)) == len(issued)
