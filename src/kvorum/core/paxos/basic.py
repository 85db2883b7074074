"""Basic (single-decree) Paxos as the seed teaches it: one core per node, every role in it.

Theory of operation: each node may be a proposer, an acceptor and a learner (the seed: "every
node of the cluster can play" each role). The *acceptor* follows :mod:`.acceptor`'s two rules
and puts its new state in the ready, so the host persists it before its reply is sent. The
*proposer* (:meth:`BasicPaxosCore.propose`) picks a number above every round it has seen,
sends prepare(n) to every acceptor, and on a majority of promises sends accept(n:value) —
with the value of the promise with the highest ``accept_n`` if any promise carried one (the
seed's "adopt the newest accepted value"), else its own. A majority of accepts means its
value is chosen. Any reply with ``min_n > n`` means it was pre-empted: it starts a new round
at once, or after a random back-off (``backoff_ticks``: a window of ticks that doubles after
each failure, up to 32 times, which breaks the duel of PAXOS-LIVELOCK), or, with a
distinguished proposer configured, every other node forwards its value to that one instead
of competing. A round that hears nothing for ``retry_timeout_ticks`` (lost messages) is
retried the same way. The *learner* counts :class:`~.basic_messages.Learn` messages: a
majority of acceptors accepting one ``n`` is a chosen value (:attr:`BasicPaxosCore.chosen`).

Ready contract (:class:`PaxosReady`): persist ``acceptor_state`` and ``round_reserved`` (both
fsynced), then send ``messages``, then hand ``outcomes`` to whoever proposed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from random import Random

from kvorum.core.paxos.acceptor import AcceptorRules, AcceptorState, on_accept, on_prepare
from kvorum.core.paxos.ballot import Ballot, RoundReservation
from kvorum.core.paxos.basic_messages import (
    Accept,
    Accepted,
    BasicMessage,
    Forward,
    Learn,
    Prepare,
    Promise,
    Value,
)
from kvorum.core.shape import NodeId, Ready

MAX_BACKOFF_DOUBLINGS = 5


@dataclass(frozen=True, slots=True)
class UnsafeSwitches:
    """Test-only switches that break one Paxos rule each, to prove the checkers have teeth."""

    accept_below_min_n: bool = False
    """An acceptor accepts ``n < min_n`` (and says it did)."""
    skip_adopt_highest: bool = False
    """A proposer ignores the accepted values in its promises (Basic Paxos: keeps its own
    value; CASPaxos: takes the oldest state among the replies)."""


@dataclass(frozen=True, slots=True)
class BasicConfig:
    node_id: NodeId
    acceptors: tuple[NodeId, ...]
    learners: tuple[NodeId, ...] = ()
    """Who hears of every acceptance (default: the acceptors)."""
    retry_timeout_ticks: int = 10
    """A round that got no majority in this long is retried (messages were lost)."""
    backoff_ticks: int = 0
    """0: a pre-empted proposer retries at once. Else it waits a random 1..w ticks, where w
    starts at this and doubles with each failure in a row."""
    distinguished_proposer: NodeId | None = None
    """If set, only that node proposes; the others forward their values to it, and it
    proposes a forwarded value only while it has none of its own and nothing is chosen yet
    (one instance chooses one value, whoever's it is)."""
    unsafe: UnsafeSwitches = field(default_factory=UnsafeSwitches)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a proposer learned about its own proposal."""

    n: Ballot
    value: Value
    chosen: bool
    """True: ``value`` was chosen with number ``n``. False: pre-empted by ``n``'s refusal."""
    own_value: bool
    """Whether the value is the one this proposer was asked for (else it adopted another)."""


@dataclass(slots=True)
class PaxosReady(Ready[BasicMessage]):
    """Persist ``acceptor_state`` and ``round_reserved``, then send, then report outcomes."""

    acceptor_state: AcceptorState[Value] | None = None
    round_reserved: int | None = None
    outcomes: list[Outcome] = field(default_factory=list)


class Phase(Enum):
    IDLE = "idle"
    PREPARE = "prepare"
    ACCEPT = "accept"
    WAITING = "waiting"
    """Pre-empted or timed out: a new round starts at ``_retry_at``."""
    DONE = "done"


class BasicPaxosCore:
    """One node of single-decree Paxos (see the module docstring)."""

    def __init__(
        self,
        config: BasicConfig,
        rng: Random | None = None,
        *,
        acceptor_state: AcceptorState[Value] | None = None,
        durable_round: int = 0,
    ) -> None:
        self.config = config
        self._rng = rng or Random(config.node_id)
        self._rules = AcceptorRules(config.unsafe.accept_below_min_n)
        self.acceptor: AcceptorState[Value] = acceptor_state or AcceptorState()
        self._acceptor_dirty = False
        self._rounds = RoundReservation(durable_round, block_rounds=1)
        self._quorum = len(config.acceptors) // 2 + 1
        self._learners = config.learners or config.acceptors
        # proposer
        self.value: Value | None = None
        self.phase = Phase.IDLE
        self.n: Ballot | None = None
        self.highest_round_seen = durable_round
        self.rounds_started = 0
        self.failures_in_a_row = 0
        self._promises: dict[NodeId, Promise] = {}
        self._accepts: set[NodeId] = set()
        self._proposed_value: Value | None = None
        self._phase_started_tick = 0
        self._retry_at = 0
        self.now_tick = 0
        # learner
        self._learned: dict[Ballot, tuple[Value, set[NodeId]]] = {}
        self.chosen: Value | None = None
        self.chosen_n: Ballot | None = None
        # outputs
        self._messages: list[BasicMessage] = []
        self._outcomes: list[Outcome] = []

    @property
    def node_id(self) -> NodeId:
        return self.config.node_id

    # --- requests ----------------------------------------------------------------------------

    def propose(self, value: Value) -> None:
        """Try to have ``value`` chosen (or forward it to the distinguished proposer)."""
        leader = self.config.distinguished_proposer
        if leader is not None and leader != self.node_id:
            self._messages.append(Forward(self.node_id, leader, value))
            return
        self.value = value
        self._start_round()

    # --- the core's shape --------------------------------------------------------------------

    def step(self, msg: BasicMessage) -> None:
        if isinstance(msg, Prepare):
            self._on_prepare(msg)
        elif isinstance(msg, Accept):
            self._on_accept(msg)
        elif isinstance(msg, Promise):
            self._on_promise(msg)
        elif isinstance(msg, Accepted):
            self._on_accepted(msg)
        elif isinstance(msg, Learn):
            self._on_learn(msg)
        elif (
            isinstance(msg, Forward)
            and self.phase in (Phase.IDLE, Phase.DONE)
            and self.chosen is None
        ):
            self.propose(msg.value)

    def tick(self) -> None:
        self.now_tick += 1
        if self.phase in (Phase.PREPARE, Phase.ACCEPT):
            if self.now_tick - self._phase_started_tick >= self.config.retry_timeout_ticks:
                self._fail(None)
        elif self.phase is Phase.WAITING and self.now_tick >= self._retry_at:
            self._start_round()

    def has_ready(self) -> bool:
        return bool(
            self._messages or self._outcomes or self._acceptor_dirty or self._rounds.pending
        )

    def ready(self) -> PaxosReady:
        rd = PaxosReady(
            messages=self._messages,
            acceptor_state=self.acceptor if self._acceptor_dirty else None,
            round_reserved=self._rounds.pending,
            outcomes=self._outcomes,
        )
        self._messages = []
        self._outcomes = []
        self._acceptor_dirty = False
        return rd

    def advance(self, ready: PaxosReady) -> None:
        if ready.round_reserved is not None:
            self._rounds.persisted(ready.round_reserved)

    # --- acceptor ----------------------------------------------------------------------------

    def _on_prepare(self, msg: Prepare) -> None:
        before = self.acceptor
        self.acceptor = after = on_prepare(before, msg.n)
        self._acceptor_dirty |= after != before
        self._messages.append(
            Promise(self.node_id, msg.src, msg.n, after.min_n, after.accept_n, after.accept_value)
        )

    def _on_accept(self, msg: Accept) -> None:
        before = self.acceptor
        self.acceptor, accepted = on_accept(before, msg.n, msg.value, self._rules)
        self._acceptor_dirty |= self.acceptor != before
        reply_min_n = msg.n if accepted else self.acceptor.min_n
        self._messages.append(Accepted(self.node_id, msg.src, msg.n, reply_min_n))
        if accepted:
            for learner in self._learners:
                self._messages.append(Learn(self.node_id, learner, msg.n, msg.value))

    # --- proposer ----------------------------------------------------------------------------

    def _start_round(self) -> None:
        if self.chosen is not None:
            self.phase = Phase.DONE
            return
        round_ = self.highest_round_seen + 1
        self.highest_round_seen = round_
        self._rounds.cover(round_)
        self.n = Ballot(round_, self.node_id)
        self.rounds_started += 1
        self.phase = Phase.PREPARE
        self._phase_started_tick = self.now_tick
        self._promises = {}
        self._accepts = set()
        for acceptor in self.config.acceptors:
            self._messages.append(Prepare(self.node_id, acceptor, self.n))

    def _see(self, n: Ballot) -> None:
        self.highest_round_seen = max(self.highest_round_seen, n.round)

    def _on_promise(self, msg: Promise) -> None:
        self._see(msg.min_n)
        if self.phase is not Phase.PREPARE or msg.n != self.n:
            return  # a reply to an older round (or a duplicate after we moved on)
        if msg.min_n > msg.n:
            self._fail(msg.min_n)
            return
        self._promises[msg.src] = msg
        if len(self._promises) < self._quorum:
            return
        value = self.value
        assert value is not None
        accepted = [p for p in self._promises.values() if p.accept_value is not None]
        if accepted and not self.config.unsafe.skip_adopt_highest:
            value = max(accepted, key=lambda p: p.accept_n).accept_value
        assert value is not None
        self._proposed_value = value
        self.phase = Phase.ACCEPT
        self._phase_started_tick = self.now_tick
        for acceptor in self.config.acceptors:
            self._messages.append(Accept(self.node_id, acceptor, self.n, value))

    def _on_accepted(self, msg: Accepted) -> None:
        self._see(msg.min_n)
        if self.phase is not Phase.ACCEPT or msg.n != self.n:
            return
        if msg.min_n > msg.n:
            self._fail(msg.min_n)
            return
        self._accepts.add(msg.src)
        if len(self._accepts) >= self._quorum:
            value = self._proposed_value
            assert value is not None
            self.phase = Phase.DONE
            self.failures_in_a_row = 0
            self._outcomes.append(Outcome(msg.n, value, True, value == self.value))

    def _fail(self, refused_by: Ballot | None) -> None:
        """Pre-empted (``refused_by``: the higher ``min_n`` seen) or timed out (None)."""
        n = self.n
        assert n is not None
        if refused_by is not None:
            value = self._proposed_value if self.phase is Phase.ACCEPT else self.value
            assert value is not None
            self._outcomes.append(Outcome(refused_by, value, False, value == self.value))
        self.failures_in_a_row += 1
        window = self.config.backoff_ticks
        if window <= 0:
            self._start_round()
            return
        window <<= min(self.failures_in_a_row - 1, MAX_BACKOFF_DOUBLINGS)
        self.phase = Phase.WAITING
        self._retry_at = self.now_tick + self._rng.randint(1, window)

    # --- learner -----------------------------------------------------------------------------

    def _on_learn(self, msg: Learn) -> None:
        value, acceptors = self._learned.setdefault(msg.n, (msg.value, set()))
        acceptors.add(msg.src)
        if self.chosen is None and len(acceptors) >= self._quorum:
            self.chosen = value
            self.chosen_n = msg.n
            if self.phase is Phase.WAITING:
                self.phase = Phase.DONE
