"""GOSSIP-1..3 run end to end, match the seed, and print the figures they claim."""

from __future__ import annotations

import pytest

from kvorum.scenarios.registry import get
from kvorum.sim.gossip.rumour import RumourSim, expected_rounds, mean_field_rounds


@pytest.mark.parametrize("scenario_id", ["GOSSIP-1", "GOSSIP-2", "GOSSIP-3"])
def test_gossip_scenarios_match_the_seed(scenario_id: str) -> None:
    lines: list[str] = []
    verdict = get(scenario_id).run(lines.append)
    assert verdict.matches_seed, verdict.outcome
    assert lines


def test_gossip2_shows_a_path_that_avoids_the_cut_link() -> None:
    lines: list[str] = []
    get("GOSSIP-2").run(lines.append)
    path_line = next(line for line in lines if "by the path" in line)
    path = path_line.split("by the path ")[1].split(";")[0].split(" -> ")
    assert path[0] == "n1" and path[-1] == "n2" and len(path) >= 3


def test_the_model_agrees_with_its_mean_field_curve() -> None:
    for n in (40, 80):
        assert abs(expected_rounds(n, 4) - mean_field_rounds(n, 4)) < 0.5
    assert expected_rounds(80, 4) > expected_rounds(40, 4)


def test_a_cut_off_node_never_learns() -> None:
    sim = RumourSim(1, 6, 2)
    for other in range(1, 6):
        sim.cut(6, other)
    spread = sim.spread(1, max_rounds=20)
    assert spread.rounds is None
    assert 1 not in sim.cores[6].heard
