"""Linearizability checking: how fast a history is accepted, and how fast a violation is found.

Theory of operation: histories come from a seeded *sequential* execution — operation j takes
effect at tick 10·j on a dict — whose intervals are then widened at random by up to
``WIDEN_TICKS`` on each side (five clients, so about six operations overlap at any moment),
keeping every client sequential. A share of operations ends with an unknown outcome (half of
those took effect, half never did), as when clients time out or crash. Values come from a
small set (0–3), which makes the search work hardest: many orders look plausible for a while.

Each history is checked as is (it is linearizable: the cost of a passing run, what the
simulator pays on every seed), then with one read in the middle changed to a value never
written (the cost of refuting it and shrinking the witness, paid only on failing seeds).
Costs are CPU time of this process (``time.process_time``), the median over a few seeds, and
search steps (tentative linearizations), which do not depend on the machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from random import Random

from benchmarks.run import machine_line
from kvorum.sim.linearizability import (
    DEFAULT_MAX_SEARCH_STEPS_PER_KEY,
    Cas,
    Operation,
    Outcome,
    Read,
    Write,
    check_history,
)

CLIENTS = 5
WIDEN_TICKS = 30
NEVER_WRITTEN = "never-written"


def sequential_history(rng: Random, operations: int, keys: int,
                       unknown_ratio: float) -> list[Operation]:
    """A linearizable history: see the module docstring."""
    register: dict[str, int] = {}
    plan: list[tuple[int, int, str, Read | Write | Cas, bool, int | bool | None]] = []
    for j in range(operations):
        key = f"k{rng.randrange(keys)}"
        roll = rng.random()
        kind: Read | Write | Cas
        if roll < 0.4:
            kind = Read()
        elif roll < 0.7:
            kind = Write(rng.randrange(4))
        else:
            kind = Cas(rng.choice([None, 0, 1, 2, 3]), rng.randrange(4))
        fate = rng.random()
        known = fate >= unknown_ratio
        result: int | bool | None = None
        if known or fate < unknown_ratio / 2:  # took effect
            current = register.get(key)
            if isinstance(kind, Read):
                result = current
            elif isinstance(kind, Write):
                register[key] = kind.value  # type: ignore[assignment]
            else:
                result = current == kind.expected
                if result:
                    register[key] = kind.new  # type: ignore[assignment]
        plan.append((10 * j, rng.randrange(CLIENTS), key, kind, known, result))

    history: list[Operation] = []
    for client in range(CLIENTS):
        mine = [entry for entry in plan if entry[1] == client]
        free_tick = -WIDEN_TICKS - 1
        for index, (point, _, key, kind, known, result) in enumerate(mine):
            invoke = rng.randint(max(free_tick, point - WIDEN_TICKS), point)
            if not known:
                history.append(Operation(client, key, kind, invoke))
                free_tick = invoke
                continue
            latest = mine[index + 1][0] if index + 1 < len(mine) else point + WIDEN_TICKS
            complete = rng.randint(point, min(latest, point + WIDEN_TICKS))
            history.append(Operation(client, key, kind, invoke, complete, result))
            free_tick = complete
    history.sort(key=lambda op: op.invoke_tick)
    return history


def with_bad_read(history: list[Operation]) -> list[Operation]:
    """The same history with its middle completed read returning a value never written."""
    reads = [i for i, op in enumerate(history) if isinstance(op.kind, Read) and op.outcome_known]
    victim = reads[len(reads) // 2]
    op = history[victim]
    broken = list(history)
    broken[victim] = Operation(op.client_id, op.key, op.kind, op.invoke_tick, op.complete_tick,
                               NEVER_WRITTEN)
    return broken


@dataclass(frozen=True, slots=True)
class Row:
    """Medians over seeds for one history shape."""

    operations: int
    keys: int
    unknown_ratio: float
    pass_steps: int
    pass_ms: float
    fail_steps: int
    fail_ms: float
    fail_outcomes: str
    witness_sizes: str


def _timed(history: list[Operation]) -> tuple[Outcome, int, float, int]:
    start = time.process_time()
    result = check_history(history)
    elapsed_ms = (time.process_time() - start) * 1000
    return result.outcome, result.search_steps, elapsed_ms, len(result.witness)


def measure(operations: int, keys: int, unknown_ratio: float, seeds: int) -> Row:
    passes: list[tuple[int, float]] = []
    fails: list[tuple[int, float]] = []
    outcomes: list[str] = []
    witnesses: list[str] = []
    for seed in range(seeds):
        history = sequential_history(Random(seed), operations, keys, unknown_ratio)
        outcome, steps, elapsed_ms, _ = _timed(history)
        assert outcome is Outcome.LINEARIZABLE, f"seed {seed}: a sequential history was refused"
        passes.append((steps, elapsed_ms))
        outcome, steps, elapsed_ms, witness_size = _timed(with_bad_read(history))
        assert outcome is not Outcome.LINEARIZABLE, f"seed {seed}: a bad read was accepted"
        fails.append((steps, elapsed_ms))
        outcomes.append("V" if outcome is Outcome.VIOLATION else "?")
        witnesses.append(str(witness_size) if outcome is Outcome.VIOLATION else "-")
    passes.sort()
    fails.sort()
    middle = seeds // 2
    return Row(operations, keys, unknown_ratio,
               pass_steps=passes[middle][0], pass_ms=sorted(ms for _, ms in passes)[middle],
               fail_steps=fails[middle][0], fail_ms=sorted(ms for _, ms in fails)[middle],
               fail_outcomes="".join(outcomes), witness_sizes=",".join(witnesses))


def run(results_dir: Path, quick: bool) -> None:
    lengths = (50, 100) if quick else (100, 200, 400, 800)
    ratios = (0.0, 0.1) if quick else (0.0, 0.02, 0.05, 0.1)
    seeds = 1 if quick else 5
    shapes = [(n, 1, ratio) for ratio in ratios for n in lengths]
    shapes.append((200, 4, 0.05) if quick else (4000, 20, 0.05))

    rows = []
    for operations, keys, ratio in shapes:
        row = measure(operations, keys, ratio, seeds)
        rows.append(row)
        print(f"  {operations:>5} ops {keys:>2} keys {ratio:>4.0%} unknown: pass"
              f" {row.pass_ms:8.1f} ms, fail {row.fail_ms:8.1f} ms [{row.fail_outcomes}]",
              flush=True)

    lines = [
        "# Linearizability checker: cost of a passing and of a failing history",
        "",
        machine_line(),
        "",
        f"{CLIENTS} clients, intervals widened by up to {WIDEN_TICKS} ticks around points 10"
        " ticks apart, values 0–3; median of"
        f" {seeds} seeds (CPU time). *Fail* = the same history with its middle read changed to"
        " a value never written: refuting it and shrinking the witness. Outcomes per seed:"
        " V = violation found, ? = search budget"
        f" ({DEFAULT_MAX_SEARCH_STEPS_PER_KEY:,} steps per key) ran out.",
        "",
        "| ops | keys | unknown outcome | pass steps | pass ms | pass ops/s |"
        " fail steps | fail ms | fail outcomes | witness ops |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        ops_per_s = row.operations / (row.pass_ms / 1000) if row.pass_ms > 0 else float("inf")
        lines.append(
            f"| {row.operations} | {row.keys} | {row.unknown_ratio:.0%} | {row.pass_steps:,} |"
            f" {row.pass_ms:,.1f} | {ops_per_s:,.0f} | {row.fail_steps:,} | {row.fail_ms:,.1f} |"
            f" {row.fail_outcomes} | {row.witness_sizes} |"
        )
    if quick:
        lines += ["", "(quick smoke run: not results)"]
    table = "\n".join(lines) + "\n"
    print(table)
    (results_dir / "linearizability.md").write_text(table)
    _chart([row for row in rows if row.keys == 1], ratios, results_dir / "linearizability.png")


def _chart(rows: list[Row], ratios: tuple[float, ...], path: Path) -> None:
    # Imported here so the backend is chosen before pyplot loads.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (passing, failing) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ratio in ratios:
        mine = [row for row in rows if row.unknown_ratio == ratio]
        lengths = [row.operations for row in mine]
        label = f"{ratio:.0%} unknown outcomes"
        passing.plot(lengths, [max(row.pass_ms, 0.01) for row in mine], marker="o", label=label)
        failing.plot(lengths, [max(row.fail_ms, 0.01) for row in mine], marker="o", label=label)
        for row in mine:
            if "?" in row.fail_outcomes:
                failing.annotate(f"budget ran out on {row.fail_outcomes.count('?')} seed(s)",
                                 (row.operations, max(row.fail_ms, 0.01)), fontsize=7,
                                 textcoords="offset points", xytext=(-150, 4))
    passing.set_title("linearizable history: check")
    failing.set_title("one bad read: refute + shrink witness")
    for ax in (passing, failing):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("operations on one key (5 clients)")
        ax.grid(True, which="both", alpha=0.3)
    passing.set_ylabel("CPU ms (median of seeds)")
    failing.legend(fontsize=8)
    fig.suptitle("kvorum.sim.linearizability")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
