"""CASPaxos (Rystsov, 2018): a leaderless keyspace where every key is its own Paxos register.

Theory of operation: one :class:`CasPaxosCore` per (node, group) is that node's acceptor for
every key of the group and a proposer for the requests its clients send it — any node
proposes, there is no leader. A request (:meth:`CasPaxosCore.propose`) is a key, a change
(:mod:`.changes`) and a request id. The proposer runs the seed's two phases on that key:
prepare(n) to every acceptor; on a majority of promises it takes the state with the highest
``accept_n`` (the seed's adoption rule), applies the change, and sends accept(n, new state);
on a majority of acceptances the change is done and its result goes out in the ready.

- *Acceptors* follow :mod:`.acceptor`'s rules per key; their new state goes into the ready
  (``acceptor_writes``) so the host persists it before any reply is sent.
- *One round trip*: an accept also carries the proposer's next ballot (``next_n``), which the
  acceptor promises as it accepts. The proposer then holds a majority's promise for that
  ballot and knows their newest state, so its next change on the key goes straight to phase 2.
  Anyone else's higher ballot voids it: the accept is refused, and the proposer falls back to
  the full protocol.
- *Contention and loss*: a refused or silent round is retried with a higher ballot after a
  random back-off (a window that doubles per failure in a row) until the request's deadline;
  then the client is told the outcome is unknown. Retrying is safe because a register records
  each node's last applied change (:class:`~.changes.Register`): a retry that finds its own
  change already applied returns the recorded result instead of applying it again.
- A node's requests on one key run one at a time, in arrival order; different keys run
  concurrently.
- *Ballots* are (round, node id); rounds are reserved ahead in blocks and the reservation is
  in the ready to persist, so a restarted node never reuses a ballot
  (:class:`~.ballot.RoundReservation`).

Deleted keys are tombstones (a register with no value); the paper's garbage collection of
tombstones is not implemented yet.

Ready contract (:class:`CasReady`): persist ``acceptor_writes`` and ``round_reserved``
(fsynced), then send ``messages``, then hand ``results`` to the clients.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from random import Random

from kvorum.core.paxos.acceptor import AcceptorRules, AcceptorState, on_accept, on_prepare
from kvorum.core.paxos.ballot import Ballot, RoundReservation
from kvorum.core.paxos.basic import MAX_BACKOFF_DOUBLINGS, UnsafeSwitches
from kvorum.core.paxos.cas_messages import (
    CasAccept,
    CasAccepted,
    CasMessage,
    CasPrepare,
    CasPromise,
)
from kvorum.core.paxos.changes import (
    AppliedChange,
    Change,
    ChangeError,
    Register,
    Result,
    apply_change,
)
from kvorum.core.shape import NodeId, Ready

SlotState = AcceptorState[Register]
"""One key's acceptor state."""


@dataclass(frozen=True, slots=True)
class CasConfig:
    node_id: NodeId
    acceptors: tuple[NodeId, ...]
    retry_timeout_ticks: int = 5
    """A phase with no majority after this long is retried (messages were lost)."""
    backoff_ticks: int = 2
    """A refused round is retried after a random 0..w ticks; w starts here and doubles with
    each failure in a row (0: retry at once)."""
    request_timeout_ticks: int = 50
    """A request not done by then is answered "outcome unknown"."""
    one_round_trip: bool = True
    round_block: int = 64
    """Rounds reserved per persisted reservation."""
    unsafe: UnsafeSwitches = field(default_factory=UnsafeSwitches)


@dataclass(frozen=True, slots=True)
class CasResult:
    """The answer to one request."""

    request_id: int
    key: str
    result: Result = None
    error: str | None = None
    outcome_known: bool = True
    """False: the request timed out and may or may not have taken effect."""


@dataclass(slots=True)
class CasReady(Ready[CasMessage]):
    """Persist ``acceptor_writes`` and ``round_reserved``, then send, then answer."""

    acceptor_writes: dict[str, SlotState] = field(default_factory=dict)
    round_reserved: int | None = None
    results: list[CasResult] = field(default_factory=list)


class _Phase(Enum):
    PREPARE = 1
    ACCEPT = 2
    WAITING = 3


@dataclass(slots=True)
class _Request:
    request_id: int
    key: str
    change: Change
    deadline_tick: int


@dataclass(slots=True, eq=False)
class _Proposal:
    request: _Request
    change_id: int
    n: Ballot
    phase: _Phase
    phase_started_tick: int
    promises: dict[NodeId, CasPromise] = field(default_factory=dict)
    acks: set[NodeId] = field(default_factory=set)
    state: Register | None = None
    """The state sent in phase 2."""
    result: Result = None
    error: str | None = None
    next_n: Ballot | None = None
    failures: int = 0
    retry_at: int = 0


class CasPaxosCore:
    """One node's acceptor and proposer for a CASPaxos keyspace (see the module docstring)."""

    def __init__(
        self,
        config: CasConfig,
        rng: Random,
        *,
        acceptor_slots: Mapping[str, SlotState] | None = None,
        durable_round: int = 0,
    ) -> None:
        self.config = config
        self._rng = rng
        self._rules = AcceptorRules(config.unsafe.accept_below_min_n)
        self.slots: dict[str, SlotState] = dict(acceptor_slots or {})
        self._quorum = len(config.acceptors) // 2 + 1
        self._rounds = RoundReservation(durable_round, config.round_block)
        self.highest_round_seen = durable_round
        self.now_tick = 0
        self._queues: dict[str, deque[_Request]] = {}
        self._active: dict[str, _Proposal] = {}
        self._cache: dict[str, tuple[Ballot, Register]] = {}
        """Per key: a ballot a majority has promised us, and the newest state among them."""
        self._messages: list[CasMessage] = []
        self._writes: dict[str, SlotState] = {}
        self._results: list[CasResult] = []
        self.rounds_started = 0
        self.fast_rounds = 0

    @property
    def node_id(self) -> NodeId:
        return self.config.node_id

    # --- requests ----------------------------------------------------------------------------

    def propose(self, request_id: int, key: str, change: Change) -> None:
        """Apply ``change`` to ``key``; its :class:`CasResult` comes out in a later ready."""
        deadline_tick = self.now_tick + self.config.request_timeout_ticks
        request = _Request(request_id, key, change, deadline_tick)
        self._queues.setdefault(key, deque()).append(request)
        if key not in self._active:
            self._begin(key)

    @property
    def pending_requests(self) -> int:
        return len(self._active) + sum(len(q) for q in self._queues.values())

    # --- the core's shape --------------------------------------------------------------------

    def step(self, msg: CasMessage) -> None:
        if isinstance(msg, CasPrepare):
            self._on_prepare(msg)
        elif isinstance(msg, CasAccept):
            self._on_accept(msg)
        elif isinstance(msg, CasPromise):
            self._on_promise(msg)
        else:
            self._on_accepted(msg)

    def tick(self) -> None:
        self.now_tick = now = self.now_tick + 1
        for key, p in list(self._active.items()):
            if now >= p.request.deadline_tick:
                unknown = CasResult(p.request.request_id, key, None, "request timed out", False)
                self._finish(key, unknown)
            elif p.phase is _Phase.WAITING:
                if now >= p.retry_at:
                    self._attempt(p)
            elif now - p.phase_started_tick >= self.config.retry_timeout_ticks:
                self._refused(key, p, None)

    def has_ready(self) -> bool:
        return bool(self._messages or self._writes or self._results or self._rounds.pending)

    def ready(self) -> CasReady:
        rd = CasReady(self._messages, self._writes, self._rounds.pending, self._results)
        self._messages = []
        self._writes = {}
        self._results = []
        return rd

    def advance(self, ready: CasReady) -> None:
        if ready.round_reserved is not None:
            self._rounds.persisted(ready.round_reserved)

    # --- acceptor ----------------------------------------------------------------------------

    def _slot(self, key: str) -> SlotState:
        slot = self.slots.get(key)
        return slot if slot is not None else AcceptorState()

    def _store(self, key: str, before: SlotState, after: SlotState) -> None:
        if after != before:
            self.slots[key] = after
            self._writes[key] = after

    def _on_prepare(self, msg: CasPrepare) -> None:
        before = self._slot(msg.key)
        after = on_prepare(before, msg.n)
        self._store(msg.key, before, after)
        self._messages.append(
            CasPromise(
                self.node_id, msg.src, msg.key, msg.n, after.min_n, after.accept_n,
                after.accept_value,
            )
        )

    def _on_accept(self, msg: CasAccept) -> None:
        before = self._slot(msg.key)
        if before.accept_n == msg.n and before.accept_value == msg.state:
            ok, after = True, before  # a duplicate of what we already accepted
        else:
            after, ok = on_accept(before, msg.n, msg.state, self._rules)
            if ok and msg.next_n is not None and msg.next_n > after.min_n:
                after = AcceptorState(msg.next_n, after.accept_n, after.accept_value)
        self._store(msg.key, before, after)
        self._messages.append(CasAccepted(self.node_id, msg.src, msg.key, msg.n, ok, after.min_n))

    # --- proposer ----------------------------------------------------------------------------

    def _new_ballot(self) -> Ballot:
        round_ = self.highest_round_seen + 1
        self.highest_round_seen = round_
        self._rounds.cover(round_)
        return Ballot(round_, self.node_id)

    def _begin(self, key: str) -> None:
        queue = self._queues.get(key)
        if not queue:
            self._queues.pop(key, None)
            return
        request = queue.popleft()
        cached = self._cache.pop(key, None) if self.config.one_round_trip else None
        if cached is not None:
            n, state = cached
            p = _Proposal(request, n.round, n, _Phase.ACCEPT, self.now_tick)
            self._active[key] = p
            self.fast_rounds += 1
            self.rounds_started += 1
            self._send_accepts(p, state)
            return
        n = self._new_ballot()
        p = _Proposal(request, n.round, n, _Phase.PREPARE, self.now_tick)
        self._active[key] = p
        self._send_prepares(p)

    def _attempt(self, p: _Proposal) -> None:
        """A new round for the same request: a higher ballot, from phase 1."""
        p.n = self._new_ballot()
        p.phase = _Phase.PREPARE
        p.phase_started_tick = self.now_tick
        p.promises = {}
        p.acks = set()
        self._send_prepares(p)

    def _send_prepares(self, p: _Proposal) -> None:
        self.rounds_started += 1
        key = p.request.key
        for acceptor in self.config.acceptors:
            self._messages.append(CasPrepare(self.node_id, acceptor, key, p.n))

    def _send_accepts(self, p: _Proposal, base: Register) -> None:
        """Apply the request's change to ``base`` and send phase 2."""
        request = p.request
        mine = base.applied_by(self.node_id)
        if mine is not None and mine.change_id >= p.change_id:
            # An earlier round of this request was chosen after all: do not apply it twice;
            # writing the state back at this ballot makes sure it stays chosen.
            state, p.result = base, mine.result
        else:
            try:
                value, result, mutated = apply_change(request.change, base.value)
            except ChangeError as exc:
                # No effect, but the value it judged is confirmed like a read's: written
                # back at this ballot before the client hears of it.
                value, result, mutated = base.value, None, False
                p.error = str(exc)
            p.result = result
            entry = AppliedChange(self.node_id, p.change_id, result)
            state = base.with_applied(value, entry) if mutated else base
        p.state = state
        p.phase = _Phase.ACCEPT
        p.phase_started_tick = self.now_tick
        p.acks = set()
        p.next_n = None
        if self.config.one_round_trip:
            p.next_n = Ballot(p.n.round + 1, self.node_id)
            self.highest_round_seen = max(self.highest_round_seen, p.next_n.round)
            self._rounds.cover(p.next_n.round)
        for acceptor in self.config.acceptors:
            self._messages.append(
                CasAccept(self.node_id, acceptor, request.key, p.n, state, p.next_n)
            )

    def _see(self, n: Ballot) -> None:
        self.highest_round_seen = max(self.highest_round_seen, n.round)

    def _on_promise(self, msg: CasPromise) -> None:
        self._see(msg.min_n)
        p = self._active.get(msg.key)
        if p is None or p.phase is not _Phase.PREPARE or msg.n != p.n:
            return
        if msg.min_n != msg.n:
            self._refused(msg.key, p, msg.min_n)
            return
        p.promises[msg.src] = msg
        if len(p.promises) < self._quorum:
            return
        replies = list(p.promises.values())
        if self.config.unsafe.skip_adopt_highest:
            newest = min(replies, key=lambda r: r.accept_n)  # TEST ONLY: the oldest state
        else:
            newest = max(replies, key=lambda r: r.accept_n)
        self._send_accepts(p, newest.state if newest.state is not None else Register())

    def _on_accepted(self, msg: CasAccepted) -> None:
        self._see(msg.min_n)
        p = self._active.get(msg.key)
        if p is None or p.phase is not _Phase.ACCEPT or msg.n != p.n or msg.src in p.acks:
            return
        if not msg.ok:
            self._refused(msg.key, p, msg.min_n)
            return
        p.acks.add(msg.src)
        if len(p.acks) < self._quorum:
            return
        state = p.state
        assert state is not None
        if p.next_n is not None:
            self._cache[msg.key] = (p.next_n, state)
        self._finish(msg.key, CasResult(p.request.request_id, msg.key, p.result, p.error))

    def _refused(self, key: str, p: _Proposal, min_n: Ballot | None) -> None:
        """Pre-empted by ``min_n`` (or silence, None): retry later with a higher ballot."""
        self._cache.pop(key, None)
        p.failures += 1
        window = self.config.backoff_ticks << min(p.failures - 1, MAX_BACKOFF_DOUBLINGS)
        if window <= 0:
            self._attempt(p)
            return
        p.phase = _Phase.WAITING
        p.retry_at = self.now_tick + self._rng.randint(0, window)
        if p.retry_at <= self.now_tick:
            self._attempt(p)

    def _finish(self, key: str, result: CasResult) -> None:
        self._active.pop(key, None)
        if result.error is not None:
            self._cache.pop(key, None)
        self._results.append(result)
        self._begin(key)
