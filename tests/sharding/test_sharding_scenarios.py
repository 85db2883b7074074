"""The sharding scenarios (CH-1, SHARD-1..3) run and reach the seed's outcome."""

from __future__ import annotations

import pytest

from kvorum.scenarios import get


@pytest.mark.parametrize("scenario_id", ["CH-1", "SHARD-1", "SHARD-2", "SHARD-3"])
def test_scenario_matches_the_seed(scenario_id: str) -> None:
    lines: list[str] = []
    verdict = get(scenario_id).run(lines.append)
    assert verdict.matches_seed, verdict.outcome
    assert len(lines) > 3


def test_ch1_prints_every_key_and_both_counts() -> None:
    lines: list[str] = []
    verdict = get("CH-1").run(lines.append)
    assert sum(line.startswith("key-") for line in lines) == 10
    assert "mod N moved" in verdict.outcome and "the ring" in verdict.outcome


def test_a_verdict_that_matches_the_seeds_point_still_names_each_figure_that_differs() -> None:
    from kvorum.scenarios.registry import Verdict

    plain = Verdict("x", matches_seed=True)
    assert plain.line("X-1").endswith("— matches the seed")
    differing = Verdict("x", matches_seed=True, differences=("moved 6/10 where the seed moved 9",))
    line = differing.line("X-1")
    assert "matches the seed" not in line and "moved 6/10 where the seed moved 9" in line
    assert Verdict("x", matches_seed=False).line("X-1").endswith("— differs from the seed")
