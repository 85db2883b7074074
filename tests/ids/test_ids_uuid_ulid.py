"""UUIDv7 (RFC 9562 Method 1) and ULID: layout, codecs, monotonicity with an injected clock."""

from __future__ import annotations

from itertools import pairwise
from random import Random
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvorum.ids import (
    UlidError,
    UlidGenerator,
    UlidOverflow,
    UuidError,
    UuidV7Generator,
    compose_ulid,
    compose_uuid7,
    decode_ulid,
    decode_ulid_parts,
    decode_uuid7,
    encode_ulid,
    uuid4_from,
)

START_MS = 1_750_000_000_000


class FakeClock:
    def __init__(self, now_ms: int = START_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


# --- UUIDv7 ---------------------------------------------------------------------------------


def test_uuid7_has_version_variant_and_timestamp() -> None:
    uuid = UuidV7Generator(FakeClock(), Random(1)).next_uuid()
    assert uuid.version == 7
    assert uuid.variant == "specified in RFC 4122"
    assert decode_uuid7(uuid).unix_ms == START_MS
    assert decode_uuid7(str(uuid)) == decode_uuid7(uuid)
    assert str(uuid)[14] == "7"  # version nibble in the canonical string


def test_uuid7_counter_starts_with_a_zero_top_bit_and_counts_up() -> None:
    gen = UuidV7Generator(FakeClock(), Random(2))
    parts = [decode_uuid7(gen.next_uuid()) for _ in range(5)]
    assert parts[0].counter < 2048  # rollover guard: leftmost counter bit starts at zero
    assert [p.counter - parts[0].counter for p in parts] == [0, 1, 2, 3, 4]
    assert len({p.rand_b for p in parts}) == 5  # rand_b is fresh every time


def test_uuid7_counter_overflow_runs_ahead_of_the_clock() -> None:
    clock = FakeClock()
    gen = UuidV7Generator(clock, Random(3))
    uuids = [gen.next_uuid() for _ in range(5_000)]
    assert uuids == sorted(uuids)
    assert decode_uuid7(uuids[-1]).unix_ms == START_MS + 1  # borrowed one millisecond
    assert gen.last_ms == START_MS + 1


def test_uuid7_keeps_increasing_when_the_clock_steps_back() -> None:
    clock = FakeClock()
    gen = UuidV7Generator(clock, Random(4))
    before = gen.next_uuid()
    clock.now_ms -= 10_000
    after = gen.next_uuid()
    assert after > before
    assert decode_uuid7(after).unix_ms == START_MS


def test_uuid7_same_seed_same_ids() -> None:
    first = UuidV7Generator(FakeClock(), Random(9)).next_uuids(20)
    second = UuidV7Generator(FakeClock(), Random(9)).next_uuids(20)
    assert first == second


def test_decode_uuid7_rejects_other_versions() -> None:
    with pytest.raises(UuidError, match="not an RFC 9562 version 7"):
        decode_uuid7(uuid4_from(Random(0)))


def test_uuid4_from_random_sets_version_and_variant() -> None:
    rng = Random(5)
    uuids = [uuid4_from(rng) for _ in range(50)]
    assert all(u.version == 4 and u.variant == "specified in RFC 4122" for u in uuids)
    assert len(set(uuids)) == 50


@pytest.mark.parametrize(
    ("fields", "message"),
    [((1 << 48, 0, 0), "48 bits"), ((0, 4096, 0), "12 bits"), ((0, 0, 1 << 62), "62 bits")],
)
def test_compose_uuid7_rejects_fields_that_do_not_fit(
    fields: tuple[int, int, int], message: str
) -> None:
    with pytest.raises(UuidError, match=message):
        compose_uuid7(*fields)


@given(st.lists(st.tuples(st.integers(-5, 3), st.integers(1, 50)), max_size=40), st.integers())
def test_uuid7_strictly_increase_whatever_the_clock_does(
    steps: list[tuple[int, int]], seed: int
) -> None:
    clock = FakeClock()
    gen = UuidV7Generator(clock, Random(seed))
    issued: list[UUID] = []
    for step_ms, count in steps:
        clock.now_ms += step_ms
        issued.extend(gen.next_uuid() for _ in range(count))
    assert all(a < b for a, b in pairwise(issued))
    as_strings = [str(u) for u in issued]
    assert as_strings == sorted(as_strings)  # string order is time order too


@given(st.integers(0, (1 << 48) - 1), st.integers(0, 4095), st.integers(0, (1 << 62) - 1))
def test_uuid7_compose_decode_round_trip(unix_ms: int, counter: int, rand_b: int) -> None:
    parts = decode_uuid7(UUID(int=compose_uuid7(unix_ms, counter, rand_b)))
    assert (parts.unix_ms, parts.counter, parts.rand_b) == (unix_ms, counter, rand_b)


# --- ULID -----------------------------------------------------------------------------------


def test_ulid_known_vector() -> None:
    # Timestamp 1469918176385 is the spec README's example, "01ARYZ6S41..."
    text = encode_ulid(compose_ulid(1_469_918_176_385, 0))
    assert text == "01ARYZ6S410000000000000000"
    assert decode_ulid_parts(text).unix_ms == 1_469_918_176_385
    assert encode_ulid((1 << 128) - 1) == "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"


def test_ulid_decode_is_lenient_per_crockford() -> None:
    text = encode_ulid(compose_ulid(START_MS, 12345))
    assert decode_ulid(text.lower()) == decode_ulid(text)
    assert decode_ulid("0" * 25 + "I") == decode_ulid("0" * 25 + "1") == 1
    assert decode_ulid("O" * 25 + "L") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [("0" * 25, "26 characters"), ("0" * 25 + "U", "not Crockford"), ("8" + "0" * 25, "128 bits")],
)
def test_ulid_decode_rejects_bad_text(text: str, message: str) -> None:
    with pytest.raises(UlidError, match=message):
        decode_ulid(text)


@given(st.integers(0, (1 << 128) - 1))
def test_ulid_encode_decode_round_trip_preserves_order(value: int) -> None:
    text = encode_ulid(value)
    assert len(text) == 26 and decode_ulid(text) == value
    if value:
        assert encode_ulid(value - 1) < text


def test_ulid_generator_is_monotonic_within_a_millisecond() -> None:
    gen = UlidGenerator(FakeClock(), Random(6))
    texts = [gen.next_ulid() for _ in range(100)]
    randomness = [decode_ulid_parts(t).randomness for t in texts]
    assert [r - randomness[0] for r in randomness] == list(range(100))
    assert texts == sorted(texts)


def test_ulid_overflow_fails_as_the_spec_says() -> None:
    class MaxRandom(Random):
        def getrandbits(self, k: int, /) -> int:
            return (1 << k) - 1

    gen = UlidGenerator(FakeClock(), MaxRandom())
    gen.next_ulid()
    with pytest.raises(UlidOverflow, match="exhausted"):
        gen.next_ulid()


@given(st.lists(st.tuples(st.integers(-5, 3), st.integers(1, 30)), max_size=40), st.integers())
def test_ulids_strictly_increase_whatever_the_clock_does(
    steps: list[tuple[int, int]], seed: int
) -> None:
    clock = FakeClock()
    gen = UlidGenerator(clock, Random(seed))
    issued: list[str] = []
    for step_ms, count in steps:
        clock.now_ms += step_ms
        issued.extend(gen.next_ulid() for _ in range(count))
    assert all(a < b for a, b in pairwise(issued))
