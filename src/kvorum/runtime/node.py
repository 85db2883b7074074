"""A real kvorum node: its groups on one host, over the WAL, LMDB and TCP, serving clients.

Theory of operation: a :class:`KvorumNode` is assembly. It opens what lives in the data folder
— the folder lock and the engine guard (:mod:`kvorum.runtime.datadir`), the shared log of
every group (:class:`~kvorum.storage.node_log.DurableNodeLog`), the LMDB keyspace every group's
state machine is a span of (:class:`~kvorum.storage.lmdb_keyspace.LmdbKeyspace`), the address
book — and, when started, builds one :class:`~kvorum.host.group.RaftGroup` per group on one
:class:`~kvorum.host.node.NodeHost`, the peer transport that carries the host's envelopes, the
drive loop that runs the host's rounds (:mod:`kvorum.runtime.driver`), and the request router
the RESP server talks to (:mod:`kvorum.runtime.requests`). Everything the node does with time
and randomness comes from its world (:mod:`kvorum.runtime.world`): the loop's clock and a
seeded RNG whose seed is logged and shown by ``KVORUM STATUS``.

A new node of a new cluster creates its groups (``groups`` of them, cutting the hash slots
into equal runs) and writes each group's initial membership into its log; a node started with
``join`` creates the same groups empty and waits to be added; a restarting node opens the
groups its log holds. The node is the :class:`~kvorum.server.executor.Executor` the RESP
server uses; admin commands, INFO and ROLE are :mod:`kvorum.runtime.admin`'s.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvorum.core.raft import ConfChange, EntryKind, RaftConfig
from kvorum.core.raft.messages import Entry
from kvorum.core.shape import Envelope, GroupId
from kvorum.host.bootstrap import bootstrap_group, open_core
from kvorum.host.group import GroupConfig, RaftGroup
from kvorum.host.node import HostConfig, NodeHost
from kvorum.kv.group_machine import KVGroupMachine
from kvorum.kv.key_order import HashOrder
from kvorum.kv.replies import Reply
from kvorum.kv.results import KVResultCodec
from kvorum.kv.state_machine import DEFAULT_MAX_VALUE_BYTES
from kvorum.runtime.addresses import AddressBook, PeerAddress
from kvorum.runtime.admin import Admin
from kvorum.runtime.datadir import DataDirInUseError, DataDirLock, EngineGuard
from kvorum.runtime.driver import HostDriver
from kvorum.runtime.requests import ReplyFuture, RequestRouter
from kvorum.runtime.transport import PeerTransport, TransportConfig
from kvorum.runtime.world import AsyncioWorld, node_rng
from kvorum.server.executor import Consistency, InfoSections, wall_clock_ms
from kvorum.shard.router import SlotRouter
from kvorum.storage.lmdb_keyspace import LmdbKeyspace
from kvorum.storage.node_log import DurableNodeLog
from kvorum.storage.snapshots import SnapshotSpool, SpooledChunk

__all__ = ["DataDirInUseError", "KvorumNode", "NodeConfig", "PeerAddress"]

log = logging.getLogger(__name__)


BOOTSTRAP_GROUPS_PER_SYNC = 64
"""New groups are written to the log this many per batch: reading one group's entries back
parses the header of every batch that holds them, which names every group in the batch, so
one batch of all of 10,000 groups would make opening them quadratic."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: int
    data_dir: Path
    peers: dict[int, PeerAddress]
    """Every member of the initial cluster, this node included."""
    cluster_id: str = "kvorum"
    join: bool = False
    """Start as a new node joining a running cluster (no bootstrap configuration)."""
    groups: int = 1
    """How many Raft groups the keyspace is cut into (fixed when the cluster is created)."""
    tick_ms: int = 20
    election_timeout_ticks: int = 15
    heartbeat_interval_ticks: int = 2
    request_timeout_ms: int = 5_000
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    """Largest single argument (value) a client may send, as Redis's proto-max-bulk-len."""
    snapshot_every_entries: int = 20_000
    max_entry_payloads: int = 4096
    quiesce_after_ticks: int = 25
    """An idle group stops ticking after this many ticks (0: never)."""
    persist_in_thread: bool = True
    """Run each round's fsync on a disk thread while the loop keeps serving, when syncs take
    ``inline_sync_below_ms`` or more (False: always on the loop)."""
    inline_sync_below_ms: float = 1.0
    """Syncs faster than this run on the loop: the hop to the disk thread costs more (0:
    always on the thread; see :mod:`kvorum.runtime.driver`)."""
    lease_reads: bool = True
    """A leader holding a lease (CheckQuorum, a heartbeat round confirmed less than an
    election timeout minus a margin ago) serves linearizable reads at once; without one, or
    with this off, a read waits for a ReadIndex heartbeat round."""
    seed: int | None = None
    """The node's RNG seed (to replay a run); drawn from the OS when None, and logged."""
    admin: str | None = None
    """host:port of the HTTP admin endpoint (/metrics, /status, /health); None: none."""
    requirepass: str | None = field(default=None, repr=False)
    """Clients must AUTH with this password (Redis's ``requirepass``); None: no password."""

    @property
    def me(self) -> PeerAddress:
        return self.peers[self.node_id]


class KvorumNode:
    """One node of a kvorum cluster; also the :class:`~kvorum.server.executor.Executor` the
    RESP server talks to."""

    def __init__(self, config: NodeConfig, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.config = config
        self._clock_ms = clock_ms
        data_dir = config.data_dir
        self._lock = DataDirLock(data_dir)
        self.rng, self.seed = node_rng(config.seed)
        log.info("node %d: random seed %d", config.node_id, self.seed)
        self._engine_guard = EngineGuard(data_dir, data_dir / "kv")
        # Damage to synced WAL batches is repaired from the groups' peers where it can be
        # (kvorum.core.raft.repair); open_core refuses the groups where it cannot.
        self.node_log = DurableNodeLog(data_dir / "raft", repair_from_peers=True)
        torn = self.node_log.recovery.torn_tail
        if torn is not None:
            log.warning("node %d: repaired a torn WAL tail: %s", config.node_id, torn)
        self.keyspace = LmdbKeyspace(data_dir / "kv", sync=False)
        self.addresses = AddressBook(data_dir, config.peers)
        group_ids = self._open_or_create_groups()
        self.router = SlotRouter(group_ids)
        self.machines: dict[GroupId, KVGroupMachine] = {}
        for gid in group_ids:
            span = HashOrder.slot_span(*self.router.slot_span(gid))
            view = self.keyspace.open_group(gid, span)
            self.machines[gid] = KVGroupMachine(view, config.max_value_bytes)
        # Received snapshot chunks are only spooled for the transfer at hand: start empty.
        self._spool_dir = data_dir / "raft" / "incoming"
        shutil.rmtree(self._spool_dir, ignore_errors=True)
        self.last_contact: dict[int, float] = {}
        """When each peer was last heard from (the host world's monotonic ms)."""
        self.transport: PeerTransport | None = None
        self.requests: RequestRouter | None = None
        self.admin_commands = Admin(self)
        self.fatal_error: BaseException | None = None
        self.on_fatal: Callable[[BaseException], None] | None = None
        self._world: AsyncioWorld | None = None
        self._host: NodeHost | None = None
        self._driver: HostDriver | None = None

    def _open_or_create_groups(self) -> list[GroupId]:
        node_log, config = self.node_log, self.config
        held = node_log.group_ids()
        if held:
            if len(held) != config.groups and config.groups != 1:
                log.warning(
                    "node %d: its data holds %d groups; --groups %d is ignored",
                    config.node_id,
                    len(held),
                    config.groups,
                )
            return held
        if config.groups < 1:
            raise ValueError("a node needs at least one group")
        group_ids = list(range(config.groups))
        for gid in group_ids:
            if config.join:
                node_log.create_group(gid)
            else:
                # A new member of a new cluster writes the initial membership into each log,
                # so a node that joins later learns it by replaying the log.
                bootstrap_group(node_log, gid, config.peers)
            if (gid + 1) % BOOTSTRAP_GROUPS_PER_SYNC == 0:
                node_log.sync()
        node_log.sync()
        return group_ids

    # --- start and stop ------------------------------------------------------------------------

    @property
    def host(self) -> NodeHost:
        assert self._host is not None, "the node is not started"
        return self._host

    @property
    def host_world(self) -> AsyncioWorld:
        assert self._world is not None, "the node is not started"
        return self._world

    @property
    def driver(self) -> HostDriver:
        assert self._driver is not None, "the node is not started"
        return self._driver

    @property
    def core(self) -> Any:
        """Group 0's core (tests and tools that look at one group)."""
        return self.host.group(0).core

    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        world = AsyncioWorld(loop, wall_clock_ms=self._clock_ms)
        self._world = world
        host = NodeHost(
            cfg.node_id,
            self.node_log,
            world=world,
            send=self._send,
            incarnation=self.rng.getrandbits(62),
            config=HostConfig(
                heartbeat_interval_ms=cfg.tick_ms * cfg.election_timeout_ticks / 3,
                liveness_timeout_ms=cfg.tick_ms * cfg.election_timeout_ticks,
                quiesce_after_ticks=cfg.quiesce_after_ticks,
                request_timeout_ms=cfg.request_timeout_ms,
                tick_ms=cfg.tick_ms,
                # A dropped tick voids the leaders' leases (see HostConfig), so lease reads
                # stay safe on a node that falls behind.
                max_pending_ticks=2,
            ),
            apply_scope=self.keyspace.transaction,
        )
        self._host = host
        raft_config = RaftConfig(
            election_timeout_ticks=cfg.election_timeout_ticks,
            heartbeat_interval_ticks=cfg.heartbeat_interval_ticks,
        )
        group_config = GroupConfig(
            snapshot_every_entries=cfg.snapshot_every_entries,
            max_entry_payloads=cfg.max_entry_payloads,
            lease_reads=cfg.lease_reads,
        )
        codec = KVResultCodec()
        for gid in self.router.group_ids:
            group_log = self.node_log.group(gid)
            snapshots = self.node_log.snapshot_store(gid)
            machine = self.machines[gid]
            core = open_core(
                cfg.node_id,
                group_log,
                snapshots,
                machine,
                config=raft_config,
                rng=_child_rng(self.rng),
                on_entries=self._learn_addresses,
            )
            host.add_group(
                RaftGroup(
                    gid,
                    core,
                    group_log,
                    snapshots,
                    machine,
                    world=world,
                    send=host.send,
                    codec=codec,
                    config=group_config,
                    spool=_LazySpool(self._spool_dir / str(gid)),
                    on_conf_change=self._on_conf_change,
                    # Ids travel as 64-bit integers: 31 bits of incarnation, 32 of count.
                    request_id_base=(host.incarnation & 0x7FFF_FFFF) << 32,
                )
            )
        driver = HostDriver(
            host,
            tick_ms=cfg.tick_ms,
            persist_in_thread=cfg.persist_in_thread,
            inline_sync_below_ms=cfg.inline_sync_below_ms,
            on_fatal=self._fatal,
            batch_sends=(self._cork_sends, self._uncork_sends),
        )
        self._driver = driver
        host.on_work = driver.wake
        self.requests = RequestRouter(host, self.router, self.machines, self.now_ms, driver.wake)
        peers = {i: a.raft for i, a in self.addresses.addresses.items() if i != cfg.node_id}
        host.set_peers(peers)
        self.transport = PeerTransport(
            TransportConfig(
                cluster_id=cfg.cluster_id, node_id=cfg.node_id, listen=cfg.me.raft, peers=peers
            ),
            self._on_message,
            _child_rng(self.rng),
        )
        self.addresses.on_new.append(self._on_new_address)
        await self.transport.start()
        driver.start()

    async def close(self) -> None:
        if self._driver is not None:
            await self._driver.close()
        if self.transport is not None:
            await self.transport.close()
        if self._host is not None:
            self._host.close()
        if self._world is not None:
            self._world.shutdown()
        self.node_log.close()
        self.keyspace.flush()
        self.keyspace.close()
        self._engine_guard.closed_cleanly()
        self._lock.release()

    def _learn_addresses(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            if entry.kind is EntryKind.CONF_CHANGE:  # it may carry a member's addresses
                self.addresses.learn_from(ConfChange.decode(entry.data))

    def _fatal(self, exc: BaseException) -> None:
        self.fatal_error = exc
        if self.on_fatal is not None:
            self.on_fatal(exc)

    # --- peers ---------------------------------------------------------------------------------

    def _send(self, env: Envelope) -> None:
        transport = self.transport
        if transport is None:
            return
        if not transport.corked:
            # Outside a round (commit notices, node heartbeats, forwarded answers, timers of
            # many groups firing together): what this loop iteration sends leaves together.
            transport.cork()
            asyncio.get_running_loop().call_soon(transport.uncork)
        try:
            transport.send(env)
        except Exception:  # an unknown or removed peer: Raft tolerates a lost message
            log.debug("node %d: could not send to %d", self.config.node_id, env.dst)

    def _cork_sends(self) -> None:
        if self.transport is not None:
            self.transport.cork()

    def _uncork_sends(self) -> None:
        if self.transport is not None:
            self.transport.uncork()

    def _on_message(self, env: Envelope) -> None:
        self.last_contact[env.src] = self.host_world.monotonic_ms()
        self.host.receive(env)  # UnknownGroupError reaches the transport, which drops the peer
        self.driver.wake()

    def _on_conf_change(self, change: ConfChange) -> None:
        self.addresses.learn_from(change)

    def _on_new_address(self, node_id: int, address: PeerAddress) -> None:
        if node_id == self.config.node_id:
            return
        if self.transport is not None:
            self.transport.add_peer(node_id, address.raft)
        if self._host is not None:
            self._host.set_peers(i for i in self.addresses.addresses if i != self.config.node_id)

    # --- the executor the RESP server uses -----------------------------------------------------

    def now_ms(self) -> int:
        return self._clock_ms()

    def submit_writes(self, payloads: Sequence[bytes]) -> ReplyFuture:
        assert self.requests is not None, "the node is not started"
        return self.requests.submit_writes(payloads)

    def submit_reads(
        self, requests: Sequence[Sequence[bytes]], consistency: Consistency
    ) -> ReplyFuture:
        assert self.requests is not None, "the node is not started"
        return self.requests.submit_reads(requests, consistency)

    async def write_batch(self, payloads: Sequence[bytes]) -> list[Reply]:
        if not payloads:
            return []
        return await self.submit_writes(payloads)

    async def read_batch(
        self, requests: Sequence[Sequence[bytes]], consistency: Consistency
    ) -> list[Reply]:
        if not requests:
            return []
        return await self.submit_reads(requests, consistency)

    def info(self) -> InfoSections:
        return self.admin_commands.info()

    def cluster(self, subcommand: str, args: Sequence[bytes]) -> Reply:
        return self.admin_commands.cluster(subcommand, args)

    def role(self) -> Reply:
        return self.admin_commands.role()

    async def admin(self, args: Sequence[bytes]) -> Reply:
        return await self.admin_commands.command(args)

    def raft_status(self) -> dict[str, Any]:
        return self.admin_commands.status()


class _LazySpool:
    """A group's snapshot spool, made on the first chunk it receives (thousands of groups
    should not mean thousands of empty folders)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._spool: SnapshotSpool | None = None

    def store(self, meta: Any, offset: int, data: bytes) -> SpooledChunk:
        if self._spool is None:
            self._spool = SnapshotSpool(self._directory)
        return self._spool.store(meta, offset, data)

    def clear(self, through_index: int) -> None:
        if self._spool is not None:
            self._spool.clear(through_index=through_index)


def _child_rng(rng: random.Random) -> random.Random:
    """A generator of its own for one component, drawn from the node's."""
    return random.Random(rng.getrandbits(64))

