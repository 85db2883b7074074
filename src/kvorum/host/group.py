"""One Raft group on a node: its core, its storage, its state machine and the requests on it.

Theory of operation: a :class:`RaftGroup` carries out its core's outputs in the order Raft
needs — persist, then send, then apply, then advance — but it does not own the disk or the
network: the node (:class:`kvorum.host.node.NodeHost`) runs a *round* for all its groups at
once, so that one write and one ``fdatasync`` serve them all. A round has three steps, and a
group takes part in each:

1. :meth:`RaftGroup.collect` (host thread): pending client writes become one proposal (or,
   on a follower, one :class:`~kvorum.host.messages.ForwardRequest` to the leader), pending
   reads one ReadIndex request; then the core's ready is taken, its early messages (a
   leader's appends, thesis §10.2.1) go out at once and its hard state and entries are
   *staged* in the group's log (unless a snapshot from the leader came with them: entries
   after a snapshot are staged in step 2, once the snapshot is).
2. :meth:`RaftGroup.persist` (may run on a worker thread, while nothing else touches the
   group's storage): a snapshot received from the leader is stored, recorded in the log and
   restored into the state machine, and the entries that followed it staged. The node then
   makes every group's staged writes durable with one sync.
3. :meth:`RaftGroup.finish` (host thread): the ready's other messages go out, committed
   entries are applied and the writes waiting on them settled, read points handed out,
   and the core advanced.

Requests. A write's payloads join the next proposal; when the entry at the proposal's index is
applied, each write gets its slice of the entry's results — unless that index holds another
term's entry, which means a new leader replaced ours and the write certainly did not happen
(:class:`~kvorum.host.errors.WriteLostError`). A follower forwards writes to the leader it
knows and relays the answer. Linearizable reads share one ReadIndex per round and are
evaluated once the state machine has applied the read index, on followers too.

Commit notices. When the commit index moves, a leader tells each follower with an
AppendEntries that carries no entries. Those are held for ``commit_notice_delay_ms`` and
dropped if a real append to the same follower goes first (it carries a commit index at least
as new): followers do not need the news at once, and at one client the notices were nearly
half the leader's messages. A hosted group's notices wait for the node's one notice timer
(:attr:`RaftGroup.hold_notices`), so every group's leave together: one write per follower,
and one round there to step them all, instead of one of each per group.

Snapshots. When enough entries were applied since the last snapshot, the group takes a
point-in-time copy of its state machine and has it written in the background; once durable
it is recorded in the log (so entries it holds may be deleted) and handed to the core to
send to followers that fall behind.

Repair. A group whose storage lost acknowledged entries starts fenced (see
:func:`kvorum.host.bootstrap.open_core`); :meth:`RaftGroup.repair_status` says where that
stands, for status displays, and the group logs once when the repair is complete
("repaired entries 120-184 of group 3 from node 2").
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kvorum.core.raft import (
    ConfChange,
    EntryKind,
    NotLeader,
    ProposalDropped,
    RaftCore,
    RaftReady,
    Snapshot,
)
from kvorum.core.raft.messages import (
    AppendEntries,
    InstallSnapshot,
    RaftMessage,
    SnapshotData,
    SnapshotMeta,
)
from kvorum.core.raft.repair import RepairReport
from kvorum.core.raft.status import repair_dict
from kvorum.core.shape import Envelope, GroupId, NodeId, ProtocolId
from kvorum.host.errors import NoLeaderError, RequestError, RetryableError, WriteLostError
from kvorum.host.messages import ForwardReply, ForwardRequest
from kvorum.host.waiters import CallbackWaiter, Waiter, fail, settle
from kvorum.host.world import HostWorld, TimerHandle
from kvorum.storage.contracts import DiskFullError, GroupLog, SnapshotStore, StateMachine

log = logging.getLogger(__name__)


class ResultCodec(Protocol):
    """How an application packs proposals and results (the host knows neither's shape)."""

    def encode_entry(self, payloads: Sequence[bytes]) -> bytes:
        """One log entry holding ``payloads`` in order; applying it yields one result per
        payload, as a list."""

    def pack_results(self, results: list[Any]) -> bytes:
        """Results as bytes, to send a forwarded write's answer back to its follower."""

    def unpack_results(self, body: bytes) -> list[Any]: ...


class SnapshotSpool(Protocol):
    """Where a follower keeps a snapshot's chunks as they arrive, so the core can hold views
    instead of bytes (optional: without one, chunks stay in memory)."""

    def store(self, meta: SnapshotMeta, offset: int, data: bytes) -> SnapshotData: ...

    def clear(self, through_index: int) -> None: ...


@dataclass(frozen=True, slots=True)
class GroupConfig:
    snapshot_every_entries: int = 20_000
    """Take a snapshot once this many entries were applied since the last one (0: never)."""
    max_entry_payloads: int = 4096
    """A proposal holds at most this many write payloads; more wait for the next round."""
    max_pending_write_bytes: int = 64 << 20
    """Writes waiting to be proposed beyond this are refused (per-group flow control)."""
    commit_notice_delay_ms: float = 2.0
    lease_reads: bool = False
    """Serve linearizable reads on a leader lease when it holds one (needs CheckQuorum),
    instead of a heartbeat round per read batch."""


@dataclass(slots=True)
class _Write:
    payloads: Sequence[bytes]
    waiter: Waiter


@dataclass(slots=True)
class _Proposal:
    term: int
    writes: list[_Write] = field(default_factory=list)


_Read = tuple[Callable[[], Any], Waiter]


@dataclass(slots=True)
class GroupStats:
    proposals: int = 0
    entries_applied: int = 0
    reads: int = 0
    forwards: int = 0
    snapshots_taken: int = 0
    snapshots_installed: int = 0


class RaftGroup:
    """One hosted Raft group; see the module docstring for the round it takes part in."""

    def __init__(
        self,
        group_id: GroupId,
        core: RaftCore,
        log_store: GroupLog,
        snapshots: SnapshotStore,
        machine: StateMachine,
        *,
        world: HostWorld,
        send: Callable[[Envelope], None],
        codec: ResultCodec,
        config: GroupConfig | None = None,
        spool: SnapshotSpool | None = None,
        on_conf_change: Callable[[ConfChange], None] | None = None,
        request_id_base: int = 0,
    ) -> None:
        self.group_id = group_id
        self.core = core
        self.log = log_store
        self.snapshots = snapshots
        self.machine = machine
        self.config = config or GroupConfig()
        self.stats = GroupStats()
        self._world = world
        self._send_envelope = send
        self._codec = codec
        self._spool = spool
        self._on_conf_change = on_conf_change
        # Forwarded batches are named by these ids, and the leader drops a batch it has seen
        # (a duplicated message must not apply a write twice); a base that differs per node
        # start keeps a restarted follower's ids from looking like its old ones.
        self._ids = itertools.count(request_id_base + 1)
        self._seen_forwards: dict[tuple[NodeId, int], float] = {}
        self._pending_writes: list[_Write] = []
        self._pending_write_bytes = 0
        self._proposals: dict[int, _Proposal] = {}
        self._forwarded: dict[int, list[_Write]] = {}
        self._pending_reads: list[_Read] = []
        self._reads_by_ctx: dict[int, list[_Read]] = {}
        self._reads_ready: list[tuple[int, Callable[[], Any], Waiter]] = []
        self._inbox: list[RaftMessage | tuple[InstallSnapshot, SnapshotData]] = []
        self._held_notices: dict[NodeId, AppendEntries] = {}
        self._notice_timer: TimerHandle | None = None
        self._snapshotting = False
        self._snapshot_done: SnapshotMeta | None = None
        self._fatal: BaseException | None = None
        """An error off the host's thread that leaves the group unable to promise anything;
        raised by the next round, which stops the node."""
        self._round_ready: RaftReady | None = None
        self._repair_pending = core.fenced
        self._repair_completed_ms: float | None = None
        self.closed = False
        self.on_work: Callable[[], None] = _nothing
        """Called when the group has work outside any input (a background snapshot finished):
        the node marks it for the next round and wakes its driver."""
        self.hold_notices: Callable[[RaftGroup], None] | None = None
        """Set by the node: called when this group starts holding commit notices, to have
        :meth:`send_held_notices` called once the node's notice timer fires (None: the group
        keeps a timer of its own)."""

    @property
    def node_id(self) -> NodeId:
        return self.core.node_id

    def repair_report(self) -> RepairReport | None:
        """Entries storage lost in this group and where fetching them again stands (None:
        nothing was lost since the node started); ``describe(group_id)`` words it."""
        return self.core.repair

    @property
    def writes_in_flight(self) -> int:
        """Client writes waiting here: queued for the next proposal, or proposed and not yet
        applied (a metric; flow control counts bytes: ``max_pending_write_bytes``)."""
        return len(self._pending_writes) + len(self._proposals)

    def repair_status(self) -> dict[str, Any] | None:
        """:meth:`repair_report` as plain data for ``KVORUM STATUS``: the lost range, whether
        it is done, from which node, when (wall-clock ms), and a sentence saying so."""
        report = self.core.repair
        if report is None:
            return None
        out = repair_dict(report)
        out["completed_at_ms"] = self._repair_completed_ms
        out["text"] = report.describe(self.group_id)
        return out

    # --- inputs (host thread) ------------------------------------------------------------------

    def deliver(self, msg: RaftMessage) -> None:
        """Queue a peer's message for this group's core (stepped at the next round)."""
        if isinstance(msg, InstallSnapshot) and msg.data and self._spool is not None:
            # Spooled to disk as it arrives: the core keeps a view of the file, not the bytes.
            self._inbox.append((msg, self._spool.store(msg.meta, msg.offset, msg.data)))
        else:
            self._inbox.append(msg)

    def submit_writes(self, payloads: Sequence[bytes], waiter: Waiter) -> None:
        """Replicate and apply ``payloads`` (in order, atomically as one entry); ``waiter``
        gets the list of their results, or a :class:`~kvorum.host.errors.RequestError`."""
        size = sum(len(p) for p in payloads)
        if self._pending_write_bytes + size > self.config.max_pending_write_bytes and (
            self._pending_writes
        ):
            fail(waiter, RetryableError("too many writes waiting for this group; slow down"))
            return
        self._pending_writes.append(_Write(payloads, waiter))
        self._pending_write_bytes += size

    def submit_reads(self, evaluate: Callable[[], Any], waiter: Waiter) -> None:
        """Call ``evaluate`` once the state machine reflects every write acknowledged before
        now (ReadIndex), and give ``waiter`` what it returns."""
        self.stats.reads += 1
        self._pending_reads.append((evaluate, waiter))

    def accept_forward(self, msg: ForwardRequest) -> None:
        """The leader's side of forwarding: propose the writes, answer when applied. A batch
        seen before (the network duplicated it) is dropped: its first copy answers."""
        key = (msg.src, msg.req_id)
        if key in self._seen_forwards:
            return
        self._seen_forwards[key] = self._world.monotonic_ms()

        def answer(result: Any, error: BaseException | None) -> None:
            if self.closed:
                return
            if error is None:
                reply = ForwardReply(
                    self.node_id, msg.src, msg.req_id, True, self._codec.pack_results(result)
                )
            else:
                text = error.message if isinstance(error, RequestError) else "ERR internal error"
                reply = ForwardReply(self.node_id, msg.src, msg.req_id, False, text.encode())
            self._send(ProtocolId.NODE, reply, reply.dst)

        self.submit_writes(msg.payloads, CallbackWaiter(answer))

    def finish_forward(self, msg: ForwardReply) -> None:
        """A follower's side: the leader answered writes this node forwarded."""
        writes = self._forwarded.pop(msg.req_id, None)
        if writes is None:
            return
        if msg.ok:
            _split_results(writes, self._codec.unpack_results(msg.body))
        else:
            for w in writes:
                fail(w.waiter, RequestError(msg.body.decode(errors="replace")))

    def propose_conf_change(self, change: ConfChange, waiter: Waiter) -> None:
        """Propose a membership change (leader only); ``waiter`` gets ``[]`` once applied."""
        try:
            index = self.core.propose_conf_change(change)
        except (NotLeader, ProposalDropped) as exc:
            fail(waiter, request_error(exc))
            return
        proposal = _Proposal(self.core.term)
        proposal.writes.append(_Write((), waiter))
        self._proposals[index] = proposal

    def has_input(self) -> bool:
        return bool(
            self._fatal is not None
            or self._inbox
            or self._pending_writes
            or self._pending_reads
            or self._snapshot_done is not None
        )

    def has_work(self) -> bool:
        """Whether a round would do anything for this group."""
        return self.has_input() or self.core.has_ready() or self._has_servable_reads()

    # --- a round -------------------------------------------------------------------------------

    def collect(self, lease_ok: bool = True) -> RaftReady | None:
        """Step 1 of a round: feed the core its inputs, take its ready, send what may go
        early, stage what must be persisted. Returns the ready (None if there is none).
        ``lease_ok`` False: the node cannot vouch for its ticks now, so reads go by ReadIndex
        even with ``lease_reads`` (see :attr:`HostConfig.tick_ms`)."""
        core = self.core
        if self._fatal is not None:
            raise self._fatal
        if self._inbox:
            inbox, self._inbox = self._inbox, []
            for msg in inbox:
                if isinstance(msg, tuple):
                    core.step_stored_snapshot_chunk(*msg)
                else:
                    core.step(msg)
        if self._snapshot_done is not None:
            meta, self._snapshot_done = self._snapshot_done, None
            self._adopt_own_snapshot(meta)
        self._propose_pending()
        self._read_pending(lease_ok)
        if not core.has_ready():
            return None
        rd = core.ready()
        self._round_ready = rd
        self._send_raft(rd.early_messages)
        for e in rd.entries:
            if e.kind is EntryKind.CONF_CHANGE and self._on_conf_change is not None:
                self._on_conf_change(ConfChange.decode(e.data))
        if rd.snapshot is None and (rd.entries or rd.hard_state is not None):
            self.log.stage(rd.hard_state, rd.entries)
        return rd

    def persist(self, rd: RaftReady) -> None:
        """Step 2: a snapshot from the leader is stored, recorded and restored, and the
        round's entries after it staged. Blocking file work; the node calls it where it may
        block, then syncs every group's log."""
        snap = rd.snapshot
        if snap is None:
            return
        meta = snap.meta
        self.snapshots.write(meta, _chunks_of(snap.data))
        self.log.stage_snapshot(meta)
        if rd.entries or rd.hard_state is not None:
            # Entries the leader sent after the snapshot, in the same round: they follow the
            # snapshot, so they can only be staged once it is (collect left them for now).
            self.log.stage(rd.hard_state, rd.entries)
        self.machine.restore(self.snapshots.chunks(meta), meta.index)
        if self._spool is not None:
            self._spool.clear(through_index=meta.index)

    def finish(self, rd: RaftReady) -> None:
        """Step 3, once every write of the round is durable: send, apply, hand out read
        points, advance."""
        self._round_ready = None
        if rd.snapshot is not None:
            # The core assembled or spooled it; from now on it is read from the store.
            meta = rd.snapshot.meta
            self.core.snapshot_stored(Snapshot(meta, self.snapshots.data(meta)))
            self.stats.snapshots_installed += 1
        self._send_raft(rd.messages)
        if rd.committed_entries:
            self._apply(rd)
        for rs in rd.read_states:
            for evaluate, waiter in self._reads_by_ctx.pop(rs.ctx, []):
                self._reads_ready.append((rs.index, evaluate, waiter))
        for ctx in rd.failed_reads:
            for _, waiter in self._reads_by_ctx.pop(ctx, []):
                fail(waiter, NoLeaderError())
        self.core.advance(rd)
        self._serve_ready_reads()
        self._maybe_snapshot()
        if self._repair_pending and not self.core.fenced:
            self._repair_pending = False
            self._repair_completed_ms = self._world.wall_ms()
            report = self.core.repair
            if report is not None:
                log.info("node %d: %s", self.node_id, report.describe(self.group_id))

    def serve_reads(self) -> None:
        """Serve reads whose read index is applied (also called between rounds)."""
        self._serve_ready_reads()

    # --- writes --------------------------------------------------------------------------------

    def _propose_pending(self) -> None:
        if not self._pending_writes:
            return
        core = self.core
        limit = self.config.max_entry_payloads
        pending = self._pending_writes
        cut = taken = 0
        for w in pending:
            if cut and taken + len(w.payloads) > limit:
                break  # the rest waits for the next round's entry
            taken += len(w.payloads)
            cut += 1
        writes, self._pending_writes = pending[:cut], pending[cut:]
        self._pending_write_bytes = sum(len(p) for w in self._pending_writes for p in w.payloads)
        if core.is_leader:
            try:
                entry = self._codec.encode_entry([p for w in writes for p in w.payloads])
                index = core.propose(entry)
            except (NotLeader, ProposalDropped) as exc:
                for w in writes:
                    fail(w.waiter, request_error(exc))
                return
            self.stats.proposals += 1
            self._proposals[index] = _Proposal(core.term, writes)
            return
        leader = core.leader_id
        if leader is None:
            for w in writes:
                fail(w.waiter, NoLeaderError())
            return
        # Everything that arrived this round travels to the leader as one message.
        req_id = next(self._ids)
        self._forwarded[req_id] = writes
        self.stats.forwards += 1
        payloads = tuple(p for w in writes for p in w.payloads)
        self._send(ProtocolId.NODE, ForwardRequest(self.node_id, leader, req_id, payloads), leader)

    def _apply(self, rd: RaftReady) -> None:
        entries = rd.committed_entries
        results = self.machine.apply(entries)
        self.stats.entries_applied += len(entries)
        for entry, result in zip(entries, results, strict=True):
            proposal = self._proposals.pop(entry.index, None)
            if proposal is None:
                continue
            if proposal.term != entry.term:
                # Another entry (a new leader's no-op or command) took the index: ours is gone.
                for w in proposal.writes:
                    fail(w.waiter, WriteLostError())
            elif entry.kind is EntryKind.CONF_CHANGE:
                for w in proposal.writes:
                    settle(w.waiter, [])
            elif isinstance(result, list):
                _split_results(proposal.writes, result)
            else:
                for w in proposal.writes:
                    fail(w.waiter, WriteLostError())

    # --- reads ---------------------------------------------------------------------------------

    def _read_pending(self, lease_ok: bool) -> None:
        if not self._pending_reads:
            return
        reads, self._pending_reads = self._pending_reads, []
        ctx = next(self._ids)
        self._reads_by_ctx[ctx] = reads
        self.core.read_index(ctx, lease=self.config.lease_reads and lease_ok)

    def _has_servable_reads(self) -> bool:
        if not self._reads_ready:
            return False
        applied = self.machine.applied_index()
        return any(index <= applied for index, _, _ in self._reads_ready)

    def _serve_ready_reads(self) -> None:
        if not self._reads_ready:
            return
        applied = self.machine.applied_index()
        waiting = []
        for index, evaluate, waiter in self._reads_ready:
            if waiter.done():
                continue  # it timed out meanwhile
            if applied < index:
                waiting.append((index, evaluate, waiter))
            else:
                try:
                    settle(waiter, evaluate())
                except Exception as exc:  # one bad read must not stop the others
                    log.exception("group %d: a read failed", self.group_id)
                    fail(waiter, exc)
        self._reads_ready = waiting

    # --- messages ------------------------------------------------------------------------------

    def _send(self, protocol: ProtocolId, body: object, dst: NodeId) -> None:
        self._send_envelope(Envelope(protocol, self.group_id, self.node_id, dst, body))

    def _send_raft(self, messages: Sequence[RaftMessage]) -> None:
        """Send the core's messages, holding back entry-less appends for a moment (see the
        module docstring); dropping or delaying one is nothing Raft does not tolerate."""
        held = self._held_notices
        for msg in messages:
            if type(msg) is AppendEntries:
                if not msg.entries:
                    if not held:
                        if self.hold_notices is not None:
                            self.hold_notices(self)
                        elif self._notice_timer is None:
                            self._notice_timer = self._world.call_later(
                                self.config.commit_notice_delay_ms, self._on_notice_timer
                            )
                    held[msg.dst] = msg
                    continue
                held.pop(msg.dst, None)
            self._send(ProtocolId.RAFT, msg, msg.dst)

    def _on_notice_timer(self) -> None:
        self._notice_timer = None
        self.send_held_notices()

    def send_held_notices(self) -> None:
        """Send the commit notices held back (those a real append did not replace)."""
        held, self._held_notices = self._held_notices, {}
        if self.closed:
            return
        core = self.core
        for msg in held.values():
            if msg.term == core.term and core.is_leader:
                self._send(ProtocolId.RAFT, msg, msg.dst)

    # --- snapshots -----------------------------------------------------------------------------

    def _maybe_snapshot(self) -> None:
        every = self.config.snapshot_every_entries
        core = self.core
        if self._snapshotting or not every:
            return
        if core.applied_index - core.snapshot_index < every:
            return
        index, chunks = self.machine.snapshot()
        if index <= core.snapshot_index or index > core.applied_index:
            return
        meta = core.snapshot_meta_at(index)
        self._snapshotting = True

        def done(_: Any, error: BaseException | None) -> None:
            self._snapshotting = False
            if isinstance(error, DiskFullError):
                log.error("group %d: no room for a snapshot at %d: %s", self.group_id, index, error)
                return  # tried again once more entries are applied
            if error is not None:
                # A failed fsync may have lost the snapshot directory's name (or the file)
                # while the page cache still shows it: carrying on, later snapshots would go
                # where a power cut can erase them. Stop, as on a failed log sync.
                log.error("group %d: snapshot at %d failed: %r", self.group_id, index, error)
                self._fatal = error
                self.on_work()
                return
            self._snapshot_done = meta
            self.on_work()  # a round must adopt it, even if nothing else happens here

        self._world.run_in_background(lambda: self.snapshots.write(meta, chunks), done)

    def _adopt_own_snapshot(self, meta: SnapshotMeta) -> None:
        if meta.index <= self.core.snapshot_index:
            return  # a leader's snapshot overtook ours meanwhile
        self.log.stage_snapshot(meta)
        self.core.compact(Snapshot(meta, self.snapshots.data(meta)))
        self.stats.snapshots_taken += 1

    # --- shutdown ------------------------------------------------------------------------------

    def close(self) -> None:
        """Fail every waiter: a write already proposed (or handed to the leader) may still
        commit without us, so its outcome is unknown; anything else certainly did not run."""
        self.closed = True
        if self._notice_timer is not None:
            self._notice_timer.cancel()
        maybe = [w.waiter for p in self._proposals.values() for w in p.writes]
        maybe += [w.waiter for ws in self._forwarded.values() for w in ws]
        for waiter in maybe:
            fail(waiter, _SHUTDOWN_MAYBE_APPLIED)
        never = [w.waiter for w in self._pending_writes]
        never += [waiter for _, waiter in self._pending_reads]
        never += [waiter for reads in self._reads_by_ctx.values() for _, waiter in reads]
        never += [waiter for _, _, waiter in self._reads_ready]
        for waiter in never:
            fail(waiter, _SHUTDOWN_NOT_APPLIED)

    def has_forward_state(self) -> bool:
        """Whether :meth:`prune_forwarded` has anything to look at (cheap; most groups of a
        node with thousands have none)."""
        return bool(self._seen_forwards or self._forwarded)

    def prune_forwarded(self, forget_before_ms: float) -> None:
        """Forget forwarded batches and read indexes whose every waiter already gave up
        (timed out), and the names of batches accepted before ``forget_before_ms`` (no copy
        is still in flight)."""
        seen = self._seen_forwards
        if seen:
            for key in [k for k, at in seen.items() if at < forget_before_ms]:
                del seen[key]
        if self._forwarded:
            gone = [k for k, ws in self._forwarded.items() if all(w.waiter.done() for w in ws)]
            for req_id in gone:
                del self._forwarded[req_id]
        if self._reads_by_ctx:
            # A read index whose answer was lost never comes back; its readers timed out.
            stale = [c for c, rs in self._reads_by_ctx.items() if all(w.done() for _, w in rs)]
            for ctx in stale:
                del self._reads_by_ctx[ctx]


_SHUTDOWN_MAYBE_APPLIED = RequestError("TIMEOUT node shutting down; the write may still be applied")
_SHUTDOWN_NOT_APPLIED = RequestError("TRYAGAIN node shutting down; the request was not applied")


def _nothing() -> None:
    """The default :attr:`RaftGroup.on_work`, for a group not hosted yet."""


def request_error(exc: Exception) -> RequestError:
    """The client-facing error for a core's refusal."""
    if isinstance(exc, NotLeader):
        if exc.leader_hint is None:
            return NoLeaderError()
        return RetryableError(f"not the leader; node {exc.leader_hint} leads")
    return RetryableError(str(exc))


def _split_results(writes: Sequence[_Write], results: list[Any]) -> None:
    """Hand each write of a batch its own slice of the batch's results, in order."""
    offset = 0
    for w in writes:
        n = len(w.payloads)
        settle(w.waiter, results[offset : offset + n])
        offset += n


def _chunks_of(data: bytes | SnapshotData, size: int = 1 << 20) -> Iterator[bytes]:
    """Snapshot data as chunks to write: bytes whole, a stored view a MiB at a time."""
    if isinstance(data, bytes):
        yield data
        return
    for start in range(0, len(data), size):
        yield data[start : start + size]
