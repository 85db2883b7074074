"""One simulated kvorum server: the real host, Raft cores and KV state machine on a sim machine.

Theory of operation: a :class:`SimNode` is what a real node is — a
:class:`~kvorum.host.node.NodeHost` with its groups, each running a
:class:`~kvorum.core.raft.RaftCore` over the node's log and a snapshot store, with the real
state machine (:class:`~kvorum.kv.group_machine.KVGroupMachine`, each group a span of one
in-memory keyspace routed by hash slot as on a real node) — running on a
:class:`~kvorum.sim.machine.SimMachine`. By default its log and snapshots are the durable
ones (:class:`~kvorum.sim.storage.DurableNodeStorage`: the real WAL on the machine's
simulated disk). Its rounds are driven by a :class:`~kvorum.sim.driver.SimDriver` exactly as
the runtime drives them (disk latency, disk-full retries, a fatal disk error stops the node).
Forwarding, held commit notices, write-loss detection, coalesced heartbeats and quiescence
are the host's own code, so the simulator tests them as they run in production.

*Crash*: the host and everything in memory are thrown away and the disk loses power
(unsynced writes lost or torn). The keyspace either keeps what it committed (as LMDB survives
a process crash) or loses everything (a machine crash) — the seed decides — and the restart
catches it up from the newest snapshot and the log, which it opens from the disk as a real
node does. A node that stops by itself (an fsync
failed) goes down the same way: nothing it held in memory can be trusted, and the simulator
treats the stop as a crash of the machine, so its disk keeps only what reached the platter.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvorum.core.raft import RaftCore
from kvorum.core.shape import Envelope, GroupId, UnknownGroupError
from kvorum.host.bootstrap import bootstrap_group, open_core
from kvorum.host.errors import DiskFullRequestError, RequestError
from kvorum.host.group import RaftGroup
from kvorum.host.node import NodeHost, Round
from kvorum.host.waiters import CallbackWaiter
from kvorum.host.world import TimerHandle
from kvorum.kv.commands import check_command, encode_write
from kvorum.kv.group_machine import KVGroupMachine
from kvorum.kv.key_order import HASH_ORDER, HashOrder
from kvorum.kv.memory_keyspace import MemoryKeyspace
from kvorum.kv.replies import OK, ErrorReply
from kvorum.kv.results import KVResultCodec
from kvorum.kv.state_machine import KVStateMachine
from kvorum.sim.driver import SimDriver
from kvorum.sim.linearizability import Cas, Read, Write
from kvorum.sim.machine import SimMachine
from kvorum.sim.plugin import InvariantViolation
from kvorum.sim.storage import REFUSALS, DurableNodeStorage, MemoryNodeStorage, NodeStorage
from kvorum.storage.memory import MemoryNodeLog
from kvorum.storage.node_log import DurableNodeLog

if TYPE_CHECKING:
    from kvorum.sim.raft.clients import ClientOp
    from kvorum.sim.raft.cluster import RaftCluster

WALL_EPOCH_MS = 1_700_000_000_000
"""Virtual time zero on the wall clock writes are stamped with (expiry needs a plausible
Unix time)."""


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

        self._node.cluster.world.after(self._node.machine.disk_latency_us, finish)


class SimNode:
    """One server: a :class:`NodeHost` on a :class:`SimMachine`, and the client requests on
    it (a :class:`~kvorum.sim.plugin.NodeHandle`)."""

    def __init__(
        self, cluster: RaftCluster, node_id: int, rng: random.Random, *, join: bool = False
    ) -> None:
        """An initial member (its groups bootstrapped with the initial voters), or with
        ``join`` a new, empty server that waits to be added to the groups."""
        self.cluster = cluster
        self.id = node_id
        self.rng = rng
        self.machine = SimMachine(rng)
        self.storage: NodeStorage
        if cluster.storage_kind == "memory":
            self.storage = MemoryNodeStorage()
        else:
            self.storage = DurableNodeStorage(
                self.machine.fs,
                segment_bytes=cluster.segment_bytes,
                low_space_bytes=2 * cluster.segment_bytes,
            )
        node_log = self.storage.node_log
        for gid in cluster.group_ids:
            if join:
                node_log.create_group(gid)
            else:
                bootstrap_group(node_log, gid, cluster.initial_ids)
        node_log.sync()
        self.keyspace = MemoryKeyspace(HASH_ORDER, survives_crash=cluster.keyspace_survives_crash)
        """Every group's state machine, as spans of one ordered keyspace (as LMDB on a real
        node)."""
        self.retired = False
        """Removed from the cluster and switched off for good (its id is never reused)."""
        self.up = True
        self.incarnation = 0
        self.host = self._new_host()
        self.driver = self._new_driver()

    @property
    def node_log(self) -> DurableNodeLog | MemoryNodeLog:
        return self.storage.node_log

    @property
    def busy(self) -> bool:
        """A round is waiting for its sync."""
        return self.driver.busy

    # --- lifecycle -------------------------------------------------------------------------

    def _new_host(self) -> NodeHost:
        c = self.cluster
        world = SimHostWorld(self)
        self.host_world = world
        host = NodeHost(
            self.id,
            self.node_log,
            world=world,
            send=self._send,
            incarnation=self.incarnation,
            config=c.host_config,
            apply_scope=self.keyspace.transaction,
        )
        for gid in c.group_ids:
            span = HashOrder.slot_span(*c.router.slot_span(gid))
            machine = KVGroupMachine(self.keyspace.open_group(gid, span))
            store = self.storage.snapshot_store(gid)
            group_log = self.node_log.group(gid)
            core = open_core(
                self.id,
                group_log,
                store,
                machine,
                config=c.raft_config,
                rng=random.Random(self.rng.getrandbits(64)),
            )
            group = RaftGroup(
                gid,
                core,
                group_log,
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

    def _new_driver(self) -> SimDriver[Round]:
        c = self.cluster
        return SimDriver(
            c.world,
            self.machine,
            self.host,
            on_round=self._on_round,
            on_fatal=self._stopped_by_error,
            trace=lambda line: c.trace(f"n{self.id} {line}"),
        )

    def core(self, group_id: GroupId = 0) -> RaftCore:
        return self.host.groups[group_id].core

    def machine_of(self, group_id: GroupId) -> KVStateMachine:
        """The KV state machine of ``group_id`` on this node."""
        m = self.host.groups[group_id].machine
        assert isinstance(m, KVGroupMachine)
        return m.kv

    def crash(self) -> None:
        if self.up:
            self._go_down("CRASH (unsynced writes lost)")

    def crash_mid_sync(self) -> None:
        if not self.up:
            return
        if not self.driver.busy:
            self._go_down("CRASH (a power cut meant for a sync; none was in flight)")
            return
        outcome = self.driver.cut_power_in_sync()
        self._go_down(f"CRASH inside a sync: {outcome}")

    def _stopped_by_error(self, error: OSError) -> None:
        self._go_down(f"STOPPED: a round failed ({error}); restarting from disk")
        for hook in self.cluster.on_node_stopped:
            hook(self.id)

    def _go_down(self, why: str) -> None:
        self.up = False
        self.driver.stop()
        self.incarnation += 1
        self.host.close()  # every waiting client learns its request's fate is unknown
        self.storage.crash()
        self.keyspace = self.keyspace.crash()
        self.cluster.trace(f"n{self.id} {why}")

    def restart(self) -> bool:
        c = self.cluster
        try:
            self.storage.reopen()
            self.up = True
            self.host = self._new_host()
        except REFUSALS as exc:
            raise InvariantViolation(
                f"Availability: n{self.id} refuses to start on its own disk after a crash:"
                f" {type(exc).__name__}: {exc}"
            ) from exc
        except OSError as exc:
            self.up = False
            c.trace(f"n{self.id} cannot start yet: {exc}")
            c.world.stats["restarts refused by the disk"] += 1
            return False
        self.driver = self._new_driver()
        c.mark_node(self)
        core = self.core()
        repaired = self.storage.describe_recovery()
        if repaired is not None:
            c.world.stats["torn tails cut"] += 1
        c.trace(
            f"n{self.id} RESTART term={core.term} last={core.last_index}"
            f" commit={core.commit_index}" + (f"; {repaired}" if repaired else "")
        )
        c.schedule_tick(self)
        self.pump()
        return True

    # --- the drive loop ----------------------------------------------------------------------

    def pump(self) -> None:
        """Run rounds until there is nothing to do or the disk is busy."""
        if self.up:
            self.driver.pump()

    def _on_round(self, rnd: Round) -> None:
        c = self.cluster
        for group, rd in rnd.readies:
            c.on_ready(self, group, rd)
        if c.switches.send_before_persist:
            for group, rd in rnd.readies:
                group._send_raft(rd.messages)
                rd.messages = []

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
        self.driver.check_space()
        self.pump()

    # --- client requests -------------------------------------------------------------------

    def handle_client(self, op: ClientOp) -> None:
        c = self.cluster
        clients = c.clients
        op.node = self.id
        gid = c.group_of(op.key)
        key = op.key.encode()
        now_ms = self.host_world.wall_ms()
        kind = op.kind

        def answered(result: Any, error: BaseException | None) -> None:
            if error is None:
                clients.complete(op, _result_of(kind, result))
            elif isinstance(error, RequestError) and error.message.startswith("TIMEOUT"):
                clients.give_up(op)  # proposed, then lost sight of: the outcome is unknown
            else:
                if isinstance(error, DiskFullRequestError):
                    c.world.stats["writes refused: disk full"] += 1
                clients.fail(op)  # refused before it entered any log

        waiter = CallbackWaiter(answered)
        pad = c.value_padding
        if isinstance(kind, Read):
            args = [b"GET", key]
            machine = self.machine_of(gid)
            if c.switches.stale_reads:
                clients.complete(op, _result_of(kind, [machine.read(args, now_ms)]))
                return
            self.host.submit_reads(gid, lambda: [machine.read(args, now_ms)], waiter)
        else:
            if isinstance(kind, Write):
                args = [b"SET", key, encode_value(kind.value, pad)]
            elif kind.expected is None:
                args = [b"SET", key, encode_value(kind.new, pad), b"NX"]  # set only if absent
            else:
                expected = encode_value(kind.expected, pad)
                args = [b"CAS", key, expected, encode_value(kind.new, pad)]
            spec = check_command(args, now_ms)
            assert not isinstance(spec, ErrorReply), spec
            self.host.submit_writes(gid, [encode_write(spec, args, now_ms)], waiter)
        self.pump()


def encode_value(value: object, padding: int) -> bytes:
    """A client's value as stored: the number, then ``padding`` filler bytes (big values
    make batches span several disk sectors, which is what a torn write needs)."""
    return str(value).encode() + b"." * padding


def decode_value(stored: bytes) -> int:
    return int(stored.rstrip(b"."))


def _result_of(kind: Read | Write | Cas, replies: Any) -> Any:
    (reply,) = replies
    if isinstance(kind, Read):
        return None if reply is None else decode_value(reply)
    if isinstance(kind, Cas):
        return reply in (1, OK)  # CAS says 1, SET NX says OK
    return None
