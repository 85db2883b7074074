"""Test harness: a real RESP server on 127.0.0.1, run on its own event loop thread so that
blocking redis-py clients (and asyncio ones on another loop) can talk to it from the test.
(A plain module, not a conftest, so mypy does not see two modules named ``conftest``.)"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from kvorum.server.executor import Executor
from kvorum.server.server import RespServer, ServerConfig

T = TypeVar("T")


class FakeClock:
    """A settable ms clock shared by the test and the server thread."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


class ServerThread:
    """Runs a :class:`RespServer` until :meth:`stop`."""

    def __init__(self, executor: Executor, config: ServerConfig) -> None:
        self.executor = executor
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = RespServer(executor, config)
        self.call(self.server.start())
        self.port = self.server.port

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def stop(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def raw(self) -> socket.socket:
        """A plain socket connected to the server (closed by the caller)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return sock


def recv_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data
