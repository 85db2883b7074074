"""Scenario DETECT-1 runs end to end and its verdict matches the seed."""

from __future__ import annotations

from kvorum.scenarios.registry import get


def test_detect1_matches_the_seed() -> None:
    lines: list[str] = []
    verdict = get("DETECT-1").run(lines.append)
    assert verdict.matches_seed, verdict.outcome
    odown = [i for i, line in enumerate(lines) if "+odown" in line]
    crash = next(i for i, line in enumerate(lines) if "the master crashes" in line)
    lone_sdown = next(i for i, line in enumerate(lines) if "s1: +sdown" in line)
    assert len(odown) == 1 and lone_sdown < crash < odown[0]
    assert sum("declared FAILED" in line for line in lines) == 1
    assert "did not make ODOWN" in verdict.outcome


def test_detect1_is_deterministic() -> None:
    first: list[str] = []
    second: list[str] = []
    get("DETECT-1").run(first.append)
    get("DETECT-1").run(second.append)
    assert first == second
