"""RESP hot-path throughput: parsing pipelined SET/GET requests, encoding their replies, and
the whole server over loopback.

Method: a stream of pipelined SET (16-byte value) or GET requests is pre-encoded and fed to
:class:`RequestParser` in 16 KiB reads (what a socket delivers under load); replies for the
same commands are encoded in batches of 100, in RESP2 and RESP3. The end-to-end row runs the
asyncio server with a :class:`LocalExecutor` on a thread and one blocking socket client that
sends 100-command pipelines and reads the replies, so it includes the state machine, msgpack
payloads and the kernel. Each figure is the best of a few repetitions (machines are shared).
"""

from __future__ import annotations

import asyncio
import pathlib
import socket
import threading
import time
from collections.abc import Callable

from benchmarks.run import machine_line
from kvorum.kv.memory_engine import MemoryEngine
from kvorum.kv.replies import Reply
from kvorum.kv.state_machine import KVStateMachine
from kvorum.server.executor import LocalExecutor
from kvorum.server.resp import RequestParser, encode_command, encode_replies
from kvorum.server.server import RespServer, ServerConfig

VALUE = b"v" * 16
READ_BYTES = 16 * 1024
PIPELINE = 100


def _best_rate(operations: int, work: Callable[[], None], repeats: int) -> float:
    best_s = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best_s = min(best_s, time.perf_counter() - started)
    return operations / best_s


def _requests(kind: str, count: int) -> list[list[bytes]]:
    if kind == "SET":
        return [[b"SET", b"key:%d" % i, VALUE] for i in range(count)]
    return [[b"GET", b"key:%d" % i] for i in range(count)]


def _parse_rate(kind: str, count: int, repeats: int) -> float:
    stream = b"".join(encode_command(r) for r in _requests(kind, count))
    chunks = [stream[i : i + READ_BYTES] for i in range(0, len(stream), READ_BYTES)]

    def work() -> None:
        parser = RequestParser()
        parsed = 0
        for chunk in chunks:
            parsed += len(parser.feed(chunk))
        assert parsed == count

    return _best_rate(count, work, repeats)


def _encode_rate(kind: str, count: int, resp3: bool, repeats: int) -> float:
    batch: list[Reply] = ["OK"] * PIPELINE if kind == "SET" else [VALUE] * PIPELINE
    batches = count // PIPELINE

    def work() -> None:
        for _ in range(batches):
            encode_replies(batch, resp3)

    return _best_rate(batches * PIPELINE, work, repeats)


def _end_to_end_rate(kind: str, count: int, repeats: int) -> float:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = RespServer(
        LocalExecutor(KVStateMachine(MemoryEngine())), ServerConfig(host="127.0.0.1", port=0)
    )
    asyncio.run_coroutine_threadsafe(server.start(), loop).result()
    requests = _requests(kind, count)
    pipelines = [
        b"".join(encode_command(r) for r in requests[i : i + PIPELINE])
        for i in range(0, count, PIPELINE)
    ]
    one_reply = b"+OK\r\n" if kind == "SET" else b"$16\r\n" + VALUE + b"\r\n"
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            if kind == "GET":  # GETs should find values, like redis-benchmark's
                for pipeline in _end_to_end_setup(count):
                    sock.sendall(pipeline)
                    _read_exactly(sock, len(b"+OK\r\n") * PIPELINE)

            def work() -> None:
                for pipeline in pipelines:
                    sock.sendall(pipeline)
                    _read_exactly(sock, len(one_reply) * PIPELINE)

            return _best_rate(count, work, repeats)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def _end_to_end_setup(count: int) -> list[bytes]:
    requests = _requests("SET", count)
    return [
        b"".join(encode_command(r) for r in requests[i : i + PIPELINE])
        for i in range(0, count, PIPELINE)
    ]


def _read_exactly(sock: socket.socket, size: int) -> None:
    received = 0
    while received < size:
        chunk = sock.recv(max(size - received, 65536))
        if not chunk:
            raise ConnectionError("server closed the connection")
        received += len(chunk)


def run(results_dir: pathlib.Path, quick: bool) -> None:
    """Measure and write ``resp.md``."""
    count = 2_000 if quick else 200_000
    e2e_count = 1_000 if quick else 50_000
    repeats = 1 if quick else 3
    rows: list[tuple[str, str, float]] = []
    for kind in ("SET", "GET"):
        rows += [
            ("parse (16 KiB reads)", kind, _parse_rate(kind, count, repeats)),
            ("encode RESP2, batches of 100", kind, _encode_rate(kind, count, False, repeats)),
            ("encode RESP3, batches of 100", kind, _encode_rate(kind, count, True, repeats)),
            (
                "server end to end, 1 client, pipeline 100",
                kind,
                _end_to_end_rate(kind, e2e_count, repeats),
            ),
        ]
    size_note = "QUICK smoke run, not results" if quick else f"{count} commands per run"
    lines = [
        machine_line(),
        "",
        f"RESP throughput (best of {repeats}; commands per second; {size_note})",
        "",
        "| stage | command | commands/s |",
        "|---|---|---:|",
    ]
    lines += [f"| {stage} | {kind} | {rate:,.0f} |" for stage, kind, rate in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    (results_dir / "resp.md").write_text(table)
