"""The peer transport over real sockets on 127.0.0.1 (ephemeral ports).

Every test runs its own event loop and ends with ``close()`` on every transport, then checks
that no task is left behind; unclosed sockets would surface as ResourceWarnings, which the
suite turns into errors. Bad input from one peer — an old wire version, an unknown protocol,
tag or group — must close that peer's connection with a log line naming it, while every
other connection keeps delivering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from random import Random
from typing import Any

import msgpack
import pytest
import uvloop

from kvorum.core.raft.messages import AppendEntries, Entry, Heartbeat, RaftMessage
from kvorum.core.shape import Envelope, ProtocolId, UnknownGroupError
from kvorum.host.messages import ForwardRequest
from kvorum.runtime.codec import (
    EncodeError,
    FrameTooLargeError,
    Hello,
    encode_hello,
    frame,
)
from kvorum.runtime.transport import (
    DropPolicy,
    PeerTransport,
    TransportClosedError,
    TransportConfig,
    UnknownPeerError,
    backoff_delay_ms,
    parse_address,
)
from kvorum.runtime.wire_schema import WIRE_SCHEMA

FINGERPRINT = WIRE_SCHEMA.fingerprint

CLUSTER = "test-cluster"


def run(body: Callable[[], Awaitable[None]], loop_factory: Any = None) -> None:
    """Run ``body`` on a fresh loop and insist it leaves no task behind."""

    async def checked() -> None:
        await body()
        await asyncio.sleep(0)
        leftovers = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftovers, f"tasks left running after close(): {leftovers}"

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(checked())


class Node:
    """A transport plus the list of what it received."""

    def __init__(
        self,
        node_id: int,
        cluster_id: str = CLUSTER,
        on_message: Callable[[Envelope], None] | None = None,
        **config: Any,
    ) -> None:
        self.received: list[Envelope] = []
        settings: dict[str, Any] = {"reconnect_base_ms": 5.0, "reconnect_max_ms": 50.0}
        settings.update(config)
        self.transport = PeerTransport(
            TransportConfig(cluster_id, node_id, **settings),
            on_message or self.received.append,
            Random(node_id),
        )

    @property
    def metrics(self) -> dict[str, int]:
        return self.transport.metrics()


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def started(*nodes: Node) -> None:
    """Start every node and tell each one every other's address."""
    for node in nodes:
        await node.transport.start()
    for node in nodes:
        for other in nodes:
            if other is not node:
                node.transport.add_peer(other.transport.node_id, other.transport.address)


async def close_all(*nodes: Node) -> None:
    for node in nodes:
        await node.transport.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def raft(msg: RaftMessage, group_id: int = 0) -> Envelope:
    return Envelope(ProtocolId.RAFT, group_id, msg.src, msg.dst, msg)


def heartbeat(src: int, dst: int, round_: int, group_id: int = 0) -> Envelope:
    return raft(Heartbeat(src, dst, term=1, leader_commit=0, round=round_), group_id)


def hello_frame(sender: int, receiver: int, cluster_id: str = CLUSTER) -> bytes:
    return frame(encode_hello(Hello(cluster_id, sender, receiver), FINGERPRINT))


LOOPS = [pytest.param(None, id="asyncio"), pytest.param(uvloop.new_event_loop, id="uvloop")]


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_two_transports_exchange_messages_in_order(loop_factory: Any) -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        await started(a, b)
        entries = tuple(Entry(1, i, b"v" * 100) for i in range(1, 17))
        for r in range(200):
            a.transport.send(heartbeat(1, 2, r))
            b.transport.send(heartbeat(2, 1, r))
        a.transport.send(raft(AppendEntries(1, 2, 1, 0, 0, entries, 0), group_id=5))
        await wait_until(lambda: len(b.received) == 201 and len(a.received) == 200, "delivery")
        assert b.received[:200] == [heartbeat(1, 2, r) for r in range(200)]
        assert b.received[200] == raft(AppendEntries(1, 2, 1, 0, 0, entries, 0), group_id=5)
        assert a.received == [heartbeat(2, 1, r) for r in range(200)]
        sent, got = a.metrics, b.metrics
        assert sent["sent_frames"] == 201 and sent["dropped_frames"] == 0
        assert got["received_frames"] == 201
        assert sent["sent_bytes"] == got["received_bytes"] > 201 * 8  # hellos not counted
        assert sent["connects"] == 1 and sent["reconnects"] == 0
        assert a.transport.peer_connected(2)
        await close_all(a, b)

    run(body, loop_factory)


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_corked_sends_are_held_then_written_together_in_order(loop_factory: Any) -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        await started(a, b)
        a.transport.send(heartbeat(1, 2, 0))  # connects
        await wait_until(lambda: len(b.received) == 1, "the first heartbeat")
        a.transport.cork()
        for r in range(1, 51):
            assert a.transport.send(heartbeat(1, 2, r, group_id=r))
        await asyncio.sleep(0.05)
        assert len(b.received) == 1, "a corked frame reached the peer"
        assert a.metrics["sent_frames"] == 1
        a.transport.uncork()
        a.transport.send(heartbeat(1, 2, 51))  # after uncork: straight to the socket again
        await wait_until(lambda: len(b.received) == 52, "the held frames")
        assert b.received == [heartbeat(1, 2, 0)] + [
            heartbeat(1, 2, r, group_id=r) for r in range(1, 51)
        ] + [heartbeat(1, 2, 51)]
        assert a.metrics["sent_frames"] == 52
        await close_all(a, b)

    run(body, loop_factory)


def test_three_transports_all_pairs() -> None:
    async def body() -> None:
        nodes = [Node(i) for i in (1, 2, 3)]
        await started(*nodes)
        for node in nodes:
            me = node.transport.node_id
            for other in (1, 2, 3):
                if other != me:
                    for r in range(20):
                        node.transport.send(heartbeat(me, other, r))
        await wait_until(lambda: all(len(n.received) == 40 for n in nodes), "all pairs")
        for node in nodes:
            me = node.transport.node_id
            for other in (1, 2, 3):
                if other != me:
                    assert [m for m in node.received if m.src == other] == [
                        heartbeat(other, me, r) for r in range(20)
                    ]
        await close_all(*nodes)

    run(body)


@pytest.mark.parametrize("policy", list(DropPolicy))
def test_peer_that_is_down_is_reached_after_it_starts(policy: DropPolicy) -> None:
    async def body() -> None:
        port = free_port()
        a = Node(1, max_queue_frames=10, drop_policy=policy)
        await a.transport.start()
        a.transport.add_peer(2, f"127.0.0.1:{port}")
        accepted = [a.transport.send(heartbeat(1, 2, r)) for r in range(25)]
        await wait_until(lambda: a.metrics["connect_failures"] >= 3, "retries")
        assert a.metrics["queued_frames"] == 10
        assert a.metrics["dropped_frames"] == 15
        assert not a.transport.peer_connected(2)
        b = Node(2, listen=f"127.0.0.1:{port}")
        await b.transport.start()
        await wait_until(lambda: len(b.received) == 10, "delivery after reconnect")
        kept = range(15, 25) if policy is DropPolicy.OLDEST else range(10)
        assert b.received == [heartbeat(1, 2, r) for r in kept]
        assert accepted == (
            [True] * 25 if policy is DropPolicy.OLDEST else [True] * 10 + [False] * 15
        )
        assert a.metrics["connects"] == 1 and a.metrics["reconnects"] == 0

        # The peer restarts on the same port: the sender notices and redials.
        await b.transport.close()
        b2 = Node(2, listen=f"127.0.0.1:{port}")
        await b2.transport.start()
        for r in range(100, 200):
            a.transport.send(heartbeat(1, 2, r))
            await asyncio.sleep(0.001)
            if b2.received:
                break
        await wait_until(lambda: bool(b2.received), "delivery after the peer restarted")
        assert a.metrics["reconnects"] == 1
        assert a.metrics["connections_lost"] == 1
        await close_all(a, b2)

    run(body)


@contextlib.contextmanager
def sink_listener() -> Iterator[socket.socket]:
    """A listening socket with a tiny receive buffer, for a peer that never reads."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    try:
        yield listener
    finally:
        listener.close()


def test_a_peer_that_never_reads_blocks_no_one_and_its_queue_stays_bounded() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        with sink_listener() as listener:
            a = Node(1, max_queue_frames=32)
            c = Node(3)
            await started(a, c)
            sink_port = listener.getsockname()[1]
            a.transport.add_peer(2, f"127.0.0.1:{sink_port}")
            accepted, _ = await loop.sock_accept(listener)  # accepted, then never read
            with accepted:
                big = (Entry(1, 1, b"x" * 16_000),)
                rounds = 0
                # Bursts smaller than the queue, until the socket buffers are full and the
                # sink's sender sits in drain() while its queue fills up and overflows.
                while a.transport.peer_metrics()[2]["dropped_frames"] < 100:
                    rounds += 1
                    assert rounds < 5_000, "the sink never filled up"
                    for _ in range(8):
                        a.transport.send(raft(AppendEntries(1, 2, 1, 0, 0, big, 0)))
                    await asyncio.sleep(0.0005)
                    assert a.transport.peer_metrics()[2]["queued_frames"] <= 32
                # The sink is stuck; the healthy peer is not.
                for r in range(100):
                    a.transport.send(heartbeat(1, 3, r))
                    a.transport.send(raft(AppendEntries(1, 2, 1, 0, 0, big, 0)))
                    if r % 10 == 9:
                        await asyncio.sleep(0.001)
                await wait_until(lambda: len(c.received) == 100, "delivery beside a dead peer")
                assert c.received == [heartbeat(1, 3, r) for r in range(100)]
                stuck = a.transport.peer_metrics()[2]
                assert stuck["queued_frames"] == 32  # full: nothing leaves for the sink
                assert stuck["dropped_frames"] >= 200
                assert stuck["connections_lost"] == 0  # still within write_timeout_ms
                assert a.transport.peer_metrics()[3]["dropped_frames"] == 0
                await close_all(a, c)

    run(body)


async def raw_connect(node: Node) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = parse_address(node.transport.address)
    return await asyncio.open_connection(host, port)


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """Whether the other side closes the connection (reads until EOF or reset)."""
    try:
        async with asyncio.timeout(3.0):
            while await reader.read(4096):
                pass
    except ConnectionResetError:
        pass
    return True


def after_hello(*payloads: object) -> Callable[[], bytes]:
    """A valid hello from node 3 to node 2, then each payload msgpacked in a frame."""
    return lambda: hello_frame(3, 2) + b"".join(frame(msgpack.packb(p)) for p in payloads)


GOOD_HEARTBEAT = (1, 0, 4, 3, 2, 1, 0, 0)  # RAFT, group 0, Heartbeat from node 3 to node 2

BAD_INBOUND: dict[str, tuple[Callable[[], bytes], str]] = {
    "http request": (lambda: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "is not a hello"),
    "wrong cluster": (lambda: hello_frame(3, 2, "other-cluster"), "belongs to cluster"),
    "wrong receiver": (lambda: hello_frame(3, 9), "dialled node 9"),
    "old wire version": (
        lambda: frame(msgpack.packb(("kvorum-raft", 1, 0x1234, CLUSTER, 3, 2))),
        "node 3 speaks wire version 1, this node wire version 2",
    ),
    "other schema": (
        lambda: frame(encode_hello(Hello(CLUSTER, 3, 2), FINGERPRINT ^ 1)),
        "built from other message definitions",
    ),
    "garbage after hello": (lambda: hello_frame(3, 2) + frame(b"\xc1\xc1\xc1"), "malformed"),
    "oversize frame": (lambda: hello_frame(3, 2) + struct.pack(">I", 2**31), "limit is"),
    "unknown protocol": (after_hello(GOOD_HEARTBEAT, (9, 0, 4, 3, 2)), "unknown protocol 9"),
    "protocol not spoken": (after_hello((2, 0, 0, 3, 2)), "unknown protocol 2 (PAXOS"),
    "unknown tag": (
        after_hello(GOOD_HEARTBEAT, (1, 0, 99, 3, 2)),
        "unknown tag 99 in protocol RAFT",
    ),
    "retired tag": (after_hello((1, 0, 11, 3, 2, 1, 7, b"")), "tag 11 in protocol RAFT (a retired"),
    "wrong field type": (after_hello((1, 0, 4, 3, 2, "1", 0, 0)), "wrong field types"),
    "forged sender": (after_hello((1, 0, 4, 4, 2, 1, 0, 0)), "from 4 to 2"),
    "unknown group": (after_hello(GOOD_HEARTBEAT, (1, 7, 4, 3, 2, 1, 0, 0)), "no RAFT group 7"),
}


def holds_group_0(received: list[Envelope]) -> Callable[[Envelope], None]:
    """An on_message that holds only group 0 of each protocol, as a one-group node does."""

    def on_message(env: Envelope) -> None:
        if env.group_id != 0:
            raise UnknownGroupError(f"no {env.protocol.name} group {env.group_id} on this node")
        received.append(env)

    return on_message


@pytest.mark.parametrize(("payload", "logged"), list(BAD_INBOUND.values()), ids=list(BAD_INBOUND))
def test_bad_inbound_connection_is_closed_alone_and_the_peer_named(
    payload: Callable[[], bytes], logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        a, c = Node(1), Node(4)
        b_received: list[Envelope] = []
        b = Node(2, on_message=holds_group_0(b_received))
        await started(a, b, c)
        a.transport.send(heartbeat(1, 2, 0))
        await wait_until(lambda: len(b_received) == 1, "first delivery")
        reader, writer = await raw_connect(b)
        writer.write(payload())
        await writer.drain()
        a.transport.send(heartbeat(1, 2, 1))  # interleaved with the bad connection's frames
        assert await closed_by_peer(reader)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        assert b.metrics["inbound_rejected"] == 1
        a.transport.send(heartbeat(1, 2, 2))  # the good connections are untouched
        c.transport.send(heartbeat(4, 2, 0))
        await wait_until(
            lambda: sum(e.src in (1, 4) for e in b_received) == 4, "delivery after the rejection"
        )
        assert [e for e in b_received if e.src == 1] == [heartbeat(1, 2, r) for r in range(3)]
        assert [e for e in b_received if e.src == 4] == [heartbeat(4, 2, 0)]
        # Frames before the bad one were delivered; nothing after it was.
        assert all(e.src != 3 or e == heartbeat(3, 2, 0) for e in b_received)
        a_to_b = a.transport.peer_metrics()[2]
        assert a_to_b["connects"] == 1 and a_to_b["connections_lost"] == 0
        await close_all(a, b, c)

    with caplog.at_level(logging.WARNING, logger="kvorum.runtime.transport"):
        run(body)
    (line,) = [
        r.getMessage() for r in caplog.records if "dropping the connection" in r.getMessage()
    ]
    assert line.startswith("node 2: dropping the connection from ")
    assert logged in line
    if "hello" not in logged:
        assert "from node 3 at 127.0.0.1:" in line  # the peer, by node id and address


def test_an_envelope_for_a_group_not_held_drops_that_peers_connection_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body() -> None:
        b_received: list[Envelope] = []
        a, c = Node(1), Node(3)
        b = Node(2, on_message=holds_group_0(b_received))
        await started(a, b, c)
        a.transport.send(heartbeat(1, 2, 0))
        await wait_until(lambda: len(b_received) == 1, "first delivery")
        a.transport.send(heartbeat(1, 2, 1, group_id=7))  # b holds no group 7
        await wait_until(lambda: b.metrics["inbound_rejected"] == 1, "the refusal")
        for r in range(20):  # c's connection never noticed
            c.transport.send(heartbeat(3, 2, r))
        await wait_until(lambda: sum(e.src == 3 for e in b_received) == 20, "c's delivery")
        # a's sender finds its connection closed, redials, and group 0 flows again.
        r = 2
        while not any(e.src == 1 and e != heartbeat(1, 2, 0) for e in b_received):
            a.transport.send(heartbeat(1, 2, r))
            r += 1
            await asyncio.sleep(0.005)
        a_to_b, c_to_b = a.transport.peer_metrics()[2], c.transport.peer_metrics()[2]
        assert a_to_b["connects"] == 2 and a_to_b["connections_lost"] == 1
        assert c_to_b["connects"] == 1 and c_to_b["connections_lost"] == 0
        assert [e.src for e in b_received].count(3) == 20
        assert all(e.group_id == 0 for e in b_received)
        await close_all(a, b, c)

    with caplog.at_level(logging.WARNING, logger="kvorum.runtime.transport"):
        run(body)
    assert any(
        r.getMessage().startswith("node 2: dropping the connection from node 1 at 127.0.0.1:")
        and r.getMessage().endswith("no RAFT group 7 on this node")
        for r in caplog.records
    )


def test_a_node_of_another_wire_version_is_refused_at_connect_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An old node dialling a new one: its hello says version 1 and it never gets further."""

    async def body() -> None:
        b = Node(2)
        await b.transport.start()
        reader, writer = await raw_connect(b)
        writer.write(frame(msgpack.packb(("kvorum-raft", 1, 0x5EED, CLUSTER, 7, 2))))
        writer.write(frame(msgpack.packb((4, 7, 2, 1, 0, 0))))  # a version 1 Heartbeat
        await writer.drain()
        assert await closed_by_peer(reader)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        assert b.received == [] and b.metrics["received_frames"] == 0
        assert b.metrics["inbound_rejected"] == 1
        await b.transport.close()

    with caplog.at_level(logging.WARNING, logger="kvorum.runtime.transport"):
        run(body)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith("node 2: dropping the connection from node 7 at 127.0.0.1:")
    assert message.endswith(": node 7 speaks wire version 1, this node wire version 2")


def test_a_transport_of_another_cluster_is_refused() -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        stranger = Node(3, cluster_id="other")
        await started(a, b)
        await stranger.transport.start()
        stranger.transport.add_peer(2, b.transport.address)
        await wait_until(lambda: b.metrics["inbound_rejected"] >= 1, "rejection")
        for r in range(5):
            stranger.transport.send(heartbeat(3, 2, r))
            a.transport.send(heartbeat(1, 2, r))
            await asyncio.sleep(0.01)
        await wait_until(lambda: len(b.received) == 5, "delivery from the real peer")
        assert all(m.src == 1 for m in b.received)
        await close_all(a, b, stranger)

    run(body)


def test_silent_inbound_connection_times_out() -> None:
    async def body() -> None:
        b = Node(2, hello_timeout_ms=50.0)
        await b.transport.start()
        reader, writer = await raw_connect(b)
        assert await closed_by_peer(reader)
        writer.close()
        await writer.wait_closed()
        await b.transport.close()

    run(body)


def test_callback_errors_are_counted_and_do_not_drop_the_connection() -> None:
    async def body() -> None:
        seen: list[Envelope] = []

        def flaky(msg: Envelope) -> None:
            seen.append(msg)
            if len(seen) == 1:
                raise RuntimeError("application bug")

        a, b = Node(1), Node(2, on_message=flaky)
        await started(a, b)
        a.transport.send(heartbeat(1, 2, 0))
        a.transport.send(heartbeat(1, 2, 1))
        await wait_until(lambda: len(seen) == 2, "both deliveries")
        assert b.metrics["callback_errors"] == 1
        await close_all(a, b)

    run(body)


def test_send_refuses_what_it_cannot_deliver() -> None:
    async def body() -> None:
        a = Node(1, max_frame_bytes=1000, max_queue_bytes=2000)
        with pytest.raises(TransportClosedError):
            a.transport.send(heartbeat(1, 2, 0))
        await a.transport.start()
        with pytest.raises(UnknownPeerError, match="node 2"):
            a.transport.send(heartbeat(1, 2, 0))
        a.transport.add_peer(2, f"127.0.0.1:{free_port()}")
        with pytest.raises(FrameTooLargeError):
            a.transport.send(raft(AppendEntries(1, 2, 1, 0, 0, (Entry(1, 1, b"x" * 2000),), 0)))
        hb = Heartbeat(1, 2, 1, 0, 0)
        with pytest.raises(EncodeError, match="does not fit"):
            a.transport.send(Envelope(ProtocolId.NODE, 0, 1, 2, hb))
        with pytest.raises(EncodeError, match="not a message"):
            a.transport.send(Envelope(ProtocolId.RAFT, 0, 1, 2, Entry(1, 1)))
        assert a.transport.send(Envelope(ProtocolId.NODE, 3, 1, 2, ForwardRequest(1, 2, 1, ())))
        with pytest.raises(ValueError, match="itself"):
            a.transport.add_peer(1, "127.0.0.1:1")
        a.transport.remove_peer(2)
        with pytest.raises(UnknownPeerError):
            a.transport.remove_peer(2)
        await a.transport.close()
        await a.transport.close()  # idempotent
        with pytest.raises(TransportClosedError):
            a.transport.send(heartbeat(1, 2, 0))
        with pytest.raises(TransportClosedError):
            await a.transport.start()

    run(body)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cluster_id": ""}, "cluster_id"),
        ({"listen": "localhost"}, "host:port"),
        ({"listen": "localhost:99999"}, "port"),
        ({"peers": {1: "127.0.0.1:5"}}, "itself"),
        ({"peers": {2: "nowhere"}}, "host:port"),
        ({"max_queue_frames": 0}, "max_queue_frames"),
        ({"reconnect_base_ms": -1.0}, "reconnect_base_ms"),
        ({"reconnect_base_ms": 100.0, "reconnect_max_ms": 10.0}, "reconnect_max_ms"),
        ({"max_frame_bytes": 0}, "max_frame_bytes"),
        ({"max_queue_bytes": 1000, "max_frame_bytes": 1000}, "max_queue_bytes"),
    ],
)
def test_bad_configuration_is_refused(changes: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"cluster_id": "c", "node_id": 1, **changes}
    with pytest.raises(ValueError, match=message):
        TransportConfig(**settings)


def test_parse_address_accepts_ipv6_brackets() -> None:
    assert parse_address("[::1]:7000") == ("::1", 7000)
    assert parse_address("10.0.0.1:0") == ("10.0.0.1", 0)


def test_backoff_is_capped_exponential_with_seeded_jitter() -> None:
    delays = [backoff_delay_ms(n, 10.0, 1_000.0, Random(7)) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(1_000.0, 10.0 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert delays == [backoff_delay_ms(n, 10.0, 1_000.0, Random(7)) for n in range(1, 12)]
    rng = Random(1)
    spread = {round(backoff_delay_ms(5, 10.0, 1_000.0, rng), 3) for _ in range(20)}
    assert len(spread) > 10  # jitter actually varies the delay
    with pytest.raises(ValueError, match="failures"):
        backoff_delay_ms(0, 10.0, 1_000.0, rng)


def test_async_context_manager_starts_and_closes() -> None:
    async def body() -> None:
        received: list[Envelope] = []
        async with (
            PeerTransport(TransportConfig(CLUSTER, 2), received.append, Random(2)) as b,
            PeerTransport(TransportConfig(CLUSTER, 1), lambda _: None, Random(1)) as a,
        ):
            a.add_peer(2, b.address)
            a.send(heartbeat(1, 2, 0))
            await wait_until(lambda: received == [heartbeat(1, 2, 0)], "delivery")
        with pytest.raises(TransportClosedError):
            b.send(heartbeat(2, 1, 0))

    run(body)
