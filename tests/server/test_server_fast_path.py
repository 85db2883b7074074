"""The server's fast path (an executor with ``submit_writes``/``submit_reads``, as a cluster
node has) and the per-connection flow control of its Protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from resp_harness import FakeClock, ServerThread, recv_exactly

from kvorum.kv.memory_engine import MemoryEngine
from kvorum.kv.replies import Reply
from kvorum.kv.state_machine import KVStateMachine
from kvorum.server.executor import Consistency, ExecutorError, LocalExecutor
from kvorum.server.server import RespServer, ServerConfig, _Connection


class SubmittingExecutor(LocalExecutor):
    """LocalExecutor plus the callback-style entry points; records each batch it gets and
    settles it on a later loop turn, as a Raft node does."""

    def __init__(self) -> None:
        super().__init__(KVStateMachine(MemoryEngine()), clock_ms=FakeClock())
        self.batches: list[tuple[str, int]] = []
        self.fail_writes_with: ExecutorError | None = None

    def submit_writes(self, payloads: Sequence[bytes]) -> asyncio.Future[list[Reply]]:
        self.batches.append(("write", len(payloads)))
        fut: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        if self.fail_writes_with is not None:
            fut.get_loop().call_soon(fut.set_exception, self.fail_writes_with)
        else:
            index = self.machine.engine.applied_index() + 1
            fut.get_loop().call_soon(fut.set_result, self.machine.apply_many(payloads, index))
        return fut

    def submit_reads(
        self, requests: Sequence[Sequence[bytes]], consistency: Consistency
    ) -> asyncio.Future[list[Reply]]:
        self.batches.append(("read", len(requests)))
        fut: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        now_ms = self.now_ms()
        fut.get_loop().call_soon(
            fut.set_result, [self.machine.read(r, now_ms) for r in requests]
        )
        return fut


@pytest.fixture
def node() -> SubmittingExecutor:
    return SubmittingExecutor()


@pytest.fixture
def server(node: SubmittingExecutor) -> Iterator[ServerThread]:
    running = ServerThread(node, ServerConfig(host="127.0.0.1", port=0))
    yield running
    running.stop()


def _exchange(server: ServerThread, request: bytes, expected: bytes) -> None:
    with server.raw() as sock:
        sock.sendall(request)
        assert recv_exactly(sock, len(expected)) == expected


def test_a_pipelined_run_of_writes_or_reads_is_one_submission(
    server: ServerThread, node: SubmittingExecutor
) -> None:
    _exchange(server, b"SET a 1\r\nSET b 2\r\nSET c 3\r\n", b"+OK\r\n" * 3)
    _exchange(server, b"GET a\r\nGET c\r\n", b"$1\r\n1\r\n$1\r\n3\r\n")
    assert node.batches == [("write", 3), ("read", 2)]


def test_batches_the_fast_path_cannot_take_still_run_in_order(
    server: ServerThread, node: SubmittingExecutor
) -> None:
    # A connection command, a mix of kinds, a failed check and an empty request: all go
    # the general way, and the replies keep the request order.
    _exchange(
        server,
        b"PING\r\nSET k v\r\nGET k\r\nSET k\r\n*0\r\nGET k\r\n",
        b"+PONG\r\n+OK\r\n$1\r\nv\r\n"
        b"-ERR wrong number of arguments for 'set' command\r\n$1\r\nv\r\n",
    )
    assert node.batches == []  # all through write_batch and read_batch, not submit_*


def test_an_executor_error_answers_every_request_of_the_batch(
    server: ServerThread, node: SubmittingExecutor
) -> None:
    node.fail_writes_with = ExecutorError("CLUSTERDOWN no leader")
    _exchange(server, b"SET a 1\r\nSET b 2\r\n", b"-CLUSTERDOWN no leader\r\n" * 2)
    node.fail_writes_with = None
    _exchange(server, b"SET a 1\r\n", b"+OK\r\n")  # the same server carries on


class RecordingTransport:
    """Just enough of a transport to watch a connection's flow control."""

    def __init__(self) -> None:
        self.written = b""
        self.reading = True
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else None


def test_a_client_that_stops_reading_replies_stops_being_read(
    node: SubmittingExecutor,
) -> None:
    async def body() -> None:
        connection = _Connection(RespServer(node, ServerConfig(port=0)))
        transport = RecordingTransport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        connection.pause_writing()  # the client's socket is full of unread replies
        connection.data_received(b"SET a 1\r\n" * 100)
        assert not transport.reading, "kept reading a client that reads no replies"
        assert node.batches == [] and transport.written == b""
        connection.resume_writing()
        await asyncio.sleep(0.01)
        assert node.batches == [("write", 100)]
        assert transport.written == b"+OK\r\n" * 100
        assert transport.reading

    asyncio.run(body())


def test_reading_pauses_while_a_batch_runs(node: SubmittingExecutor) -> None:
    async def body() -> None:
        connection = _Connection(RespServer(node, ServerConfig(port=0)))
        transport = RecordingTransport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        connection.data_received(b"SET a 1\r\n")
        connection.data_received(b"SET b 2\r\n")  # arrives while the first is in flight
        assert not transport.reading
        await asyncio.sleep(0.01)
        assert node.batches == [("write", 1), ("write", 1)]
        assert transport.written == b"+OK\r\n+OK\r\n" and transport.reading

    asyncio.run(body())
