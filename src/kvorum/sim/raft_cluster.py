"""A simulated kvorum cluster: the real host, Raft cores and KV state machine on virtual time.

Theory of operation: each :class:`SimNode` is what a real node is — a
:class:`~kvorum.host.node.NodeHost` with its groups, each running a :class:`RaftCore` over a
log, a snapshot store and the real :class:`~kvorum.kv.state_machine.KVStateMachine` — with the
world around it simulated: the network (:class:`~kvorum.sim.world.Network`), the clock (each
node ticks at its own rate, so clocks drift), and the disk. The node runs rounds exactly as
the runtime does (:meth:`NodeHost.start_round`, ``persist``, ``finish_round``); a round that
must sync keeps the node busy for its disk latency, and inputs arriving meanwhile wait for the
next round, as they do while a real node's fsync runs. Forwarding to the leader, held commit
notices, write-loss detection, coalesced heartbeats and quiescence are the host's own code,
so the simulator tests them as they run in production.

*Crash*: the host and everything in memory are thrown away; the log keeps only what was
synced (:meth:`MemoryNodeLog.crash`), snapshots what was written, and the state machine —
in memory, like a page cache that died with the machine — is rebuilt from the snapshot and
the log on restart.

Clients are sequential: each sends one operation (GET, SET or CAS on a few keys) to a node,
waits for the answer or gives up after a timeout (outcome unknown), then sends the next. The
history is checked for linearizability per key; keys are spread over the groups.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from kvorum.core.raft import Entry, RaftConfig, RaftCore, RaftReady
from kvorum.core.shape import Envelope, GroupId, UnknownGroupError
from kvorum.host.bootstrap import bootstrap_group, open_core
from kvorum.host.errors import RequestError
from kvorum.host.group import GroupConfig, RaftGroup
from kvorum.host.node import HostConfig, NodeHost, Round
from kvorum.host.waiters import CallbackWaiter
from kvorum.host.world import TimerHandle
from kvorum.kv.commands import check_command, encode_write
from kvorum.kv.memory_engine import MemoryEngine
from kvorum.kv.replies import OK, ErrorReply
from kvorum.kv.results import KVResultCodec
from kvorum.kv.state_machine import KVStateMachine
from kvorum.sim.linearizability import Cas, Operation, Read, Write
from kvorum.sim.world import Network, World
from kvorum.storage.memory import MemoryNodeLog, MemorySnapshotStore

TICK_US = 10_000
"""A nominal tick is 10 ms of virtual time; a drifting clock makes it longer or shorter."""
WALL_EPOCH_MS = 1_700_000_000_000
"""Virtual time zero on the wall clock writes are stamped with (expiry needs a plausible
Unix time)."""


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

    def to_operation(self) -> Operation:
        return Operation(
            self.client,
            self.key,
            self.kind,
            self.invoke_tick,
            self.complete_tick,
            self.result if self.complete_tick is not None else None,
        )


@dataclass(slots=True)
class HostSwitches:
    """Test-only switches for the host's side of the contract."""

    send_before_persist: bool = False
    """Send a round's messages before its writes are durable (breaks persist-before-send)."""
    stale_reads: bool = False
    """Answer reads from the local state machine at once, skipping ReadIndex (breaks
    linearizability: a deposed leader or a lagging follower serves old values)."""


class KVMachine:
    """The KV state machine as a host's :class:`~kvorum.storage.contracts.StateMachine`."""

    def __init__(self, machine: KVStateMachine) -> None:
        self.kv = machine

    def applied_index(self) -> int:
        return self.kv.engine.applied_index()

    def apply(self, entries: Sequence[Entry]) -> list[object | None]:
        out: list[object | None] = []
        engine = self.kv.engine
        for e in entries:
            if e.index <= engine.applied_index():
                out.append(None)
            elif e.data and e.kind == 0:
                out.append(self.kv.apply_entry(e.data, e.index))
            else:
                self.kv.apply_many([], e.index)
                out.append(None)
        return out

    def snapshot(self) -> tuple[int, Any]:
        return self.kv.engine.snapshot_chunks()

    def restore(self, chunks: Any, applied_index: int) -> None:
        self.kv.engine.restore(chunks, applied_index)


class _SimTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimHostWorld:
    """One node incarnation's :class:`~kvorum.host.world.HostWorld` on virtual time: timers
    and background work die with the incarnation that started them."""

    def __init__(self, node: SimNode) -> None:
        self._node = node
        self._incarnation = node.incarnation

    def monotonic_ms(self) -> float:
        return self._node.cluster.world.now_us / 1000

    def wall_ms(self) -> int:
        return WALL_EPOCH_MS + self._node.cluster.world.now_us // 1000

    def _alive(self) -> bool:
        return self._node.up and self._node.incarnation == self._incarnation

    def call_later(self, delay_ms: float, action: Callable[[], None]) -> TimerHandle:
        timer = _SimTimer()

        def fire() -> None:
            if not timer.cancelled and self._alive():
                action()
                self._node.pump()

        self._node.cluster.world.after(int(delay_ms * 1000), fire)
        return timer

    def run_in_background(
        self, work: Callable[[], Any], done: Callable[[Any, BaseException | None], None]
    ) -> None:
        def finish() -> None:
            if not self._alive():
                return  # the crash took the worker thread with it
            try:
                result = work()
            except Exception as exc:
                done(None, exc)
            else:
                done(result, None)
            self._node.pump()

        self._node.cluster.world.after(self._node.disk_latency_us, finish)


class SimNode:
    """One server: a :class:`NodeHost` plus its disk, clock and the client requests on it."""

    def __init__(
        self, cluster: RaftCluster, node_id: int, rng: random.Random, *, join: bool = False
    ) -> None:
        """An initial member (its groups bootstrapped with the initial voters), or with
        ``join`` a new, empty server that waits to be added to the groups."""
        self.cluster = cluster
        self.id = node_id
        self.rng = rng
        self.node_log = MemoryNodeLog()
        for gid in cluster.group_ids:
            if join:
                self.node_log.create_group(gid)
            else:
                bootstrap_group(self.node_log, gid, cluster.initial_ids)
        self.node_log.sync()
        self.decommissioned = False
        """Removed from the cluster and switched off for good (its id is never reused)."""
        self.snapshot_stores = {gid: MemorySnapshotStore() for gid in cluster.group_ids}
        self.up = True
        self.incarnation = 0
        # An fsync takes time on a real disk; zero would hide every persist/send race.
        self.disk_latency_us = rng.choice([100, 500, 1_000])
        self.tick_us = TICK_US
        self.busy = False
        self.host = self._new_host()

    # --- lifecycle -------------------------------------------------------------------------

    def _new_host(self) -> NodeHost:
        c = self.cluster
        world = SimHostWorld(self)
        self.world = world
        host = NodeHost(
            self.id,
            self.node_log,
            world=world,
            send=self._send,
            incarnation=self.incarnation,
            config=c.host_config,
        )
        for gid in c.group_ids:
            machine = KVMachine(KVStateMachine(MemoryEngine()))
            store = self.snapshot_stores[gid]
            core = open_core(
                self.id,
                self.node_log.group(gid),
                store,
                machine,
                config=c.raft_config,
                rng=random.Random(self.rng.getrandbits(64)),
            )
            group = RaftGroup(
                gid,
                core,
                self.node_log.group(gid),
                store,
                machine,
                world=world,
                send=host.send,
                codec=KVResultCodec(),
                config=c.group_config,
                request_id_base=self.incarnation << 32,
            )
            host.add_group(group)
        host.set_peers(c.node_ids)
        return host

    def core(self, group_id: GroupId = 0) -> RaftCore:
        return self.host.groups[group_id].core

    def machine(self, group_id: GroupId) -> KVStateMachine:
        m = self.host.groups[group_id].machine
        assert isinstance(m, KVMachine)
        return m.kv

    def crash(self) -> None:
        self.up = False
        self.busy = False
        self.incarnation += 1
        self.host.close()  # every waiting client learns its request's fate is unknown
        self.node_log = self.node_log.crash()
        self.cluster.trace(f"n{self.id} CRASH (unsynced writes lost)")

    def restart(self) -> None:
        self.up = True
        self.host = self._new_host()
        core = self.core()
        self.cluster.trace(
            f"n{self.id} RESTART term={core.term} last={core.last_index}"
            f" commit={core.commit_index}"
        )
        self.cluster.schedule_tick(self)
        self.pump()

    # --- the drive loop ----------------------------------------------------------------------

    def pump(self) -> None:
        """Run rounds until there is nothing to do or the disk is busy."""
        self.cluster.touched.add(self.id)
        host = self.host
        while self.up and not self.busy and host.has_work():
            rnd = host.start_round()
            for group, rd in rnd.readies:
                self.cluster.on_ready(self, group, rd)
            if self.cluster.switches.send_before_persist:
                for group, rd in rnd.readies:
                    group._send_raft(rd.messages)
                    rd.messages = []
            if rnd.must_sync and self.disk_latency_us > 0:
                self.busy = True
                incarnation = self.incarnation
                self.cluster.world.after(
                    self.disk_latency_us, partial(self._disk_done, rnd, incarnation)
                )
                return
            host.persist(rnd)
            host.finish_round(rnd)

    def _disk_done(self, rnd: Round, incarnation: int) -> None:
        if incarnation != self.incarnation or not self.up:
            return  # crashed before the write completed: it never happened
        self.host.persist(rnd)
        self.busy = False
        self.host.finish_round(rnd)
        self.cluster.note_roles(self)
        self.pump()

    def _send(self, env: Envelope) -> None:
        self.cluster.network.send(env)

    def receive(self, env: Envelope) -> None:
        try:
            self.host.receive(env)
        except UnknownGroupError:
            return
        self.pump()

    def tick(self) -> None:
        self.host.tick()
        self.pump()

    # --- client requests -------------------------------------------------------------------

    def handle_client(self, op: ClientOp) -> None:
        c = self.cluster
        op.node = self.id
        gid = c.group_of(op.key)
        key = op.key.encode()
        now_ms = self.world.wall_ms()
        kind = op.kind

        def answered(result: Any, error: BaseException | None) -> None:
            if error is None:
                c.complete(op, _result_of(kind, result))
            elif isinstance(error, RequestError) and error.message.startswith("TIMEOUT"):
                c.give_up(op)  # proposed, then lost sight of: the outcome is unknown
            else:
                c.fail(op)  # refused before it entered any log

        waiter = CallbackWaiter(answered)
        if isinstance(kind, Read):
            args = [b"GET", key]
            machine = self.machine(gid)
            if c.switches.stale_reads:
                c.complete(op, _result_of(kind, [machine.read(args, now_ms)]))
                return
            self.host.submit_reads(gid, lambda: [machine.read(args, now_ms)], waiter)
        else:
            if isinstance(kind, Write):
                args = [b"SET", key, str(kind.value).encode()]
            elif kind.expected is None:
                args = [b"SET", key, str(kind.new).encode(), b"NX"]  # set only if absent
            else:
                args = [b"CAS", key, str(kind.expected).encode(), str(kind.new).encode()]
            spec = check_command(args, now_ms)
            assert not isinstance(spec, ErrorReply), spec
            self.host.submit_writes(gid, [encode_write(spec, args, now_ms)], waiter)
        self.pump()


def _result_of(kind: Read | Write | Cas, replies: Any) -> Any:
    (reply,) = replies
    if isinstance(kind, Read):
        return None if reply is None else int(reply)
    if isinstance(kind, Cas):
        return reply in (1, OK)  # CAS says 1, SET NX says OK
    return None


class RaftCluster:
    """N simulated nodes, G groups each, on one :class:`World`, with clients and observers."""

    def __init__(
        self,
        world: World,
        node_count: int,
        raft_config: RaftConfig,
        *,
        groups: int = 1,
        clients: int = 3,
        keys: int = 3,
        client_timeout_ticks: int = 60,
        lease_reads: bool = False,
        snapshot_every_entries: int = 40,
        quiesce_after_ticks: int = 20,
        switches: HostSwitches | None = None,
        trace_enabled: bool = True,
    ) -> None:
        self.world = world
        self.raft_config = raft_config
        self.node_ids = list(range(1, node_count + 1))
        self.initial_ids = list(self.node_ids)
        self.group_ids = list(range(groups))
        self.lease_reads = lease_reads
        self.group_config = GroupConfig(
            snapshot_every_entries=snapshot_every_entries, lease_reads=lease_reads
        )
        self.host_config = HostConfig(
            heartbeat_interval_ms=raft_config.election_timeout_ticks * TICK_US / 3000,
            liveness_timeout_ms=raft_config.election_timeout_ticks * TICK_US / 1000,
            quiesce_after_ticks=quiesce_after_ticks,
            request_timeout_ms=client_timeout_ticks * 2 * TICK_US // 1000,
        )
        self.switches = switches or HostSwitches()
        self.trace_enabled = trace_enabled
        self.trace_lines: list[str] = []
        self.network = Network(world, self._deliver)
        self.observers: list[Any] = []
        self.on_new_leader: list[Callable[[int], None]] = []
        self.nodes = {i: SimNode(self, i, world.child_rng()) for i in self.node_ids}
        self.client_count = clients
        self.keys = [f"k{i}" for i in range(max(keys, 2 * groups))]
        self.client_timeout_us = client_timeout_ticks * TICK_US
        self.ops: list[ClientOp] = []
        self._client_target = {c: world.rng.choice(self.node_ids) for c in range(clients)}
        self._client_busy: dict[int, ClientOp | None] = dict.fromkeys(range(clients))
        self._next_value = 0
        self.clients_running = False
        self._was_leader: dict[tuple[int, GroupId], int] = {}
        self.touched: set[int] = set(self.node_ids)
        """Nodes an event changed since the checkers last looked."""

    def add_node(self) -> int:
        """Start a brand-new, empty server under a new id; every node learns of it."""
        node_id = max(self.node_ids) + 1
        self.node_ids.append(node_id)
        node = SimNode(self, node_id, self.world.child_rng(), join=True)
        self.nodes[node_id] = node
        for other in self.nodes.values():
            if other.up:
                other.host.set_peers(self.node_ids)
        self.trace(f"n{node_id} STARTED (a new, empty server)")
        self.schedule_tick(node)
        return node_id

    def decommission(self, node_id: int) -> None:
        """Switch off a server removed from every group, for good."""
        node = self.nodes[node_id]
        if node.up:
            node.crash()
        node.decommissioned = True
        self.trace(f"n{node_id} DECOMMISSIONED")

    def group_of(self, key: str) -> GroupId:
        return zlib.crc32(key.encode()) % len(self.group_ids)

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
        node.tick()
        self.note_roles(node)
        self.schedule_tick(node)

    def _deliver(self, env: Envelope) -> None:
        node = self.nodes.get(env.dst)
        if node is None or not node.up:
            return
        if self.trace_enabled:
            self.trace(f"n{env.src}->n{env.dst} g{env.group_id} {describe(env.body)}")
        node.receive(env)
        self.note_roles(node)

    def note_roles(self, node: SimNode) -> None:
        """After an event on ``node``: trace leadership changes, and mark it for the
        checkers (which look only at nodes an event touched)."""
        self.touched.add(node.id)
        if not node.up:
            return
        for gid, group in node.host.groups.items():
            core = group.core
            term = core.term if core.is_leader else -1
            before = self._was_leader.get((node.id, gid), -1)
            if term != before:
                self._was_leader[(node.id, gid)] = term
                if term != -1:
                    self.trace(
                        f"n{node.id} became LEADER of g{gid} term {term} last={core.last_index}"
                    )
                    if gid == 0:
                        for hook in self.on_new_leader:
                            hook(node.id)

    # --- observation -----------------------------------------------------------------------

    def trace(self, line: str) -> None:
        if self.trace_enabled:
            self.trace_lines.append(f"{self.world.now_us / 1000:10.1f}ms {line}")

    def on_ready(self, node: SimNode, group: RaftGroup, rd: RaftReady) -> None:
        for obs in self.observers:
            obs.on_ready(node, group, rd)
        if rd.committed_entries:
            for obs in self.observers:
                obs.on_apply(node, group, rd.committed_entries)

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
        node.handle_client(op)
        self.note_roles(node)
        self.world.after(self.client_timeout_us, lambda: self.give_up(op))

    def _client_done(self, op: ClientOp) -> None:
        if self._client_busy.get(op.client) is not op:
            return
        self._client_busy[op.client] = None
        if op.failed or op.complete_tick is None:
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

    def fail(self, op: ClientOp) -> None:
        if self._client_busy.get(op.client) is not op:
            return
        op.failed = True
        self._client_done(op)

    def give_up(self, op: ClientOp) -> None:
        """The client stops waiting; the operation's outcome stays unknown."""
        if self._client_busy.get(op.client) is not op:
            return
        self._client_done(op)

    def history(self) -> list[Operation]:
        return [op.to_operation() for op in self.ops if not op.failed]


def describe(msg: Any) -> str:
    """A short, readable rendering of a message for traces."""
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
        elif f in ("beats", "acks"):
            v = "[" + ",".join(
                f"g{b.group_id}:t{b.term}" + ("Q" if getattr(b, "quiesce", False) else "")
                for b in v
            ) + "]"
        elif f == "payloads":
            v = f"<{len(v)} writes>"
        fields.append(f"{f}={v}")
    return f"{name}(" + " ".join(fields) + ")"

