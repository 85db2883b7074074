"""Registry of seed scenarios.

A scenario is a function ``run(out) -> Verdict`` where ``out`` is a callable that prints one
line of the trace. Scenarios are registered by ID with :func:`scenario`; modules in this
package are discovered with :mod:`pkgutil`, so the registry has no hand-kept list.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

Printer = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a scenario ended: a short outcome, whether it shows what the seed says, and the
    figures that differ from the seed's even so (with why), so that "matches" never hides a
    different number."""

    outcome: str
    matches_seed: bool
    differences: tuple[str, ...] = ()

    def line(self, scenario_id: str) -> str:
        if not self.matches_seed:
            tail = "differs from the seed"
        elif self.differences:
            tail = "the seed's point holds, but not every figure: " + "; ".join(self.differences)
        else:
            tail = "matches the seed"
        return f"{scenario_id}: {self.outcome} — {tail}"


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    run: Callable[[Printer], Verdict]


_REGISTRY: dict[str, Scenario] = {}


def scenario(
    scenario_id: str, title: str
) -> Callable[[Callable[[Printer], Verdict]], Callable[[Printer], Verdict]]:
    """Register ``fn`` as the scenario ``scenario_id`` (IDs as in the seed's SCENARIOS.md)."""

    def register(fn: Callable[[Printer], Verdict]) -> Callable[[Printer], Verdict]:
        if scenario_id in _REGISTRY:
            raise ValueError(f"scenario {scenario_id} registered twice")
        _REGISTRY[scenario_id] = Scenario(scenario_id, title, fn)
        return fn

    return register


def _discover() -> None:
    import kvorum.scenarios as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "registry":
            importlib.import_module(f"{package.__name__}.{info.name}")


def _sort_key(scenario_id: str) -> tuple[str, int, str]:
    head, _, tail = scenario_id.rpartition("-")
    return (head, int(tail), "") if tail.isdigit() else (scenario_id, -1, tail)


def all_scenarios() -> list[Scenario]:
    """Every registered scenario, ordered by section and number."""
    _discover()
    return [_REGISTRY[k] for k in sorted(_REGISTRY, key=_sort_key)]


def get(scenario_id: str) -> Scenario:
    """The scenario with this ID (case-insensitive); KeyError if there is none."""
    _discover()
    key = scenario_id.upper()
    if key not in _REGISTRY:
        known = ", ".join(s.id for s in all_scenarios())
        raise KeyError(f"no scenario {scenario_id!r}; known: {known}")
    return _REGISTRY[key]
