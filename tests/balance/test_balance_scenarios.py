"""The seed's load-balancing scenarios LB-1..LB-7 run and match the seed."""

from __future__ import annotations

import pytest

from kvorum.scenarios.registry import get


@pytest.mark.parametrize("scenario_id", [f"LB-{i}" for i in range(1, 8)])
def test_scenario_matches_seed(scenario_id: str) -> None:
    lines: list[str] = []
    verdict = get(scenario_id).run(lines.append)
    assert verdict.matches_seed, "\n".join([*lines, verdict.outcome])
    assert len(lines) >= 2  # it printed the picks it made
