"""RAFT-1..RAFT-4 run on real cores, print a trace and reach the seed's outcome."""

from __future__ import annotations

import pytest

from kvorum.scenarios.registry import get


@pytest.mark.parametrize("scenario_id", ["RAFT-1", "RAFT-2", "RAFT-3", "RAFT-4"])
def test_raft_scenario_matches_the_seed(scenario_id: str) -> None:
    lines: list[str] = []
    verdict = get(scenario_id).run(lines.append)
    assert verdict.matches_seed, verdict.outcome
    assert len(lines) >= 20  # a step-by-step trace, not just a verdict
    assert any(" term=" in line and "->" in line for line in lines)  # real messages


def test_raft_scenarios_are_deterministic() -> None:
    first: list[str] = []
    second: list[str] = []
    get("RAFT-1").run(first.append)
    get("RAFT-1").run(second.append)
    assert first == second


def test_raft3_shows_both_stale_candidates_refused() -> None:
    lines: list[str] = []
    get("RAFT-3").run(lines.append)
    text = "\n".join(lines)
    assert "2->1 RequestVote term=3 last=2:4" in text
    assert "1->2 RequestVoteResponse term=3 refused" in text
    assert "1->5 RequestVoteResponse term=4 refused" in text


def test_raft4_shows_the_seed_messages() -> None:
    lines: list[str] = []
    get("RAFT-4").run(lines.append)
    text = "\n".join(lines)
    assert "1->2 AppendEntries term=3 prev=2:3 entries=[3:4]" in text
    assert "1->3 AppendEntries term=3 prev=1:2 entries=[2:3 3:4 3:5]" in text
