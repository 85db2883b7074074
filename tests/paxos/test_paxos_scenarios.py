"""PAXOS-0..5 and PAXOS-LIVELOCK run, match the seed point by point, and print the seed's
messages in the seed's order."""

from __future__ import annotations

import pytest

from kvorum.scenarios import get
from kvorum.sim.paxos.scripted import ScriptedPaxos

IDS = ["PAXOS-0", "PAXOS-1", "PAXOS-2", "PAXOS-3", "PAXOS-4", "PAXOS-5", "PAXOS-LIVELOCK"]


def run(scenario_id: str) -> tuple[list[str], bool, str]:
    lines: list[str] = []
    verdict = get(scenario_id).run(lines.append)
    return lines, verdict.matches_seed, verdict.outcome


@pytest.mark.parametrize("scenario_id", IDS)
def test_scenario_matches_the_seed(scenario_id: str) -> None:
    lines, matches, _ = run(scenario_id)
    assert matches, "\n".join(lines)
    assert not any("[DIFFERS]" in line for line in lines)


def test_paxos1_trace_is_the_seeds_order() -> None:
    lines, _, _ = run("PAXOS-1")
    messages = [line.strip() for line in lines if "->" in line and line.startswith("  S")]
    kinds = [m.split()[1].split("(")[0] for m in messages]
    assert kinds == ["prepare"] * 3 + ["promise"] * 3 + ["accept"] * 3 + ["accepted"] * 3


def test_paxos4_s3_refuses_s1s_accept_with_min_n_two() -> None:
    lines, _, outcome = run("PAXOS-4")
    assert "S3->S1 accepted(n=1.1) minN=1.5 REFUSED" in "\n".join(lines)
    assert outcome.startswith("Y chosen")


def test_without_backoff_the_duel_never_ends_and_each_fix_ends_it() -> None:
    proposals = {1: [(1, "X")], 3: [(5, "Y")]}
    duel = ScriptedPaxos(5)
    assert duel.run_timed(500, proposals) is None
    assert duel.rounds_started() > 200
    assert ScriptedPaxos(5, backoff_ticks=2, seed=3).run_timed(500, proposals) is not None
    led = ScriptedPaxos(5, distinguished_proposer=1)
    assert led.run_timed(500, proposals) is not None
    assert led.rounds_started() == 1


def test_example_3_without_adoption_chooses_two_values() -> None:
    """Why the seed's adoption rule matters: replay example 3 with proposers that keep their
    own value, and X and then Y are both chosen by majorities."""
    from kvorum.core.paxos import UnsafeSwitches
    from kvorum.core.paxos.basic_messages import Accept, Accepted, Prepare, Promise

    env = ScriptedPaxos(5, unsafe=UnsafeSwitches(skip_adopt_highest=True))
    env.propose(1, "X")
    env.deliver(lambda m: isinstance(m, Prepare) and m.dst in (1, 2, 3))
    env.deliver(lambda m: isinstance(m, Promise) and m.dst == 1)
    env.deliver(lambda m: isinstance(m, Accept) and m.dst == 3)
    env.propose(5, "Y")
    env.deliver(lambda m: isinstance(m, Prepare) and m.src == 5 and m.dst in (3, 4, 5))
    env.deliver(lambda m: isinstance(m, Promise) and m.dst == 5)
    env.deliver(lambda m: isinstance(m, Accept) and m.src == 1 and m.dst in (1, 2))
    env.deliver(lambda m: isinstance(m, Accepted) and m.dst == 1)
    env.deliver(lambda m: isinstance(m, Accept) and m.src == 5 and m.dst in (3, 4, 5))
    env.deliver(lambda m: isinstance(m, Accepted) and m.dst == 5)
    chosen = {o.value for _, o in env.outcomes if o.chosen}
    assert chosen == {"X", "Y"}
