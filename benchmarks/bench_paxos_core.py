"""The seed's Paxos weaknesses, measured on the pure cores: round trips per chosen value, and
how often competing proposers livelock, with and without back-off, as proposers grow.

Theory of operation: nothing here is timed by a clock; the cores run on simulated ticks, so
the figures are counts and are the same on every machine.

*Round trips.* A round trip is one broadcast a proposer must wait on a majority for
(prepare, or accept). Basic Paxos with one proposer, and CASPaxos on one key, are driven with
every message delivered (a lossless network); the table counts round trips and messages per
chosen value: Basic Paxos; CASPaxos's first change on a key; repeated changes by the same
node (the one-round-trip path), and without that path; and two nodes alternating on one key,
which voids the path every time (the refused fast accept is one more round trip).

*Livelock.* Five acceptors, k = 2..8 proposers on other servers, each proposing its own
value at a random tick in 1..6. A pre-empted proposer starts a new round at once, or after a
random back-off (a window of 2 ticks doubling per failure in a row). Two networks: *lockstep*
— every message takes one tick, and the arrivals of a tick are delivered prepares first (the
adversary of PAXOS-LIVELOCK) — and *random* — every message takes 1..3 ticks. A trial
livelocks if nothing is chosen within 300 ticks. Reported per cell: the share of trials that
livelocked, and the median and 95th-percentile rounds (all proposers together) and ticks
until a value was chosen in the trials that ended.
"""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path

from benchmarks.run import machine_line
from kvorum.core.paxos import CasConfig, CasPaxosCore, Increment
from kvorum.core.paxos.basic_messages import Learn
from kvorum.core.paxos.cas_messages import CasAccept, CasMessage, CasPrepare
from kvorum.sim.paxos.scripted import ScriptedPaxos

ACCEPTORS = 5
MAX_TICKS = 300


def _basic_round_trips() -> tuple[float, float, float]:
    env = ScriptedPaxos(ACCEPTORS)
    env.propose(1, "X")
    while env.pool:
        env.deliver(lambda _m: True)
    rounds = env.rounds_started()
    learns = sum(1 for m in env.delivered if isinstance(m, Learn))
    return 2.0 * rounds, len(env.delivered) - learns, learns


def _cas_run(one_round_trip: bool, proposers: list[int], changes: int) -> tuple[float, float]:
    """Round trips and messages per change; each change runs alone to its answer (the
    network is ticked while a proposer backs off)."""
    nodes = tuple(range(1, ACCEPTORS + 1))
    cores = {
        i: CasPaxosCore(CasConfig(i, nodes, one_round_trip=one_round_trip), random.Random(i))
        for i in nodes
    }
    broadcasts = 0
    messages = 0
    for c in range(changes):
        proposer = proposers[c % len(proposers)]
        cores[proposer].propose(c, "k", Increment())
        queue: list[CasMessage] = []
        answered = False
        while not answered or queue:
            for core in cores.values():
                if core.has_ready():
                    rd = core.ready()
                    queue.extend(rd.messages)
                    answered |= any(r.request_id == c for r in rd.results)
                    core.advance(rd)
            if queue:
                msg = queue.pop(0)
                messages += 1
                if isinstance(msg, CasPrepare | CasAccept) and msg.dst == nodes[0]:
                    broadcasts += 1  # one per broadcast: count its copy to the first acceptor
                cores[msg.dst].step(msg)
            elif not answered:
                for core in cores.values():
                    core.tick()
    return broadcasts / changes, messages / changes


def _livelock_cell(
    proposers: int, backoff: bool, lockstep: bool, trials: int
) -> tuple[float, list[int], list[int]]:
    livelocked = 0
    rounds: list[int] = []
    ticks: list[int] = []
    for trial in range(trials):
        rng = random.Random(trial * 1_000 + proposers * 10 + backoff * 2 + lockstep)
        env = ScriptedPaxos(
            ACCEPTORS + proposers,
            acceptors=tuple(range(1, ACCEPTORS + 1)),
            backoff_ticks=2 if backoff else 0,
            seed=rng.getrandbits(32),
        )
        plan: dict[int, list[tuple[int, str]]] = {}
        for p in range(proposers):
            plan.setdefault(rng.randint(1, 6), []).append((ACCEPTORS + 1 + p, f"v{p}"))
        latency = (lambda: 1) if lockstep else partial(rng.randint, 1, 3)
        done = env.run_timed(MAX_TICKS, plan, latency)
        if done is None:
            livelocked += 1
        else:
            rounds.append(env.rounds_started())
            ticks.append(done)
    return livelocked / trials, rounds, ticks


def _p(values: list[int], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return str(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def run(results_dir: Path, quick: bool) -> None:
    trials = 10 if quick else 200
    changes = 10 if quick else 200
    lines = [
        "# Paxos's weaknesses, measured on the pure cores",
        "",
        machine_line(),
        "",
        "Counts on simulated ticks: no clock is read, so these figures do not depend on the",
        "machine. See benchmarks/bench_paxos_core.py for the method.",
        "",
        f"## Round trips per chosen value ({ACCEPTORS} acceptors, lossless network)",
        "",
        "| case | round trips / value | messages / value |",
        "|---|---:|---:|",
    ]
    rtt, msgs, learns = _basic_round_trips()
    lines.append(
        f"| Basic Paxos, one proposer (seed: two rounds) | {rtt:.2f} | {msgs:.0f}"
        f" (+{learns:.0f} to learners) |"
    )
    for label, fast, proposers, count in (
        ("CASPaxos, first change on a key", True, [1], 1),
        ("CASPaxos, repeated changes by one node (one-round-trip path)", True, [1], changes),
        ("CASPaxos, repeated changes by one node, path off", False, [1], changes),
        ("CASPaxos, two nodes alternating on one key", True, [1, 2], changes),
    ):
        per_rtt, per_msg = _cas_run(fast, proposers, count)
        lines.append(f"| {label} | {per_rtt:.2f} | {per_msg:.1f} |")
    lines += [
        "",
        f"## Livelock: {ACCEPTORS} acceptors, k proposers starting at random ticks 1..6,"
        f" {trials} trials per cell, livelock = nothing chosen in {MAX_TICKS} ticks",
        "",
        "| network | back-off | k | livelocked | rounds p50 | rounds p95 | ticks p50 |"
        " ticks p95 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    series: dict[tuple[bool, bool], list[tuple[int, float]]] = {}
    ks = [2, 4, 8] if quick else list(range(2, 9))
    for lockstep in (True, False):
        for backoff in (False, True):
            for k in ks:
                rate, rounds, ticks = _livelock_cell(k, backoff, lockstep, trials)
                series.setdefault((lockstep, backoff), []).append((k, rate))
                lines.append(
                    f"| {'lockstep' if lockstep else 'random 1..3'} |"
                    f" {'yes' if backoff else 'no'} | {k} | {100 * rate:.1f}% |"
                    f" {_p(rounds, 0.5)} | {_p(rounds, 0.95)} | {_p(ticks, 0.5)} |"
                    f" {_p(ticks, 0.95)} |"
                )
                print(lines[-1], flush=True)
    lines += [
        "",
        "A distinguished proposer (PAXOS-LIVELOCK) needs one round whatever k is: the others"
        " forward their values to it.",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    (results_dir / "paxos_core.md").write_text(table)
    _chart(series, results_dir / "paxos_core_livelock.png")


def _chart(series: dict[tuple[bool, bool], list[tuple[int, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for (lockstep, backoff), points in sorted(series.items()):
        network = "lockstep" if lockstep else "random 1..3 ticks"
        label = f"{network}, back-off {'on' if backoff else 'off'}"
        ax.plot([k for k, _ in points], [100 * r for _, r in points], marker="o", label=label)
    ax.set_xlabel("competing proposers")
    ax.set_ylabel(f"trials with nothing chosen in {MAX_TICKS} ticks (%)")
    ax.set_title("Basic Paxos livelock, 5 acceptors")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
