"""OdownTally: a quorum of valid opinions makes ODOWN; expiry, retraction and age undo it."""

from __future__ import annotations

from kvorum.core.gossip import DownOpinion, OdownTally


def _quorum3(_: int) -> int:
    return 3


def test_odown_needs_the_quorum_and_names_its_evidence() -> None:
    t = OdownTally(validity_ticks=100)
    for obs in (1, 2):
        t.offer(DownOpinion(obs, 9, True, 1), now_tick=0)
    assert t.evaluate(0, _quorum3) == []
    t.offer(DownOpinion(3, 9, True, 1), now_tick=5)
    [verdict] = t.evaluate(5, _quorum3)
    assert verdict.down and verdict.member == 9 and verdict.evidence == {1, 2, 3}


def test_a_retraction_replaces_an_older_opinion_and_clears_odown() -> None:
    t = OdownTally(validity_ticks=100)
    for obs in (1, 2, 3):
        t.offer(DownOpinion(obs, 9, True, 1), now_tick=0)
    t.evaluate(0, _quorum3)
    assert not t.offer(DownOpinion(3, 9, True, 1), now_tick=1)  # the same one again
    assert t.offer(DownOpinion(3, 9, False, 2), now_tick=2)
    [verdict] = t.evaluate(2, _quorum3)
    assert not verdict.down and verdict.evidence == {1, 2}


def test_opinions_expire_so_dead_observers_stop_counting() -> None:
    t = OdownTally(validity_ticks=100)
    for obs in (1, 2, 3):
        t.offer(DownOpinion(obs, 9, True, 1), now_tick=0)
    assert t.evaluate(99, _quorum3)[0].down
    assert not t.evaluate(100, _quorum3)[0].down


def test_a_passed_on_opinion_keeps_its_age() -> None:
    t = OdownTally(validity_ticks=100)
    assert t.offer(DownOpinion(1, 9, True, 1), now_tick=50, age_ticks=60)
    assert t.agreeing(9, 89) == {1}
    assert t.agreeing(9, 90) == frozenset()
    assert not t.offer(DownOpinion(2, 9, True, 1), now_tick=50, age_ticks=100)


def test_a_member_that_left_is_forgotten() -> None:
    t = OdownTally(validity_ticks=100)
    for obs in (1, 2, 3):
        t.offer(DownOpinion(obs, 9, True, 1), now_tick=0)
    t.evaluate(0, _quorum3)
    t.forget(9)
    assert not t.is_odown(9) and t.evaluate(1, _quorum3) == []
