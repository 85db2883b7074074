"""The ``kvorum`` command line.

Theory of operation: each module in this package defines one top-level command as a module
attribute ``command`` (a :class:`click.Command` or group). :func:`main` discovers them with
:mod:`pkgutil`, so adding a command never means editing a central list that several people
touch at once.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

from kvorum.corebuild import describe_raft_core


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name="kvorum", message=f"%(prog)s %(version)s (Raft core: {describe_raft_core()})"
)
def cli() -> None:
    """kvorum: a Raft-replicated, Redis-compatible key-value store and distributed-systems
    toolkit."""


def _register_commands() -> None:
    import kvorum.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            cli.add_command(command)


def main() -> None:
    _register_commands()
    cli()
