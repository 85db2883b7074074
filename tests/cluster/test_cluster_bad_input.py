"""Bad input and lost quorum against real nodes: faults stay local and answers stay bounded.

Theory of operation: the protocol checks talk raw bytes over plain sockets (redis-py would
refuse to send malformed RESP) next to an ordinary redis-py client and an idle "bystander"
connection on the same node; after each bad request the offender must get Redis's error line
and be closed, while the other two connections carry on. The error texts are Redis 7's, byte
for byte, since client libraries match on them. The quorum test kills two of three nodes and
times every request to the survivor: each must come back as an error — ``CLUSTERDOWN`` or
``TIMEOUT`` — within :data:`ANSWER_BOUND_S`, however the survivor saw the loss. The peer
port gets the same treatment: a frame of an unknown protocol, tag or group, or a hello of
another wire version, closes that connection with a log line naming the peer, and the
cluster goes on replicating.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import redis
from cluster_harness import HOST, Cluster, wait_until

from kvorum.runtime.codec import Hello, encode_hello, frame
from kvorum.runtime.wire_schema import WIRE_SCHEMA

ANSWER_BOUND_S = 6.0
"""Longest a client may wait for any answer from a node that lost its quorum."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("bad-input"), 3) as running:
        running.start_all()
        running.wait_for_leader()
        yield running


def _raw(cluster: Cluster, node_id: int) -> socket.socket:
    return socket.create_connection((HOST, cluster.ports[node_id].client_port), timeout=5)


def _recv_until_closed(sock: socket.socket) -> bytes:
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


def _ask(sock: socket.socket, request: bytes) -> bytes:
    """Send one request and read one line-terminated reply (enough for simple replies)."""
    sock.sendall(request)
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    return reply


@pytest.mark.parametrize(
    ("request_bytes", "error_line"),
    [
        (b"*2\r\n$3\r\nGET\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\nPING\r\n", b"-ERR Protocol error: expected '$', got 'P'\r\n"),
        (b"*x\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b'SET "unclosed 1\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n"),
    ],
    ids=["bad-bulk-length", "missing-dollar", "bad-multibulk-count", "unbalanced-quotes"],
)
def test_malformed_resp_closes_only_that_connection(
    cluster: Cluster, request_bytes: bytes, error_line: bytes
) -> None:
    node_id = cluster.members[0]
    with _raw(cluster, node_id) as bystander, cluster.client(node_id) as client:
        assert _ask(bystander, b"PING\r\n") == b"+PONG\r\n"
        with _raw(cluster, node_id) as offender:
            offender.sendall(request_bytes)
            assert _recv_until_closed(offender) == error_line
        key = f"survives-{request_bytes.hex()}"
        assert client.set(key, "yes")
        assert client.get(key) == b"yes"
        assert _ask(bystander, b"PING\r\n") == b"+PONG\r\n"


def test_a_value_over_the_configured_maximum_is_refused(cluster: Cluster) -> None:
    node_id = cluster.members[1]
    with cluster.client(node_id) as client:
        limit = int(client.config_get("proto-max-bulk-len")["proto-max-bulk-len"])
        with _raw(cluster, node_id) as offender:
            # The header alone announces the oversized value: it is refused before any of it
            # is sent (or buffered), as Redis does.
            offender.sendall(
                b"*3\r\n$3\r\nSET\r\n$9\r\ntoo-large\r\n$" + str(limit + 1).encode() + b"\r\n"
            )
            assert _recv_until_closed(offender) == (
                b"-ERR Protocol error: invalid bulk length\r\n"
            )
        with _raw(cluster, node_id) as at_limit:
            # Exactly the maximum is acceptable: the node waits for the bytes, says nothing.
            at_limit.sendall(
                b"*3\r\n$3\r\nSET\r\n$8\r\nat-limit\r\n$" + str(limit).encode() + b"\r\n"
            )
            at_limit.settimeout(0.5)
            with pytest.raises(TimeoutError):
                at_limit.recv(1)
        assert client.get("too-large") is None
        assert client.ping()


def test_a_key_too_long_for_the_engine_is_refused_and_harms_nothing(cluster: Cluster) -> None:
    # 510 bytes is one past what the engine stores (LMDB's 511 less the 2-byte slot prefix).
    # Such a key must be refused before it reaches the log: an entry no replica can apply
    # would stop every node, and again on every restart.
    long_key = "k" * 510
    for node_id in cluster.members[:2]:  # through a follower (forwarded) and the leader
        with cluster.client(node_id) as client:
            for command in (("SET", long_key, "v"), ("MSET", "fine", "1", long_key, "2"),
                            ("GET", long_key), ("DEL", "fine", long_key)):
                with pytest.raises(redis.ResponseError, match="key is too long"):
                    client.execute_command(*command)
            assert client.set("k" * 509, "longest") and client.get("k" * 509) == b"longest"
            assert client.get("fine") is None  # the refused MSET wrote nothing
    for node_id in cluster.members:
        with cluster.client(node_id) as client:
            assert client.ping()


def test_unknown_commands_get_redis_error_text(cluster: Cluster) -> None:
    node_id = cluster.members[2]
    with _raw(cluster, node_id) as sock:
        assert _ask(sock, b"*3\r\n$6\r\nFOOBAR\r\n$1\r\na\r\n$2\r\nbc\r\n") == (
            b"-ERR unknown command 'FOOBAR', with args beginning with: 'a' 'bc' \r\n"
        )
        assert _ask(sock, b"NOSUCHTHING\r\n") == (
            b"-ERR unknown command 'NOSUCHTHING', with args beginning with: \r\n"
        )
        # An unknown command is an ordinary error, not a protocol error: the connection lives.
        assert _ask(sock, b"PING\r\n") == b"+PONG\r\n"
    with cluster.client(node_id) as client, pytest.raises(redis.ResponseError) as caught:
        client.execute_command("FLUMMOX", "x")
    assert str(caught.value) == "unknown command 'FLUMMOX', with args beginning with: 'x' "


def _timed(sock: socket.socket, request: bytes) -> tuple[float, bytes]:
    """Send one request; return how long its reply took and the reply line."""
    began = time.monotonic()
    reply = _ask(sock, request)
    return time.monotonic() - began, reply


@pytest.mark.slow
@pytest.mark.parametrize("survivor_role", ["follower", "leader"])
def test_without_a_quorum_requests_fail_fast_and_never_hang(
    tmp_path: Path, survivor_role: str
) -> None:
    with Cluster(tmp_path, 3) as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader()
        if survivor_role == "leader":
            survivor = leader
        else:
            survivor = next(i for i in cluster.members if i != leader)
        with cluster.client(survivor) as client:
            assert client.set("before", "1")
        for node_id in cluster.members:
            if node_id != survivor:
                cluster.kill(node_id)

        # Raw bytes, to see the error exactly as sent (redis-py turns CLUSTERDOWN into its
        # own exception class without the code). The socket's timeout is well past the
        # bound, so a slow answer shows as slow, not as a client-side timeout.
        with _raw(cluster, survivor) as sock:
            sock.settimeout(3 * ANSWER_BOUND_S)
            answers = [
                _timed(sock, b"SET during-1 x\r\n"),
                _timed(sock, b"GET before\r\n"),
                _timed(sock, b"SET during-2 x\r\n"),
            ]
            for elapsed_s, reply in answers:
                assert reply.startswith((b"-CLUSTERDOWN ", b"-TIMEOUT ")), answers
                assert elapsed_s <= ANSWER_BOUND_S, answers
            # The node itself stays responsive to everything that needs no quorum.
            assert _ask(sock, b"PING\r\n") == b"+PONG\r\n"
        status = cluster.status(survivor)
        assert status is not None
        # A leader cut off from its quorum steps down (CheckQuorum) rather than pose as one.
        assert status["role"] != "leader"



STRANGER = 9
"""The node id the bad peer claims: no member's, so nothing real is confused with it."""

BAD_PEER_HEADS = {
    "unknown-protocol": (9, 0, 4),  # [protocol, group, tag] of an envelope
    "unknown-tag": (1, 0, 99),
    "unknown-group": (1, 7, 4),  # a well-formed Raft heartbeat, for a group no node holds
}


def _bad_peer_bytes(kind: str, node_id: int) -> bytes:
    if kind == "old-wire-version":
        return frame(msgpack.packb(("kvorum-raft", 1, 0x1234, "kvorum", STRANGER, node_id)))
    hello = encode_hello(Hello("kvorum", STRANGER, node_id), WIRE_SCHEMA.fingerprint)
    return frame(hello) + frame(msgpack.packb((*BAD_PEER_HEADS[kind], STRANGER, node_id, 1, 0, 0)))


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("unknown-protocol", "unknown protocol 9"),
        ("unknown-tag", "unknown tag 99 in protocol RAFT"),
        ("unknown-group", "no RAFT group 7 on this node"),
        ("old-wire-version", f"node {STRANGER} speaks wire version 1, this node wire version 2"),
    ],
)
def test_a_bad_peer_frame_drops_only_that_connection(
    cluster: Cluster, kind: str, reason: str
) -> None:
    node_id = cluster.members[2]
    logged = f"dropping the connection from node {STRANGER} at {HOST}:"
    before = cluster.log_text(node_id).count(logged)
    with socket.create_connection((HOST, cluster.ports[node_id].raft_port), timeout=5) as peer:
        peer.sendall(_bad_peer_bytes(kind, node_id))
        assert _recv_until_closed(peer) == b""  # closed by the node, nothing said
    wait_until(lambda: cluster.log_text(node_id).count(logged) > before, 10.0, "the log line")
    line = [x for x in cluster.log_text(node_id).splitlines() if logged in x][-1]
    assert line.endswith(reason), line
    # The node's real peer connections carry on: writes replicate, and forward from followers.
    for via in cluster.members:
        with cluster.client(via) as client:
            assert client.set(f"after-{kind}-{via}", "ok")
    with cluster.client(node_id) as client:
        for via in cluster.members:
            assert client.get(f"after-{kind}-{via}") == b"ok"
