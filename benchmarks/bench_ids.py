"""IDs per second from each generator in :mod:`kvorum.ids`, one at a time and in batches.

Theory of operation: every generator is driven with the real clock (``time.time_ns`` in
milliseconds, passed in as the pure modules expect) for a fixed wall-clock window, repeated a
few times; the table reports the median rate. Single rows call ``next_id()``-style methods in
a plain loop; batch rows call the batch API. Snowflake's default layout caps one worker at
4,096 IDs per millisecond (4,096,000/s) — when a generator hits the cap it spins until the
clock ticks over, so a batch rate close to the cap means the batch path is no longer the
bottleneck. The in-memory counter rows are in-process lower bounds: a real INCR adds a network
round trip per call, which is exactly what the segment allocator amortises.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from random import Random

from benchmarks.run import machine_line
from kvorum.ids import (
    InMemoryCounter,
    SegmentAllocator,
    SegmentPolicy,
    Snowflake,
    SnowflakeLayout,
    StepSequence,
    UlidGenerator,
    UuidV7Generator,
)

SNOWFLAKE_CAP_PER_S = SnowflakeLayout().ids_per_ms * 1000


def real_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def rate_per_s(
    call: Callable[[], object], ids_per_call: int, calls_per_round: int, window_s: float
) -> tuple[float, float]:
    """IDs per second from calling ``call`` repeatedly for about ``window_s`` seconds, and the
    share of that wall time this process actually ran (below 1 on a contended machine: the
    milliseconds it was descheduled are lost to a clock-capped generator for good)."""
    calls = 0
    start = time.perf_counter()
    start_cpu = time.process_time()
    deadline = start + window_s
    while True:
        for _ in range(calls_per_round):
            call()
        calls += calls_per_round
        now = time.perf_counter()
        if now >= deadline:
            wall_s = now - start
            return calls * ids_per_call / wall_s, (time.process_time() - start_cpu) / wall_s


Case = tuple[str, str, Callable[[], object], int, int]
"""(generator, mode, the call to time, IDs per call, calls per timing round)."""


def cases() -> list[Case]:
    """One generator per row, built once so repeats continue its state (as a server would)."""
    policy = SegmentPolicy(
        initial_step=10_000, min_step=1_000, max_step=1_000_000, target_segment_ms=1_000
    )
    snowflake_single = Snowflake(1, real_clock_ms)
    snowflake_batch = Snowflake(2, real_clock_ms)
    snowflake_big_batch = Snowflake(3, real_clock_ms)
    steps_single, steps_batch = StepSequence(1, 3), StepSequence(2, 3)
    counter = InMemoryCounter()
    segments_single = SegmentAllocator(real_clock_ms, counter=InMemoryCounter(), policy=policy)
    segments_batch = SegmentAllocator(real_clock_ms, counter=InMemoryCounter(), policy=policy)
    uuid7_single = UuidV7Generator(real_clock_ms, Random(7))
    uuid7_batch = UuidV7Generator(real_clock_ms, Random(8))
    ulid = UlidGenerator(real_clock_ms, Random(9))
    return [
        ("snowflake", "single", snowflake_single.next_id, 1, 2_000),
        ("snowflake", "batch of 4,096", lambda: snowflake_batch.next_ids(4_096), 4_096, 1),
        (
            "snowflake",
            "batch of 100,000",
            lambda: snowflake_big_batch.next_ids(100_000),
            100_000,
            1,
        ),
        ("multi-master sequence", "single", steps_single.next_id, 1, 2_000),
        ("multi-master sequence", "batch of 4,096", lambda: steps_batch.next_ids(4_096), 4_096, 1),
        ("INCR (in-memory counter)", "single", counter.incr, 1, 2_000),
        ("segment allocator", "single", segments_single.next_id, 1, 2_000),
        ("segment allocator", "batch of 4,096", lambda: segments_batch.next_ids(4_096), 4_096, 1),
        ("UUIDv7", "single", uuid7_single.next_uuid, 1, 1_000),
        ("UUIDv7", "batch of 4,096", lambda: uuid7_batch.next_uuids(4_096), 4_096, 1),
        ("ULID", "single", ulid.next_ulid, 1, 1_000),
        ("stdlib uuid.uuid4 (reference)", "single", uuid.uuid4, 1, 1_000),
    ]


def run(results_dir: Path, quick: bool) -> None:
    window_s = 0.02 if quick else 1.0
    repeats = 1 if quick else 3
    load_before = ", ".join(f"{load:.2f}" for load in os.getloadavg())

    # Sanity before timing: the batch path must still issue unique increasing IDs.
    check = Snowflake(3, real_clock_ms).next_ids(20_000)
    assert check == sorted(set(check)), "snowflake batch issued duplicates or out of order"

    rows: list[tuple[str, str, float, float]] = []
    for name, mode, call, ids_per_call, calls_per_round in cases():
        measured = [
            rate_per_s(call, ids_per_call, calls_per_round, window_s) for _ in range(repeats)
        ]
        rate, cpu_share = sorted(measured)[len(measured) // 2]  # the median window
        rows.append((name, mode, rate, cpu_share))
        print(f"  {name:<30} {mode:<18} {rate:>14,.0f} ids/s  cpu {cpu_share:.0%}", flush=True)

    lines = [
        machine_line(),
        "",
        f"IDs per second, median of {repeats} windows of {window_s:g} s, real clock "
        f"(`time.time_ns`) passed in. Snowflake's default layout caps one worker at "
        f"{SNOWFLAKE_CAP_PER_S:,} IDs/s (4,096 per ms).",
        "",
        f"Load average when the run began: {load_before}. *CPU share* is the fraction of the "
        "window this process was on a CPU; a clock-capped generator loses every millisecond "
        "it spends descheduled.",
        "",
        "| generator | mode | IDs/s | of Snowflake cap | CPU share |",
        "|---|---|---:|---:|---:|",
    ]
    for name, mode, rate, cpu_share in rows:
        of_cap = f"{rate / SNOWFLAKE_CAP_PER_S:.0%}" if name == "snowflake" else ""
        lines.append(f"| {name} | {mode} | {rate:,.0f} | {of_cap} | {cpu_share:.0%} |")
    if quick:
        lines += ["", "(quick smoke run: not results)"]
    table = "\n".join(lines) + "\n"
    print(table)
    (results_dir / "ids.md").write_text(table)
    _chart(rows, results_dir / "ids.png")


def _chart(rows: list[tuple[str, str, float, float]], path: Path) -> None:
    # Imported here so the backend is chosen before pyplot loads.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{name} — {mode}" for name, mode, _, _ in rows]
    rates = [rate for _, _, rate, _ in rows]
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.barh(labels[::-1], rates[::-1], color="#4c72b0")
    ax.axvline(
        SNOWFLAKE_CAP_PER_S,
        color="#c44e52",
        linestyle="--",
        label="Snowflake cap per worker (4,096,000/s)",
    )
    ax.set_xscale("log")
    ax.set_xlabel("IDs per second (log scale)")
    ax.set_title("kvorum.ids: generator throughput, single vs batch")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
