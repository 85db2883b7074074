"""Sentinel-style quorum aggregation: SDOWN is one observer's view, ODOWN needs a quorum."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvorum.detect import (
    ClockWentBackwards,
    DetectorError,
    OdownCleared,
    OdownSet,
    QuorumAggregator,
    SdownCleared,
    SdownSet,
    UnknownObserver,
)

SENTINELS = ["s1", "s2", "s3", "s4", "s5"]


def make(quorum: int = 3, validity_ms: float = 5000) -> QuorumAggregator:
    return QuorumAggregator(SENTINELS, quorum=quorum, validity_ms=validity_ms)


def test_one_observer_is_subjective_only() -> None:
    agg = make()
    events = agg.report("s1", "master", down=True, now_ms=100)
    assert events == [SdownSet("master", "s1", 100.0)]
    assert not agg.is_objectively_down("master")


def test_quorum_of_observers_makes_odown_once() -> None:
    agg = make()
    agg.report("s1", "master", True, 100)
    agg.report("s2", "master", True, 200)
    events = agg.report("s3", "master", True, 300)
    assert events == [
        SdownSet("master", "s3", 300.0),
        OdownSet("master", 300.0, frozenset({"s1", "s2", "s3"})),
    ]
    assert agg.is_objectively_down("master")
    # A fourth observer agreeing changes nothing objective; repeated reports are silent.
    assert agg.report("s4", "master", True, 400) == [SdownSet("master", "s4", 400.0)]
    assert agg.report("s1", "master", True, 500) == []


def test_odown_clears_when_observers_stop_agreeing() -> None:
    agg = make()
    for i, s in enumerate(SENTINELS[:3]):
        agg.report(s, "master", True, 100 * i)
    events = agg.report("s2", "master", down=False, now_ms=1000)
    assert events == [
        SdownCleared("master", "s2", 1000.0, expired=False),
        OdownCleared("master", 1000.0, frozenset({"s1", "s3"})),
    ]
    assert not agg.is_objectively_down("master")
    assert agg.agreeing("master") == frozenset({"s1", "s3"})


def test_reports_expire_after_the_validity_period() -> None:
    agg = make(validity_ms=5000)
    agg.report("s1", "master", True, 0)
    agg.report("s2", "master", True, 1000)
    agg.report("s3", "master", True, 2000)
    assert agg.is_objectively_down("master")
    assert agg.expire(4999) == []
    events = agg.expire(5000)  # s1's report is exactly 5000 ms old: no longer valid
    assert events == [
        SdownCleared("master", "s1", 5000.0, expired=True),
        OdownCleared("master", 5000.0, frozenset({"s2", "s3"})),
    ]


def test_stale_reports_do_not_count_towards_a_new_quorum() -> None:
    agg = make(validity_ms=5000)
    agg.report("s1", "master", True, 0)
    agg.report("s2", "master", True, 1000)
    events = agg.report("s3", "master", True, 5500)  # s1 expired before s3 spoke
    assert SdownCleared("master", "s1", 5500.0, expired=True) in events
    assert not any(isinstance(e, OdownSet) for e in events)
    # A refreshed report keeps counting.
    events = agg.report("s2", "master", True, 5600)
    assert events == []
    assert agg.report("s1", "master", True, 5700)[-1] == OdownSet(
        "master", 5700.0, frozenset({"s1", "s2", "s3"})
    )


def test_targets_are_independent() -> None:
    agg = make(quorum=2)
    agg.report("s1", "a", True, 0)
    agg.report("s2", "b", True, 0)
    assert not agg.is_objectively_down("a") and not agg.is_objectively_down("b")
    agg.report("s3", "a", True, 10)
    assert agg.is_objectively_down("a") and not agg.is_objectively_down("b")


def test_quorum_below_majority_is_allowed_but_flagged() -> None:
    assert make(quorum=2).quorum_is_majority is False
    assert make(quorum=3).quorum_is_majority is True


@given(
    reports=st.lists(
        st.tuples(st.sampled_from(SENTINELS), st.booleans(), st.integers(0, 3000)),
        max_size=60,
    )
)
def test_odown_always_means_a_valid_quorum(reports: list[tuple[str, bool, int]]) -> None:
    agg = make(quorum=3, validity_ms=4000)
    now = 0
    latest: dict[str, tuple[bool, int]] = {}
    odown = False
    for observer, down, step in reports:
        now += step
        for event in agg.report(observer, "m", down, now):
            if isinstance(event, OdownSet):
                assert not odown
                odown = True
            elif isinstance(event, OdownCleared):
                assert odown
                odown = False
        latest[observer] = (down, now)
        valid = {o for o, (d, t) in latest.items() if d and now - t < 4000}
        assert agg.agreeing("m") == valid
        assert agg.is_objectively_down("m") == odown == (len(valid) >= 3)


@pytest.mark.parametrize(
    ("observers", "quorum", "validity_ms", "message"),
    [
        ([], 1, 1000, "at least one observer"),
        (["a", "a"], 1, 1000, "distinct"),
        (["a", ""], 1, 1000, "non-empty"),
        (["a", "b"], 0, 1000, "quorum must be between 1 and the 2"),
        (["a", "b"], 3, 1000, "quorum must be between 1 and the 2"),
        (["a", "b"], 1, 0, "validity_ms"),
        (["a", "b"], 1, -1, "validity_ms"),
        (["a", "b"], 1, math.inf, "validity_ms"),
    ],
)
def test_bad_configuration_raises(
    observers: list[str], quorum: int, validity_ms: float, message: str
) -> None:
    with pytest.raises(DetectorError, match=message):
        QuorumAggregator(observers, quorum=quorum, validity_ms=validity_ms)


def test_bad_reports_raise() -> None:
    agg = make()
    with pytest.raises(UnknownObserver, match="unknown observer 'x'"):
        agg.report("x", "master", True, 0)
    with pytest.raises(DetectorError, match="target"):
        agg.report("s1", "", True, 0)
    agg.report("s1", "master", True, 1000)
    with pytest.raises(ClockWentBackwards):
        agg.report("s2", "master", True, 999)
    with pytest.raises(ClockWentBackwards):
        agg.expire(10)
