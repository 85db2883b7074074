"""The peer transport: envelopes between nodes over TCP, without ever blocking the node.

Theory of operation. Each node listens on one address and dials each peer once; a
connection carries messages one way only (the dialler's to the listener), so every pair of
nodes shares two connections and nothing on either needs request/response matching. What
travels is an :class:`~kvorum.core.shape.Envelope` — a message of some protocol for some
group — so the one connection between two nodes carries every group's traffic. The
transport knows nothing of protocols: it encodes and decodes with the
:class:`~kvorum.runtime.codec.WireSchema` it is given (by default every protocol kvorum
speaks, :data:`~kvorum.runtime.wire_schema.WIRE_SCHEMA`) and routes by ``env.dst`` alone.

Sending. :meth:`PeerTransport.send` encodes the envelope into a frame at once (so a message
that cannot travel fails in the caller's hands) and appends it to the destination's bounded
queue; it never awaits. When the queue is full the configured :class:`DropPolicy` drops the
oldest or the newest frame and counts it — Raft retries everything it needs (heartbeats
repeat, AppendEntries are resent from the follower's progress), so losing a message costs
latency, while blocking would let one slow peer stall the node. One task per peer owns its
connection: it writes *every* queued frame with one ``writelines`` and then waits in
``drain``, so many messages produced in one event-loop turn leave in one system call, and a
peer that stops reading stalls only its own task (and after ``write_timeout_ms`` loses its
connection). A failed connect or a lost connection is retried after a capped exponential
back-off with "equal jitter" — half the delay fixed, half drawn from the seeded
:class:`random.Random` passed in — so restarted clusters do not reconnect in lock-step.

Receiving. The first frame on every connection is a :class:`~kvorum.runtime.codec.Hello`:
wire version and schema fingerprint (checked by the codec), cluster id, sender and intended
receiver. Good envelopes go to ``on_message(env)`` in arrival order. Bad input from a peer
closes that peer's connection — that connection only; every other keeps flowing — with a
warning that names the peer and what was wrong, counted in ``inbound_rejected``: a hello of
another wire version or schema, cluster or receiver, a frame over the size limit, a payload
that does not decode (an unknown protocol or tag included), an envelope whose ``src``/``dst``
contradict the hello, and an envelope for a group this node does not hold (``on_message``
raises :class:`~kvorum.core.shape.UnknownGroupError`). Any other exception out of
``on_message`` is the node's own bug, not the peer's: it is logged and counted in
``callback_errors``, and the connection stays. A sender this node has no address for is
accepted: a server being added hears from the cluster before it is told who the cluster is.

Every counter is readable at any time through :meth:`PeerTransport.metrics` (totals) and
:meth:`PeerTransport.peer_metrics`. ``TCP_NODELAY`` is set on every socket: Raft's messages
are small and latency-bound, and batching is done above, per event-loop turn. Connections
are set up with asyncio streams; once an inbound connection's hello is read, its transport is
handed to a small protocol that decodes frames as they arrive (no task wake-up per message).
Both run unchanged under uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from random import Random
from typing import cast

from kvorum.core.shape import Envelope, NodeId, UnknownGroupError
from kvorum.runtime.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    FRAME_HEADER_BYTES,
    MAX_FRAME_LIMIT_BYTES,
    CodecError,
    DecodeError,
    FrameDecoder,
    Hello,
    IncompatiblePeerError,
    WireSchema,
    decode_hello,
    encode_hello,
    frame,
)
from kvorum.runtime.wire_schema import WIRE_SCHEMA

log = logging.getLogger(__name__)

DIRECT_WRITE_LIMIT_BYTES = 1 << 20
"""send() writes straight to the socket while less than this is buffered there; beyond it,
frames go through the bounded queue (and its drop policy) and the sender task's drain()."""

MAX_HELLO_BYTES = 1024
"""A hello is a few dozen bytes; a longer first frame is not a kvorum peer."""


class DropPolicy(Enum):
    """Which frame a full per-peer queue gives up."""

    OLDEST = "oldest"
    """Drop the frame queued longest: newer messages carry newer terms and commit indexes."""
    NEWEST = "newest"
    """Refuse the frame being sent: keeps the queue's order stable under overload."""


class TransportError(Exception):
    """Base class of the transport's own errors."""


class UnknownPeerError(TransportError, ValueError):
    """A message was addressed to a node the transport has no address for."""


class TransportClosedError(TransportError, RuntimeError):
    """The transport is not running (not started yet, or closed)."""


class HandshakeError(TransportError):
    """An inbound connection's hello or messages do not fit this node and cluster."""


_PEER_FAULTS = (CodecError, HandshakeError, UnknownGroupError)
"""What makes an inbound connection close: bad input from that peer."""


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` (or ``"[v6]:port"``) as ``(host, port)``; ValueError if malformed."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"address must look like 'host:port', got {address!r}")
    port = int(port_text)
    if port > 65_535:
        raise ValueError(f"port must be in 0..65535, got {port} in {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Who this node is, where it listens, where its peers are, and the transport's limits."""

    cluster_id: str
    node_id: NodeId
    listen: str = "127.0.0.1:0"
    """``host:port`` to accept peers on; port 0 picks a free one (see
    :attr:`PeerTransport.address`)."""
    peers: Mapping[NodeId, str] = field(default_factory=dict)
    """Node id → ``host:port`` of every other node this node sends to."""
    max_queue_frames: int = 4096
    max_queue_bytes: int = 64 * 1024 * 1024
    """Per peer; must hold at least one largest frame."""
    drop_policy: DropPolicy = DropPolicy.OLDEST
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    """Largest payload sent or accepted; a larger inbound frame closes its connection."""
    reconnect_base_ms: float = 50.0
    reconnect_max_ms: float = 5_000.0
    connect_timeout_ms: float = 2_000.0
    hello_timeout_ms: float = 2_000.0
    """How long an inbound connection may take to introduce itself."""
    write_timeout_ms: float = 10_000.0
    """A peer whose connection accepts no bytes for this long is disconnected and redialled."""
    read_chunk_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        if not isinstance(self.cluster_id, str) or not self.cluster_id:
            raise ValueError(f"cluster_id must be a non-empty string, got {self.cluster_id!r}")
        parse_address(self.listen)
        for peer_id, address in self.peers.items():
            if peer_id == self.node_id:
                raise ValueError(f"peers must not include this node itself ({peer_id})")
            parse_address(address)
        for name in (
            "max_queue_frames",
            "max_queue_bytes",
            "read_chunk_bytes",
            "reconnect_base_ms",
            "reconnect_max_ms",
            "connect_timeout_ms",
            "hello_timeout_ms",
            "write_timeout_ms",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"TransportConfig.{name} must be positive, got {getattr(self, name)}"
                )
        if not 1 <= self.max_frame_bytes <= MAX_FRAME_LIMIT_BYTES:
            raise ValueError(
                f"max_frame_bytes must be in 1..{MAX_FRAME_LIMIT_BYTES}, got {self.max_frame_bytes}"
            )
        if self.max_queue_bytes < self.max_frame_bytes + FRAME_HEADER_BYTES:
            raise ValueError(
                f"max_queue_bytes ({self.max_queue_bytes}) must hold one frame "
                f"of max_frame_bytes ({self.max_frame_bytes}) plus its header"
            )
        if self.reconnect_max_ms < self.reconnect_base_ms:
            raise ValueError(
                f"reconnect_max_ms ({self.reconnect_max_ms}) must be at least "
                f"reconnect_base_ms ({self.reconnect_base_ms})"
            )


PEER_COUNTERS = (
    "sent_frames",
    "sent_bytes",
    "dropped_frames",
    "connects",
    "reconnects",
    "connect_failures",
    "connections_lost",
)
"""Per-peer counters; ``reconnects`` counts successful connections after the first one."""
NODE_COUNTERS = (
    "received_frames",
    "received_bytes",
    "inbound_connections",
    "inbound_rejected",
    "callback_errors",
)


def backoff_delay_ms(failures: int, base_ms: float, max_ms: float, rng: Random) -> float:
    """How long to wait before retry number ``failures`` (1 for the first retry).

    The ceiling doubles from ``base_ms`` per failure up to ``max_ms``; the delay is drawn
    uniformly from its upper half ("equal jitter"), so it never collapses to zero the way
    full jitter can, yet peers that failed together spread out.
    """
    if failures < 1:
        raise ValueError(f"failures must be at least 1, got {failures}")
    ceiling_ms = min(max_ms, base_ms * 2.0 ** min(failures - 1, 60))
    return ceiling_ms * (0.5 + 0.5 * rng.random())


class _Peer:
    """One destination: its address, its bounded queue, its counters and its sender task."""

    __slots__ = (
        "address",
        "connected",
        "counters",
        "host",
        "node_id",
        "port",
        "queue",
        "queued_bytes",
        "reader",
        "task",
        "wakeup",
        "writer",
    )

    def __init__(self, node_id: NodeId, address: str) -> None:
        self.node_id = node_id
        self.address = address
        self.host, self.port = parse_address(address)
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.connected = False
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        """The live connection's writer, for writing straight to the socket (see send)."""
        self.counters = dict.fromkeys(PEER_COUNTERS, 0)

    def enqueue(self, data: bytes, config: TransportConfig) -> bool:
        size = len(data)
        if (
            len(self.queue) >= config.max_queue_frames
            or self.queued_bytes + size > config.max_queue_bytes
        ):
            if config.drop_policy is DropPolicy.NEWEST:
                self.counters["dropped_frames"] += 1
                return False
            while self.queue and (
                len(self.queue) >= config.max_queue_frames
                or self.queued_bytes + size > config.max_queue_bytes
            ):
                self.queued_bytes -= len(self.queue.popleft())
                self.counters["dropped_frames"] += 1
        self.queue.append(data)
        self.queued_bytes += size
        self.wakeup.set()
        return True


def _address_text(peername: object) -> str:
    """``host:port`` of a socket's peer name (or its repr for other families)."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return repr(peername)


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    # Abort, not close: a graceful close waits to flush the write buffer, which never
    # happens with a peer that stopped reading, and frames on a connection being given up
    # are lost either way (Raft resends what matters).
    writer.transport.abort()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


class PeerTransport:
    """Sends envelopes to peers and delivers theirs; see the module docstring.

    Use from one event loop: ``await start()``, then :meth:`send` from anywhere on that loop,
    then ``await close()``. ``on_message`` is called on the loop for each envelope received,
    in the order each peer sent them; it must not block (hand work to the node's own queue),
    and raises :class:`~kvorum.core.shape.UnknownGroupError` to refuse an envelope for a
    group this node does not hold (which drops the sender's connection). ``schema`` says
    which protocols travel; every node of a cluster must use the same one.
    """

    def __init__(
        self,
        config: TransportConfig,
        on_message: Callable[[Envelope], None],
        rng: Random,
        *,
        schema: WireSchema = WIRE_SCHEMA,
    ) -> None:
        self._config = config
        self._on_message = on_message
        self._rng = rng
        self._schema = schema
        self._encode = schema.encode
        self._decode = schema.decode
        self._peers: dict[NodeId, _Peer] = {
            node_id: _Peer(node_id, address) for node_id, address in config.peers.items()
        }
        self._counters = dict.fromkeys(NODE_COUNTERS, 0)
        self._server: asyncio.Server | None = None
        self._inbound: set[asyncio.Task[None]] = set()
        self._retired: set[asyncio.Task[None]] = set()
        self._retired_counters = dict.fromkeys(PEER_COUNTERS, 0)
        """Counters of removed peers, so that totals never go backwards."""
        self._running = False
        self._closed = False
        self._corked: dict[NodeId, list[bytes]] | None = None
        """While corked: frames for the socket, per peer, written together at uncork."""

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> PeerTransport:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind the listening socket and start dialling every peer."""
        if self._running or self._closed:
            raise TransportClosedError("a transport can be started once")
        host, port = parse_address(self._config.listen)
        self._server = await asyncio.start_server(
            self._on_inbound, host, port, limit=self._config.read_chunk_bytes
        )
        self._running = True
        for peer in self._peers.values():
            self._spawn(peer)

    async def close(self) -> None:
        """Stop listening, drop every connection and queued frame, and wait for all tasks."""
        if self._closed:
            return
        self._closed = True
        self._running = False
        if self._server is not None:
            self._server.close()
        tasks = [p.task for p in self._peers.values() if p.task is not None]
        tasks += [*self._inbound, *self._retired]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for peer in self._peers.values():
            peer.queue.clear()
            peer.queued_bytes = 0

    @property
    def address(self) -> str:
        """The ``host:port`` actually listened on (the chosen port when configured with 0)."""
        if self._server is None or not self._server.sockets:
            raise TransportClosedError("the transport is not listening")
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def node_id(self) -> NodeId:
        return self._config.node_id

    # --- peers --------------------------------------------------------------------------------

    def add_peer(self, node_id: NodeId, address: str) -> None:
        """Start sending to ``node_id`` at ``address`` (replacing a previous address)."""
        if node_id == self._config.node_id:
            raise ValueError(f"cannot add this node itself ({node_id}) as a peer")
        old = self._peers.get(node_id)
        if old is not None:
            if old.address == address:
                return
            self.remove_peer(node_id)
        peer = _Peer(node_id, address)
        self._peers[node_id] = peer
        if self._running:
            self._spawn(peer)

    def remove_peer(self, node_id: NodeId) -> None:
        """Stop sending to ``node_id``: its queue is dropped and its connection closed."""
        peer = self._peers.pop(node_id, None)
        if peer is None:
            raise UnknownPeerError(f"node {node_id} is not a peer")
        for name in PEER_COUNTERS:
            self._retired_counters[name] += peer.counters[name]
        if peer.task is not None:
            peer.task.cancel()
            self._retired.add(peer.task)
            peer.task.add_done_callback(self._retired.discard)

    def peer_connected(self, node_id: NodeId) -> bool:
        """Whether an outbound connection to ``node_id`` is currently established."""
        peer = self._peers.get(node_id)
        if peer is None:
            raise UnknownPeerError(f"node {node_id} is not a peer")
        return peer.connected

    # --- sending ------------------------------------------------------------------------------

    def send(self, env: Envelope) -> bool:
        """Queue ``env`` for node ``env.dst`` without waiting; False if it was dropped.

        With :attr:`DropPolicy.OLDEST` the envelope is always queued (older ones may be
        dropped to make room); with :attr:`DropPolicy.NEWEST` a full queue refuses it. Raises
        :class:`UnknownPeerError` for a destination without an address, the codec's
        :class:`~kvorum.runtime.codec.EncodeError` /
        :class:`~kvorum.runtime.codec.FrameTooLargeError` for an envelope that cannot travel
        (a body of no protocol in the schema, an envelope whose protocol, ``src`` or ``dst``
        contradict its body), and :class:`TransportClosedError` unless the transport is running.
        """
        if not self._running:
            raise TransportClosedError("send() needs a started, open transport")
        peer = self._peers.get(env.dst)
        if peer is None:
            raise UnknownPeerError(
                f"no address for node {env.dst} (message {type(env.body).__name__})"
            )
        data = frame(self._encode(env), self._config.max_frame_bytes)
        corked = self._corked
        if corked is not None:
            held = corked.get(env.dst)
            if held is not None:
                held.append(data)  # behind the frames held before it, in order
                return True
        writer, reader = peer.writer, peer.reader
        if (
            writer is not None
            and reader is not None
            and not peer.queue
            # A connection the peer closed goes through the queue, whose sender task
            # notices the end-of-file and redials.
            and not reader.at_eof()
            and not writer.transport.is_closing()
            and writer.transport.get_write_buffer_size() < DIRECT_WRITE_LIMIT_BYTES
        ):
            # Straight to the socket: waking the sender task would cost a loop iteration,
            # and the caller may be about to block on an fsync (a leader's early appends).
            if corked is not None:
                corked[env.dst] = [data]
                return True
            try:
                writer.write(data)
            except (OSError, RuntimeError):
                pass  # the connection is going; the sender task will notice and redial
            else:
                peer.counters["sent_frames"] += 1
                peer.counters["sent_bytes"] += len(data)
                return True
        return peer.enqueue(data, self._config)

    @property
    def corked(self) -> bool:
        return self._corked is not None

    def cork(self) -> None:
        """Hold the frames :meth:`send` would write straight to a socket until
        :meth:`uncork`, which writes each peer's in one go: a round of many groups sends
        each peer many small messages at once, and one system call per message was the
        largest single cost of a busy multi-group leader."""
        if self._corked is None:
            self._corked = {}

    def uncork(self) -> None:
        """Write what :meth:`cork` held, one write per peer (or queue it, in order, if that
        peer's connection went meanwhile)."""
        corked, self._corked = self._corked, None
        if not corked:
            return
        for node_id, frames in corked.items():
            peer = self._peers.get(node_id)
            if peer is None:
                continue
            writer, reader = peer.writer, peer.reader
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            if (
                writer is not None
                and reader is not None
                and not peer.queue
                and not reader.at_eof()
                and not writer.transport.is_closing()
                and writer.transport.get_write_buffer_size() < DIRECT_WRITE_LIMIT_BYTES
            ):
                try:
                    writer.write(data)
                except (OSError, RuntimeError):
                    pass  # the connection is going; the sender task will notice and redial
                else:
                    peer.counters["sent_frames"] += len(frames)
                    peer.counters["sent_bytes"] += len(data)
                    continue
            for one in frames:
                peer.enqueue(one, self._config)

    def _spawn(self, peer: _Peer) -> None:
        peer.task = asyncio.get_running_loop().create_task(
            self._run_peer(peer), name=f"kvorum-transport-{self._config.node_id}->{peer.node_id}"
        )

    def _backoff_s(self, failures: int) -> float:
        config = self._config
        return (
            backoff_delay_ms(failures, config.reconnect_base_ms, config.reconnect_max_ms, self._rng)
            / 1000.0
        )

    async def _run_peer(self, peer: _Peer) -> None:
        """Keep one connection to ``peer`` and write its queue to it, forever."""
        loop = asyncio.get_running_loop()
        failures = 0
        ever_connected = False
        while True:
            if failures:
                await asyncio.sleep(self._backoff_s(failures))
            try:
                reader, writer = await self._dial(peer)
            except (OSError, TimeoutError, RuntimeError) as exc:
                failures += 1
                peer.counters["connect_failures"] += 1
                log.debug(
                    "node %s: cannot reach node %s at %s (attempt %d): %s",
                    self._config.node_id,
                    peer.node_id,
                    peer.address,
                    failures,
                    exc,
                )
                continue
            connected_s = loop.time()
            peer.counters["connects"] += 1
            if ever_connected:
                peer.counters["reconnects"] += 1
            ever_connected = True
            peer.connected = True
            peer.reader, peer.writer = reader, writer
            try:
                await self._pump(peer, reader, writer)
            except (OSError, TimeoutError, RuntimeError) as exc:
                # RuntimeError: uvloop reports a write to a connection the peer reset as
                # "handler is closed" rather than an OSError; it is the same lost connection.
                # A lost connection is retried after a back-off too; and one that did not
                # last as long as the longest back-off keeps the back-off growing, so a peer
                # that accepts and then drops us at once (wrong cluster) is not hammered.
                lived_ms = (loop.time() - connected_s) * 1000.0
                failures = failures + 1 if lived_ms < self._config.reconnect_max_ms else 1
                peer.counters["connections_lost"] += 1
                log.info(
                    "node %s: lost connection to node %s: %r",
                    self._config.node_id,
                    peer.node_id,
                    exc,
                )
            finally:
                peer.connected = False
                peer.reader = peer.writer = None
                await _close_writer(writer)

    async def _dial(self, peer: _Peer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to ``peer`` and introduce this node; the connection is ready to carry frames."""
        async with asyncio.timeout(self._config.connect_timeout_ms / 1000.0):
            reader, writer = await asyncio.open_connection(peer.host, peer.port)
            try:
                _set_nodelay(writer)
                hello = Hello(self._config.cluster_id, self._config.node_id, peer.node_id)
                writer.write(frame(encode_hello(hello, self._schema.fingerprint)))
                await writer.drain()
            except BaseException:
                await _close_writer(writer)
                raise
        return reader, writer

    async def _pump(
        self, peer: _Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Write ``peer``'s queue in batches until the connection fails (raises OSError)."""
        write_timeout_s = self._config.write_timeout_ms / 1000.0
        queue = peer.queue
        while True:
            if not queue:
                peer.wakeup.clear()
                await peer.wakeup.wait()
                continue
            # Nothing is ever sent back on an outbound connection, so end-of-file means the
            # peer closed it (restarted, or refused our hello): redial, keeping the queue.
            if reader.at_eof():
                raise ConnectionResetError("the peer closed the connection")
            frames = list(queue)
            queue.clear()
            batch_bytes, peer.queued_bytes = peer.queued_bytes, 0
            writer.writelines(frames)
            peer.counters["sent_frames"] += len(frames)
            peer.counters["sent_bytes"] += batch_bytes
            async with asyncio.timeout(write_timeout_s):
                await writer.drain()

    # --- receiving ----------------------------------------------------------------------------

    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._closed or task is None:
            writer.close()  # accepted while closing: nothing will wait for this task
            return
        self._inbound.add(task)
        self._counters["inbound_connections"] += 1
        address = _address_text(writer.get_extra_info("peername"))
        hello: Hello | None = None
        try:
            _set_nodelay(writer)
            hello = await self._read_hello(reader)
            self._check_hello(hello)
            await self._receive(hello, reader, writer)
        except _PEER_FAULTS as exc:
            self._counters["inbound_rejected"] += 1
            sender = hello.sender if hello is not None else None
            if isinstance(exc, IncompatiblePeerError):
                sender = exc.sender
            peer = f"node {sender} at {address}" if sender is not None else address
            log.warning(
                "node %s: dropping the connection from %s: %s", self._config.node_id, peer, exc
            )
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug(
                "node %s: inbound connection from %s ended: %r", self._config.node_id, address, exc
            )
        except asyncio.CancelledError:
            # Only close() cancels these tasks. Python 3.11's start_server callback calls
            # task.exception() on the finished task, which raises for a cancelled one and
            # logs a spurious error, so a handler cancelled by close() ends normally.
            if not self._closed:
                raise
        finally:
            try:
                # The handler ends here either way; a cancel landing now must not make it
                # end "cancelled" (see above).
                with contextlib.suppress(asyncio.CancelledError):
                    await _close_writer(writer)
            finally:
                self._inbound.discard(task)  # only now: close() waits for what is in the set

    async def _read_hello(self, reader: asyncio.StreamReader) -> Hello:
        async with asyncio.timeout(self._config.hello_timeout_ms / 1000.0):
            size = int.from_bytes(await reader.readexactly(FRAME_HEADER_BYTES), "big")
            if size > MAX_HELLO_BYTES:
                raise DecodeError(f"first frame of {size} bytes is not a hello")
            return decode_hello(await reader.readexactly(size), self._schema.fingerprint)

    def _check_hello(self, hello: Hello) -> None:
        if hello.cluster_id != self._config.cluster_id:
            raise HandshakeError(
                f"it belongs to cluster {hello.cluster_id!r}, not {self._config.cluster_id!r}"
            )
        if hello.receiver != self._config.node_id:
            raise HandshakeError(
                f"it dialled node {hello.receiver} but reached node {self._config.node_id} "
                "(stale address?)"
            )

    async def _receive(
        self, hello: Hello, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Deliver the connection's messages until it ends.

        Once the hello is read, the connection's transport is handed from the stream reader
        to an :class:`_InboundProtocol` whose ``data_received`` decodes and delivers frames
        directly: a stream would wake this task and copy the bytes once more per message,
        which on a follower was most of the cost of answering a heartbeat. This task only
        waits for the connection to end, so ``close()`` still finds and cancels it.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        transport = cast(asyncio.Transport, writer.transport)
        protocol = _InboundProtocol(self, hello, done, transport.get_protocol())
        # Bytes that arrived with the hello are still in the reader's buffer, which has no
        # public way to take them.
        buffer: bytearray = reader._buffer  # type: ignore[attr-defined]
        early = bytes(buffer)
        buffer.clear()
        transport.set_protocol(protocol)
        if early:
            protocol.data_received(early)
        if reader.at_eof():
            protocol.eof_received()
        elif not transport.is_reading():
            transport.resume_reading()  # the reader may have paused it when its buffer filled
        await done

    def _deliver(self, hello: Hello, decoder: FrameDecoder, data: bytes) -> None:
        """Decode ``data`` from ``hello.sender``'s connection and hand over each envelope.

        Raises (and so closes the connection) on bad input from the peer: a payload that does
        not decode, an envelope that contradicts the hello, one for a group not held here.
        """
        counters = self._counters
        node_id = self._config.node_id
        decode = self._decode
        counters["received_bytes"] += len(data)
        for payload in decoder.feed(data):
            env = decode(payload)
            if env.src != hello.sender or env.dst != node_id:
                raise HandshakeError(
                    f"connection from node {hello.sender} to node {node_id} carried a "
                    f"{type(env.body).__name__} from {env.src} to {env.dst}"
                )
            counters["received_frames"] += 1
            try:
                self._on_message(env)
            except UnknownGroupError:
                raise  # the peer's fault: the caller drops its connection
            except Exception:
                # The callback's bug, not the peer's: keep the connection, say so loudly.
                counters["callback_errors"] += 1
                log.exception("node %s: on_message failed for %r", node_id, env)

    # --- metrics ------------------------------------------------------------------------------

    def metrics(self) -> dict[str, int]:
        """Totals: every per-peer counter summed, the node's inbound counters, queue depth."""
        totals = dict(self._counters)
        for name in PEER_COUNTERS:
            totals[name] = self._retired_counters[name] + sum(
                p.counters[name] for p in self._peers.values()
            )
        totals["queued_frames"] = sum(len(p.queue) for p in self._peers.values())
        totals["queued_bytes"] = sum(p.queued_bytes for p in self._peers.values())
        return totals

    def peer_metrics(self) -> dict[NodeId, dict[str, int]]:
        """Per peer: its counters plus its current queue depth in frames and bytes."""
        return {
            node_id: {
                **peer.counters,
                "queued_frames": len(peer.queue),
                "queued_bytes": peer.queued_bytes,
            }
            for node_id, peer in self._peers.items()
        }


class _InboundProtocol(asyncio.Protocol):
    """An inbound connection after its hello: frames in, messages out (see ``_receive``)."""

    def __init__(
        self,
        owner: PeerTransport,
        hello: Hello,
        done: asyncio.Future[None],
        stream_protocol: asyncio.BaseProtocol,
    ) -> None:
        self._owner = owner
        self._hello = hello
        self._done = done
        self._decoder = FrameDecoder(owner._config.max_frame_bytes)
        self._stream_protocol = stream_protocol
        """The stream's protocol we replaced: told of the end, so ``wait_closed`` returns."""

    def data_received(self, data: bytes) -> None:
        if self._done.done():
            return
        try:
            self._owner._deliver(self._hello, self._decoder, data)
        except _PEER_FAULTS as exc:
            self._done.set_exception(exc)

    def eof_received(self) -> bool | None:
        if not self._done.done():
            self._done.set_result(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stream_protocol.connection_lost(exc)
        if self._done.done():
            return
        if exc is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(exc)
