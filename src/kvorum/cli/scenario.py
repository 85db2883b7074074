"""``kvorum scenario list`` and ``kvorum scenario run ID``: the seed's examples, by ID."""

from __future__ import annotations

import sys

import click

from kvorum.scenarios import all_scenarios, get


@click.group("scenario")
def command() -> None:
    """Run the seed document's examples (IDs as in SCENARIOS.md)."""


@command.command("list")
def list_scenarios() -> None:
    """List every scenario ID with its title."""
    for s in all_scenarios():
        click.echo(f"{s.id:<16} {s.title}")


@command.command("run")
@click.argument("scenario_ids", nargs=-1, required=True)
def run(scenario_ids: tuple[str, ...]) -> None:
    """Run scenarios (or ``all``); exit 1 if any outcome differs from the seed."""
    wanted = [s.id for s in all_scenarios()] if scenario_ids == ("all",) else list(scenario_ids)
    failed = 0
    for scenario_id in wanted:
        try:
            s = get(scenario_id)
        except KeyError as exc:
            raise click.UsageError(str(exc.args[0])) from None
        click.echo(f"== {s.id}: {s.title}")
        verdict = s.run(click.echo)
        click.echo(verdict.line(s.id))
        failed += not verdict.matches_seed
    sys.exit(1 if failed else 0)
