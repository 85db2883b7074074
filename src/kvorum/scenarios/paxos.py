"""PAXOS-0..5 and PAXOS-LIVELOCK: the seed's Paxos examples, replayed message by message.

Theory of operation: each scenario drives pure :class:`~kvorum.core.paxos.BasicPaxosCore`
instances through a :class:`~kvorum.sim.paxos.scripted.ScriptedPaxos` network, delivering the
messages in the order of the seed's figure, and prints the trace: each message in the seed's
vocabulary (``prepare(n)``, ``accept(n:value)``, replies with ``minN``), each acceptor's
persisted state (before its reply leaves), and each proposer's verdict. Proposal numbers are
(round, server) pairs printed ``round.server``: the seed's ``n=1`` from S1 is ``1.1``, its
``n=2`` from S5 is ``1.5`` (higher, because the server id breaks the tie). Messages the
figure does not show (the prepares to the servers a proposer did not need) are never
delivered, and the trace says how many. The verdict is computed from what the cores did —
what they persisted, sent and decided — and says, point by point, what matched the seed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from kvorum.core.paxos.basic_messages import (
    Accept,
    Accepted,
    BasicMessage,
    Learn,
    Prepare,
    Promise,
    Value,
)
from kvorum.scenarios.registry import Printer, Verdict, scenario
from kvorum.sim.paxos.scripted import ScriptedPaxos

Pick = Callable[[BasicMessage], bool]


def _msgs(kind: type, src: int | None = None, dst: tuple[int, ...] | None = None) -> Pick:
    def pick(m: BasicMessage) -> bool:
        return (
            isinstance(m, kind)
            and (src is None or m.src == src)
            and (dst is None or m.dst in dst)
        )

    return pick


def _replies_to(src: int, kind: type, from_: tuple[int, ...] | None = None) -> Pick:
    def pick(m: BasicMessage) -> bool:
        return isinstance(m, kind) and m.dst == src and (from_ is None or m.src in from_)

    return pick


def _final_values(env: ScriptedPaxos) -> dict[int, Value | None]:
    return {i: core.acceptor.accept_value for i, core in env.cores.items()}


def _checks(out: Printer, checks: list[tuple[str, bool]]) -> bool:
    out("Against the seed:")
    for what, ok in checks:
        out(f"  [{'matches' if ok else 'DIFFERS'}] {what}")
    return all(ok for _, ok in checks)


def _leftover(out: Printer, env: ScriptedPaxos) -> None:
    env.deliver_learns()
    if env.pool:
        out(f"({len(env.pool)} messages the figure does not show were never delivered)")


def _round_trips(env: ScriptedPaxos, proposer: int) -> int:
    """Request/reply exchanges the proposer began: prepare and accept broadcasts."""
    prepares = {m.n for m in env.delivered if isinstance(m, Prepare) and m.src == proposer}
    accepts = {m.n for m in env.delivered if isinstance(m, Accept) and m.src == proposer}
    return len(prepares) + len(accepts)


# --- PAXOS-0 -----------------------------------------------------------------------------------


@scenario("PAXOS-0", "Plain write-to-a-majority: S3 applies two writes in the other order")
def paxos0(out: Printer) -> Verdict:
    out("Three servers; no consensus: each applies a write when it arrives and acks it.")
    out("Client A writes X, client B writes Y, each to all three servers; a write is done")
    out("once a majority (2 of 3) acked it.")
    applied: dict[int, list[str]] = {1: [], 2: [], 3: []}
    acks: dict[str, set[int]] = {"X": set(), "Y": set()}
    arrivals = [(1, "X"), (2, "X"), (3, "Y"), (1, "Y"), (2, "Y"), (3, "X")]
    for server, value in arrivals:
        applied[server].append(value)
        acks[value].add(server)
        out(f"  client {'A' if value == 'X' else 'B'} -> S{server} write {value}; S{server} applies"
            f" it (order so far {applied[server]}), acks")
    for value, by in acks.items():
        out(f"  write {value}: acked by {sorted(by)} -> a majority, reported done")
    final = {s: log[-1] for s, log in applied.items()}
    out(f"Final values: {', '.join(f'S{s}={v}' for s, v in final.items())}")
    both_majority = all(len(by) >= 2 for by in acks.values())
    s3_other_order = applied[3] == list(reversed(applied[1])) and applied[1] == applied[2]
    matches = _checks(out, [
        ("both writes reached a majority", both_majority),
        ("S3 applied them in the opposite order to S1/S2", s3_other_order),
        ("so the servers disagree on the final value", len(set(final.values())) > 1),
    ])
    return Verdict(
        f"orders S1={applied[1]} S2={applied[2]} S3={applied[3]}; final values disagree",
        matches,
    )


# --- PAXOS-1 -----------------------------------------------------------------------------------


@scenario("PAXOS-1", "Example 1: one proposer, three acceptors; X is chosen")
def paxos1(out: Printer) -> Verdict:
    out("P is S1; the three acceptors A are S2, S3, S4 (S1 proposes only).")
    env = ScriptedPaxos(4, out, acceptors=(2, 3, 4))
    env.propose(1, "X")
    out("1-2. P broadcasts prepare(n=1); each A has minN 0 < 1, sets minN=1:")
    env.deliver(_msgs(Prepare, 1))
    out("3. P gets a majority of promises with no accepted value: it uses its own X:")
    env.deliver(_msgs(Promise))
    out("4-5. P broadcasts accept(1:X); each A accepts (n >= minN) and replies minN=1:")
    env.deliver(_msgs(Accept, 1))
    out("6. P counts the replies; none has minN > 1:")
    env.deliver(_msgs(Accepted))
    _leftover(out, env)
    chosen = [o for s, o in env.outcomes if s == 1 and o.chosen]
    promises = [m for m in env.delivered if isinstance(m, Promise)]
    replies = [m for m in env.delivered if isinstance(m, Accepted)]
    persisted_min = [state.min_n for _, state in env.persisted]
    msgs = sum(1 for m in env.delivered if not isinstance(m, Learn))
    out(f"Measured: {_round_trips(env, 1)} round trips, {msgs} messages (learners aside);"
        " the seed: two phases.")
    matches = _checks(out, [
        ("every acceptor persisted minN=1 before replying",
         persisted_min[:3] == [promises[0].n] * 3),
        ("no promise carried an accepted value, so P used its own X",
         all(p.accept_value is None for p in promises)),
        ("every accept reply carried minN=1",
         len(replies) == 3 and all(r.min_n == r.n for r in replies)),
        ("X is chosen", len(chosen) == 1 and chosen[0].value == "X"),
        ("two round trips (prepare, accept)", _round_trips(env, 1) == 2),
    ])
    return Verdict("X chosen by S1 (P) in 2 round trips" if chosen else "nothing chosen", matches)


# --- PAXOS-2/3 ---------------------------------------------------------------------------------


def _s5_adopts_x(out: Printer, chosen_before: bool) -> Verdict:
    env = ScriptedPaxos(5, out)
    out("Five servers, each an acceptor. S1 proposes X, S5 proposes Y.")
    env.propose(1, "X")
    out("S1's prepare(1.1) reaches S1, S2, S3; they promise:")
    env.deliver(_msgs(Prepare, 1, (1, 2, 3)))
    env.deliver(_replies_to(1, Promise))
    if chosen_before:
        out("S1's accept(1.1:X) reaches S1, S2, S3; all accept, and X is chosen:")
        env.deliver(_msgs(Accept, 1, (1, 2, 3)))
        env.deliver(_replies_to(1, Accepted))
        # Learners hear of it later: S5 has not, so it still proposes.
    else:
        out("S1's accept(1.1:X) reaches S3 only so far: S3 accepts, X is not chosen yet:")
        env.deliver(_msgs(Accept, 1, (3,)))
    chosen_when_s5_asked = env.chosen_value()
    env.propose(5, "Y")
    out("S5's prepare(1.5) — the seed's n=2 — reaches S3, S4, S5:")
    env.deliver(_msgs(Prepare, 5, (3, 4, 5)))
    s3_promise = next(m for m in env.pool if isinstance(m, Promise) and m.src == 3 and m.dst == 5)
    out("S5 counts the promises; S3's carries 1.1:X:")
    env.deliver(_replies_to(5, Promise))
    if not chosen_before:
        out("Now S1's accept(1.1:X) reaches S1 and S2 (X becomes chosen):")
        env.deliver(_msgs(Accept, 1, (1, 2)))
        env.deliver(_replies_to(1, Accepted))
    out("S5's accept reaches S3, S4, S5:")
    s5_accept = next(m for m in env.pool if isinstance(m, Accept) and m.src == 5)
    env.deliver(_msgs(Accept, 5, (3, 4, 5)))
    env.deliver(_replies_to(5, Accepted))
    _leftover(out, env)
    values = _final_values(env)
    out("Final accepted values: " + ", ".join(f"S{s}={v}" for s, v in values.items()))
    s5 = [o for s, o in env.outcomes if s == 5 and o.chosen]
    checks = [
        (f"X {'was' if chosen_before else 'was not yet'} chosen when S5's prepare reached S3",
         (chosen_when_s5_asked == "X") == chosen_before),
        ("S3 answered S5 with its accepted 1.1:X",
         s3_promise.accept_n == (1, 1) and s3_promise.accept_value == "X"),
        ("S5 replaced its Y by X", s5_accept.value == "X"),
        ("all end with X", all(v == "X" for v in values.values())
         and bool(s5) and s5[0].value == "X"),
    ]
    matches = _checks(out, checks)
    return Verdict("X chosen; S5 adopted X from S3's promise and every server holds X", matches)


@scenario("PAXOS-2", "Example 2: X already chosen; S5's prepare(2) sees 1:X at S3 and adopts X")
def paxos2(out: Printer) -> Verdict:
    return _s5_adopts_x(out, chosen_before=True)


@scenario("PAXOS-3", "Example 3: X accepted by S3 but not yet chosen; S5 still adopts X")
def paxos3(out: Printer) -> Verdict:
    return _s5_adopts_x(out, chosen_before=False)


# --- PAXOS-4 -----------------------------------------------------------------------------------


@scenario("PAXOS-4", "Example 4: S5's prepare(2) reaches S3 before S1's accept; Y is chosen")
def paxos4(out: Printer) -> Verdict:
    env = ScriptedPaxos(5, out)
    out("Five servers. S1 proposes X, S5 proposes Y.")
    env.propose(1, "X")
    out("S1's prepare(1.1) reaches S1, S2, S3; they promise:")
    env.deliver(_msgs(Prepare, 1, (1, 2, 3)))
    env.deliver(_replies_to(1, Promise))
    out("S1's accept(1.1:X) reaches S1 and S2; S3's copy is still on the way:")
    env.deliver(_msgs(Accept, 1, (1, 2)))
    env.propose(5, "Y")
    out("S5's prepare(1.5) — the seed's n=2 — reaches S3 (before S1's accept), S4, S5:")
    env.deliver(_msgs(Prepare, 5, (3, 4, 5)))
    env.deliver(_replies_to(5, Promise))
    out("S1's accept(1.1:X) reaches S3: n=1.1 < minN=1.5, refused, reply minN=1.5:")
    env.deliver(_msgs(Accept, 1, (3,)))
    s3_reply = next(m for m in env.pool if isinstance(m, Accepted) and m.src == 3)
    env.deliver(_replies_to(1, Accepted))
    s1_failed = any(s == 1 and not o.chosen for s, o in env.outcomes)
    out("S5's accept(1.5:Y) reaches S3, S4, S5:")
    s5_accept = next(m for m in env.pool if isinstance(m, Accept) and m.src == 5)
    env.deliver(_msgs(Accept, 5, (3, 4, 5)))
    env.deliver(_replies_to(5, Accepted))
    chosen = env.chosen_value()
    out("Beyond the seed: S1 started its new round at once (prepare 2.1); let it run:")
    env.deliver(lambda m: isinstance(m, Prepare) and m.src == 1 and m.n.round == 2)
    env.deliver(_replies_to(1, Promise))
    env.deliver(lambda m: isinstance(m, Accept) and m.src == 1 and m.n.round == 2)
    env.deliver(_replies_to(1, Accepted))
    _leftover(out, env)
    values = _final_values(env)
    out("Final accepted values: " + ", ".join(f"S{s}={v}" for s, v in values.items()))
    matches = _checks(out, [
        ("S3 refused accept(1:X) and replied minN=2 (1.5)",
         s3_reply.min_n != s3_reply.n and s3_reply.min_n == (1, 5)),
        ("S1 saw minN > n: its proposal failed", s1_failed),
        ("S5 sent its own 2:Y (no accepted value in its promises)", s5_accept.value == "Y"),
        ("Y is chosen", chosen == "Y"),
        ("S1's new round adopts Y: every server ends with Y",
         all(v == "Y" for v in values.values())),
    ])
    return Verdict("Y chosen by S5; S1's accept refused at S3, its retry adopts Y", matches)


# --- PAXOS-5 -----------------------------------------------------------------------------------


@scenario("PAXOS-5", "PAXOS-0 under Paxos: the two writes are ordered the same everywhere")
def paxos5(out: Printer) -> Verdict:
    out("PAXOS-0's two writes again, now as Paxos proposals for log slot 1: client A's X")
    out("through S1, client B's Y through S3. One Paxos instance per slot; a proposer whose")
    out("value lost a slot proposes it again for the next.")
    logs: dict[int, list[Value]] = {1: [], 2: [], 3: []}
    out("-- slot 1")
    env = ScriptedPaxos(3, out)
    env.propose(1, "X")
    env.deliver(_msgs(Prepare, 1))
    env.deliver(_replies_to(1, Promise))
    out("S1's accept(1.1:X) reaches S1 and S2 (X accepted, not yet known as chosen):")
    env.deliver(_msgs(Accept, 1, (1, 2)))
    env.propose(3, "Y")
    out("S3's prepare(1.3) reaches S3 and S2 (as in example 3):")
    env.deliver(_msgs(Prepare, 3, (3, 2)))
    env.deliver(_replies_to(3, Promise))
    out("S1's accept reaches S3 late: refused (minN=1.3):")
    env.deliver(_msgs(Accept, 1, (3,)))
    env.deliver(_replies_to(1, Accepted))
    env.deliver(_msgs(Accept, 3))
    env.deliver(_replies_to(3, Accepted))
    env.deliver_learns()
    slot1 = env.chosen_value()
    s3_outcome = next((o for s, o in env.outcomes if s == 3 and o.chosen), None)
    for server, core in env.cores.items():
        if core.chosen is not None:
            logs[server].append(core.chosen)
    out(f"slot 1 chose {slot1}; S3 sees that its own Y lost the slot")
    out("-- slot 2: S3 proposes Y again")
    env2 = ScriptedPaxos(3, out)
    env2.propose(3, "Y")
    env2.deliver(_msgs(Prepare, 3))
    env2.deliver(_replies_to(3, Promise))
    env2.deliver(_msgs(Accept, 3))
    env2.deliver(_replies_to(3, Accepted))
    env2.deliver_learns()
    slot2 = env2.chosen_value()
    for server, core in env2.cores.items():
        if core.chosen is not None:
            logs[server].append(core.chosen)
    out("Logs learned: " + ", ".join(f"S{s}={log}" for s, log in logs.items()))
    same = logs[1] == logs[2] == logs[3] == ["X", "Y"]
    matches = _checks(out, [
        ("S3 adopted X for slot 1 (analysis as in example 3)",
         s3_outcome is not None and s3_outcome.value == "X" and not s3_outcome.own_value),
        ("slot 1 = X, slot 2 = Y", (slot1, slot2) == ("X", "Y")),
        ("S1, S2 and S3 apply the writes in the same order", same),
    ])
    return Verdict(f"every server's log is {logs[1]}: the order is agreed", matches)


# --- PAXOS-LIVELOCK ----------------------------------------------------------------------------

LIVELOCK_TICKS = 200
BACKOFF_SEEDS = 200


@scenario("PAXOS-LIVELOCK", "Two proposers pre-empt each other; back-off or a leader ends it")
def paxos_livelock(out: Printer) -> Verdict:
    out("Five servers; S1 proposes X at tick 1, S5 proposes Y at tick 3. Every message takes")
    out("one tick; a prepare arriving with an accept is delivered first (the adversary).")
    out("A pre-empted proposer starts a new round at once (no back-off). First 12 ticks:")
    lines: list[str] = []
    env = ScriptedPaxos(5, lines.append)
    proposals = {1: [(1, "X")], 3: [(5, "Y")]}
    tick = env.run_timed(LIVELOCK_TICKS, proposals)
    shown = ScriptedPaxos(5, out)
    shown.run_timed(12, proposals)
    rounds_duel = env.rounds_started()
    out(f"... after {LIVELOCK_TICKS} ticks: {rounds_duel} rounds started, chosen:"
        f" {env.chosen_value()}")
    out(f"Fix 1, randomized back-off (a pre-empted proposer waits 1..w ticks, w=2 doubling per"
        f" failure), {BACKOFF_SEEDS} seeds:")
    rounds: list[int] = []
    ticks: list[int] = []
    unresolved = 0
    for seed in range(BACKOFF_SEEDS):
        fixed = ScriptedPaxos(5, backoff_ticks=2, seed=seed)
        done = fixed.run_timed(LIVELOCK_TICKS, proposals)
        if done is None:
            unresolved += 1
            continue
        rounds.append(fixed.rounds_started())
        ticks.append(done)
    out(f"  chosen in every seed but {unresolved}; rounds (both proposers) median"
        f" {statistics.median(rounds)}, mean {statistics.mean(rounds):.2f}, max {max(rounds)};"
        f" ticks median {statistics.median(ticks)}, max {max(ticks)}")
    out("Fix 2, a distinguished proposer: S1 alone proposes; S5 forwards Y to it:")
    leader = ScriptedPaxos(5, out, distinguished_proposer=1)
    led_tick = leader.run_timed(LIVELOCK_TICKS, proposals)
    out(f"  chosen {leader.chosen_value()} at tick {led_tick} after"
        f" {leader.rounds_started()} round(s)")
    matches = _checks(out, [
        (f"with no back-off nothing is chosen in {LIVELOCK_TICKS} ticks"
         f" ({rounds_duel} rounds)", tick is None and env.chosen_value() is None),
        ("randomized back-off ends the duel in every seed", unresolved == 0),
        ("a distinguished proposer ends it in one round", leader.rounds_started() == 1
         and leader.chosen_value() is not None),
    ])
    return Verdict(
        f"livelock for {LIVELOCK_TICKS} ticks ({rounds_duel} rounds); back-off: median"
        f" {statistics.median(rounds)} rounds; distinguished proposer: 1 round",
        matches,
    )
