"""The ID-1..ID-4 scenarios run and their measured verdicts match the seed."""

from __future__ import annotations

import pytest

from kvorum.scenarios.registry import get


@pytest.mark.parametrize("scenario_id", ["ID-1", "ID-2", "ID-3", "ID-4"])
def test_id_scenario_matches_the_seed(scenario_id: str) -> None:
    lines: list[str] = []
    verdict = get(scenario_id).run(lines.append)
    assert verdict.matches_seed, verdict.outcome
    assert len(lines) >= 5  # a readable trace, not just a verdict


def test_id_scenarios_are_deterministic() -> None:
    first: list[str] = []
    second: list[str] = []
    get("ID-3").run(first.append)
    get("ID-3").run(second.append)
    assert first == second
