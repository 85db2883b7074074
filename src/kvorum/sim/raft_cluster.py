"""A simulated Raft cluster: cores, their disks, their clocks, a KV state machine and clients.

Theory of operation: each :class:`SimNode` hosts one :class:`RaftCore` the way the real
runtime does — feed it input, drain a ready, persist, send, apply, advance — with three things
made explicit so faults can reach them. *Disk*: a ready's writes complete after the node's
disk latency, and until then the node is busy (inputs queue up); only writes that completed
survive a crash. *Clock*: each node ticks at its own rate, so clocks drift apart. *Crash*:
the core and everything not persisted is thrown away; restart builds a new core from what the
:class:`MemoryStorage` holds, exactly as a real node restarts from its WAL.

The state machine is a small KV map (read, write, compare-and-set) so client histories can be
checked for linearizability. Clients are sequential: each sends one operation to the node it
believes leads, waits for the result or gives up after a timeout (outcome unknown), then
sends the next. The node answers a write once it has applied it, and a read once a ReadIndex
(or a lease) says it may and it has applied that far — as the real server does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgpack

from kvorum.core.raft import (
    ConfState,
    Entry,
    EntryKind,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RaftCore,
    RaftReady,
    Snapshot,
    bootstrap_log,
)
from kvorum.sim.linearizability import Cas, Operation, Read, Write
from kvorum.sim.memory_storage import MemoryStorage
from kvorum.sim.world import Network, World

TICK_US = 10_000
"""A nominal tick is 10 ms of virtual time; a drifting clock makes it longer or shorter."""


def bootstrap_storage(node_ids: list[int]) -> MemoryStorage:
    """A new cluster member's disk: the initial voters written into the log at term 1 and
    committed, exactly as every initial member of a real cluster writes them."""
    hard_state, entries = bootstrap_log(node_ids)
    return MemoryStorage(hard_state, None, entries)


@dataclass(slots=True)
class ClientOp:
    """One client operation in flight or finished, as the simulator tracks it."""

    op_id: int
    client: int
    key: str
    kind: Read | Write | Cas
    invoke_tick: int
    node: int = -1
    complete_tick: int | None = None
    result: Any = None
    failed: bool = False
    """Definitely had no effect (refused before entering any log): left out of the history."""
    index: int = 0
    term: int = 0

    def to_operation(self) -> Operation:
        return Operation(
            self.client,
            self.key,
            self.kind,
            self.invoke_tick,
            self.complete_tick,
            self.result if self.complete_tick is not None else None,
        )


def encode_command(op: ClientOp) -> bytes:
    kind = op.kind
    if isinstance(kind, Write):
        return msgpack.packb([op.op_id, "w", op.key, kind.value])
    assert isinstance(kind, Cas)
    return msgpack.packb([op.op_id, "c", op.key, kind.expected, kind.new])


def apply_command(kv: dict[str, Any], data: bytes) -> tuple[int, Any]:
    """Apply one command to ``kv``; returns (op id, result). Deterministic."""
    op_id, kind, key, *args = msgpack.unpackb(data)
    if kind == "w":
        kv[key] = args[0]
        return op_id, None
    expected, new = args
    if kv.get(key) == expected:
        kv[key] = new
        return op_id, True
    return op_id, False


@dataclass(slots=True)
class HostSwitches:
    """Test-only switches for the host's side of the contract."""

    send_before_persist: bool = False
    """Send a ready's messages before its writes are durable (breaks persist-before-send)."""
    stale_reads: bool = False
    """Answer reads from the local state machine at once, skipping ReadIndex (breaks
    linearizability: a deposed leader or a lagging follower serves old values)."""


class SimNode:
    """One server: a Raft core plus its disk, clock, state machine and pending requests."""

    def __init__(self, cluster: RaftCluster, node_id: int, rng: random.Random) -> None:
        self.cluster = cluster
        self.id = node_id
        self.rng = rng
        self.storage = bootstrap_storage(cluster.node_ids)
        self.up = True
        self.incarnation = 0
        # An fsync takes time on a real disk; zero would hide every persist/send race.
        self.disk_latency_us = rng.choice([100, 500, 1_000])
        self.tick_us = TICK_US
        self.busy = False
        self.inbox: list[Callable[[], None]] = []
        self.kv: dict[str, Any] = {}
        self.applied_log: dict[int, tuple[int, bytes]] = {}
        self.waiting_writes: dict[int, ClientOp] = {}
        self.waiting_reads: dict[int, ClientOp] = {}
        self.reads_to_serve: list[tuple[int, ClientOp]] = []
        self.core = self._new_core()

    def _new_core(self) -> RaftCore:
        s = self.storage
        snap = s.snapshot
        self.kv = dict(msgpack.unpackb(snap.data_bytes())) if snap is not None else {}
        return RaftCore(
            self.id,
            # Membership lives in the log (bootstrap entries, then changes) or the snapshot,
            # as in the real runtime, so a wiped node that rejoins learns it by replaying.
            ConfState(frozenset()),
            self.cluster.raft_config,
            random.Random(self.rng.getrandbits(64)),
            hard_state=s.hard_state,
            snapshot=snap,
            entries=list(s.entries),
        )

    # --- lifecycle -------------------------------------------------------------------------

    def crash(self) -> None:
        self.up = False
        self.busy = False
        self.inbox.clear()
        self.incarnation += 1
        for op in list(self.waiting_writes.values()) + list(self.waiting_reads.values()):
            self.cluster.give_up(op)
        for _, op in self.reads_to_serve:
            self.cluster.give_up(op)
        self.waiting_writes.clear()
        self.waiting_reads.clear()
        self.reads_to_serve.clear()
        self.cluster.trace(f"n{self.id} CRASH (unpersisted state lost)")

    def wipe(self) -> None:
        """Lose the disk too: the node comes back as a brand-new, empty server."""
        if self.up:
            self.crash()
        self.storage = MemoryStorage()
        self.cluster.trace(f"n{self.id} WIPED (a new, empty server)")

    def restart(self) -> None:
        self.up = True
        self.core = self._new_core()
        self.cluster.trace(
            f"n{self.id} RESTART term={self.core.term} last={self.core.last_index}"
            f" commit={self.core.commit_index}"
        )
        self.cluster.schedule_tick(self)

    # --- input -----------------------------------------------------------------------------

    def submit(self, action: Callable[[], None]) -> None:
        """Run an input against the core now, or once the disk is done if it is busy."""
        if not self.up:
            return
        if self.busy:
            self.inbox.append(action)
            return
        action()
        self.process_ready()

    def process_ready(self) -> None:
        while self.up and not self.busy and self.core.has_ready():
            rd = self.core.ready()
            self.cluster.observe_ready(self, rd)
            persist = rd.hard_state is not None or bool(rd.entries) or rd.snapshot is not None
            unsafe = self.cluster.switches.send_before_persist
            self._send_early(rd)
            if persist and self.disk_latency_us > 0:
                self.busy = True
                if unsafe:
                    self._send(rd)
                incarnation = self.incarnation
                self.cluster.world.after(
                    self.disk_latency_us,
                    partial(self._disk_done, rd, incarnation, unsafe),
                )
                return
            self.storage.save(rd)
            self._send(rd)
            self._finish(rd)
        while self.up and not self.busy and self.inbox:
            action = self.inbox.pop(0)
            action()
            self.process_ready()

    def _disk_done(self, rd: RaftReady, incarnation: int, already_sent: bool) -> None:
        if incarnation != self.incarnation or not self.up:
            return  # crashed before the write completed: it never happened
        self.storage.save(rd)
        if not already_sent:
            self._send(rd)
        self.busy = False
        self._finish(rd)
        self.process_ready()

    def _send_early(self, rd: RaftReady) -> None:
        # A leader's appends may race its own fsync (thesis §10.2.1); the checkers judge it.
        for msg in rd.early_messages:
            self.cluster.network.send(msg)

    def _send(self, rd: RaftReady) -> None:
        for msg in rd.messages:
            self.cluster.network.send(msg)

    def _finish(self, rd: RaftReady) -> None:
        if rd.snapshot is not None:
            self.kv = dict(msgpack.unpackb(rd.snapshot.data_bytes()))
        for e in rd.committed_entries:
            self._apply(e)
        for rs in rd.read_states:
            op = self.waiting_reads.pop(rs.ctx, None)
            if op is not None:
                self.reads_to_serve.append((rs.index, op))
        for ctx in rd.failed_reads:
            op = self.waiting_reads.pop(ctx, None)
            if op is not None:
                self.cluster.fail(op)
        self.core.advance(rd)
        self._serve_reads()
        self._maybe_snapshot()

    def _apply(self, e: Entry) -> None:
        self.cluster.observe_apply(self, e)
        if e.kind is not EntryKind.NORMAL or not e.data:
            return
        op_id, result = apply_command(self.kv, e.data)
        op = self.waiting_writes.pop(e.index, None)
        if op is not None:
            if op.op_id == op_id:
                self.cluster.complete(op, result)
            else:
                # Another entry won this index, so ours was never committed and never will be.
                self.cluster.fail(op)

    def _serve_reads(self) -> None:
        if not self.reads_to_serve:
            return
        applied = self.core.applied_index
        still = []
        for index, op in self.reads_to_serve:
            if applied >= index:
                self.cluster.complete(op, self.kv.get(op.key))
            else:
                still.append((index, op))
        self.reads_to_serve = still

    def _maybe_snapshot(self) -> None:
        every = self.cluster.snapshot_every_entries
        log = self.core.log
        if every and log.applied - log.snapshot_index >= every:
            meta = self.core.snapshot_meta_at(log.applied)
            snap = Snapshot(meta, msgpack.packb(sorted(self.kv.items())))
            self.storage.compact(snap)
            self.core.compact(snap)

    # --- client requests -------------------------------------------------------------------

    def handle_client(self, op: ClientOp) -> None:
        op.node = self.id
        try:
            if isinstance(op.kind, Read) and self.cluster.switches.stale_reads:
                self.cluster.complete(op, self.kv.get(op.key))
            elif isinstance(op.kind, Read):
                self.waiting_reads[op.op_id] = op
                self.core.read_index(op.op_id, lease=self.cluster.lease_reads)
            else:
                index = self.core.propose(encode_command(op))
                op.index, op.term = index, self.core.term
                self.waiting_writes[index] = op
        except (NotLeader, ProposalDropped) as exc:
            self.waiting_reads.pop(op.op_id, None)
            hint = exc.leader_hint if isinstance(exc, NotLeader) else None
            self.cluster.fail(op, hint)

    def on_leadership_lost(self) -> None:
        """Writes waiting here may still commit under the next leader: their outcome is
        unknown to the client, which gives up on them."""
        for op in self.waiting_writes.values():
            self.cluster.give_up(op)
        self.waiting_writes.clear()


class RaftCluster:
    """N simulated nodes on one :class:`World`, with clients and observers."""

    def __init__(
        self,
        world: World,
        node_count: int,
        raft_config: RaftConfig,
        *,
        clients: int = 3,
        keys: int = 3,
        client_timeout_ticks: int = 60,
        lease_reads: bool = False,
        snapshot_every_entries: int = 40,
        switches: HostSwitches | None = None,
        trace_enabled: bool = True,
    ) -> None:
        self.world = world
        self.raft_config = raft_config
        self.node_ids = list(range(1, node_count + 1))
        self.lease_reads = lease_reads
        self.snapshot_every_entries = snapshot_every_entries
        self.switches = switches or HostSwitches()
        self.trace_enabled = trace_enabled
        self.trace_lines: list[str] = []
        self.network = Network(world, self._deliver)
        self.nodes = {i: SimNode(self, i, world.child_rng()) for i in self.node_ids}
        self.observers: list[Any] = []
        self.on_new_leader: list[Callable[[int], None]] = []
        self.client_count = clients
        self.keys = [f"k{i}" for i in range(keys)]
        self.client_timeout_us = client_timeout_ticks * TICK_US
        self.ops: list[ClientOp] = []
        self._client_target = {c: world.rng.choice(self.node_ids) for c in range(clients)}
        self._client_busy: dict[int, ClientOp | None] = dict.fromkeys(range(clients))
        self._next_value = 0
        self.clients_running = False
        self._was_leader: dict[int, int] = {}

    # --- time ------------------------------------------------------------------------------

    def start(self) -> None:
        for node in self.nodes.values():
            # Stagger first ticks so nodes do not tick in lockstep.
            self.world.after(
                self.world.rng.randrange(node.tick_us), partial(self._tick, node, node.incarnation)
            )

    def schedule_tick(self, node: SimNode) -> None:
        inc = node.incarnation
        self.world.after(node.tick_us, lambda: self._tick(node, inc))

    def _tick(self, node: SimNode, incarnation: int) -> None:
        if not node.up or node.incarnation != incarnation:
            return
        node.submit(node.core.tick)
        self._note_role(node)
        self.schedule_tick(node)

    def _deliver(self, msg: Any) -> None:
        node = self.nodes.get(msg.dst)
        if node is None or not node.up:
            return
        if self.trace_enabled:
            self.trace(f"n{msg.src}->n{msg.dst} {describe(msg)}")
        node.submit(lambda: node.core.step(msg))
        self._note_role(node)

    def _note_role(self, node: SimNode) -> None:
        term = node.core.term if node.core.is_leader else -1
        before = self._was_leader.get(node.id, -1)
        if term != before:
            self._was_leader[node.id] = term
            if before != -1:
                node.on_leadership_lost()
            if term != -1:
                self.trace(
                    f"n{node.id} became LEADER of term {term} last={node.core.last_index}"
                )
                for hook in self.on_new_leader:
                    hook(node.id)

    # --- observation -----------------------------------------------------------------------

    def trace(self, line: str) -> None:
        if self.trace_enabled:
            self.trace_lines.append(f"{self.world.now_us / 1000:10.1f}ms {line}")

    def observe_ready(self, node: SimNode, rd: RaftReady) -> None:
        for obs in self.observers:
            obs.on_ready(node, rd)

    def observe_apply(self, node: SimNode, entry: Entry) -> None:
        for obs in self.observers:
            obs.on_apply(node, entry)

    # --- clients ---------------------------------------------------------------------------

    def start_clients(self) -> None:
        self.clients_running = True
        for c in range(self.client_count):
            self.world.after(
                self.world.rng.randrange(1, 5 * TICK_US), partial(self._client_next, c)
            )

    def stop_clients(self) -> None:
        self.clients_running = False

    def _client_next(self, client: int) -> None:
        if not self.clients_running or self._client_busy[client] is not None:
            return
        rng = self.world.rng
        key = rng.choice(self.keys)
        roll = rng.random()
        kind: Read | Write | Cas
        if roll < 0.4:
            kind = Read()
        elif roll < 0.8:
            self._next_value += 1
            kind = Write(self._next_value)
        else:
            self._next_value += 1
            expected = rng.choice([None, *range(max(1, self._next_value - 4), self._next_value)])
            kind = Cas(expected, self._next_value)
        op = ClientOp(len(self.ops), client, key, kind, self.world.now_us // 1000)
        self.ops.append(op)
        self._client_busy[client] = op
        node = self.nodes[self._client_target[client]]
        self.trace(f"client{client} -> n{node.id} {op.kind} {key}")
        if not node.up:
            self.fail(op)  # connection refused: it never reached anyone
            return
        node.submit(lambda: node.handle_client(op))
        self.world.after(self.client_timeout_us, lambda: self.give_up(op))

    def _client_done(self, op: ClientOp, hint: int | None = None) -> None:
        if self._client_busy.get(op.client) is not op:
            return
        self._client_busy[op.client] = None
        if hint is not None:
            self._client_target[op.client] = hint
        elif op.failed or op.complete_tick is None:
            self._client_target[op.client] = self.world.rng.choice(self.node_ids)
        self.world.after(
            self.world.rng.randrange(1, 2 * TICK_US), lambda: self._client_next(op.client)
        )

    def complete(self, op: ClientOp, result: Any) -> None:
        if self._client_busy.get(op.client) is not op:
            return
        op.complete_tick = self.world.now_us // 1000
        op.result = result
        self.trace(f"client{op.client} <- {op.kind} {op.key} = {result!r}")
        self._client_done(op)

    def fail(self, op: ClientOp, hint: int | None = None) -> None:
        if self._client_busy.get(op.client) is not op:
            return
        op.failed = True
        self._client_done(op, hint)

    def give_up(self, op: ClientOp) -> None:
        """The client stops waiting; the operation's outcome stays unknown."""
        if self._client_busy.get(op.client) is not op:
            return
        self._client_done(op)

    def history(self) -> list[Operation]:
        return [op.to_operation() for op in self.ops if not op.failed]


def describe(msg: Any) -> str:
    """A short, readable rendering of a Raft message for traces."""
    name = type(msg).__name__
    fields = []
    for f in msg.__slots__:
        if f in ("src", "dst"):
            continue
        v = getattr(msg, f)
        if f == "entries":
            v = "[" + ",".join(f"{e.term}:{e.index}" for e in v) + "]"
        elif f == "data":
            v = f"<{len(v)}B>"
        elif f == "meta":
            v = f"snap@{v.index}:{v.term}"
        fields.append(f"{f}={v}")
    return f"{name}(" + " ".join(fields) + ")"
