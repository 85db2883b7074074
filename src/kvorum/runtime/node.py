"""A real kvorum node: the Raft core driven by asyncio, over a WAL, LMDB and TCP.

Theory of operation: one task, :meth:`RaftNode._drive`, owns the core. Everything that wants
the core — a tick, a peer's message, a client's write or read — is queued as an input and the
task woken. The task runs every queued input, then drains the core's readies: a leader's
appends go out at once (thesis §10.2.1), the hard state and entries are persisted with one
``fdatasync``, *then* the other messages are sent, committed entries are applied to the
state machine (one LMDB transaction per entry), and the core advances. Inputs that arrive
while a ready is being persisted wait for the next round, which is what makes group commit
happen by itself: every client write that arrived during one fsync goes into the next
entry, the next fsync and the next AppendEntries.

Writes: the leader packs all pending write payloads into one log entry and resolves each
client's future when that entry is applied here; if a different entry wins that index, the
write definitely did not happen and the client is told so. A follower forwards writes to the
leader it knows (a NODE :class:`~kvorum.host.messages.ForwardRequest`). Without a known
leader a request fails at once with ``CLUSTERDOWN no leader``; a request that cannot finish
in time fails with ``TIMEOUT``.
Reads: linearizable reads share one ReadIndex round per batch and are served from the local
state machine once it has applied the read index — on followers too; stale reads are served
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import logging
import os
import random
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from kvorum.core.raft import (
    ConfChange,
    ConfChangeKind,
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
from kvorum.core.raft.messages import (
    AppendEntries,
    InstallSnapshot,
    RaftMessage,
    SnapshotData,
)
from kvorum.core.shape import Envelope, ProtocolId, UnknownGroupError
from kvorum.host.messages import ForwardReply, ForwardRequest
from kvorum.kv.commands import encode_entry
from kvorum.kv.replies import ErrorReply, Reply, Verbatim
from kvorum.kv.state_machine import KVStateMachine, encode_expire_sweep
from kvorum.runtime.transport import PeerTransport, TransportConfig
from kvorum.server.executor import (
    CommitTimeoutError,
    Consistency,
    ExecutorError,
    InfoSections,
    NoLeaderError,
    wall_clock_ms,
)
from kvorum.storage.lmdb_engine import LmdbEngine
from kvorum.storage.raft_log_store import RaftLogStore, open_store
from kvorum.storage.snapshots import SnapshotSpool, SpooledChunk

log = logging.getLogger(__name__)

SWEEP_EVERY_TICKS = 50
"""How often (in ticks) the leader proposes an expiry sweep."""
SWEEP_KEYS = 1000
"""Keys one sweep examines."""
COMMIT_NOTICE_DELAY_S = 0.002
"""How long a leader holds an AppendEntries that carries no entries (a commit-index notice or
a probe) before sending it, hoping the next append to that peer carries it instead."""


class DataDirInUseError(RuntimeError):
    """Another process holds this node's data folder."""


class WriteLostError(ExecutorError):
    """The leader changed before the write committed, and another entry took its place: the
    write was definitely not applied, so retrying it is safe."""

    def __init__(self) -> None:
        super().__init__("TRYAGAIN leader changed before the write committed; it was not applied")


class EngineGuard:
    """Decides whether the state-machine engine can be trusted after a restart.

    The node runs LMDB without flushing at commit: the WAL already made every entry durable
    before it was applied, so fsyncing LMDB too would double the disk work on the hot path.
    A process crash loses nothing (the page cache outlives the process); an operating-system
    crash can leave LMDB's file corrupt. So the guard records, while the node runs, the
    kernel's boot id and "not shut down cleanly". At the next start, an unclean record from
    another boot (or an unknown one) means the machine went down under us: the engine is
    discarded and rebuilt from the latest snapshot plus the WAL, which hold everything.
    """

    BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

    def __init__(self, data_dir: Path) -> None:
        self._file = data_dir / "engine-state.json"
        boot = self._boot_id()
        try:
            previous = json.loads(self._file.read_text())
        except (OSError, ValueError):
            previous = None
        kv_dir = data_dir / "kv"
        if (
            previous is not None
            and not previous.get("clean")
            and (boot is None or previous.get("boot_id") != boot)
        ):
            log.warning(
                "%s: unclean shutdown across a reboot; rebuilding the engine from the "
                "snapshot and the WAL",
                data_dir,
            )
            shutil.rmtree(kv_dir, ignore_errors=True)
        self._boot = boot
        self._write(clean=False)

    def closed_cleanly(self) -> None:
        self._write(clean=True)

    def _write(self, clean: bool) -> None:
        tmp = self._file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"boot_id": self._boot, "clean": clean}, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self._file)

    @classmethod
    def _boot_id(cls) -> str | None:
        try:
            return cls.BOOT_ID.read_text().strip() or None
        except OSError:
            return None


@dataclass(frozen=True, slots=True)
class PeerAddress:
    raft: str
    """host:port peers use for Raft traffic."""
    client: str
    """host:port Redis clients use."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: int
    data_dir: Path
    peers: dict[int, PeerAddress]
    """Every member of the initial cluster, this node included."""
    cluster_id: str = "kvorum"
    join: bool = False
    """Start as a new node joining a running cluster (no bootstrap configuration)."""
    tick_ms: int = 20
    election_timeout_ticks: int = 15
    heartbeat_interval_ticks: int = 2
    request_timeout_ms: int = 5_000
    max_value_bytes: int = 512 * 1024 * 1024
    """Largest single argument (value) a client may send, as Redis's proto-max-bulk-len."""
    snapshot_every_entries: int = 20_000
    max_entry_payloads: int = 4096

    @property
    def me(self) -> PeerAddress:
        return self.peers[self.node_id]


Requests = Sequence[Sequence[bytes]]
ReplyFuture = asyncio.Future[list[Reply]]
_Read = tuple[Requests, ReplyFuture]


@dataclass(slots=True)
class _PendingWrite:
    payloads: Sequence[bytes]
    future: asyncio.Future[list[Reply]]


@dataclass(slots=True)
class _Proposal:
    term: int
    writes: list[_PendingWrite] = field(default_factory=list)


class RaftNode:
    """One node of a kvorum cluster; also the :class:`~kvorum.server.executor.Executor` the
    RESP server talks to."""

    def __init__(self, config: NodeConfig, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.config = config
        self._clock_ms = clock_ms
        config.data_dir.mkdir(parents=True, exist_ok=True)
        # Two processes on one data folder would interleave WAL appends: refuse the second.
        self._lock_file = open(config.data_dir / "LOCK", "a+b")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise DataDirInUseError(f"{config.data_dir} is in use by another kvorum node") from None
        self.store: RaftLogStore = open_store(config.data_dir / "raft")
        if self.store.initial.torn_tail is not None:
            log.warning(
                "node %d: repaired a torn WAL tail: %s",
                config.node_id,
                self.store.initial.torn_tail,
            )
        self._engine_guard = EngineGuard(config.data_dir)
        self._spool = SnapshotSpool(config.data_dir / "raft" / "incoming")
        self.engine = LmdbEngine(config.data_dir / "kv", sync=False)
        self.machine = KVStateMachine(self.engine)
        self._bootstrap_if_new()
        self.store.restore_engine_if_behind(self.engine)
        self.addresses: dict[int, PeerAddress] = dict(config.peers)
        book = config.data_dir / "addresses.json"
        if book.exists():
            for key, (raft, client) in json.loads(book.read_text()).items():
                self.addresses.setdefault(int(key), PeerAddress(raft, client))
        self.core = self._build_core()
        self._inputs: list[Callable[[], None]] = []
        self._inbox: list[RaftMessage | tuple[InstallSnapshot, SpooledChunk]] = []
        """Peer messages for the core, stepped in arrival order at the next round."""
        self._wake = _Wake()
        self._proposals: dict[int, _Proposal] = {}
        self._pending_writes: list[_PendingWrite] = []
        self._pending_reads: list[_Read] = []
        self._reads_by_ctx: dict[int, list[_Read]] = {}
        self._reads_ready: list[tuple[int, Requests, ReplyFuture]] = []
        self._forwarded: dict[int, list[_PendingWrite]] = {}
        self._deadlines: deque[tuple[float, ReplyFuture]] = deque()
        self._ids = itertools.count(1)
        self._snapshotting = False
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.transport: PeerTransport | None = None
        self.started_at = time.monotonic()
        self.last_contact: dict[int, float] = {}
        self.stats = {"proposals": 0, "entries_applied": 0, "fsyncs": 0, "reads": 0, "forwards": 0}
        self.fatal_error: BaseException | None = None
        self.on_fatal: Callable[[BaseException], None] | None = None
        self._sweep_start_key = b""
        self._ticks = 0
        self._background: set[asyncio.Task[None]] = set()
        self._held_notices: dict[int, AppendEntries] = {}
        self._notice_timer: asyncio.TimerHandle | None = None

    # --- start and stop ----------------------------------------------------------------------

    def _bootstrap_if_new(self) -> None:
        """A brand-new member of a new cluster writes the initial membership into its log
        (:func:`kvorum.core.raft.bootstrap_log`), so a node that joins later learns it."""
        init = self.store.initial
        if self.config.join or init.snapshot is not None or init.last_index or init.hard_state.term:
            return
        self.store.save(*bootstrap_log(self.config.peers))
        self.store.close()
        self.store = open_store(self.config.data_dir / "raft")

    def _build_core(self) -> RaftCore:
        init = self.store.initial
        snapshot = None
        if init.snapshot is not None:
            # Read from the file as it is sent: the data set is never held in memory.
            # Checked end to end when the store opened (SnapshotStore.latest).
            snapshot = Snapshot(init.snapshot, self.store.snapshot_data(verified=True))
        # The membership is in the log (bootstrap entries and later changes) or the snapshot.
        voters: frozenset[int] = frozenset()
        for e in init.entries:
            if e.kind is EntryKind.CONF_CHANGE:
                self._learn_address(ConfChange.decode(e.data))
        cfg = RaftConfig(
            election_timeout_ticks=self.config.election_timeout_ticks,
            heartbeat_interval_ticks=self.config.heartbeat_interval_ticks,
        )
        return RaftCore(
            self.config.node_id,
            ConfState(voters),
            cfg,
            random.Random(int.from_bytes(os.urandom(8), "big")),
            hard_state=init.hard_state,
            snapshot=snapshot,
            entries=init.entries,
            applied=self.engine.applied_index(),
        )

    async def start(self) -> None:
        cfg = self.config
        peers = {i: a.raft for i, a in self.addresses.items() if i != cfg.node_id}
        self.transport = PeerTransport(
            TransportConfig(
                cluster_id=cfg.cluster_id, node_id=cfg.node_id, listen=cfg.me.raft, peers=peers
            ),
            self._on_message,
            random.Random(int.from_bytes(os.urandom(8), "big")),
        )
        await self.transport.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._drive(), name="kvorum-drive"),
            loop.create_task(self._ticker(), name="kvorum-ticker"),
        ]

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        for task in self._tasks[1:]:
            task.cancel()
        if self._tasks:
            drive = self._tasks[0]
            # Let the drive task finish the round it is in: a snapshot being installed in a
            # worker thread must complete before the files are closed.
            try:
                await asyncio.wait_for(asyncio.shield(drive), 10)
            except (TimeoutError, asyncio.CancelledError, Exception):
                drive.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.transport is not None:
            await self.transport.close()
        # Writes already in the log (or handed to the leader) may still commit without us:
        # their outcome is unknown. Everything else was never proposed and is safe to retry.
        in_flight = [w.future for p in self._proposals.values() for w in p.writes]
        in_flight += [w.future for ws in self._forwarded.values() for w in ws]
        for fut in in_flight:
            _fail(fut, ExecutorError("TIMEOUT node shutting down; the write may still be applied"))
        for fut in self._all_futures():
            _fail(fut, ExecutorError("TRYAGAIN node shutting down; the request was not applied"))
        self.store.close()
        self.engine.flush()
        self.engine.close()
        self._engine_guard.closed_cleanly()
        self._lock_file.close()

    def _all_futures(self) -> list[ReplyFuture]:
        futs: list[ReplyFuture] = [w.future for w in self._pending_writes]
        futs += [f for _, f in self._pending_reads]
        futs += [f for reads in self._reads_by_ctx.values() for _, f in reads]
        futs += [f for _, _, f in self._reads_ready]
        return futs

    # --- inputs ------------------------------------------------------------------------------

    def _submit(self, action: Callable[[], None]) -> None:
        self._inputs.append(action)
        self._wake.set()

    async def _ticker(self) -> None:
        interval_s = self.config.tick_ms / 1000
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += interval_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self._submit(self.core.tick)
            self._expire_requests()
            self._ticks += 1
            if self._ticks % SWEEP_EVERY_TICKS == 0 and self.core.is_leader:
                sweep = loop.create_task(self._sweep_expired())
                self._background.add(sweep)
                sweep.add_done_callback(self._background.discard)

    async def _sweep_expired(self) -> None:
        """The leader deletes expired keys through the log, so every replica drops them at
        the same point; replicas never expire keys by their own clocks."""
        payload = encode_expire_sweep(self.now_ms(), self._sweep_start_key, SWEEP_KEYS)
        with contextlib.suppress(ExecutorError):
            (reply,) = await self.write_batch([payload])
            self._sweep_start_key = reply if isinstance(reply, bytes) else b""

    def _on_message(self, env: Envelope) -> None:
        # This node holds one group: group 0 of Raft (and forwarding for it).
        if env.group_id != 0 or env.protocol not in (ProtocolId.RAFT, ProtocolId.NODE):
            raise UnknownGroupError(f"no {env.protocol.name} group {env.group_id} on this node")
        msg: Any = env.body
        self.last_contact[env.src] = time.monotonic()
        if isinstance(msg, ForwardRequest):
            self._submit(lambda: self._accept_forward(msg))
        elif isinstance(msg, ForwardReply):
            self._finish_forward(msg)
        elif env.protocol is ProtocolId.NODE:
            pass  # coalesced heartbeats: not sent by this runtime
        elif isinstance(msg, InstallSnapshot) and msg.data:
            # Spooled to disk as it arrives: the core keeps a view of the file, not the bytes.
            self._inbox.append((msg, self._spool.store(msg.meta, msg.offset, msg.data)))
            self._wake.set()
        else:
            self._inbox.append(msg)
            self._wake.set()

    # --- the drive loop ----------------------------------------------------------------------

    async def _drive(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                await self._round()
            except Exception as exc:
                # A failed fsync or apply leaves the node unable to promise anything: stop
                # (a supervisor restarts it from disk) rather than serve on half-broken.
                log.exception("node %d: fatal error in the drive loop", self.config.node_id)
                self.fatal_error = exc
                if self.on_fatal is not None:
                    self.on_fatal(exc)
                return

    async def _round(self) -> None:
        if self._inbox:
            inbox, self._inbox = self._inbox, []
            step = self.core.step
            for msg in inbox:
                if isinstance(msg, tuple):
                    self.core.step_stored_snapshot_chunk(*msg)
                else:
                    step(msg)
        if self._inputs:
            inputs, self._inputs = self._inputs, []
            for action in inputs:
                action()
        self._propose_pending()
        self._read_pending()
        while self.core.has_ready():
            rd = self.core.ready()
            await self._handle_ready(rd)
        self._serve_ready_reads()
        self._maybe_snapshot()
        if self._inputs or self._inbox:
            self._wake.set()

    async def _handle_ready(self, rd: RaftReady) -> None:
        applied_early = not rd.must_sync and rd.snapshot is None and bool(rd.committed_entries)
        if applied_early and self._apply_and_resolve(rd.committed_entries):
            # Nothing to make durable, and clients are waiting on these entries: let their
            # connection tasks write the replies (one loop pass) before the followers hear
            # the new commit index. Those sends cost a syscall each and nobody waits on them.
            await asyncio.sleep(0)
        # A leader's appends go out first, while its own fsync runs (thesis §10.2.1).
        self._send_all(rd.early_messages)
        if rd.snapshot is not None:
            await asyncio.to_thread(self._install_snapshot, rd.snapshot)
            # The core assembled it in memory; from now on it is read from the file.
            # Just written and checksummed by install_snapshot: not read back on the loop.
            data = self.store.snapshot_data(rd.snapshot.meta, verified=True)
            stored = Snapshot(rd.snapshot.meta, data)
            self.core.snapshot_stored(stored)
        if rd.must_sync:
            for e in rd.entries:
                if e.kind is EntryKind.CONF_CHANGE:
                    self._learn_address(ConfChange.decode(e.data))
            # The fsync runs right here: requests that arrive meanwhile wait in the socket
            # buffers and all join the next batch (group commit). Handing it to a worker
            # thread was measured no faster: the thread hop costs what the overlap gains.
            self.store.save(rd.hard_state, rd.entries)
            self.stats["fsyncs"] += 1
        # else: at most the commit index moved, which Raft treats as volatile; it is written
        # with the next batch that must be synced anyway.
        self._send_all(rd.messages)
        if rd.committed_entries and not applied_early:
            # LMDB commits without flushing, so applying is quick enough to do right here.
            self._apply_and_resolve(rd.committed_entries)
        for rs in rd.read_states:
            for requests, fut in self._reads_by_ctx.pop(rs.ctx, []):
                self._reads_ready.append((rs.index, requests, fut))
        for ctx in rd.failed_reads:
            for _, fut in self._reads_by_ctx.pop(ctx, []):
                _fail(fut, NoLeaderError())
        self.core.advance(rd)

    def _send_all(self, messages: list[Any]) -> None:
        """Send the core's messages, holding back entry-less appends for a moment.

        When the commit index moves the core tells every follower at once with an empty
        AppendEntries, and each follower answers it: four messages per write at one client,
        nearly half the leader's work. Followers do not need the news at once (a ReadIndex
        round's heartbeats carry the commit index, and the next append carries it too), so
        such a notice waits up to ``COMMIT_NOTICE_DELAY_S`` and is dropped if an append with
        entries goes to that peer first: that one carries a commit index at least as new.
        Dropping or delaying a message is nothing Raft does not already tolerate.
        """
        assert self.transport is not None
        held = self._held_notices
        for msg in messages:
            if type(msg) is AppendEntries:
                if not msg.entries:
                    held[msg.dst] = msg
                    if self._notice_timer is None:
                        self._notice_timer = asyncio.get_running_loop().call_later(
                            COMMIT_NOTICE_DELAY_S, self._send_held_notices
                        )
                    continue
                held.pop(msg.dst, None)
            with contextlib.suppress(Exception):  # an unknown peer: Raft tolerates a lost message
                self.transport.send(Envelope(ProtocolId.RAFT, 0, msg.src, msg.dst, msg))

    def _send_held_notices(self) -> None:
        self._notice_timer = None
        held, self._held_notices = self._held_notices, {}
        if self.transport is None or self._closing:
            return
        for msg in held.values():
            if msg.term == self.core.term and self.core.is_leader:
                with contextlib.suppress(Exception):
                    self.transport.send(Envelope(ProtocolId.RAFT, 0, msg.src, msg.dst, msg))

    def _apply_and_resolve(self, entries: list[Entry]) -> bool:
        """Apply ``entries`` and settle the proposals waiting on them; True if any did."""
        settled = False
        for entry, replies in self._apply(entries):
            settled = self._resolve_proposal(entry, replies) or settled
        return settled

    def _apply(self, entries: list[Entry]) -> list[tuple[Entry, list[Reply] | None]]:
        """Apply committed entries to the state machine, one engine transaction each."""
        out: list[tuple[Entry, list[Reply] | None]] = []
        for e in entries:
            if e.index <= self.engine.applied_index():
                continue  # already in the engine (replayed after a restart)
            if e.kind is EntryKind.NORMAL and e.data:
                out.append((e, self.machine.apply_entry(e.data, e.index)))
            else:
                self.machine.apply_many([], e.index)  # no-ops and membership: record the index
                out.append((e, [] if e.kind is EntryKind.CONF_CHANGE else None))
            self.stats["entries_applied"] += 1
        return out

    def _install_snapshot(self, snap: Snapshot) -> None:
        self.store.install_snapshot(snap.meta, _slices(snap.data))
        self._spool.clear(through_index=snap.meta.index)
        self.engine.restore(self.store.snapshot_chunks(snap.meta), snap.meta.index)

    def _maybe_snapshot(self) -> None:
        every = self.config.snapshot_every_entries
        core = self.core
        if self._snapshotting or not every:
            return
        if core.applied_index - core.snapshot_index < every:
            return
        applied = self.engine.applied_index()
        if applied <= core.snapshot_index or applied > core.applied_index:
            return
        meta = core.snapshot_meta_at(applied)
        future = self.store.snapshot_in_background(self.engine, meta.conf)
        self._snapshotting = True

        def done(_: Any) -> None:
            self._submit(lambda: self._finish_snapshot(future.result()))

        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(done, f))

    def _finish_snapshot(self, meta: Any) -> None:
        self._snapshotting = False
        try:
            self.store.compact(meta)
        except ValueError:
            log.warning("node %d: snapshot %s no longer fits the log", self.config.node_id, meta)
            return
        # Just written and checksummed in the background: not read back on the loop.
        self.core.compact(Snapshot(meta, self.store.snapshot_data(meta, verified=True)))

    # --- membership addresses ----------------------------------------------------------------

    def _learn_address(self, change: ConfChange) -> None:
        if change.kind is ConfChangeKind.ADD_LEARNER and change.context:
            info = json.loads(change.context)
            self._set_address(change.node_id, PeerAddress(info["raft"], info["client"]))

    def _set_address(self, node_id: int, address: PeerAddress) -> None:
        if self.addresses.get(node_id) == address:
            return
        self.addresses[node_id] = address
        # Membership entries carrying addresses may later be compacted into a snapshot,
        # which keeps only node ids: remember every address learnt in a file of our own.
        book = {str(i): [a.raft, a.client] for i, a in sorted(self.addresses.items())}
        tmp = self.config.data_dir / "addresses.json.tmp"
        tmp.write_text(json.dumps(book))
        tmp.replace(self.config.data_dir / "addresses.json")
        if self.transport is not None and node_id != self.config.node_id:
            self.transport.add_peer(node_id, address.raft)

    # --- writes ------------------------------------------------------------------------------

    async def write_batch(self, payloads: Sequence[bytes]) -> list[Reply]:
        if not payloads:
            return []
        return await self.submit_writes(payloads)

    def submit_writes(self, payloads: Sequence[bytes]) -> ReplyFuture:
        """:meth:`write_batch` without a coroutine: the future settles with the replies (or
        an :class:`ExecutorError`). The RESP server's fast path calls this."""
        fut: ReplyFuture = asyncio.get_running_loop().create_future()
        # Straight onto the pending list (no input closure): the drive task takes the whole
        # list at its next round, and nothing else touches it between awaits.
        self._pending_writes.append(_PendingWrite(payloads, fut))
        self._wake.set()
        self._track(fut)
        return fut

    async def _await(self, fut: ReplyFuture) -> list[Reply]:
        self._track(fut)
        return await fut

    def _track(self, fut: ReplyFuture) -> None:
        """Give ``fut`` the request deadline; the ticker fails it with TIMEOUT when due.

        One deque checked every tick instead of a timer per request: wait_for and shield
        cost more than the rest of a request's path together.
        """
        deadline = asyncio.get_running_loop().time() + self.config.request_timeout_ms / 1000
        self._deadlines.append((deadline, fut))

    def _expire_requests(self) -> None:
        now = asyncio.get_running_loop().time()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, fut = deadlines.popleft()
            _fail(fut, CommitTimeoutError(self.config.request_timeout_ms))
        if self._forwarded:
            for req_id in [
                k for k, ws in self._forwarded.items() if all(w.future.done() for w in ws)
            ]:
                del self._forwarded[req_id]

    def _propose_pending(self) -> None:
        if not self._pending_writes:
            return
        writes, self._pending_writes = self._pending_writes, []
        core = self.core
        if core.is_leader:
            try:
                index = core.propose(encode_entry([p for w in writes for p in w.payloads]))
            except (NotLeader, ProposalDropped) as exc:
                for w in writes:
                    _fail(w.future, _executor_error(exc))
                return
            self.stats["proposals"] += 1
            self._proposals[index] = _Proposal(core.term, writes)
            return
        leader = core.leader_id
        if leader is None or self.transport is None:
            for w in writes:
                _fail(w.future, NoLeaderError())
            return
        # Everything that arrived this round travels to the leader as one message.
        req_id = next(self._ids)
        self._forwarded[req_id] = writes
        self.stats["forwards"] += 1
        payloads = tuple(p for w in writes for p in w.payloads)
        forward = ForwardRequest(self.config.node_id, leader, req_id, payloads)
        with contextlib.suppress(Exception):
            self.transport.send(Envelope(ProtocolId.NODE, 0, forward.src, forward.dst, forward))

    def _resolve_proposal(self, entry: Entry, replies: list[Reply] | None) -> bool:
        """Settle the writes proposed at ``entry.index``; False if none were waiting."""
        proposal = self._proposals.pop(entry.index, None)
        if proposal is None:
            return False
        if proposal.term != entry.term or replies is None:
            # Another entry (a new leader's no-op or command) took the index: ours is gone.
            for w in proposal.writes:
                _fail(w.future, WriteLostError())
            return True
        _split_replies(proposal.writes, replies)
        return True

    def _accept_forward(self, msg: ForwardRequest) -> None:
        """The leader side of forwarding: propose the writes, answer when applied."""
        fut: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        self._pending_writes.append(_PendingWrite(msg.payloads, fut))
        self._track(fut)

        def answer(f: asyncio.Future[list[Reply]]) -> None:
            if self.transport is None or self._closing:
                return
            exc = f.exception()
            if exc is None:
                reply = ForwardReply(
                    self.config.node_id, msg.src, msg.req_id, True, pack_replies(f.result())
                )
            else:
                text = exc.reply.message if isinstance(exc, ExecutorError) else "ERR internal error"
                reply = ForwardReply(self.config.node_id, msg.src, msg.req_id, False, text.encode())
            with contextlib.suppress(Exception):
                self.transport.send(Envelope(ProtocolId.NODE, 0, reply.src, reply.dst, reply))

        fut.add_done_callback(answer)

    def _finish_forward(self, msg: ForwardReply) -> None:
        writes = self._forwarded.pop(msg.req_id, None)
        if writes is None:
            return
        if msg.ok:
            _split_replies(writes, unpack_replies(msg.body))
        else:
            for w in writes:
                _fail(w.future, ExecutorError(msg.body.decode()))

    # --- reads -------------------------------------------------------------------------------

    async def read_batch(
        self, requests: Sequence[Sequence[bytes]], consistency: Consistency
    ) -> list[Reply]:
        return await self.submit_reads(requests, consistency)

    def submit_reads(
        self, requests: Sequence[Sequence[bytes]], consistency: Consistency
    ) -> ReplyFuture:
        """:meth:`read_batch` without a coroutine (the RESP server's fast path)."""
        self.stats["reads"] += len(requests)
        fut: ReplyFuture = asyncio.get_running_loop().create_future()
        if consistency is Consistency.STALE:
            now_ms = self.now_ms()
            fut.set_result([self.machine.read(r, now_ms) for r in requests])
            return fut
        self._pending_reads.append((requests, fut))
        self._wake.set()
        self._track(fut)
        return fut

    def _read_pending(self) -> None:
        if not self._pending_reads:
            return
        reads, self._pending_reads = self._pending_reads, []
        ctx = next(self._ids)
        self._reads_by_ctx[ctx] = reads
        self.core.read_index(ctx)

    def _serve_ready_reads(self) -> None:
        if not self._reads_ready:
            return
        applied = self.engine.applied_index()
        now_ms = self.now_ms()
        waiting = []
        for index, requests, fut in self._reads_ready:
            if applied < index:
                waiting.append((index, requests, fut))
            elif not fut.done():
                _settle(fut, [self.machine.read(r, now_ms) for r in requests])
        self._reads_ready = waiting

    # --- executor odds and ends --------------------------------------------------------------

    def now_ms(self) -> int:
        return self._clock_ms()

    def raft_status(self) -> dict[str, Any]:
        status = self.core.status().to_dict()
        now = time.monotonic()
        status["applied"] = self.engine.applied_index()
        status["last_contact_ms"] = {
            str(p): int((now - t) * 1000) for p, t in sorted(self.last_contact.items())
        }
        status["stats"] = dict(self.stats)
        if self.transport is not None:
            status["transport"] = self.transport.metrics()
        status["addresses"] = {str(i): a.client for i, a in sorted(self.addresses.items())}
        return status

    def info(self) -> InfoSections:
        core = self.core
        leader = core.leader_id
        replication: dict[str, str | int] = {
            "role": "master" if core.is_leader else "slave",
            "kvorum_raft_role": core.role.value,
            "kvorum_node_id": self.config.node_id,
            "kvorum_term": core.term,
            "kvorum_leader_id": -1 if leader is None else leader,
            "kvorum_commit_index": core.commit_index,
            "kvorum_applied_index": self.engine.applied_index(),
            "kvorum_last_index": core.last_index,
        }
        if leader is not None and leader in self.addresses and not core.is_leader:
            host, _, port = self.addresses[leader].client.rpartition(":")
            replication["master_host"] = host
            replication["master_port"] = int(port)
        keyspace: dict[str, str | int] = dict(self.machine.keyspace_info(self.now_ms()))
        return {"replication": replication, "keyspace": keyspace}

    def role(self) -> Reply:
        core = self.core
        if core.is_leader:
            replicas: list[Reply] = []
            for peer, pr in sorted(core.progress.items()):
                if peer == self.config.node_id or peer not in self.addresses:
                    continue
                host, _, port = self.addresses[peer].client.rpartition(":")
                replicas.append([host.encode(), port.encode(), str(pr.match_index).encode()])
            return [b"master", core.commit_index, replicas]
        leader = core.leader_id
        if leader is None or leader not in self.addresses:
            return [b"slave", b"", -1, b"connect", -1]
        host, _, port = self.addresses[leader].client.rpartition(":")
        return [b"slave", host.encode(), int(port), b"connected", self.engine.applied_index()]

    async def admin(self, args: Sequence[bytes]) -> Reply:
        """``KVORUM <subcommand>``: STATUS, MEMBER ADD id raft client, MEMBER REMOVE id,
        TRANSFER id."""
        if not args:
            return ErrorReply("ERR wrong number of arguments for 'kvorum' command")
        sub = args[0].upper()
        if sub == b"STATUS":
            return Verbatim(json.dumps(self.raft_status(), sort_keys=True))
        if sub == b"MEMBER" and len(args) >= 3:
            action = args[1].upper()
            node_id = _parse_node_id(args[2])
            if node_id is None:
                return ErrorReply("ERR node id must be a positive integer")
            if action == b"ADD" and len(args) == 5:
                context = json.dumps({"raft": args[3].decode(), "client": args[4].decode()})
                change = ConfChange(ConfChangeKind.ADD_LEARNER, node_id, True, context.encode())
                return await self._conf_change(change)
            if action == b"REMOVE" and len(args) == 3:
                return await self._conf_change(ConfChange(ConfChangeKind.REMOVE, node_id))
        if sub == b"TRANSFER" and len(args) == 2:
            target = _parse_node_id(args[1])
            if target is None:
                return ErrorReply("ERR node id must be a positive integer")
            fut: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()

            def transfer() -> None:
                try:
                    self.core.transfer_leadership(target)
                    _settle(fut, [b"OK"])
                except (NotLeader, ValueError) as exc:
                    _fail(fut, _executor_error(exc))

            self._submit(transfer)
            try:
                return (await self._await(fut))[0]
            except ExecutorError as exc:
                return exc.reply
        return ErrorReply(
            "ERR unknown KVORUM subcommand; try STATUS, MEMBER ADD id raft-addr client-addr, "
            "MEMBER REMOVE id, TRANSFER id"
        )

    async def _conf_change(self, change: ConfChange) -> Reply:
        fut: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()

        def propose() -> None:
            try:
                if change.kind is ConfChangeKind.ADD_LEARNER:
                    info = json.loads(change.context)
                    self._set_address(change.node_id, PeerAddress(info["raft"], info["client"]))
                index = self.core.propose_conf_change(change)
            except (NotLeader, ProposalDropped) as exc:
                _fail(fut, _executor_error(exc))
                return
            proposal = _Proposal(self.core.term)
            proposal.writes.append(_PendingWrite([], fut))
            self._proposals[index] = proposal

        self._submit(propose)
        try:
            await self._await(fut)
        except WriteLostError:
            return ErrorReply("TRYAGAIN leader changed; the membership change was not applied")
        except ExecutorError as exc:
            return exc.reply
        return b"OK"


def _slices(data: bytes | SnapshotData, size: int = 1 << 20) -> list[bytes] | Iterator[bytes]:
    """Snapshot data as chunks to write: bytes whole, a file-backed view a MiB at a time."""
    if isinstance(data, bytes):
        return [data]
    return (data[i : i + size] for i in range(0, len(data), size))


class _Wake:
    """What :class:`asyncio.Event` does for the drive task, for one waiter and cheaper: the
    drive task wakes several times per client request, and Event's waiter list, loop lookup
    and try/finally cost more than the rest of waking."""

    __slots__ = ("_pending", "_waiter")

    def __init__(self) -> None:
        self._pending = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(None)
        else:
            self._pending = True

    def clear(self) -> None:
        """Forget :meth:`set` calls made before now (the round about to run covers them)."""
        self._pending = False

    async def wait(self) -> None:
        """Return once :meth:`set` was called since the last return (at once if it was)."""
        if self._pending:
            self._pending = False
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        await waiter


def _settle(fut: ReplyFuture, replies: list[Reply]) -> None:
    if not fut.done():  # it may have timed out already
        fut.set_result(replies)


def _fail(fut: ReplyFuture, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _split_replies(writes: Sequence[_PendingWrite], replies: list[Reply]) -> None:
    """Hand each write of a batch its own slice of the batch's replies, in order."""
    offset = 0
    for w in writes:
        n = len(w.payloads)
        _settle(w.future, replies[offset : offset + n])
        offset += n


def _executor_error(exc: Exception) -> ExecutorError:
    if isinstance(exc, NotLeader):
        return (
            NoLeaderError()
            if exc.leader_hint is None
            else ExecutorError(f"TRYAGAIN not the leader; node {exc.leader_hint} leads")
        )
    return ExecutorError(f"TRYAGAIN {exc}")


def _parse_node_id(raw: bytes) -> int | None:
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


# --- replies between nodes ---------------------------------------------------------------------

_EXT_ERROR = 1
_EXT_VERBATIM = 2


def _default(obj: object) -> msgpack.ExtType:
    if isinstance(obj, ErrorReply):
        return msgpack.ExtType(_EXT_ERROR, obj.message.encode())
    if isinstance(obj, Verbatim):
        return msgpack.ExtType(_EXT_VERBATIM, obj.text.encode())
    raise TypeError(f"cannot forward a reply of type {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> object:
    if code == _EXT_ERROR:
        return ErrorReply(data.decode())
    if code == _EXT_VERBATIM:
        return Verbatim(data.decode())
    return msgpack.ExtType(code, data)


def pack_replies(replies: list[Reply]) -> bytes:
    """Replies as msgpack, keeping bytes and str apart and errors as errors."""
    return msgpack.packb(replies, default=_default, use_bin_type=True)


def unpack_replies(body: bytes) -> list[Reply]:
    replies: list[Reply] = msgpack.unpackb(
        body, ext_hook=_ext_hook, raw=False, strict_map_key=False
    )
    return replies
