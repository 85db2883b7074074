"""Every group of one node: rounds with one sync for all, coalesced heartbeats, quiescence.

Theory of operation. A :class:`NodeHost` owns a node's groups, its shared log
(:class:`~kvorum.storage.contracts.NodeLog`) and its side of the network, and is driven by
whoever owns the thread — the asyncio runtime or the simulator — through a handful of calls:
inputs (:meth:`receive`, :meth:`tick`, ``submit_*``, :meth:`run`) only queue work and mark the
group *dirty*; a *round* then does the work of every dirty group at once:

    rnd = host.start_round()   # host thread: step inputs, take readies, stage writes
    host.persist(rnd)          # anywhere that may block: snapshots, then ONE sync for all
    host.finish_round(rnd)     # host thread: send, apply, settle requests, advance

Nothing a round sends in ``finish_round`` leaves before ``persist`` returned, which is Raft's
persist-before-send for every group; a leader's appends go out in ``start_round`` (thesis
§10.2.1). While ``persist`` runs the driver may keep accepting inputs: they wait for the next
round, which is group commit across requests *and* across groups. Only dirty groups are
visited, so a round costs what the busy groups cost, however many idle ones the node holds.

Heartbeats are coalesced per node pair: every Raft ``Heartbeat`` (and ``HeartbeatResponse``)
a round produces for one peer travels in one :class:`~kvorum.host.messages.NodeHeartbeat`
(resp. ``NodeHeartbeatResponse``). A node also sends every peer an empty ``NodeHeartbeat``
when it has sent it nothing else for a heartbeat interval: that is how peers know it lives.

Quiescence (CockroachDB's, in spirit). A leader group that has proposed nothing for
``quiesce_after_ticks`` and whose followers hold and have acknowledged its whole log
(:meth:`RaftCore.can_quiesce`) marks its next heartbeats ``quiesce``; it then stops ticking,
and so does each follower that finds its log identical (:meth:`RaftCore.may_follow_quiesced`).
An idle group then costs nothing: no ticks, no messages, no disk writes. It wakes on any local
request, on any message but a heartbeat answer, and — what keeps it safe — on its followers'
side when the leader's node is silent for ``liveness_timeout_ms`` or restarts (a new
``incarnation``), so a follower of a quiesced group that lost its leader still elects a new
one. A woken core voids its lease (:meth:`RaftCore.wake`), since the pause took time it never
saw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, cast

from kvorum.core.raft import RaftReady
from kvorum.core.raft.messages import Heartbeat, HeartbeatResponse, RaftMessage
from kvorum.core.shape import Envelope, GroupId, NodeId, ProtocolId, UnknownGroupError
from kvorum.host.errors import DiskFullRequestError
from kvorum.host.group import RaftGroup
from kvorum.host.messages import (
    ForwardReply,
    ForwardRequest,
    GroupBeat,
    GroupBeatAck,
    NodeHeartbeat,
    NodeHeartbeatResponse,
)
from kvorum.host.waiters import CallbackWaiter, Deadlines, Waiter, fail
from kvorum.host.world import HostWorld
from kvorum.storage.contracts import NodeLog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HostConfig:
    heartbeat_interval_ms: float = 40.0
    """How often a node tells each peer it is alive when it has nothing else to send."""
    liveness_timeout_ms: float = 300.0
    """A peer silent this long is suspected down: quiesced groups it leads wake up."""
    quiesce_after_ticks: int = 20
    """A leader group idle this many ticks may quiesce (0: never quiesce)."""
    housekeeping_every_ticks: int = 50
    """How often a leader asks its state machine for housekeeping work (expiry sweeps)."""
    request_timeout_ms: int = 5_000
    tick_ms: float = 0.0
    """How often the driver calls :meth:`NodeHost.tick` (0: unknown). When known, a round
    that starts more than one and a half ticks after the last one serves no read on a lease:
    the node was stalled (a long pause, a busy loop) and its leaders' ticks have not yet
    counted the time that passed, while their lease's margin is two ticks."""
    max_pending_ticks: int = 0
    """Ticks a round may owe the awake groups at most (0: no limit). A node that falls
    behind — rounds longer than a tick, as on an overloaded machine with thousands of awake
    groups — would otherwise tick every core several times at once at the start of its next
    round, before stepping the heartbeats that arrived meanwhile, and fire election timeouts
    in every group it follows: a storm of elections that overloads it further. With a limit,
    logical time slows down instead, as etcd's dropped ticks do. A leader whose ticks were
    dropped would count its lease in slower time, so a dropped tick voids the lease of every
    awake leader (:meth:`RaftCore.void_lease`): reads go by ReadIndex until a new heartbeat
    round is confirmed."""


@dataclass(slots=True)
class Round:
    """One round's readies, in the order their groups were visited."""

    readies: list[tuple[RaftGroup, RaftReady]] = field(default_factory=list)
    must_sync: bool = False

    def __bool__(self) -> bool:
        return bool(self.readies)

    @property
    def has_snapshot(self) -> bool:
        """Whether :meth:`NodeHost.persist` stores a snapshot this round (slow file work)."""
        return any(rd.snapshot is not None for _, rd in self.readies)


@dataclass(slots=True)
class HostStats:
    rounds: int = 0
    syncs: int = 0
    node_heartbeats_sent: int = 0
    wakes: int = 0
    quiesces: int = 0
    housekeeping_proposals: int = 0


@dataclass(slots=True)
class _GroupState:
    """What the node keeps per group beside the group itself."""

    idle_ticks: int = 0
    quiescing: bool = False
    quiesced: bool = False
    quiesce_check: tuple[NodeId, int, int] | None = None
    """A follower asked to quiesce: (leader, term, commit) to compare once the beat is in."""


class NodeHost:
    """A node's groups, driven in rounds; see the module docstring."""

    def __init__(
        self,
        node_id: NodeId,
        node_log: NodeLog,
        *,
        world: HostWorld,
        send: Callable[[Envelope], None],
        incarnation: int,
        config: HostConfig | None = None,
        apply_scope: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.node_id = node_id
        self.node_log = node_log
        self.config = config or HostConfig()
        self.incarnation = incarnation
        self.stats = HostStats()
        self.deadlines = Deadlines(self.config.request_timeout_ms)
        self.groups: dict[GroupId, RaftGroup] = {}
        self.disk_full = False
        """Set by the driver while the log cannot sync for lack of space: writes are refused
        at admission (reads go on), and cleared once a sync succeeds again."""
        self._world = world
        self._apply_scope = apply_scope or nullcontext
        """Wraps the applies of a round (one state-machine transaction for every group)."""
        self._transport_send = send
        self._state: dict[GroupId, _GroupState] = {}
        self._awake: set[GroupId] = set()
        self._dirty: set[GroupId] = set()
        self._actions: list[Callable[[], None]] = []
        self._peers: set[NodeId] = set()
        self._last_heard_ms: dict[NodeId, float] = {}
        self._last_sent_ms: dict[NodeId, float] = {}
        self._peer_incarnation: dict[NodeId, int] = {}
        self._suspected: set[NodeId] = set()
        self._beats: dict[NodeId, list[GroupBeat]] = {}
        self._acks: dict[NodeId, list[GroupBeatAck]] = {}
        self._ticks = 0
        self._pending_ticks = 0
        self._ticks_dropped = False
        self._last_tick_ms: float | None = None
        self._notice_groups: list[RaftGroup] = []
        self._notice_timer = False
        self._to_wake: set[GroupId] = set()
        self._in_round = False
        self.on_work: Callable[[], None] = _ignore_work
        """Called when work appears outside any input call (the driver wakes up on it)."""
        self._last_liveness_check_ms: float | None = None
        self._longest_gap_ms: dict[NodeId, float] = {}
        self._gaps_aged_ms = 0.0

    # --- groups and peers ----------------------------------------------------------------------

    def add_group(self, group: RaftGroup) -> None:
        """Host ``group`` (awake: it ticks until it quiesces)."""
        gid = group.group_id
        if gid in self.groups:
            raise ValueError(f"group {gid} is already hosted")
        self.groups[gid] = group
        self._state[gid] = _GroupState()
        self._awake.add(gid)
        self._dirty.add(gid)
        group.on_work = lambda: self._work_for(gid)
        group.hold_notices = self._hold_notices

    def set_peers(self, peers: Iterable[NodeId]) -> None:
        """The other nodes this one keeps liveness with (every member of any group)."""
        now = self._world.monotonic_ms()
        self._peers = set(peers) - {self.node_id}
        for peer in self._peers:
            self._last_heard_ms.setdefault(peer, now)

    def group(self, group_id: GroupId) -> RaftGroup:
        try:
            return self.groups[group_id]
        except KeyError:
            raise UnknownGroupError(f"node {self.node_id} holds no group {group_id}") from None

    def is_quiesced(self, group_id: GroupId) -> bool:
        return self._state[group_id].quiesced

    def awake_groups(self) -> int:
        return len(self._awake)

    def peer_alive(self, peer: NodeId) -> bool:
        return peer not in self._suspected

    # --- inputs (host thread) ------------------------------------------------------------------

    def receive(self, env: Envelope) -> None:
        """A message from a peer. Raises :class:`UnknownGroupError` for a group this node
        does not hold (the transport then drops that peer's connection)."""
        src = env.src
        self._heard_from(src)
        body = env.body
        if env.protocol is ProtocolId.RAFT:
            group = self._addressed(env)
            msg = cast(RaftMessage, body)
            self._deliver(group, msg, wake=not isinstance(msg, HeartbeatResponse))
        elif env.protocol is ProtocolId.NODE:
            if isinstance(body, NodeHeartbeat):
                self._on_node_heartbeat(body)
            elif isinstance(body, NodeHeartbeatResponse):
                self._on_node_heartbeat_response(body)
            elif isinstance(body, ForwardRequest):
                group = self._addressed(env)
                self._wake(env.group_id)
                group.accept_forward(body)
                self._dirty.add(env.group_id)
            elif isinstance(body, ForwardReply):
                group = self._addressed(env)
                group.finish_forward(body)
            else:
                raise TypeError(f"not a node message: {type(body).__name__}")
        else:
            raise UnknownGroupError(f"no {env.protocol.name} group {env.group_id} on this node")

    def _addressed(self, env: Envelope) -> RaftGroup:
        group = self.groups.get(env.group_id)
        if group is None:
            raise UnknownGroupError(f"no RAFT group {env.group_id} on this node")
        return group

    def submit_writes(self, group_id: GroupId, payloads: list[bytes], waiter: Waiter) -> None:
        """Replicate and apply ``payloads`` in ``group_id`` (:meth:`RaftGroup.submit_writes`)."""
        if self.disk_full:
            fail(waiter, DiskFullRequestError())
            return
        group = self.group(group_id)
        self._wake(group_id)
        self.deadlines.track(waiter, self._world.monotonic_ms())
        group.submit_writes(payloads, waiter)
        self._state[group_id].idle_ticks = 0
        self._dirty.add(group_id)

    def submit_reads(
        self, group_id: GroupId, evaluate: Callable[[], Any], waiter: Waiter
    ) -> None:
        """A linearizable read in ``group_id`` (see :meth:`RaftGroup.submit_reads`)."""
        group = self.group(group_id)
        self._wake(group_id)
        self.deadlines.track(waiter, self._world.monotonic_ms())
        group.submit_reads(evaluate, waiter)
        # Reads are activity: a group serving them stays awake (a leader's heartbeats keep
        # its lease), instead of quiescing between reads and paying a wake-up for the next.
        self._state[group_id].idle_ticks = 0
        self._dirty.add(group_id)

    def run(self, group_id: GroupId, action: Callable[[RaftGroup], None]) -> None:
        """Run ``action`` on the group at the start of the next round (for anything that
        must touch the core: membership changes, leader transfers)."""
        group = self.group(group_id)
        self._wake(group_id)
        self._actions.append(lambda: action(group))
        self._dirty.add(group_id)

    def tick(self) -> None:
        """One tick of logical time. Deadlines and liveness are checked now; the awake
        groups' cores tick at the start of the next round (no core is touched while a round
        is being persisted)."""
        self._ticks += 1
        self._last_tick_ms = self._world.monotonic_ms()
        cap = self.config.max_pending_ticks
        if self._awake:
            # Only awake groups' cores tick; with none awake the tick has nothing to do in a
            # round (a group woken later starts ticking from its wake-up on).
            if cap and self._pending_ticks >= cap:
                self._ticks_dropped = True
            else:
                self._pending_ticks += 1
        now = self._world.monotonic_ms()
        self.deadlines.expire(now)
        self._dirty.update(self._awake)
        cfg = self.config
        every = cfg.housekeeping_every_ticks
        if every > 0 and self._ticks % every == 0:
            self._housekeeping()
        if self._ticks % 50 == 0:
            forget_before_ms = now - 2 * cfg.request_timeout_ms
            for group in self.groups.values():
                if group.has_forward_state():
                    group.prune_forwarded(forget_before_ms)
        self._check_liveness(now)

    def _run_ticks(self, ticks: int) -> None:
        cfg = self.config
        for gid in sorted(self._awake):
            group = self.groups[gid]
            core = group.core
            for _ in range(ticks):
                core.tick()
            state = self._state[gid]
            state.idle_ticks += ticks
            if (
                cfg.quiesce_after_ticks
                and not state.quiescing
                and state.idle_ticks >= cfg.quiesce_after_ticks
                and core.can_quiesce()
                and self._suspected.isdisjoint(core.conf.members)
            ):
                state.quiescing = True

    # --- rounds --------------------------------------------------------------------------------

    def _work_for(self, gid: GroupId) -> None:
        self._dirty.add(gid)
        self.on_work()

    def has_work(self) -> bool:
        return bool(self._dirty or self._actions or self._pending_ticks)

    def is_idle(self) -> bool:
        """Every group quiesced and nothing queued or waiting for an answer: ticks then only
        keep the node's liveness (the driver may tick less often)."""
        return not (
            self._awake or self._dirty or self._actions or self._to_wake or len(self.deadlines)
        )

    def start_round(self) -> Round:
        """Step 1 (host thread): see the module docstring."""
        assert not self._in_round, "a round is already in progress"
        self._in_round = True
        self.stats.rounds += 1
        if self._to_wake:
            to_wake, self._to_wake = self._to_wake, set()
            for gid in sorted(to_wake):
                self.groups[gid].core.wake()
        if self._ticks_dropped:
            self._ticks_dropped = False
            for gid in self._awake:
                core = self.groups[gid].core
                if core.is_leader:
                    core.void_lease()
        if self._pending_ticks:
            ticks, self._pending_ticks = self._pending_ticks, 0
            self._run_ticks(ticks)
        if self._actions:
            actions, self._actions = self._actions, []
            for action in actions:
                action()
        rnd = Round()
        dirty, self._dirty = self._dirty, set()
        for gid in sorted(dirty):
            group = self.groups.get(gid)
            if group is None:
                continue
            # Asked per group: a long round must not decide its last groups' leases on the
            # time it started with.
            rd = group.collect(self._ticks_current())
            if rd is None:
                group.serve_reads()
                self._after_group(gid, group)
                continue
            rnd.readies.append((group, rd))
            if rd.must_sync or rd.snapshot is not None:
                rnd.must_sync = True
            state = self._state[gid]
            if state.quiescing and _beats_every_follower(rd, group):
                if group.core.can_quiesce():
                    self._quiesce(gid)
                else:
                    state.quiescing = False
        self._flush_heartbeats()
        return rnd

    def _ticks_current(self) -> bool:
        """Whether the cores' ticks count the time that passed, to within the lease margin
        (see :attr:`HostConfig.tick_ms`)."""
        tick_ms = self.config.tick_ms
        if not tick_ms:
            return True
        last_tick_ms = self._last_tick_ms
        return last_tick_ms is not None and (
            self._world.monotonic_ms() - last_tick_ms <= 1.5 * tick_ms
        )

    def persist(self, rnd: Round) -> None:
        """Step 2 (may run on a worker thread): store received snapshots, then make every
        group's staged writes durable with one sync. Raises what the log's sync raises."""
        for group, rd in rnd.readies:
            if rd.snapshot is not None:
                group.persist(rd)
        if rnd.must_sync:
            self.node_log.sync()
            self.stats.syncs += 1

    def finish_round(self, rnd: Round) -> None:
        """Step 3 (host thread), once :meth:`persist` returned."""
        try:
            # The apply scope is one state-machine transaction; a round that applies nothing
            # (heartbeats, votes, acknowledgements) needs none.
            applies = any(rd.committed_entries for _, rd in rnd.readies)
            with self._apply_scope() if applies else nullcontext():
                for group, rd in rnd.readies:
                    group.finish(rd)
            for group, _ in rnd.readies:
                self._after_group(group.group_id, group)
            self._flush_heartbeats()
        finally:
            self._in_round = False

    def abandon_round(self) -> None:
        """The driver gives up on a round it started (the node is stopping)."""
        self._in_round = False

    def close(self) -> None:
        for group in self.groups.values():
            group.close()

    # --- messages ------------------------------------------------------------------------------

    def _hold_notices(self, group: RaftGroup) -> None:
        """``group`` holds commit notices: send them when the node's notice timer fires,
        with every other group's (see :mod:`kvorum.host.group`)."""
        self._notice_groups.append(group)
        if not self._notice_timer:
            self._notice_timer = True
            delay_ms = group.config.commit_notice_delay_ms
            self._world.call_later(delay_ms, self._send_held_notices)

    def _send_held_notices(self) -> None:
        self._notice_timer = False
        groups, self._notice_groups = self._notice_groups, []
        for group in groups:
            if not group.closed:
                group.send_held_notices()

    def send(self, env: Envelope) -> None:
        """What groups send: Raft heartbeats are coalesced per peer until the end of the
        round's step; everything else goes to the transport at once."""
        body = env.body
        if env.protocol is ProtocolId.RAFT:
            if type(body) is Heartbeat:
                state = self._state[env.group_id]
                quiesce = state.quiescing or state.quiesced
                beat = GroupBeat(env.group_id, body.term, body.leader_commit, body.round, quiesce)
                self._beats.setdefault(env.dst, []).append(beat)
                return
            if type(body) is HeartbeatResponse:
                ack = GroupBeatAck(env.group_id, body.term, body.round)
                self._acks.setdefault(env.dst, []).append(ack)
                return
        self._sent_to(env.dst)
        self._transport_send(env)

    def _flush_heartbeats(self) -> None:
        me = self.node_id
        if self._beats:
            beats, self._beats = self._beats, {}
            for dst, group_beats in beats.items():
                msg = NodeHeartbeat(me, dst, self.incarnation, tuple(group_beats))
                self._send_node(dst, msg)
        if self._acks:
            acks, self._acks = self._acks, {}
            for dst, group_acks in acks.items():
                reply = NodeHeartbeatResponse(me, dst, self.incarnation, tuple(group_acks))
                self._send_node(dst, reply)

    def _send_node(self, dst: NodeId, body: NodeHeartbeat | NodeHeartbeatResponse) -> None:
        if isinstance(body, NodeHeartbeat):
            self.stats.node_heartbeats_sent += 1
        self._sent_to(dst)
        self._transport_send(Envelope(ProtocolId.NODE, 0, self.node_id, dst, body))

    def _sent_to(self, dst: NodeId) -> None:
        self._last_sent_ms[dst] = self._world.monotonic_ms()

    def _on_node_heartbeat(self, msg: NodeHeartbeat) -> None:
        src, me = msg.src, self.node_id
        self.note_incarnation(src, msg.incarnation)
        for beat in msg.beats:
            group = self.groups.get(beat.group_id)
            if group is None:
                continue  # a group removed here, or not created yet: the leader retries
            hb = Heartbeat(src, me, beat.term, beat.commit, beat.round)
            state = self._state[beat.group_id]
            if beat.quiesce:
                # Stepped without waking; once in, the follower compares logs and may follow.
                state.quiesce_check = (src, beat.term, beat.commit)
                self._deliver(group, hb, wake=False)
            else:
                state.quiesce_check = None
                self._deliver(group, hb, wake=True)

    def _on_node_heartbeat_response(self, msg: NodeHeartbeatResponse) -> None:
        src, me = msg.src, self.node_id
        self.note_incarnation(src, msg.incarnation)
        for ack in msg.acks:
            group = self.groups.get(ack.group_id)
            if group is not None:
                self._deliver(group, HeartbeatResponse(src, me, ack.term, ack.round), wake=False)

    def _deliver(self, group: RaftGroup, msg: RaftMessage, wake: bool) -> None:
        if wake:
            self._wake(group.group_id)
        group.deliver(msg)
        self._dirty.add(group.group_id)

    # --- quiescence and liveness -----------------------------------------------------------------

    def _after_group(self, gid: GroupId, group: RaftGroup) -> None:
        state = self._state[gid]
        check = state.quiesce_check
        if check is not None:
            state.quiesce_check = None
            if gid in self._awake and group.core.may_follow_quiesced(*check):
                self._quiesce(gid)
        if group.has_work() or (state.quiesced and group.core.has_ready()):
            self._dirty.add(gid)

    def _quiesce(self, gid: GroupId) -> None:
        state = self._state[gid]
        state.quiescing = False
        state.quiesced = True
        self._awake.discard(gid)
        self.stats.quiesces += 1

    def _wake(self, gid: GroupId) -> None:
        state = self._state.get(gid)
        if state is None:
            return
        state.quiescing = False
        state.quiesce_check = None
        if not state.quiesced:
            return
        state.quiesced = False
        state.idle_ticks = 0
        self._awake.add(gid)
        self._to_wake.add(gid)
        self._dirty.add(gid)
        self.stats.wakes += 1

    def _wake_involving(self, peer: NodeId, why: str) -> None:
        """Wake the quiesced groups that ``peer`` leads, and those led here that it is in.

        A follower must wake to elect a new leader when its leader is gone. A leader must
        wake too: asleep, it runs no CheckQuorum, so one cut off from its followers would
        go on calling itself leader for ever — and if the majority elected another and then
        removed it, nobody would ever tell it otherwise (simulator seed 422)."""
        woken = []
        for gid, state in self._state.items():
            if not state.quiesced:
                continue
            core = self.groups[gid].core
            if core.leader_id == peer or (core.is_leader and peer in core.conf.members):
                woken.append(gid)
        for gid in woken:
            self._wake(gid)
        if woken:
            log.info(
                "node %d: woke %d groups involving node %d (%s)",
                self.node_id,
                len(woken),
                peer,
                why,
            )

    def _heard_from(self, peer: NodeId) -> None:
        now = self._world.monotonic_ms()
        last = self._last_heard_ms.get(peer)
        self._last_heard_ms[peer] = now
        if last is not None and now - last > self._longest_gap_ms.get(peer, 0.0):
            self._longest_gap_ms[peer] = now - last
        if peer in self._suspected:
            self._suspected.discard(peer)

    def _check_liveness(self, now: float) -> None:
        cfg = self.config
        last_check_ms, self._last_liveness_check_ms = self._last_liveness_check_ms, now
        # Silence counts only while this node was listening. One that was itself stalled
        # (descheduled, paused, a long round) has not yet read what its peers sent meanwhile
        # — the tick that ends a stall runs before the loop polls the sockets — and judging
        # them now would suspect every peer at once and wake every group they lead. So a
        # stall restarts every peer's silence from now.
        if last_check_ms is not None and now - last_check_ms > cfg.liveness_timeout_ms / 2:
            for peer in self._peers:
                self._last_heard_ms[peer] = max(self._last_heard_ms.get(peer, now), now)
        # A peer is suspected after the liveness timeout, or after twice the longest gap
        # recently seen between its messages if that is longer (at most ten timeouts): an
        # overloaded peer whose rounds take longer than the timeout is slow, not gone, and
        # suspecting it wakes every group it leads, which overloads everyone further.
        # Gaps are forgotten by halves, every ten timeouts.
        if now - self._gaps_aged_ms >= 10 * cfg.liveness_timeout_ms:
            self._gaps_aged_ms = now
            for peer, gap in self._longest_gap_ms.items():
                self._longest_gap_ms[peer] = gap / 2
        for peer in self._peers:
            silent_ms = now - self._last_heard_ms.get(peer, now)
            timeout_ms = min(
                max(cfg.liveness_timeout_ms, 2 * self._longest_gap_ms.get(peer, 0.0)),
                10 * cfg.liveness_timeout_ms,
            )
            if silent_ms > timeout_ms and peer not in self._suspected:
                self._suspected.add(peer)
                self._wake_involving(peer, "silent")
            if now - self._last_sent_ms.get(peer, -1e18) >= cfg.heartbeat_interval_ms:
                self._send_node(peer, NodeHeartbeat(self.node_id, peer, self.incarnation))

    def note_incarnation(self, peer: NodeId, incarnation: int) -> None:
        """``peer`` said it runs as ``incarnation``; a change means it restarted."""
        before = self._peer_incarnation.get(peer)
        self._peer_incarnation[peer] = incarnation
        if before is not None and before != incarnation:
            # Its groups forgot who leads them: the ones led here must tell it, and a
            # quiesced group sends nothing until woken.
            self._wake_involving(peer, "restarted")

    def _housekeeping(self) -> None:
        now_ms = self._world.wall_ms()
        for gid, group in self.groups.items():
            if not group.core.is_leader:
                continue
            make = getattr(group.machine, "housekeeping", None)
            if make is None:
                continue
            payload = make(now_ms)
            if payload is None:
                continue
            self.stats.housekeeping_proposals += 1
            self.submit_writes(gid, [payload], CallbackWaiter(_ignore_result))


def _ignore_work() -> None:
    """The default :attr:`NodeHost.on_work`: a driver that polls ``has_work`` needs nothing."""


def _ignore_result(result: Any, error: BaseException | None) -> None:
    """Housekeeping writes need no answer: a failed sweep is simply proposed again later."""


def _beats_every_follower(rd: RaftReady, group: RaftGroup) -> bool:
    """Whether ``rd`` heartbeats every other member of the group: only such a round may
    carry the leader's ``quiesce``. A ReadIndex round's heartbeat goes only to the followers
    a quorum needs; quiescing on one left the others awake and unaware, so they timed out,
    one's PreVote woke the other, and the two elected a new leader while the old one slept
    (its waiting reads failed with CLUSTERDOWN: 64 groups, GET at 16 and 64 clients)."""
    beaten = {m.dst for m in rd.early_messages if type(m) is Heartbeat}
    beaten.update(m.dst for m in rd.messages if type(m) is Heartbeat)
    if not beaten:
        return False
    core = group.core
    return all(member in beaten for member in core.conf.members if member != core.node_id)
