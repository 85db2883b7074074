"""The wire codec's messages per second, and frames per second between two real transports.

Theory of operation. Codec rows time the wire schema's ``encode`` and ``decode``
(:class:`kvorum.runtime.codec.WireSchema`) on one Raft message in its envelope in a tight loop
for a fixed wall-clock window, repeated, and report the median window: AppendEntries carrying
1, 16 and 64 entries of 100 bytes (the replication hot path) and a Heartbeat (the smallest
message). Beside each, the obvious dict-based codec — ``dataclasses.asdict`` with field names
into msgpack, and the classes' constructors on the way back — shows what the generated array
codec saves.

Loopback rows start two :class:`~kvorum.runtime.transport.PeerTransport` objects in one
process on one event loop (so the figure is the whole cost of a frame: encode, queue, batched
write, read, split, decode, deliver) and send a fixed number of messages from one to the
other, pacing the sender so that its queue never overflows (no drops: every frame counts),
under the stock asyncio loop and under uvloop. *CPU share* is the fraction of wall time this
process was on a CPU: the machine is shared, and a low share means the rate is a lower bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from random import Random
from typing import Any

import msgpack
import uvloop

from benchmarks.run import machine_line
from kvorum.core.raft.messages import (
    RAFT_WIRE_TAGS,
    AppendEntries,
    Entry,
    EntryKind,
    Heartbeat,
    RaftMessage,
)
from kvorum.core.shape import Envelope, ProtocolId
from kvorum.runtime.transport import PeerTransport, TransportConfig
from kvorum.runtime.wire_schema import WIRE_SCHEMA

encode, decode = WIRE_SCHEMA.encode, WIRE_SCHEMA.decode

ENTRY_DATA_BYTES = 100


def append_entries(entry_count: int) -> Envelope:
    entries = tuple(Entry(7, 1_000 + i, bytes(ENTRY_DATA_BYTES)) for i in range(entry_count))
    return raft(AppendEntries(1, 2, 7, 999, 7, entries, 990))


def raft(msg: RaftMessage) -> Envelope:
    return Envelope(ProtocolId.RAFT, 0, msg.src, msg.dst, msg)


CASES: list[tuple[str, Envelope]] = [
    ("Heartbeat", raft(Heartbeat(1, 2, 7, 990, 12_345))),
    ("AppendEntries, 1 entry", append_entries(1)),
    ("AppendEntries, 16 entries", append_entries(16)),
    ("AppendEntries, 64 entries", append_entries(64)),
]

# --- the dict-based baseline ----------------------------------------------------------------

_BY_NAME = {cls.__name__: cls for cls in RAFT_WIRE_TAGS}


def naive_encode(env: Envelope) -> bytes:
    body = dataclasses.asdict(env.body)  # type: ignore[call-overload]
    payload: bytes = msgpack.packb({
        "protocol": int(env.protocol), "group_id": env.group_id,
        "type": type(env.body).__name__, "body": body})
    return payload


def naive_decode(payload: bytes) -> Envelope:
    outer = msgpack.unpackb(payload)
    fields = outer["body"]
    cls = _BY_NAME[outer["type"]]
    if cls is AppendEntries:
        fields["entries"] = tuple(
            Entry(e["term"], e["index"], e["data"], EntryKind(e["kind"]))
            for e in fields["entries"])
    msg = cls(**fields)
    return Envelope(ProtocolId(outer["protocol"]), outer["group_id"], msg.src, msg.dst, msg)


# --- timing -----------------------------------------------------------------------------------


def rate_per_s(call: Callable[[], object], window_s: float, repeats: int) -> tuple[float, float]:
    """Median calls per second over ``repeats`` windows, and that window's CPU share."""
    measured = []
    for _ in range(repeats):
        calls = 0
        start, start_cpu = time.perf_counter(), time.process_time()
        deadline = start + window_s
        while True:
            for _ in range(64):
                call()
            calls += 64
            now = time.perf_counter()
            if now >= deadline:
                wall_s = now - start
                measured.append((calls / wall_s, (time.process_time() - start_cpu) / wall_s))
                break
    return sorted(measured)[len(measured) // 2]


async def loopback(msg: Envelope, count: int) -> tuple[float, float, int]:
    """Frames/s delivered from one transport to another, CPU share, and frames dropped."""
    received = 0
    done = asyncio.Event()

    def on_message(_: Envelope) -> None:
        nonlocal received
        received += 1
        if received == count + 1:  # the warm-up message plus the timed ones
            done.set()

    def config(node_id: int) -> TransportConfig:
        return TransportConfig("bench", node_id, max_queue_frames=16_384)

    sender = PeerTransport(config(1), lambda _: None, Random(1))
    receiver = PeerTransport(config(2), on_message, Random(2))
    await sender.start()
    await receiver.start()
    try:
        sender.add_peer(2, receiver.address)
        sender.send(msg)
        while received < 1:  # connected and warmed up
            await asyncio.sleep(0.001)
        start, start_cpu = time.perf_counter(), time.process_time()
        sent = 0
        while sent < count:
            burst = min(512, count - sent)
            for _ in range(burst):
                sender.send(msg)
            sent += burst
            await asyncio.sleep(0)
            while sender.peer_metrics()[2]["queued_frames"] > 8_192:
                await asyncio.sleep(0)  # pace: the sender's queue must never overflow
        await done.wait()
        wall_s = time.perf_counter() - start
        cpu_share = (time.process_time() - start_cpu) / wall_s
        dropped = sender.metrics()["dropped_frames"]
    finally:
        await sender.close()
        await receiver.close()
    return count / wall_s, cpu_share, dropped


def run_loopback(msg: Envelope, count: int, repeats: int, loop_factory: Any) -> tuple[
        float, float, int]:
    measured = []
    for _ in range(repeats):
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            measured.append(runner.run(loopback(msg, count)))
    return sorted(measured)[len(measured) // 2]


def run(results_dir: Path, quick: bool) -> None:
    window_s = 0.02 if quick else 0.5
    repeats = 1 if quick else 3
    frames = 2_000 if quick else 100_000
    load_before = ", ".join(f"{load:.2f}" for load in os.getloadavg())

    codec_rows = []
    for name, msg in CASES:
        payload, naive_payload = encode(msg), naive_encode(msg)
        assert decode(payload) == msg and naive_decode(naive_payload) == msg
        enc, enc_cpu = rate_per_s(lambda m=msg: encode(m), window_s, repeats)  # type: ignore[misc]
        dec, dec_cpu = rate_per_s(lambda p=payload: decode(p), window_s, repeats)  # type: ignore[misc]
        naive_enc, _ = rate_per_s(lambda m=msg: naive_encode(m), window_s, repeats)  # type: ignore[misc]
        naive_dec, _ = rate_per_s(lambda p=naive_payload: naive_decode(p), window_s, repeats)  # type: ignore[misc]
        codec_rows.append((name, len(payload), len(naive_payload), enc, dec, naive_enc,
                           naive_dec, min(enc_cpu, dec_cpu)))
        print(f"  codec {name:<28} enc {enc:>10,.0f}/s  dec {dec:>10,.0f}/s", flush=True)

    loop_rows = []
    for name, msg in (CASES[0], CASES[2]):
        for loop_name, factory in (("asyncio", None), ("uvloop", uvloop.new_event_loop)):
            rate, cpu_share, dropped = run_loopback(msg, frames, repeats, factory)
            size = len(encode(msg)) + 4
            loop_rows.append((name, loop_name, size, rate, rate * size / 1e6, cpu_share, dropped))
            print(f"  loopback {name:<26} {loop_name:<8} {rate:>10,.0f} frames/s", flush=True)

    lines = [
        machine_line(),
        "",
        f"Load average when the run began: {load_before}. Median of {repeats} windows of "
        f"{window_s:g} s per codec cell; median of {repeats} runs of {frames:,} frames per "
        f"loopback row. Entries carry {ENTRY_DATA_BYTES} bytes each.",
        "",
        "### Codec (messages per second, one core)",
        "",
        "| message | payload bytes | encode/s | decode/s | dict codec bytes | "
        "dict encode/s | dict decode/s | speed-up enc / dec | CPU share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, size, naive_size, enc, dec, naive_enc, naive_dec, cpu in codec_rows:
        lines.append(
            f"| {name} | {size:,} | {enc:,.0f} | {dec:,.0f} | {naive_size:,} | "
            f"{naive_enc:,.0f} | {naive_dec:,.0f} | {enc / naive_enc:.1f}x / "
            f"{dec / naive_dec:.1f}x | {cpu:.0%} |")
    lines += [
        "",
        "### Loopback: two transports in one process (sender and receiver share one core)",
        "",
        "| message | event loop | frame bytes | frames/s | MB/s | CPU share | dropped |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, loop_name, size, rate, mb_s, cpu, dropped in loop_rows:
        lines.append(f"| {name} | {loop_name} | {size:,} | {rate:,.0f} | {mb_s:,.1f} | "
                     f"{cpu:.0%} | {dropped} |")
    if quick:
        lines += ["", "(quick smoke run: not results)"]
    table = "\n".join(lines) + "\n"
    print(table)
    (results_dir / "transport.md").write_text(table)
