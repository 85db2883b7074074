"""``kvorum sim raft``, ``kvorum sim paxos`` and ``kvorum sim gossip``: run many seeded
simulations and report violations with their seeds."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import click

from kvorum.cli._progress import Progress
from kvorum.core.gossip import GossipUnsafe
from kvorum.core.raft import UnsafeSwitches
from kvorum.sim.gossip import FAULT_KINDS as GOSSIP_FAULT_KINDS
from kvorum.sim.gossip import LIVENESS_BOUND_TICKS, GossipSimOptions
from kvorum.sim.gossip import parse_faults as parse_gossip_faults
from kvorum.sim.gossip import run_seed as run_gossip_seed
from kvorum.sim.gossip import run_seeds as run_gossip_seeds
from kvorum.sim.raft import FAULT_KINDS, RaftSimOptions, parse_faults, run_seed, run_seeds
from kvorum.sim.raft.cluster import HostSwitches
from kvorum.sim.runner import RunOptions, SimResult
from kvorum.sim.storage import STORAGE_KINDS

_BREAKS = {
    "election-restriction": "grant votes without the election restriction",
    "current-term-commit": "commit entries of earlier terms by counting",
    "persist-before-send": "send messages before their state is durable",
    "read-index": "serve reads locally, skipping ReadIndex",
    "torn-tail-repair": "refuse to open a WAL with a torn tail instead of cutting it",
}

_FAULT_LINES = "\n".join(
    f"  {k.name}{' [opt-in]' if not k.in_all else ''}\n"
    + textwrap.fill(k.help, width=76, initial_indent=" " * 6, subsequent_indent=" " * 6)
    for k in FAULT_KINDS
)

_RAFT_HELP = f"""Run SEEDS seeded Raft simulations; print every failure's seed and trace.

Each run: clients do reads, writes and compare-and-sets against a replicated KV store
while faults strike; invariants are checked after every event, the history for
linearizability at the end, and liveness once faults stop. Nodes keep their logs and
snapshots in the real WAL on a simulated disk that loses and tears unsynced writes at a
power cut (--storage memory: in-memory logs, faster, no disk faults). Ends with
"N seeds, V violations"; exits 1 on any violation.

\b
Fault kinds (--faults all = every kind not marked opt-in):
{_FAULT_LINES}
"""


@click.group("sim")
def command() -> None:
    """Deterministic, fault-injecting simulations of kvorum's protocols."""


@command.command("raft", help=_RAFT_HELP)
@click.option("--seeds", default=100, show_default=True, help="How many seeds to run.")
@click.option("--start", default=0, show_default=True, help="First seed.")
@click.option("--nodes", default=5, show_default=True, help="Cluster size.")
@click.option(
    "--groups", default=1, show_default=True, help="Raft groups per node (sharing its WAL)."
)
@click.option(
    "--faults",
    default="all",
    show_default=True,
    help="'all', 'none' or a comma list of the fault kinds above; 'all,lying-fsync' adds an"
    " opt-in kind to all.",
)
@click.option("--fault-gap-ticks", default=25, show_default=True, help="Mean ticks between faults.")
@click.option("--lease-reads", is_flag=True, help="Serve reads by leader lease, not ReadIndex.")
@click.option(
    "--storage",
    type=click.Choice(STORAGE_KINDS),
    default="durable",
    show_default=True,
    help="Where nodes keep their logs: the real WAL on a simulated disk, or memory.",
)
@click.option("--jobs", default=0, help="Worker processes (default: all cores).")
@click.option(
    "--break",
    "breaks",
    multiple=True,
    type=click.Choice(sorted(_BREAKS)),
    help="TEST ONLY: switch one safety rule off to show the checkers catch it.",
)
@click.option("--trace-lines", default=60, show_default=True, help="Trace lines shown per failure.")
@click.option("--show-trace", is_flag=True, help="Print the full trace of every seed run.")
def raft(
    seeds: int,
    start: int,
    nodes: int,
    groups: int,
    faults: str,
    fault_gap_ticks: int,
    lease_reads: bool,
    storage: str,
    jobs: int,
    breaks: tuple[str, ...],
    trace_lines: int,
    show_trace: bool,
) -> None:
    if nodes < 1:
        raise click.BadParameter("need at least one node", param_hint="--nodes")
    if groups < 1:
        raise click.BadParameter("need at least one group", param_hint="--groups")
    try:
        fault_set = parse_faults(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    options = RaftSimOptions(
        nodes=nodes,
        groups=groups,
        faults=fault_set,
        lease_reads=lease_reads,
        fault_gap_ticks=fault_gap_ticks,
        storage=storage,
        break_torn_tail_repair="torn-tail-repair" in breaks,
        unsafe=UnsafeSwitches(
            skip_election_restriction="election-restriction" in breaks,
            commit_any_term="current-term-commit" in breaks,
        ),
        host=HostSwitches(
            send_before_persist="persist-before-send" in breaks,
            stale_reads="read-index" in breaks,
        ),
        trace=show_trace,
    )
    for b in breaks:
        click.echo(f"WARNING: safety rule switched off for testing: {_BREAKS[b]}", err=True)
    flags = _flags(nodes, groups, faults, breaks, options)
    workers = jobs or (os.cpu_count() or 1)
    began = time.monotonic()
    ops = 0

    def count(result: SimResult) -> None:
        nonlocal ops
        ops += result.ops

    violations = _report_seeds(
        run_seeds(range(start, start + seeds), options, jobs=workers),
        SeedReport("raft", seeds, flags, trace_lines, show_trace, has_show_trace=True),
        rerun=lambda seed: run_seed(seed, replace(options, trace=True)).trace,
        on_result=count,
    )
    elapsed = time.monotonic() - began
    click.echo(f"({ops} client operations, {elapsed:.1f}s, {workers} workers)", err=True)
    click.echo(f"{seeds} seeds, {violations} violations")
    sys.exit(1 if violations else 0)


@dataclass(frozen=True, slots=True)
class SeedReport:
    """How ``kvorum sim <protocol>`` shows its seeds."""

    protocol: str
    total: int
    flags: str
    trace_lines: int
    show_trace: bool
    has_show_trace: bool


def _report_seeds(
    results: Iterable[SimResult],
    report: SeedReport,
    *,
    rerun: Callable[[int], list[str]],
    on_result: Callable[[SimResult], None],
) -> int:
    """Show each seed's result as it comes (progress at a terminal; every failure with its
    seed, the end of its trace and the command that reproduces it); how many failed."""
    violations = 0
    progress = Progress(report.total, "seeds")
    where = f"kvorum sim {report.protocol}"
    for done, result in enumerate(results):
        on_result(result)
        progress.update(done + 1, f"{violations} violations")
        if report.show_trace:
            progress.clear()
            click.echo("\n".join(result.trace))
        if result.ok:
            continue
        violations += 1
        progress.clear()
        # Runs are deterministic: re-run the failing seed with tracing on to show how it failed.
        trace = rerun(result.seed)
        again = f"{where} --start {result.seed} --seeds 1 {report.flags}"
        click.echo(f"--- seed {result.seed}: VIOLATION: {result.violation}")
        if report.has_show_trace:
            click.echo(
                f"    (last {report.trace_lines} trace lines; full trace: {again} --show-trace)"
            )
        else:
            click.echo(f"    (last {report.trace_lines} trace lines)")
        for line in trace[-report.trace_lines :]:
            click.echo("    " + line)
        click.echo(f"    reproduce: {again}")
    progress.clear()
    return violations


def _flags(
    nodes: int, groups: int, faults: str, breaks: tuple[str, ...], options: RaftSimOptions
) -> str:
    """Every flag a failing seed needs to run again exactly as it did."""
    defaults = RunOptions()
    parts = [f"--nodes {nodes}", f"--groups {groups}", f"--faults {faults}"]
    if options.fault_gap_ticks != defaults.fault_gap_ticks:
        parts.append(f"--fault-gap-ticks {options.fault_gap_ticks}")
    if options.lease_reads:
        parts.append("--lease-reads")
    if options.storage != defaults.storage:
        parts.append(f"--storage {options.storage}")
    parts += [f"--break {b}" for b in breaks]
    return " ".join(parts)


_PAXOS_BREAKS = {
    "acceptor-min-n": "acceptors accept proposals below their minN",
    "adopt-highest": "proposers skip adopting the accepted value with the highest acceptN",
}

_PAXOS_HELP = f"""Run SEEDS seeded CASPaxos simulations; print every failure's seed and trace.

Each run: a leaderless CASPaxos keyspace on NODES nodes, each an acceptor and a proposer;
many clients do reads, writes and compare-and-sets on a few keys through any node while
faults strike. Acceptors keep their state in checksummed records on a simulated disk that
loses and tears unsynced writes at a power cut. Checked: one value per (key, ballot),
chosen states never losing a change, the acceptor's minN rule (after every durable round),
every key's history linearizable (at the end), every node able to read every key once
faults stop. Ends with "N seeds, V violations"; exits 1 on any violation.

\b
Fault kinds (--faults all = every kind not marked opt-in):
{_FAULT_LINES}
"""


@command.command("paxos", help=_PAXOS_HELP)
@click.option("--seeds", default=100, show_default=True, help="How many seeds to run.")
@click.option("--start", default=0, show_default=True, help="First seed.")
@click.option("--nodes", default=5, show_default=True, help="Cluster size (acceptors).")
@click.option("--clients", default=8, show_default=True, help="Concurrent clients.")
@click.option("--keys", default=3, show_default=True, help="Keys the clients share.")
@click.option("--faults", default="all", show_default=True, help="'all', 'none' or a list.")
@click.option("--fault-gap-ticks", default=25, show_default=True, help="Mean ticks between faults.")
@click.option("--jobs", default=0, help="Worker processes (default: all cores).")
@click.option(
    "--break",
    "breaks",
    multiple=True,
    type=click.Choice(sorted(_PAXOS_BREAKS)),
    help="TEST ONLY: switch one Paxos rule off to show the checkers catch it.",
)
@click.option(
    "--no-rule-check",
    is_flag=True,
    help="Do not check the acceptor's minN rule directly (leave it to the other checkers).",
)
@click.option("--trace-lines", default=60, show_default=True, help="Trace lines shown per failure.")
def paxos(
    seeds: int,
    start: int,
    nodes: int,
    clients: int,
    keys: int,
    faults: str,
    fault_gap_ticks: int,
    jobs: int,
    breaks: tuple[str, ...],
    no_rule_check: bool,
    trace_lines: int,
) -> None:
    from kvorum.core.paxos import UnsafeSwitches as PaxosSwitches
    from kvorum.sim.paxos import PaxosSimOptions
    from kvorum.sim.paxos import parse_faults as parse_paxos_faults
    from kvorum.sim.paxos import run_seed as run_paxos_seed
    from kvorum.sim.paxos import run_seeds as run_paxos_seeds

    if nodes < 1:
        raise click.BadParameter("need at least one node", param_hint="--nodes")
    try:
        fault_set = parse_paxos_faults(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    options = PaxosSimOptions(
        nodes=nodes,
        clients=clients,
        keys=keys,
        faults=fault_set,
        fault_gap_ticks=fault_gap_ticks,
        check_acceptor_rules=not no_rule_check,
        unsafe=PaxosSwitches(
            accept_below_min_n="acceptor-min-n" in breaks,
            skip_adopt_highest="adopt-highest" in breaks,
        ),
        trace=False,
    )
    for b in breaks:
        click.echo(f"WARNING: Paxos rule switched off for testing: {_PAXOS_BREAKS[b]}", err=True)
    parts = [f"--nodes {nodes}", f"--clients {clients}", f"--keys {keys}", f"--faults {faults}"]
    if fault_gap_ticks != RunOptions().fault_gap_ticks:
        parts.append(f"--fault-gap-ticks {fault_gap_ticks}")
    parts += [f"--break {b}" for b in breaks]
    if no_rule_check:
        parts.append("--no-rule-check")
    flags = " ".join(parts)
    workers = jobs or (os.cpu_count() or 1)
    began = time.monotonic()
    ops = 0
    chosen = 0

    def count(result: SimResult) -> None:
        nonlocal ops, chosen
        ops += result.ops
        chosen += result.committed

    violations = _report_seeds(
        run_paxos_seeds(range(start, start + seeds), options, jobs=workers),
        SeedReport("paxos", seeds, flags, trace_lines, show_trace=False, has_show_trace=False),
        rerun=lambda seed: run_paxos_seed(seed, replace(options, trace=True)).trace,
        on_result=count,
    )
    elapsed = time.monotonic() - began
    click.echo(
        f"({ops} client operations, {chosen} (key, ballot) slots chosen, {elapsed:.1f}s,"
        f" {workers} workers)",
        err=True,
    )
    click.echo(f"{seeds} seeds, {violations} violations")
    sys.exit(1 if violations else 0)


_GOSSIP_BREAKS = {
    "ignore-refutations": "ignore refutations: a higher incarnation never clears a suspicion",
}

_GOSSIP_FAULT_LINES = "\n".join(
    f"  {k.name}\n"
    + textwrap.fill(k.help, width=76, initial_indent=" " * 6, subsequent_indent=" " * 6)
    for k in GOSSIP_FAULT_KINDS
)

_GOSSIP_HELP = f"""Run SEEDS seeded simulations of gossip membership (SWIM + Lifeguard).

Each run: 8 to 20 members (the seed picks; --nodes fixes it) join through one member each,
then faults strike for 600 ticks (10 ms each) while members probe, suspect, refute, join
and leave. Invariants are checked after every event; {LIVENESS_BOUND_TICKS} ticks after the
faults stop, every live member must see every other live member alive. Dead verdicts about
members that were in fact running (false deaths) are counted, not failed. Ends with
"N seeds, V violations"; exits 1 on any violation.

\b
Fault kinds (--faults all = every kind):
{_GOSSIP_FAULT_LINES}
"""


@command.command("gossip", help=_GOSSIP_HELP)
@click.option("--seeds", default=100, show_default=True, help="How many seeds to run.")
@click.option("--start", default=0, show_default=True, help="First seed.")
@click.option("--nodes", default=0, show_default=True, help="Members at start (0: 8-20).")
@click.option("--faults", default="all", show_default=True, help="'all', 'none' or a list.")
@click.option("--fault-gap-ticks", default=25, show_default=True, help="Mean ticks between faults.")
@click.option("--jobs", default=0, help="Worker processes (default: all cores).")
@click.option(
    "--break",
    "breaks",
    multiple=True,
    type=click.Choice(sorted(_GOSSIP_BREAKS)),
    help="TEST ONLY: switch one rule off to show the checkers catch it.",
)
@click.option("--trace-lines", default=60, show_default=True, help="Trace lines shown per failure.")
@click.option("--show-trace", is_flag=True, help="Print the full trace of every seed run.")
def gossip(
    seeds: int,
    start: int,
    nodes: int,
    faults: str,
    fault_gap_ticks: int,
    jobs: int,
    breaks: tuple[str, ...],
    trace_lines: int,
    show_trace: bool,
) -> None:
    try:
        fault_set = parse_gossip_faults(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    options = GossipSimOptions(
        nodes=nodes,
        faults=fault_set,
        fault_gap_ticks=fault_gap_ticks,
        unsafe=GossipUnsafe(ignore_refutations="ignore-refutations" in breaks),
        trace=show_trace,
    )
    for b in breaks:
        click.echo(f"WARNING: rule switched off for testing: {_GOSSIP_BREAKS[b]}", err=True)
    parts = [f"--faults {faults}"]
    if nodes:
        parts.append(f"--nodes {nodes}")
    if fault_gap_ticks != 25:
        parts.append(f"--fault-gap-ticks {fault_gap_ticks}")
    parts += [f"--break {b}" for b in breaks]
    flags = " ".join(parts)
    workers = jobs or (os.cpu_count() or 1)
    began = time.monotonic()
    totals: dict[str, int] = {}
    converge: list[int] = []

    def count(result: SimResult) -> None:
        for key, value in result.stats.items():
            totals[key] = totals.get(key, 0) + value
        if "ticks to converge after calm" in result.stats:
            converge.append(result.stats["ticks to converge after calm"])

    violations = _report_seeds(
        run_gossip_seeds(range(start, start + seeds), options, jobs=workers),
        SeedReport("gossip", seeds, flags, trace_lines, show_trace, has_show_trace=True),
        rerun=lambda seed: run_gossip_seed(seed, replace(options, trace=True)).trace,
        on_result=count,
    )
    elapsed = time.monotonic() - began
    converge.sort()
    if converge:
        p99 = converge[min(len(converge) - 1, len(converge) * 99 // 100)]
        click.echo(
            f"(converged after calm in {converge[len(converge) // 2]} ticks median,"
            f" {p99} p99, {converge[-1]} max; bound {LIVENESS_BOUND_TICKS})",
            err=True,
        )
    click.echo(
        f"({totals.get('dead verdicts', 0)} dead verdicts, "
        f"{totals.get('false dead verdicts', 0)} of them about running members"
        f" ({totals.get('false dead verdicts without a partition', 0)} with no partition); "
        f"{totals.get('odown verdicts', 0)} ODOWN, "
        f"{totals.get('false odown verdicts', 0)} of them about running members; "
        f"{elapsed:.1f}s, {workers} workers)",
        err=True,
    )
    click.echo(f"{seeds} seeds, {violations} violations")
    sys.exit(1 if violations else 0)
