"""Seed scenarios ID-1..ID-4: the four ways of issuing cluster-wide unique IDs, run for real.

Theory of operation: each scenario drives the generators of :mod:`kvorum.ids` with a fake
millisecond clock and a seeded ``Random`` (so every run prints the same trace), prints what
was issued, and measures the properties the seed claims — uniqueness, order, size, how many
round trips to a central service each ID costs — from the IDs themselves. The verdict is
computed from those measurements, never asserted by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from random import Random
from typing import Any
from uuid import UUID

from kvorum.ids import (
    InMemoryCounter,
    SegmentAllocator,
    SegmentPolicy,
    Snowflake,
    SnowflakeLayout,
    UuidV7Generator,
    multi_master,
    uuid4_from,
)
from kvorum.scenarios.registry import Printer, Verdict, scenario

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z; any fixed instant keeps traces stable


class _FakeClock:
    """Milliseconds that move only when the scenario says so; sleeping advances them."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def sleep(self, duration_ms: int) -> None:
        self.now_ms += duration_ms


def _inversions(values: Sequence[Any]) -> int:
    """How many neighbours in issue order are out of sorted order."""
    return sum(1 for a, b in pairwise(values) if b < a)


@scenario("ID-1", "database sequences: several masters with different start and step")
def id1(out: Printer) -> Verdict:
    rng = Random(1)
    masters = multi_master(3)
    out("3 masters; master i hands out i, i+3, i+6, ... (auto_increment offset i, increment 3)")
    issued: list[int] = []
    round_trips = 0
    served_while_down = 0
    for insert in range(1, 16):
        down = 6 <= insert <= 10  # master 3 is down for inserts 6..10
        choices = [0, 1] if down else [0, 1, 2]
        # Busy masters: master 1 takes twice the traffic of the others.
        master = rng.choice([*choices, 0])
        value = masters[master].next_id()
        round_trips += 1  # every ID is a request to a database
        served_while_down += down
        issued.append(value)
        note = "  (master 3 down)" if down else ""
        out(f"insert {insert:2d} -> master {master + 1} -> id {value}{note}")
    unique = len(set(issued)) == len(issued)
    disjoint = all(sum(m.owns(v) for m in masters) == 1 for v in issued)
    inversions = _inversions(issued)
    out(f"distinct ids: {len(set(issued))}/{len(issued)}; each owned by exactly one master: "
        f"{disjoint}")
    out(f"issue order vs numeric order: {inversions} neighbours out of order "
        f"(unique, but not increasing across masters)")
    out(f"database round trips: {round_trips} for {len(issued)} ids (centralised: one per id)")
    matches = unique and disjoint and served_while_down > 0 and round_trips == len(issued)
    return Verdict(
        outcome=(
            f"{len(issued)} ids, 0 duplicates={unique}, kept issuing with a master down, "
            f"{round_trips} round trips for {len(issued)} ids, {inversions} out-of-order"
        ),
        matches_seed=matches,
    )


@scenario("ID-2", "Redis INCR: one atomic counter, unique but one round trip per id")
def id2(out: Printer) -> Verdict:
    rng = Random(2)
    counter = InMemoryCounter()
    issued: list[int] = []
    out("3 app servers share one INCR counter; requests arrive interleaved")
    for _ in range(9):
        server = rng.randrange(3) + 1
        value = counter.incr()
        issued.append(value)
        out(f"app {server}: INCR id -> {value}")
    unique = len(set(issued)) == len(issued)
    increasing = _inversions(issued) == 0
    incr_calls = counter.calls
    out(f"unique: {unique}; increasing in the order the counter served them: {increasing}; "
        f"counter round trips: {incr_calls} for {len(issued)} ids")

    # The cure for the round trip per ID: take segments (Leaf) over the same counter.
    clock = _FakeClock(START_MS)
    segments = InMemoryCounter()
    policy = SegmentPolicy(initial_step=1_000, min_step=1_000, max_step=100_000)
    allocators = [SegmentAllocator(clock, counter=segments, policy=policy) for _ in range(3)]
    batch: list[int] = []
    for _ in range(30):
        batch.extend(allocators[rng.randrange(3)].next_ids(1_000))
        clock.now_ms += 1_000
    segment_unique = len(set(batch)) == len(batch)
    out(f"with segments: {len(batch)} ids from 3 allocators, unique: {segment_unique}, "
        f"counter round trips: {segments.calls} (steps now "
        f"{', '.join(str(a.step) for a in allocators)})")
    matches = unique and increasing and incr_calls == len(issued) and segment_unique
    return Verdict(
        outcome=(
            f"INCR: {len(issued)} unique increasing ids, {incr_calls} round trips; segments: "
            f"{len(batch)} ids, {segments.calls} round trips"
        ),
        matches_seed=matches,
    )


def _uuid1_like(timestamp_100ns: int, clock_seq: int, node: int) -> UUID:
    """A version 1 UUID built from its fields (the stdlib's uuid1 would read the real MAC)."""
    return UUID(
        fields=(
            timestamp_100ns & 0xFFFFFFFF,
            (timestamp_100ns >> 32) & 0xFFFF,
            0x1000 | ((timestamp_100ns >> 48) & 0x0FFF),
            0x80 | ((clock_seq >> 8) & 0x3F),
            clock_seq & 0xFF,
            node,
        )
    )


@scenario("ID-3", "UUID: local and unique, but 16 bytes and unordered (v4), contrast v7")
def id3(out: Printer) -> Verdict:
    rng = Random(3)
    clock = _FakeClock(START_MS)
    mac = 0x00_1A_2B_3C_4D_5E
    gregorian_offset_100ns = 0x01B21DD213814000  # 1582-10-15 to 1970-01-01
    v7 = UuidV7Generator(clock, rng)
    v1s: list[UUID] = []
    v4s: list[UUID] = []
    v7s: list[UUID] = []
    for i in range(200):
        # One ID every few seconds over a couple of hours, so creation order is time order
        # and v1's 32-bit time_low field (which leads its text form) wraps every ~7 minutes.
        clock.now_ms += rng.randrange(1, 60_000)
        ts_100ns = clock.now_ms * 10_000 + gregorian_offset_100ns
        v1s.append(_uuid1_like(ts_100ns, clock_seq=0x1234, node=mac))
        v4s.append(uuid4_from(rng))
        v7s.append(v7.next_uuid())
        if i < 4:
            out(f"t={clock.now_ms - START_MS:>6} ms  v1 {v1s[-1]}  v4 {v4s[-1]}  v7 {v7s[-1]}")
    size_bytes = len(v4s[0].bytes)
    text_chars = len(str(v4s[0]))
    leaked_mac = v1s[0].node
    out(f"size: {size_bytes} bytes binary, {text_chars} characters as text "
        f"(a Snowflake id is 8 bytes)")
    out(f"v1 embeds the machine's MAC: node field = {leaked_mac:012x}")
    inv = {
        name: _inversions([str(u) for u in uuids])
        for name, uuids in (("v1", v1s), ("v4", v4s), ("v7", v7s))
    }
    pairs = len(v4s) - 1
    for name, count in inv.items():
        out(f"{name}: {count}/{pairs} consecutive ids sort before their predecessor")
    v4_unordered = inv["v4"] > pairs // 4  # random: about half the neighbours are inverted
    v7_ordered = inv["v7"] == 0
    matches = size_bytes == 16 and leaked_mac == mac and v4_unordered and inv["v1"] > 0
    return Verdict(
        outcome=(
            f"{size_bytes} bytes/{text_chars} chars; v1 leaks the MAC; out of order: "
            f"v1 {inv['v1']}, v4 {inv['v4']}, v7 {inv['v7']} of {pairs}"
            + ("" if v7_ordered else " (v7 NOT ordered!)")
        ),
        matches_seed=matches and v7_ordered,
    )


@scenario("ID-4", "Snowflake: 1+41+10+12 bits, 8 bytes, trending up, no coordination")
def id4(out: Printer) -> Verdict:
    rng = Random(4)
    clock = _FakeClock(START_MS)
    layout = SnowflakeLayout()
    out(f"layout: {layout.describe()}")
    workers = [Snowflake(w, clock, layout=layout, sleep_ms=clock.sleep) for w in (1, 2, 3)]
    issued: list[tuple[int, int]] = []  # (worker, id) in issue order
    for step in range(12):
        if rng.random() < 0.5:
            clock.now_ms += rng.randrange(1, 3)
        worker = rng.randrange(3)
        value = workers[worker].next_id()
        issued.append((worker + 1, value))
        parts = layout.decode(value)
        if step < 8:
            out(f"worker {worker + 1}: {value:>19} = t+{parts.unix_ms - START_MS} ms | "
                f"worker {parts.worker_id} | seq {parts.sequence}")
    ids = [v for _, v in issued]
    fits_8_bytes = all(v.bit_length() <= 63 for v in ids)
    unique = len(set(ids)) == len(ids)
    per_worker_increasing = all(
        _inversions([v for w, v in issued if w == worker]) == 0 for worker in (1, 2, 3)
    )
    # "Trending up": an id from a later millisecond is larger than every earlier-ms id;
    # within one millisecond the worker field decides, so issue order may wobble there.
    ms_of = [layout.decode(v).unix_ms for v in ids]
    later_ms_larger = all(
        b > a for (a, ma), (b, mb) in pairwise(zip(ids, ms_of, strict=True)) if mb > ma
    )
    wobble = _inversions(ids)
    out(f"8 bytes: {fits_8_bytes} (largest id uses {max(ids).bit_length()} bits); unique: "
        f"{unique}; increasing per worker: {per_worker_increasing}; later ms always larger: "
        f"{later_ms_larger}; {wobble} wobbles inside a millisecond")

    # The sequence field caps one worker at 4096 ids per millisecond: the 4097th waits.
    burst_clock = _FakeClock(START_MS)
    burst = Snowflake(9, burst_clock, sleep_ms=burst_clock.sleep).next_ids(4097)
    waited_ms = burst_clock.now_ms - START_MS
    out(f"burst of 4097 ids in one ms: the last one moved to the next ms (waited {waited_ms} "
        f"ms); at most {layout.ids_per_ms * 1000:,} ids/s per worker")
    matches = (
        fits_8_bytes and unique and per_worker_increasing and later_ms_larger and waited_ms == 1
        and len(set(burst)) == 4097
    )
    return Verdict(
        outcome=(
            f"{len(ids)} ids from 3 workers: 8 bytes={fits_8_bytes}, unique={unique}, "
            f"trending up={later_ms_larger and per_worker_increasing}, 4096/ms cap observed"
        ),
        matches_seed=matches,
    )
