"""docs/scenarios.md is the user's catalogue of the seed's examples: every scenario that
``kvorum scenario list`` offers must be in it."""

from __future__ import annotations

import re
from pathlib import Path

from kvorum.scenarios.registry import all_scenarios

CATALOGUE = Path(__file__).resolve().parents[1] / "docs" / "scenarios.md"


def _listed_ids() -> set[str]:
    ids: set[str] = set()
    for cell in re.findall(r"^\| ([A-Z]+(?:-[A-Z0-9.]+)?) \|", CATALOGUE.read_text(), re.M):
        family, _, span = cell.partition("-")
        if ".." in span:  # "LB-1..7"
            lo, hi = span.split("..")
            ids.update(f"{family}-{i}" for i in range(int(lo), int(hi) + 1))
        else:
            ids.add(cell)
    return ids


def test_every_runnable_scenario_is_in_the_catalogue() -> None:
    missing = {s.id for s in all_scenarios()} - _listed_ids()
    assert not missing, f"add these to docs/scenarios.md: {sorted(missing)}"
