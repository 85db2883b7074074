"""SWIM membership with the Lifeguard refinements, as one pure core per member.

Theory of operation: every probe interval the core pings the next member of a shuffled
round-robin list (reshuffled with the injected generator after each pass, so every member is
probed once per pass and the order is not predictable). No ack within the probe timeout: it
asks ``indirect_checks`` other members to ping the target for it; no ack (direct or relayed)
by the end of the interval: it *suspects* the target at the target's current incarnation,
and once the phi of the target's silence also crosses the threshold it holds the target
*subjectively down* (the seed's alarm level, then limited retries). A suspicion becomes
*dead* after a timeout that starts long and shrinks as independent members confirm it
(:mod:`.suspicion`). The
suspected member refutes by raising its incarnation and gossiping that it is alive; a higher
incarnation beats any claim of a lower one. A member that is itself slow — its probes fail, it
has to refute, relays' nacks do not come — stretches its own timeouts (:mod:`.awareness`).

Every change is queued and piggybacked on pings and acks and on gossip rounds to a few random
members, each sent λ·log N times (:mod:`.broadcasts`). Every push-pull interval two members
exchange their whole state, which repairs whatever gossip missed; a member joins by
push-pulling with any one member it is told of, and every reconnect interval it push-pulls
with a member it holds dead (the two halves of a healed partition find each other that
way). A member that leaves announces it and goes quiet. Observers' opinions are gossiped too,
and each member turns them into objectively-down verdicts (:mod:`.verdicts`). Ack arrivals
from each member feed a phi accrual detector (:class:`kvorum.detect.PhiAccrualDetector`),
shown with the member's state, incarnation and last-heard tick in :meth:`GossipCore.members`.

Nothing is persisted: :class:`GossipReady` has messages and events only. A restarted member
comes back at incarnation 0, learns its previous incarnation from the state the member it
joins through sends back (its own record is in it), and refutes above it — the way
hashicorp/memberlist does it without a disk. Time is the tick count; the only randomness is
the generator passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kvorum.core.gossip.awareness import HealthAwareness
from kvorum.core.gossip.broadcasts import TransmitQueue, retransmit_limit
from kvorum.core.gossip.config import GossipConfig
from kvorum.core.gossip.messages import (
    Ack,
    DownOpinion,
    Gossip,
    GossipMessage,
    MemberState,
    MemberUpdate,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Update,
)
from kvorum.core.gossip.suspicion import Suspicion, suspicion_bounds_ticks
from kvorum.core.gossip.verdicts import OdownTally, Verdict
from kvorum.core.shape import NodeId, Ready
from kvorum.detect import PhiAccrualDetector


class Rng(Protocol):
    """The part of :class:`random.Random` the core uses (passed in, seeded by the host)."""

    def random(self) -> float: ...

    def shuffle(self, x: list[Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class MemberChange:
    """This member's view of ``member`` changed to ``state`` at ``incarnation``."""

    member: NodeId
    state: MemberState
    incarnation: int
    tick: int


@dataclass(slots=True)
class GossipReady(Ready[GossipMessage]):
    """Messages to send, and events for the host: nothing to persist (see the module
    docstring), so a host may send at once."""

    verdicts: list[Verdict] = field(default_factory=list)
    """Objectively-down verdicts and their retractions, in order."""
    changes: list[MemberChange] = field(default_factory=list)
    """Every change of state of any member in this member's view, in order."""


@dataclass(frozen=True, slots=True)
class MemberView:
    """One member as this member sees it (what ``kvorum members`` will show)."""

    member: NodeId
    state: MemberState
    incarnation: int
    last_heard_tick: int | None
    phi: float
    rtt_ticks: int | None
    sdown: bool
    """This member's own probes say it is down."""
    odown: bool
    """A quorum says it is down."""


class _Record:
    __slots__ = (
        "detector",
        "incarnation",
        "last_ack_ms",
        "last_heard_tick",
        "member",
        "rtt_ticks",
        "state",
        "state_tick",
        "suspicion",
    )

    def __init__(self, member: NodeId, incarnation: int, state: MemberState, tick: int) -> None:
        self.member = member
        self.incarnation = incarnation
        self.state = state
        self.state_tick = tick
        self.last_heard_tick: int | None = None
        self.rtt_ticks: int | None = None
        self.suspicion: Suspicion | None = None
        self.detector: PhiAccrualDetector | None = None
        self.last_ack_ms: float | None = None


@dataclass(slots=True)
class _Probe:
    target: NodeId
    seq: int
    sent_tick: int
    timeout_ticks: int
    interval_ticks: int
    indirect_sent: bool = False
    nacks_expected: int = 0
    nacks: int = 0


@dataclass(frozen=True, slots=True)
class _Relay:
    origin: NodeId
    origin_seq: int
    target: NodeId
    deadline_tick: int


PROBED_STATES = (MemberState.ALIVE, MemberState.SUSPECT)


class GossipCore:
    """One member's SWIM + Lifeguard membership (see the module docstring)."""

    def __init__(
        self,
        node_id: NodeId,
        config: GossipConfig,
        rng: Rng,
        *,
        seeds: Sequence[NodeId] = (),
        known_members: Sequence[NodeId] = (),
    ) -> None:
        """A member that founds a cluster alone (no ``seeds``) or joins one through any of
        ``seeds`` (tried in turn until one answers). ``known_members`` starts it as if it had
        already joined a cluster of those members, all alive at incarnation 0: for
        benchmarks of thousands of members, which would otherwise spend most of their time
        joining."""
        self._id = node_id
        self.config = config
        self._rng = rng
        self._now = 0
        me = _Record(node_id, 0, MemberState.ALIVE, 0)
        self._members: dict[NodeId, _Record] = {node_id: me}
        self._queue = TransmitQueue()
        self._health = HealthAwareness(config.max_health_score)
        self._tally = OdownTally(self._validity_ticks())
        self._seq = 0
        self._probe: _Probe | None = None
        self._probe_order: list[NodeId] = []
        # Members start their probe clocks out of step with each other.
        self._next_probe_tick = 1 + int(rng.random() * config.probe_interval_ticks)
        self._next_push_pull_tick = 1 + int(rng.random() * config.push_pull_interval_ticks)
        self._next_reconnect_tick = 1 + int(rng.random() * config.reconnect_interval_ticks)
        self._relays: dict[int, _Relay] = {}
        self._suspects: set[NodeId] = set()
        self._live_cache: int | None = None
        self._to_verify: list[NodeId] = []
        """Members others suspect that this one has not probed itself since: probed next, so
        that every member forms its own opinion (Sentinel's observers each look for
        themselves) and confirms or contradicts the suspicion quickly."""
        self._sdown: dict[NodeId, int] = {}
        """Targets this member's own probes say are down -> tick its opinion was last sent."""
        self._unreached: set[NodeId] = set()
        """Targets whose last probe by this member failed, direct and indirect: SDOWN once
        their phi also crosses the threshold (the seed's alarm level, then limited retries)."""
        self._opinion_seq = 0
        self._seeds = [s for s in seeds if s != node_id]
        self._joined = not self._seeds
        self._join_attempts = 0
        self._next_join_tick = 0
        self._leaving = False
        self._verdicts_dirty = False
        self._ready = GossipReady()
        self._queue.enqueue(MemberUpdate(node_id, 0, MemberState.ALIVE, node_id))
        for member in known_members:
            if member != node_id:
                self._members[member] = _Record(member, 0, MemberState.ALIVE, 0)
        if known_members:
            self._queue = TransmitQueue()  # everyone knows already: nothing to announce
            self._membership_changed()

    # --- the core shape --------------------------------------------------------------------

    @property
    def node_id(self) -> NodeId:
        return self._id

    @property
    def now_tick(self) -> int:
        return self._now

    @property
    def incarnation(self) -> int:
        return self._members[self._id].incarnation

    @property
    def joined(self) -> bool:
        """Whether some member has answered this one's join (always True for a founder)."""
        return self._joined

    @property
    def health_score(self) -> int:
        """Lifeguard's local health score: 0 is healthy."""
        return self._health.score

    def has_ready(self) -> bool:
        rd = self._ready
        return bool(rd.messages or rd.verdicts or rd.changes)

    def ready(self) -> GossipReady:
        rd = self._ready
        self._ready = GossipReady()
        return rd

    def advance(self, ready: GossipReady) -> None:
        """Nothing to learn: gossip keeps no durable state and expects no delivery."""

    def tick(self) -> None:
        self._now += 1
        cfg = self.config
        if not self._leaving:
            self._tick_join()
            self._tick_probe()
            self._tick_relays()
            self._tick_suspicions()
            if self._now >= self._next_push_pull_tick:
                self._next_push_pull_tick = self._now + cfg.push_pull_interval_ticks
                self._push_pull(self._pick(self._others(PROBED_STATES)))
            if self._now >= self._next_reconnect_tick:
                self._next_reconnect_tick = self._now + cfg.reconnect_interval_ticks
                self._push_pull(self._pick(self._reconnectable()))
            self._tick_opinions()
        if self._now % cfg.gossip_interval_ticks == 0:
            self._gossip()

    def step(self, msg: GossipMessage) -> None:
        """Take one message addressed to this member."""
        if self._leaving:
            return  # it has gone: it answers nothing
        self._heard_from(msg.src)
        if isinstance(msg, Ping):
            self._merge_all(msg.updates)
            self._send(Ack(self._id, msg.src, msg.seq, self._id, self._piggyback()))
        elif isinstance(msg, PingReq):
            self._merge_all(msg.updates)
            seq = self._next_seq()
            self._relays[seq] = _Relay(
                msg.src, msg.seq, msg.target, self._now + self._health.scale(
                    self.config.probe_timeout_ticks
                )
            )
            self._send(Ping(self._id, msg.target, seq, self._piggyback()))
        elif isinstance(msg, Ack):
            self._merge_all(msg.updates)
            self._on_ack(msg)
        elif isinstance(msg, Nack):
            p = self._probe
            if p is not None and p.seq == msg.seq:
                p.nacks += 1
        elif isinstance(msg, Gossip):
            self._merge_all(msg.updates)
        else:
            self._on_push_pull(msg)

    # --- local requests --------------------------------------------------------------------

    def leave(self) -> None:
        """Leave the cluster: announce it, stop probing and answering. The host keeps ticking
        the core until :attr:`leave_announced`, then stops it."""
        if self._leaving:
            return
        me = self._members[self._id]
        me.state = MemberState.LEFT
        self._leaving = True
        self._probe = None
        self._relays.clear()
        self._queue.enqueue(MemberUpdate(self._id, me.incarnation, MemberState.LEFT, self._id))
        self._changed(me)

    @property
    def leaving(self) -> bool:
        """:meth:`leave` was called."""
        return self._leaving

    @property
    def leave_announced(self) -> bool:
        """A leaving member's announcement has been sent as often as any update is."""
        return self._leaving and len(self._queue) == 0

    # --- views -----------------------------------------------------------------------------

    def state_of(self, member: NodeId) -> tuple[MemberState, int] | None:
        """(state, incarnation) of ``member`` in this member's view, if it knows it."""
        rec = self._members.get(member)
        return None if rec is None else (rec.state, rec.incarnation)

    def _phi(self, rec: _Record) -> float:
        """φ of ``rec``'s silence since its last ack to our probes. Before any ack there is no
        history: the silence since we last heard of it, in units of ``sdown_after_ticks``,
        stands in (reaching the threshold after that many ticks)."""
        if rec.detector is not None and rec.last_ack_ms is not None:
            now_ms = self._now * self.config.tick_ms
            return rec.detector.suspicion(max(now_ms, rec.last_ack_ms))
        since = rec.last_heard_tick if rec.last_heard_tick is not None else rec.state_tick
        return self.config.phi_threshold * (self._now - since) / self.config.sdown_after_ticks

    def members(self) -> list[MemberView]:
        """Every member this one knows (itself included), by id."""
        out = []
        for member in sorted(self._members):
            rec = self._members[member]
            phi = self._phi(rec) if member != self._id else 0.0
            out.append(
                MemberView(
                    member,
                    rec.state,
                    rec.incarnation,
                    rec.last_heard_tick,
                    phi,
                    rec.rtt_ticks,
                    member in self._sdown,
                    self._tally.is_odown(member),
                )
            )
        return out

    def odown(self) -> set[NodeId]:
        return {m for m in self._members if self._tally.is_odown(m)}

    # --- probing ---------------------------------------------------------------------------

    def _tick_probe(self) -> None:
        p = self._probe
        if p is not None:
            elapsed = self._now - p.sent_tick
            if not p.indirect_sent and elapsed >= p.timeout_ticks:
                p.indirect_sent = True
                relays = self._sample(
                    [m for m in self._others((MemberState.ALIVE,)) if m != p.target],
                    self.config.indirect_checks,
                )
                p.nacks_expected = len(relays)
                for relay in relays:
                    self._send(PingReq(self._id, relay, p.seq, p.target, self._piggyback()))
            if elapsed >= p.interval_ticks:
                self._probe = None
                self._probe_failed(p)
        if self._probe is None and self._now >= self._next_probe_tick:
            target = self._next_probe_target()
            interval = self._health.scale(self.config.probe_interval_ticks)
            self._next_probe_tick = self._now + interval
            if target is None:
                return
            seq = self._next_seq()
            self._probe = _Probe(
                target,
                seq,
                self._now,
                self._health.scale(self.config.probe_timeout_ticks),
                interval,
            )
            self._send(Ping(self._id, target, seq, self._piggyback()))

    def _next_probe_target(self) -> NodeId | None:
        while self._to_verify:
            candidate = self._to_verify.pop(0)
            rec = self._members.get(candidate)
            if rec is not None and rec.state == MemberState.SUSPECT:
                return candidate
        for _ in range(2):
            while self._probe_order:
                candidate = self._probe_order.pop()
                rec = self._members.get(candidate)
                if rec is not None and rec.state in PROBED_STATES:
                    return candidate
            # A pass is over: a fresh shuffle of everyone probe-worthy now.
            self._probe_order = self._others(PROBED_STATES)
            self._rng.shuffle(self._probe_order)
        return None

    def _on_ack(self, ack: Ack) -> None:
        relay = self._relays.pop(ack.seq, None)
        if relay is not None:
            self._send(
                Ack(self._id, relay.origin, relay.origin_seq, relay.target, self._piggyback())
            )
            return
        p = self._probe
        if p is None or p.seq != ack.seq:
            return  # a late ack: the probe already ended
        self._probe = None
        self._health.apply(-1)
        rec = self._members.get(p.target)
        if rec is None:
            return
        rec.rtt_ticks = self._now - p.sent_tick
        now_ms = self._now * self.config.tick_ms
        if rec.detector is None:
            cfg = self.config
            period_ms = cfg.probe_interval_ticks * cfg.tick_ms
            rec.detector = PhiAccrualDetector(
                cfg.phi_threshold,
                max_sample_size=100,
                min_std_deviation_ms=period_ms,
                first_heartbeat_estimate_ms=period_ms * max(1, len(self._members) - 1),
            )
        if rec.last_ack_ms is None or now_ms >= rec.last_ack_ms:
            rec.detector.heartbeat(now_ms)
            rec.last_ack_ms = now_ms
        self._clear_sdown(p.target)

    def _probe_failed(self, p: _Probe) -> None:
        # Lifeguard: relays that answered with nacks prove our own network works, so the
        # failure is the target's; missing nacks (or no relay to ask) may be our own fault.
        self._health.apply(1 if p.nacks < p.nacks_expected or p.nacks_expected == 0 else 0)
        rec = self._members.get(p.target)
        if rec is None or rec.state not in PROBED_STATES:
            return
        self._merge(MemberUpdate(p.target, rec.incarnation, MemberState.SUSPECT, self._id))
        self._unreached.add(p.target)

    def _tick_relays(self) -> None:
        for seq, relay in list(self._relays.items()):
            if self._now >= relay.deadline_tick:
                del self._relays[seq]
                self._send(Nack(self._id, relay.origin, relay.origin_seq))

    # --- suspicion -------------------------------------------------------------------------

    def _start_suspicion(self, rec: _Record, incarnation: int, accuser: NodeId) -> None:
        cfg = self.config
        n = self._live_count()
        lo, hi = suspicion_bounds_ticks(
            n, cfg.probe_interval_ticks, cfg.suspicion_mult, cfg.suspicion_max_timeout_mult
        )
        expected = cfg.suspicion_mult - 2
        if n - 2 < expected:
            expected = 0  # too few members to ever confirm it
        rec.suspicion = Suspicion(incarnation, self._now, lo, hi, expected, {accuser})
        self._suspects.add(rec.member)

    def _tick_suspicions(self) -> None:
        for member in sorted(self._suspects):
            rec = self._members[member]
            s = rec.suspicion
            if rec.state != MemberState.SUSPECT or s is None:
                self._suspects.discard(member)
                continue
            if self._now >= s.deadline_tick():
                self._set_state(rec, MemberState.DEAD, rec.incarnation)
                self._queue.enqueue(
                    MemberUpdate(member, rec.incarnation, MemberState.DEAD, self._id)
                )

    # --- merging what others say -----------------------------------------------------------

    def _merge_all(self, updates: Sequence[Update]) -> None:
        for update in updates:
            self._merge(update)

    def _merge(self, update: Update, *, from_push_pull: bool = False) -> None:
        if isinstance(update, DownOpinion):
            self._merge_opinion(update)
            return
        if update.member == self._id:
            self._about_me(update)
            return
        rec = self._members.get(update.member)
        state = update.state
        if state == MemberState.ALIVE:
            self._merge_alive(rec, update)
        elif state == MemberState.SUSPECT:
            self._merge_suspect(rec, update)
        else:
            left = state == MemberState.LEFT or update.source == update.member
            if from_push_pull and not left and rec is not None and rec.state in PROBED_STATES:
                # memberlist's rule: another's "dead" only makes us suspect, which gives the
                # member the suspicion timeout to refute before we too call it dead.
                self._merge_suspect(
                    rec,
                    MemberUpdate(update.member, update.incarnation, MemberState.SUSPECT,
                                 update.source),
                )
                return
            self._merge_dead(rec, update, left)

    def _merge_alive(self, rec: _Record | None, u: MemberUpdate) -> None:
        if rec is None:
            rec = _Record(u.member, u.incarnation, MemberState.ALIVE, self._now)
            self._members[u.member] = rec
            self._membership_changed()
            self._changed(rec)
            self._queue.enqueue(u)
            return
        if u.incarnation <= rec.incarnation:
            return
        if self.config.unsafe.ignore_refutations and rec.state in (
            MemberState.SUSPECT,
            MemberState.DEAD,
        ):
            return
        self._set_state(rec, MemberState.ALIVE, u.incarnation)
        self._clear_sdown(u.member)
        self._queue.enqueue(u)

    def _merge_suspect(self, rec: _Record | None, u: MemberUpdate) -> None:
        if rec is None:
            # Learnt from a push-pull while joining: known, and already under suspicion.
            rec = _Record(u.member, u.incarnation, MemberState.ALIVE, self._now)
            self._members[u.member] = rec
            self._membership_changed()
        if u.incarnation < rec.incarnation:
            return
        if rec.state == MemberState.LEFT or (
            rec.state == MemberState.DEAD and u.incarnation <= rec.incarnation
        ):
            return
        s = rec.suspicion
        if rec.state == MemberState.SUSPECT and s is not None and s.incarnation == u.incarnation:
            if s.confirm(u.source):
                self._queue.enqueue(u)  # pass the confirmation on: others shorten theirs too
            return
        self._set_state(rec, MemberState.SUSPECT, u.incarnation)
        self._start_suspicion(rec, u.incarnation, u.source)
        self._queue.enqueue(u)
        if u.source != self._id and u.member not in self._to_verify:
            self._to_verify.append(u.member)

    def _merge_dead(self, rec: _Record | None, u: MemberUpdate, left: bool) -> None:
        new_state = MemberState.LEFT if left else MemberState.DEAD
        if rec is None:
            rec = _Record(u.member, u.incarnation, new_state, self._now)
            self._members[u.member] = rec
            self._membership_changed()
            self._changed(rec)
            if left:
                self._tally.forget(u.member)
            return
        if u.incarnation < rec.incarnation or rec.state == MemberState.LEFT:
            return
        if rec.state == MemberState.DEAD and not left:
            rec.incarnation = max(rec.incarnation, u.incarnation)
            return
        self._set_state(rec, new_state, u.incarnation)
        self._queue.enqueue(MemberUpdate(u.member, u.incarnation, new_state, u.source))
        if left:
            self._tally.forget(u.member)
            self._sdown.pop(u.member, None)
            self._membership_changed()

    def _about_me(self, u: MemberUpdate) -> None:
        me = self._members[self._id]
        if self._leaving:
            return
        if u.state == MemberState.ALIVE and u.incarnation <= me.incarnation:
            return
        if u.state != MemberState.ALIVE and u.incarnation < me.incarnation:
            return
        # Refute: only this member raises its own incarnation, above any claim about it (an
        # alive claim above ours is our own record from before a restart).
        me.incarnation = u.incarnation + 1
        self._queue.enqueue(MemberUpdate(self._id, me.incarnation, MemberState.ALIVE, self._id))
        if u.state != MemberState.ALIVE:
            self._health.apply(1)  # being accused is a sign we may be the slow one

    def _heard_from(self, member: NodeId) -> None:
        rec = self._members.get(member)
        if rec is not None:
            rec.last_heard_tick = self._now
        self._unreached.discard(member)
        if member in self._sdown:
            self._clear_sdown(member)

    # --- state changes ---------------------------------------------------------------------

    def _set_state(self, rec: _Record, state: MemberState, incarnation: int) -> None:
        if rec.state == state and rec.incarnation == incarnation:
            return
        rec.incarnation = incarnation
        if rec.state == state:
            self._changed(rec)  # the same state at a new incarnation: a refutation
            return
        rec.state = state
        rec.state_tick = self._now
        if state != MemberState.SUSPECT:
            rec.suspicion = None
            self._suspects.discard(rec.member)
        self._changed(rec)

    def _changed(self, rec: _Record) -> None:
        self._live_cache = None
        self._ready.changes.append(MemberChange(rec.member, rec.state, rec.incarnation, self._now))

    def _membership_changed(self) -> None:
        self._tally.validity_ticks = self._validity_ticks()
        self._verdicts_dirty = True

    # --- opinions and verdicts -------------------------------------------------------------

    def _validity_ticks(self) -> int:
        cfg = self.config
        n = max(4, len(self._members))
        return cfg.opinion_validity_probe_rounds * cfg.probe_interval_ticks * n

    def _publish_opinion(self, target: NodeId, down: bool) -> None:
        self._opinion_seq += 1
        opinion = DownOpinion(self._id, target, down, self._opinion_seq)
        self._tally.offer(opinion, self._now)
        self._queue.enqueue(opinion)
        self._verdicts_dirty = True

    def _set_sdown(self, target: NodeId) -> None:
        self._sdown[target] = self._now
        self._publish_opinion(target, True)

    def _clear_sdown(self, target: NodeId) -> None:
        self._unreached.discard(target)
        if self._sdown.pop(target, None) is not None:
            self._publish_opinion(target, False)

    def _merge_opinion(self, op: DownOpinion, age_ticks: int = 0) -> None:
        if op.target == self._id:
            return  # no verdicts about ourselves: we know we are up, and refute suspicions
        if op.observer == self._id:
            # Our own opinion from before a restart: count on from above it, so that what we
            # say next is newer wherever it arrives.
            self._opinion_seq = max(self._opinion_seq, op.seq)
            return
        if op.observer in self._members and self._members[op.observer].state == MemberState.LEFT:
            return
        if self._tally.offer(op, self._now, age_ticks):
            self._queue.enqueue(op)
            self._verdicts_dirty = True

    def _tick_opinions(self) -> None:
        if self._unreached or self._sdown:
            self._tick_own_opinions()
        # Verdicts are weighed at most once a tick (news arrives in bursts), and every few
        # ticks regardless, since opinions expire with time alone.
        if self._verdicts_dirty or self._now % 5 == 0:
            self._evaluate_verdicts()

    def _tick_own_opinions(self) -> None:
        for target in sorted(self._unreached - self._sdown.keys()):
            rec = self._members.get(target)
            if rec is None or rec.state == MemberState.LEFT:
                self._unreached.discard(target)
            elif self._phi(rec) >= self.config.phi_threshold:
                self._set_sdown(target)
        refresh = max(1, self._tally.validity_ticks // 3)
        for target, sent in list(self._sdown.items()):
            rec = self._members.get(target)
            if rec is None or rec.state == MemberState.LEFT:
                del self._sdown[target]
            elif self._now - sent >= refresh:
                self._set_sdown(target)

    def _evaluate_verdicts(self) -> None:
        self._verdicts_dirty = False
        voters = sum(1 for r in self._members.values() if r.state != MemberState.LEFT)

        def quorum_for(target: NodeId) -> int:
            return (voters - 1) // 2 + 1

        self._ready.verdicts.extend(self._tally.evaluate(self._now, quorum_for))

    # --- dissemination ---------------------------------------------------------------------

    def _piggyback(self) -> tuple[Update, ...]:
        limit = retransmit_limit(self.config.retransmit_mult, self._live_count())
        return self._queue.take(limit, self.config.max_updates_per_message)

    def _gossip(self) -> None:
        if len(self._queue) == 0:
            return
        cfg = self.config
        targets = self._others(PROBED_STATES) + [
            m
            for m, r in self._members.items()
            if r.state == MemberState.DEAD and self._now - r.state_tick < cfg.gossip_to_dead_ticks
        ]
        for target in self._sample(targets, cfg.gossip_fanout):
            updates = self._piggyback()
            if not updates:
                return
            self._send(Gossip(self._id, target, updates))

    def _full_state(
        self,
    ) -> tuple[tuple[MemberUpdate, ...], tuple[tuple[DownOpinion, int], ...]]:
        members = tuple(
            MemberUpdate(
                r.member,
                r.incarnation,
                r.state,
                r.member if r.state == MemberState.LEFT else self._id,
            )
            for r in self._members.values()
        )
        return members, tuple(self._tally.opinions(self._now))

    def _push_pull(self, target: NodeId | None, *, join: bool = False) -> None:
        if target is None:
            return
        members, opinions = self._full_state()
        self._send(PushPull(self._id, target, members, opinions, reply=False, join=join))

    def _on_push_pull(self, msg: PushPull) -> None:
        for u in msg.members:
            self._merge(u, from_push_pull=True)
        for opinion, age_ticks in msg.opinions:
            self._merge_opinion(opinion, age_ticks)
        if msg.reply:
            if msg.join:
                self._joined = True  # one of our seeds answered: we are in its cluster
        else:
            members, opinions = self._full_state()
            self._send(
                PushPull(self._id, msg.src, members, opinions, reply=True, join=msg.join)
            )

    def _tick_join(self) -> None:
        if self._joined or self._now < self._next_join_tick:
            return
        seed = self._seeds[self._join_attempts % len(self._seeds)]
        self._join_attempts += 1
        self._next_join_tick = self._now + self.config.join_retry_ticks
        self._push_pull(seed, join=True)

    # --- helpers ---------------------------------------------------------------------------

    def _send(self, msg: GossipMessage) -> None:
        self._ready.messages.append(msg)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _others(self, states: tuple[MemberState, ...]) -> list[NodeId]:
        return [m for m, r in self._members.items() if m != self._id and r.state in states]

    def _reconnectable(self) -> list[NodeId]:
        reap = self.config.reap_dead_ticks
        return [
            m
            for m, r in self._members.items()
            if r.state == MemberState.DEAD and self._now - r.state_tick < reap
        ]

    def _live_count(self) -> int:
        if self._live_cache is None:
            self._live_cache = sum(1 for r in self._members.values() if r.state in PROBED_STATES)
        return self._live_cache

    def _pick(self, items: list[NodeId]) -> NodeId | None:
        if not items:
            return None
        return items[int(self._rng.random() * len(items))]

    def _sample(self, items: list[NodeId], k: int) -> list[NodeId]:
        if len(items) <= k:
            return items
        pool = list(items)
        self._rng.shuffle(pool)
        return pool[:k]
