"""The server end to end: real sockets, real redis-py clients (sync, asyncio, RESP3), the
LocalExecutor behind it; protocol faults, limits and node errors stay per connection."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis
import redis.asyncio
from resp_harness import FakeClock, ServerThread, recv_exactly, recv_until_closed

from kvorum.host.errors import CommitTimeoutError, NoLeaderError
from kvorum.kv.memory_engine import MemoryEngine
from kvorum.kv.replies import Reply
from kvorum.kv.state_machine import KVStateMachine
from kvorum.server.executor import Consistency, Executor, InfoSections, LocalExecutor
from kvorum.server.resp import encode_command
from kvorum.server.server import ServerConfig

ServerFactory = Callable[..., ServerThread]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_server(clock: FakeClock) -> Iterator[ServerFactory]:
    started: list[ServerThread] = []

    def make(executor: Executor | None = None, **config: Any) -> ServerThread:
        if executor is None:
            executor = LocalExecutor(KVStateMachine(MemoryEngine()), clock_ms=clock)
        server = ServerThread(executor, ServerConfig(host="127.0.0.1", port=0, **config))
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: ServerFactory) -> ServerThread:
    return make_server()


def client(server: ServerThread, **kwargs: object) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5, **kwargs)  # type: ignore[arg-type]


def test_every_command_through_redis_py(server: ServerThread, clock: FakeClock) -> None:
    with client(server) as r:
        assert r.ping() is True
        assert r.echo("hi") == b"hi"
        assert r.execute_command("SELECT", 0) is True
        with pytest.raises(redis.ResponseError, match="DB index is out of range"):
            r.execute_command("SELECT", 1)
        assert r.set("a", "1") is True
        assert r.get("a") == b"1"
        assert r.set("a", "2", nx=True) is None
        assert r.set("a", "3", xx=True, get=True) == b"1"
        assert r.setnx("b", "x") is True
        assert r.getset("b", "y") == b"x"
        assert r.getdel("b") == b"y"
        assert r.mset({"m1": "1", "m2": "2"}) is True
        assert r.mget("m1", "m2", "nope") == [b"1", b"2", None]
        assert r.incr("n") == 1
        assert r.incrby("n", 10) == 11
        assert r.decr("n") == 10
        assert r.decrby("n", 5) == 5
        assert r.append("s", "ab") == 2
        assert r.strlen("s") == 2
        assert r.exists("s", "n", "nope") == 2
        assert r.delete("s", "nope") == 1
        assert r.set("t", "v", ex=10) is True
        assert r.ttl("t") == 10
        assert r.pttl("t") == 10_000
        assert r.expire("t", 100, gt=True) is True
        assert r.pexpire("t", 5000) is True
        assert r.persist("t") is True
        assert r.ttl("t") == -1
        assert r.execute_command("CAS", "t", "v", "w") == 1
        assert r.execute_command("CAS", "t", "v", "w") == 0
        assert r.dbsize() == 5
        assert sorted(r.scan_iter(match="m*", count=1)) == [b"m1", b"m2"]
        assert r.role()[0] == b"master"
        info = r.info()
        assert info["redis_version"] == "7.0.0"
        assert info["role"] == "master"
        assert info["db0"]["keys"] == 5
        assert r.info("keyspace") == {"db0": {"keys": 5, "expires": 0, "avg_ttl": 0}}
        assert r.config_get("databases") == {"databases": "1"}
        assert r.command_count() > 30
        assert r.client_id() >= 1
        assert r.client_setname("me") is True
        assert r.client_getname() == "me"
        with pytest.raises(redis.ResponseError, match="unknown command 'NOPE'"):
            r.execute_command("NOPE", "x")
        with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get'"):
            r.execute_command("GET")
        clock.now_ms += 10_000
        assert r.set("e", "v", px=50) is True
        clock.now_ms += 50
        assert r.get("e") is None
        assert r.flushdb() is True
        assert r.dbsize() == 0


def test_resp3_client(server: ServerThread) -> None:
    with client(server, protocol=3) as r:
        assert r.set("k", "v") is True
        assert r.get("k") == b"v"
        assert r.get("missing") is None
        assert r.mget("k", "missing") == [b"v", None]
        assert r.config_get("databases") == {"databases": "1"}
        assert r.info("replication")["role"] == "master"
        hello = r.execute_command("HELLO", 3)
        assert hello[b"proto"] == 3
        assert hello[b"server"] == b"redis"
    raw = server.raw()
    with raw:
        raw.sendall(encode_command([b"GET", b"nope"]) + encode_command([b"HELLO", b"3"]))
        time.sleep(0.1)
        raw.sendall(encode_command([b"GET", b"nope"]))
        data = b""
        while not data.endswith(b"_\r\n"):
            data += raw.recv(4096)
        assert data.startswith(b"$-1\r\n%7\r\n")  # RESP2 null, then HELLO's map, then RESP3


def test_pipeline_keeps_order_and_reads_see_earlier_writes(server: ServerThread) -> None:
    with client(server) as r:
        pipe = r.pipeline(transaction=False)
        for i in range(500):
            pipe.set(f"k{i}", i)
            pipe.incr(f"k{i}")
            pipe.get(f"k{i}")
        pipe.execute_command("NOPE")
        pipe.ping()
        results = pipe.execute(raise_on_error=False)
        for i in range(500):
            assert results[3 * i : 3 * i + 3] == [True, i + 1, str(i + 1).encode()]
        assert isinstance(results[-2], redis.ResponseError)
        assert results[-1] is True


def test_asyncio_client_concurrently(server: ServerThread) -> None:
    async def main() -> list[object]:
        r = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        try:
            for _ in range(4):
                await asyncio.gather(*(r.incr("counter") for _ in range(50)))
            async with r.pipeline(transaction=False) as pipe:
                pipe.set("x", "1")
                pipe.get("x")
                assert await pipe.execute() == [True, b"1"]
            return [await r.get("counter"), await r.get("x")]
        finally:
            await r.aclose()

    assert asyncio.run(main()) == [b"200", b"1"]


def test_malformed_protocol_closes_only_that_connection(server: ServerThread) -> None:
    with client(server) as healthy:
        healthy.set("before", "1")
        bad = server.raw()
        with bad:
            bad.sendall(encode_command([b"SET", b"ran", b"yes"]) + b"*1\r\n$zz\r\n")
            assert recv_until_closed(bad) == b"+OK\r\n-ERR Protocol error: invalid bulk length\r\n"
        assert healthy.get("ran") == b"yes"  # requests before the error still ran
        assert healthy.get("before") == b"1"
        assert healthy.ping() is True


def test_partial_reads_byte_by_byte(server: ServerThread) -> None:
    sock = server.raw()
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in encode_command([b"SET", b"slow", b"value"]) + b"GET slow\r\n":
            sock.sendall(bytes([byte]))
        assert recv_exactly(sock, len(b"+OK\r\n$5\r\nvalue\r\n")) == b"+OK\r\n$5\r\nvalue\r\n"


def test_oversize_values_are_rejected(make_server: ServerFactory) -> None:
    server = make_server(max_bulk_bytes=1024)
    with client(server) as r:
        assert r.set("fits", b"x" * 1024) is True
        with pytest.raises((redis.ResponseError, redis.ConnectionError)):
            r.set("too-big", b"x" * 1025)
        assert r.exists("too-big") == 0  # redis-py reconnects for the next command
        assert r.strlen("fits") == 1024


def test_max_clients(make_server: ServerFactory) -> None:
    server = make_server(max_clients=2)
    first, second = server.raw(), server.raw()
    with first, second:
        for sock in (first, second):
            sock.sendall(b"PING\r\n")
            assert recv_exactly(sock, 7) == b"+PONG\r\n"
        third = server.raw()
        with third:
            assert recv_until_closed(third) == b"-ERR max number of clients reached\r\n"
        first.sendall(b"QUIT\r\n")
        assert recv_until_closed(first) == b"+OK\r\n"
    deadline = time.monotonic() + 5
    while len(server.server.sessions) > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with client(server) as r:
        assert r.ping() is True
    assert server.server.stats.rejected_connections == 1


def test_quit_ignores_the_rest_of_the_batch(server: ServerThread) -> None:
    sock = server.raw()
    with sock:
        sock.sendall(b"SET q 1\r\nQUIT\r\nSET q 2\r\n")
        assert recv_until_closed(sock) == b"+OK\r\n+OK\r\n"
    with client(server) as r:
        assert r.get("q") == b"1"


def test_idle_connections_are_closed(make_server: ServerFactory) -> None:
    server = make_server(idle_timeout_ms=150)
    sock = server.raw()
    with sock:
        sock.sendall(b"PING\r\n")
        assert recv_exactly(sock, 7) == b"+PONG\r\n"
        started = time.monotonic()
        assert recv_until_closed(sock) == b""
        assert time.monotonic() - started < 3


class FlakyExecutor:
    """A node without a leader for writes, slow reads for key "slow", else a single node."""

    def __init__(self) -> None:
        self.writes_refused = 0

    async def write_batch(self, payloads: Sequence[bytes]) -> list[Reply]:
        self.writes_refused += len(payloads)
        raise NoLeaderError()

    async def read_batch(
        self, requests: Sequence[Sequence[bytes]], consistency: Consistency
    ) -> list[Reply]:
        assert consistency is Consistency.LINEARIZABLE
        if any(request[1:] == [b"slow"] for request in requests):
            raise CommitTimeoutError(500)
        if any(request[1:] == [b"bug"] for request in requests):
            raise KeyError("bug")
        return [None for _ in requests]

    def now_ms(self) -> int:
        return 0

    def info(self) -> InfoSections:
        return {"replication": {"role": "candidate"}}

    def role(self) -> Reply:
        return [b"candidate"]


def test_node_errors_become_redis_error_replies(make_server: ServerFactory) -> None:
    executor = FlakyExecutor()
    server = make_server(executor=executor)
    sock = server.raw()
    with sock:
        # PINGs split the reads into separate batches: a failing batch fails as a whole.
        sock.sendall(b"SET a 1\r\nINCR a\r\nGET slow\r\nPING\r\nGET bug\r\nPING\r\nGET x\r\n")
        expected = (
            b"-CLUSTERDOWN no leader\r\n-CLUSTERDOWN no leader\r\n"
            b"-TIMEOUT not committed within 500 ms; the write may still be applied\r\n+PONG\r\n"
            b"-ERR internal error (KeyError)\r\n+PONG\r\n$-1\r\n"
        )
        assert recv_exactly(sock, len(expected)) == expected
    assert executor.writes_refused == 2
    with client(server) as r:
        with pytest.raises(redis.exceptions.ClusterDownError):
            r.set("a", "1")
        assert r.info("replication") == {"role": "candidate"}
