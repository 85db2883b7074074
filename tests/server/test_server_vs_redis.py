"""Differential test: the same requests, byte for byte, to kvorum and to a real Redis 7
(``redis-server``, skipped when it is not installed) must get byte-identical replies, in
RESP2 and RESP3, including every error text, and the same protocol-error behaviour."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from resp_harness import ServerThread, recv_until_closed

from kvorum.kv.memory_engine import MemoryEngine
from kvorum.kv.state_machine import KVStateMachine
from kvorum.server.executor import LocalExecutor
from kvorum.server.resp import encode_command
from kvorum.server.server import ServerConfig

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    yield from _redis_server()


def _redis_server(*extra: str) -> Iterator[int]:
    assert REDIS_SERVER is not None
    port = _free_port()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--databases", "1", "--protected-mode", "no", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.skip("redis-server did not start")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def kvorum_port() -> Iterator[int]:
    yield from _kvorum_server()


def _kvorum_server(requirepass: str | None = None) -> Iterator[int]:
    server = ServerThread(
        LocalExecutor(KVStateMachine(MemoryEngine())),
        ServerConfig(host="127.0.0.1", port=0, requirepass=requirepass),
    )
    try:
        yield server.port
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_with_password_port() -> Iterator[int]:
    yield from _redis_server("--requirepass", "s3cret")


@pytest.fixture
def kvorum_with_password_port() -> Iterator[int]:
    yield from _kvorum_server("s3cret")


class RawClient:
    """Sends raw requests and returns each raw reply, so replies compare byte for byte."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def _reply(self) -> bytes:
        line = self.reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in b"$=!" and rest != b"-1":
            return line + self.reader.read(int(rest) + 2)
        if kind in b"*~>%" and rest != b"-1":
            count = int(rest) * (2 if kind == b"%" else 1)
            return line + b"".join(self._reply() for _ in range(count))
        return line

    def call(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        return self._reply()


def _req(*words: str) -> bytes:
    return encode_command([w.encode() for w in words])


BIG = str(2**63 - 1)
MIN = str(-(2**63))
# One request per line, words separated by spaces ({BIG}/{MIN} are the int64 limits).
SCRIPT = f"""
FLUSHDB|PING|PING hello|PING a b|ECHO x|ECHO|SELECT 0|SELECT 1|SELECT x
GET k|SET k v|GET k|get|GeT a b|SET k w NX|SET k w XX GET|SET n 1 XX|SET k x NX XX
SET k x EX 10 PX 1|SET k x EX 0|SET k x EX -5|SET k x PX|SET k x EX ab|SET k x EX {BIG}
SET k x KEEPTTL EX 5|SET k x EX 100 EX 200|TTL k|SET k y KEEPTTL|TTL k|SET k y|TTL k
TTL nokey|PTTL k|SET k x bogus|SET k x PXAT 1|GET k
SETNX s 1|SETNX s 2|GETSET s 3|GETDEL s|GETDEL s|MSET a 1 b 2|MSET a 1 b|MGET a b c|MGET
INCR a|INCRBY a 10|INCRBY a x|INCRBY a 1.5|INCRBY a +1|INCRBY a 01|DECR a|DECRBY a 3
DECRBY a {MIN}|SET big {BIG}|INCR big|DECRBY big -1|SET small {MIN}|DECR small
INCRBY a 99999999999999999999|SET str abc|INCR str|APPEND str def|APPEND new x|STRLEN str
STRLEN none|EXISTS a a none|DEL a none|DEL
EXPIRE none 10|EXPIRE str 10 XX|EXPIRE str 10 GT|EXPIRE str 100 NX|EXPIRE str 10 NX|TTL str
EXPIRE str 50 GT|EXPIRE str 500 GT|TTL str|EXPIRE str 1000 LT|PEXPIRE str 20000 LT|TTL str
EXPIRE str 1 NX XX|EXPIRE str 1 GT LT|EXPIRE str 1 XX GT|EXPIRE str 1 bad|EXPIRE str x
EXPIRE str {BIG}|PEXPIRE str {BIG}|EXPIREAT str 1|EXISTS str|SET p v EX 100|PERSIST p
PERSIST p|PERSIST none|TTL p|DBSIZE|DBSIZE x|SCAN x|SCAN 0 COUNT 0|SCAN 0 COUNT x
SCAN 0 MATCH|SCAN 0 FOO 1|NOSUCH|NOSUCH arg1 arg2|CLIENT NOSUCH|CONFIG NOSUCH|COMMAND NOSUCH
CLIENT|HELLO 4|HELLO x|HELLO 2 BADOPT|CLIENT SETNAME ok|CLIENT GETNAME|SET|SET k|ROLE x
HELLO 3|GET none|MGET none b|SET k v|SET k v NX|CONFIG GET databases|FLUSHDB|DBSIZE|HELLO 2
GET none|CLUSTER SLOTS|CLUSTER INFO|CLUSTER KEYSLOT k|READONLY|READWRITE
COMMAND GETKEYS MSET a 1 b 2|COMMAND GETKEYS GET|COMMAND GETKEYS NOSUCH x|COMMAND GETKEYS PING
COMMAND GETKEYS|COMMAND GETKEYS PING x|COMMAND GETKEYS GET a b|COMMAND GETKEYS del x y z
COMMAND GETKEYS SET k v EX 10|COMMAND GETKEYS MGET a
SET e v|EXPIRE e -9223372036854776|EXPIRE e -9223372036854775|EXISTS e|SET e v
EXPIREAT e -9223372036854776|PEXPIRE e -9223372036854775808|EXISTS e|EXPIRE e 9223372036854776
AUTH x|AUTH default x|AUTH bob x|AUTH a b c|AUTH|HELLO 2 AUTH bob x|HELLO 2 AUTH default x
EXEC|DISCARD|UNWATCH|WATCH|MULTI x|MULTI|MULTI|WATCH a|SET t 1|INCR t|GET t|PING|ECHO e|EXEC
MULTI|EXEC|MULTI|DISCARD|EXEC|MULTI|NOSUCH|SET t 2|EXEC|GET t|MULTI|SET t|EXEC|GET t
SET s abc|MULTI|INCR s|SET s 5|INCR s|GET s|SET k v EX 0|EXPIRE s x|EXEC|GET s
WATCH w|SET w changed|MULTI|SET w mine|EXEC|GET w|WATCH w|MULTI|SET w mine|EXEC|GET w
WATCH nokey|MULTI|GET nokey|EXEC|WATCH w nokey|UNWATCH|SET w other|MULTI|GET w|EXEC
MULTI|DEL t s|EXISTS t s|MSET m1 1 m2 2|MGET m1 m2|TTL m1|EXEC|EXPIRETIME m1|PEXPIRETIME nokey
SET x 1|EXPIRE x 1000|MULTI|PERSIST x|TTL x|EXPIRETIME x|EXEC|EXEC x|DISCARD x
"""
CASES: list[bytes] = [
    _req(*line.split(" ")) for row in SCRIPT.strip().splitlines() for line in row.split("|")
] + [
    _req("NOSUCH", "x" * 300),
    _req("NOSUCH", "arg 1", "line\r\nbreak"),
    _req("CLIENT", "SETNAME", "has space"),
    b'SET inline "quoted value\\x41"\r\n',
    _req("GET", "inline"),
    b"*0\r\n*-1\r\nPING\r\n",
]


# With a password: what a connection may do before and after it authenticates.
PASSWORD_SCRIPT = """
GET k|SET k v|PING|DBSIZE|NOSUCH x|GET|SET k v NX XX|HELLO 3|HELLO 2 AUTH default wrong|AUTH wrong
AUTH bob s3cret|AUTH a b c|GET k|AUTH s3cret|SET k v|GET k|AUTH default wrong|GET k
AUTH default s3cret|GET k
"""
PASSWORD_CASES = [
    _req(*line.split(" ")) for row in PASSWORD_SCRIPT.strip().splitlines()
    for line in row.split("|")
]  # fmt: skip


def test_replies_are_byte_identical_to_redis(redis_port: int, kvorum_port: int) -> None:
    _compare(redis_port, kvorum_port, CASES)


def test_with_a_password_replies_are_byte_identical_to_redis(
    redis_with_password_port: int, kvorum_with_password_port: int
) -> None:
    _compare(redis_with_password_port, kvorum_with_password_port, PASSWORD_CASES)
    # HELLO with AUTH on a fresh connection logs in and switches protocol in one step.
    _compare(
        redis_with_password_port,
        kvorum_with_password_port,
        [_req("HELLO", "2", "AUTH", "default", "s3cret"), _req("GET", "k")],
    )


def _compare(redis_port: int, kvorum_port: int, cases: list[bytes]) -> None:
    redis_client, kvorum_client = RawClient(redis_port), RawClient(kvorum_port)
    try:
        mismatches = []
        for request in cases:
            expected = redis_client.call(request)
            got = kvorum_client.call(request)
            if b"$5\r\nHELLO\r\n" in request[:20] and expected[:1] in (b"*", b"%"):
                # The map's fields (version, id) legitimately differ; the shape must not.
                assert got[:3] == expected[:3], (request, got, expected)
                continue
            if got != expected:
                mismatches.append((request, expected, got))
        report = "\n".join(f"{r!r}: redis {e!r}, kvorum {g!r}" for r, e, g in mismatches)
        assert mismatches == [], report
    finally:
        redis_client.close()
        kvorum_client.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"*1\r\n$x\r\n",
        b"*1\r\n$-3\r\n",
        b"*2\r\n:1\r\n",
        b"*x\r\n",
        b"SET k \"open\r\n",
        b"SET k 'a'b\r\n",
    ],
)
def test_protocol_errors_match_redis(redis_port: int, kvorum_port: int, garbage: bytes) -> None:
    outputs = []
    for port in (redis_port, kvorum_port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"PING\r\n" + garbage)
            outputs.append(recv_until_closed(sock))
    assert outputs[1] == outputs[0]
