"""A hand-driven network of Basic Paxos cores, for replaying the seed's examples message by message.

Theory of operation: :class:`ScriptedPaxos` holds one :class:`~kvorum.core.paxos.BasicPaxosCore`
per server and a pool of messages in flight. Nothing moves by itself: a script asks a server
to propose, then delivers chosen messages from the pool (:meth:`ScriptedPaxos.deliver`) in
the order the seed's figure shows. After every input the server's ready is carried out as a
host would — its acceptor state is "persisted" (recorded, and printed) *before* its messages
join the pool — so the trace shows the seed's rule that acceptors persist before replying.
Every line goes to the printer; what happened is also kept (``persisted``, ``delivered``,
``outcomes``) for the verdicts, which are computed from what the cores did.

:meth:`ScriptedPaxos.run_timed` is the other way to drive it: every message takes one tick,
messages due in the same tick are delivered prepares first (the adversary that makes two
proposers duel), and every core is ticked, until a value is chosen or time runs out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from kvorum.core.paxos.acceptor import AcceptorState
from kvorum.core.paxos.basic import BasicConfig, BasicPaxosCore, Outcome, UnsafeSwitches
from kvorum.core.paxos.basic_messages import (
    BasicMessage,
    Learn,
    Prepare,
    Value,
    describe,
)

Printer = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


@dataclass(slots=True)
class ScriptedPaxos:
    """Servers 1..n running Basic Paxos over a network a script drives (module docstring)."""

    servers: int
    out: Printer = _quiet
    acceptors: tuple[int, ...] = ()
    """Which servers are acceptors (default: all)."""
    show_learns: bool = False
    backoff_ticks: int = 0
    distinguished_proposer: int | None = None
    seed: int = 1
    unsafe: UnsafeSwitches = field(default_factory=UnsafeSwitches)
    """TEST ONLY: break a rule in every core."""
    cores: dict[int, BasicPaxosCore] = field(default_factory=dict)
    pool: list[BasicMessage] = field(default_factory=list)
    delivered: list[BasicMessage] = field(default_factory=list)
    persisted: list[tuple[int, AcceptorState[Value]]] = field(default_factory=list)
    outcomes: list[tuple[int, Outcome]] = field(default_factory=list)
    messages_sent: int = 0

    def __post_init__(self) -> None:
        ids = tuple(range(1, self.servers + 1))
        rng = random.Random(self.seed)
        for i in ids:
            config = BasicConfig(
                i,
                acceptors=self.acceptors or ids,
                backoff_ticks=self.backoff_ticks,
                distinguished_proposer=self.distinguished_proposer,
                retry_timeout_ticks=1_000_000,
                unsafe=self.unsafe,
            )
            self.cores[i] = BasicPaxosCore(config, random.Random(rng.getrandbits(64)))

    # --- inputs ------------------------------------------------------------------------------

    def propose(self, server: int, value: Value) -> None:
        self.out(f"S{server} proposes {value}")
        self.cores[server].propose(value)
        self._carry_out(server)

    def deliver(self, pick: Callable[[BasicMessage], bool], *, all_of: bool = True) -> int:
        """Deliver the pooled messages ``pick`` selects (the first one only unless
        ``all_of``), in pool order; returns how many."""
        chosen = [m for m in self.pool if pick(m)]
        if not all_of:
            chosen = chosen[:1]
        for msg in chosen:
            self.pool.remove(msg)
            self._deliver_one(msg)
        return len(chosen)

    def deliver_learns(self) -> None:
        """Deliver every Learn in the pool (quietly unless ``show_learns``)."""
        self.deliver(lambda m: isinstance(m, Learn))

    def drop(self, pick: Callable[[BasicMessage], bool]) -> int:
        """Drop the pooled messages ``pick`` selects (never delivered: the seed's figures
        leave them out)."""
        dropped = [m for m in self.pool if pick(m)]
        for msg in dropped:
            self.pool.remove(msg)
        return len(dropped)

    # --- timed driving -----------------------------------------------------------------------

    def run_timed(
        self,
        max_ticks: int,
        proposals: dict[int, list[tuple[int, Value]]] | None = None,
        latency_ticks: Callable[[], int] | None = None,
    ) -> int | None:
        """Tick the world until a value is chosen (returns the tick) or ``max_ticks`` pass;
        ``proposals`` maps a tick to the (server, value) proposals made at its start.

        A message sent in tick t arrives in tick t + ``latency_ticks()`` (default 1); the
        arrivals of one tick are delivered prepares first, so a prepare always beats an
        accept that arrives with it."""
        proposals = proposals or {}
        latency = latency_ticks or (lambda: 1)
        in_flight: list[tuple[int, int, BasicMessage]] = []
        seq = 0
        for tick in range(1, max_ticks + 1):
            due = sorted(
                (item for item in in_flight if item[0] <= tick),
                key=lambda item: (not isinstance(item[2], Prepare), item[1]),
            )
            in_flight = [item for item in in_flight if item[0] > tick]
            for _, _, msg in due:
                self._deliver_one(msg)
            for server, value in proposals.get(tick, []):
                self.propose(server, value)
            for server in self.cores:
                self.cores[server].tick()
                self._carry_out(server)
            for msg in self.pool:
                seq += 1
                in_flight.append((tick + latency(), seq, msg))
            self.pool = []
            if self.chosen_value() is not None:
                return tick
        return None

    # --- what happened -----------------------------------------------------------------------

    def chosen_value(self) -> Value | None:
        """The value a majority of acceptors accepted under one number, if any (seen from
        outside, as a model checker would)."""
        accepted: dict[object, tuple[Value, set[int]]] = {}
        for server, state in self.persisted:
            if state.accept_value is None:
                continue
            value, by = accepted.setdefault(state.accept_n, (state.accept_value, set()))
            by.add(server)
            if len(by) > len(self.acceptors or self.cores) // 2:
                return value
        return None

    def rounds_started(self) -> int:
        return sum(core.rounds_started for core in self.cores.values())

    # --- the host's part ---------------------------------------------------------------------

    def _deliver_one(self, msg: BasicMessage) -> None:
        self.delivered.append(msg)
        if not isinstance(msg, Learn) or self.show_learns:
            self.out("  " + describe(msg))
        self.cores[msg.dst].step(msg)
        self._carry_out(msg.dst)

    def _carry_out(self, server: int) -> None:
        core = self.cores[server]
        if not core.has_ready():
            return
        rd = core.ready()
        if rd.acceptor_state is not None:
            state = rd.acceptor_state
            self.persisted.append((server, state))
            acc = f"{state.accept_n}:{state.accept_value}" if state.accept_value else "none"
            self.out(f"    S{server} persists minN={state.min_n} accepted={acc} (fsync)")
        for outcome in rd.outcomes:
            self.outcomes.append((server, outcome))
            if outcome.chosen:
                self.out(f"    S{server}: majority accepted {outcome.n}:{outcome.value}"
                         f" -> {outcome.value} is CHOSEN")
            else:
                self.out(f"    S{server}: saw minN={outcome.n} > its n -> pre-empted,"
                         " must start a new round")
        self.pool.extend(rd.messages)
        self.messages_sent += len(rd.messages)
        core.advance(rd)
