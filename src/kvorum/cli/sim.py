"""``kvorum sim raft``: run many seeded simulations and report violations with their seeds."""

from __future__ import annotations

import os
import sys
import time

import click

from kvorum.core.raft import UnsafeSwitches
from kvorum.sim.faults import FAULT_KINDS, parse_faults
from kvorum.sim.raft_cluster import HostSwitches
from kvorum.sim.raft_sim import SimOptions, run_seed, run_seeds

_BREAKS = {
    "election-restriction": "grant votes without the election restriction",
    "current-term-commit": "commit entries of earlier terms by counting",
    "persist-before-send": "send messages before their state is durable",
    "read-index": "serve reads locally, skipping ReadIndex",
}


@click.group("sim")
def command() -> None:
    """Deterministic, fault-injecting simulations of kvorum's protocols."""


@command.command("raft")
@click.option("--seeds", default=100, show_default=True, help="How many seeds to run.")
@click.option("--start", default=0, show_default=True, help="First seed.")
@click.option("--nodes", default=5, show_default=True, help="Cluster size.")
@click.option(
    "--groups", default=1, show_default=True, help="Raft groups per node (a shared log each)."
)
@click.option(
    "--faults",
    default="all",
    show_default=True,
    help=f"'all', 'none' or a comma list of: {', '.join(FAULT_KINDS)} (reorder = delay).",
)
@click.option("--fault-gap-ticks", default=25, show_default=True, help="Mean ticks between faults.")
@click.option("--lease-reads", is_flag=True, help="Serve reads by leader lease, not ReadIndex.")
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
    jobs: int,
    breaks: tuple[str, ...],
    trace_lines: int,
    show_trace: bool,
) -> None:
    """Run SEEDS seeded Raft simulations; print every failure's seed and trace.

    Each run: clients do reads, writes and compare-and-sets against a replicated KV store
    while faults strike; invariants are checked after every event, the history for
    linearizability at the end, and liveness once faults stop. Ends with
    "N seeds, V violations"; exits 1 on any violation.
    """
    if nodes < 1:
        raise click.BadParameter("need at least one node", param_hint="--nodes")
    if groups < 1:
        raise click.BadParameter("need at least one group", param_hint="--groups")
    try:
        fault_set = parse_faults(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    options = SimOptions(
        nodes=nodes,
        groups=groups,
        faults=fault_set,
        lease_reads=lease_reads,
        fault_gap_ticks=fault_gap_ticks,
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
    workers = jobs or (os.cpu_count() or 1)
    began = time.monotonic()
    violations = 0
    ops = 0
    for result in run_seeds(range(start, start + seeds), options, jobs=workers):
        ops += result.ops
        if show_trace:
            click.echo("\n".join(result.trace))
        if result.ok:
            continue
        violations += 1
        # Runs are deterministic: re-run the failing seed with tracing on to show how it failed.
        traced = run_seed(result.seed, _with_trace(options))
        click.echo(f"--- seed {result.seed}: VIOLATION: {result.violation}")
        click.echo(
            f"    (last {trace_lines} trace lines; full trace: kvorum sim raft --start "
            f"{result.seed} --seeds 1 --nodes {nodes} --groups {groups} --faults {faults}"
            " --show-trace"
            + "".join(f" --break {b}" for b in breaks)
            + ")"
        )
        for line in traced.trace[-trace_lines:]:
            click.echo("    " + line)
        click.echo(
            f"    reproduce: kvorum sim raft --start {result.seed} --seeds 1 "
            f"--nodes {nodes} --groups {groups} --faults {faults}"
            + "".join(f" --break {b}" for b in breaks)
        )
    elapsed = time.monotonic() - began
    click.echo(f"({ops} client operations, {elapsed:.1f}s, {workers} workers)", err=True)
    click.echo(f"{seeds} seeds, {violations} violations")
    sys.exit(1 if violations else 0)


def _with_trace(options: SimOptions) -> SimOptions:
    from dataclasses import replace

    return replace(options, trace=True)
