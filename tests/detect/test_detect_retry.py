"""Limited retries: a suspicion becomes a declared failure only after unanswered probes."""

from __future__ import annotations

import pytest

from kvorum.detect import (
    ClockWentBackwards,
    DeclaredFailed,
    DetectorError,
    FailureDetector,
    FixedTimeoutDetector,
    RetryingDetector,
    RetryState,
    SendProbe,
)


def make(max_retries: int = 3) -> RetryingDetector:
    detector = RetryingDetector(FixedTimeoutDetector(3000), max_retries, retry_timeout_ms=1000)
    detector.heartbeat(0)
    return detector


def test_it_is_a_failure_detector() -> None:
    assert isinstance(make(), FailureDetector)


def test_silence_leads_to_exactly_max_retries_probes_then_a_declaration() -> None:
    detector = make(max_retries=3)
    actions = []
    for now in range(0, 10_001, 100):
        actions.extend(detector.poll(now))
    assert actions == [
        SendProbe(1, 3000.0),
        SendProbe(2, 4000.0),
        SendProbe(3, 5000.0),
        DeclaredFailed(3, 6000.0),
    ]
    assert detector.state is RetryState.FAILED
    assert not detector.is_available(10_000)
    assert detector.suspicion(10_000) == 10_000  # the inner detector's view passes through


def test_an_answered_probe_cancels_the_suspicion() -> None:
    detector = make(max_retries=3)
    assert detector.poll(3000) == [SendProbe(1, 3000.0)]
    assert detector.poll(3999) == []
    detector.heartbeat(3500 + 600)  # the reply to probe 1 (or any heartbeat)
    assert detector.state is RetryState.HEALTHY
    assert detector.probes_sent == 0
    assert detector.poll(5000) == []
    assert detector.is_available(5000)


def test_one_action_per_poll_even_after_a_long_gap() -> None:
    detector = make(max_retries=2)
    assert detector.poll(50_000) == [SendProbe(1, 50_000.0)]
    assert detector.poll(90_000) == [SendProbe(2, 90_000.0)]
    assert detector.poll(90_500) == []
    assert detector.poll(91_000) == [DeclaredFailed(2, 91_000.0)]
    assert detector.poll(99_000) == []


def test_zero_retries_declares_at_once_and_a_heartbeat_revives() -> None:
    detector = make(max_retries=0)
    assert detector.poll(3000) == [DeclaredFailed(0, 3000.0)]
    detector.heartbeat(3100)
    assert detector.state is RetryState.HEALTHY
    assert detector.is_available(3100)


@pytest.mark.parametrize(("retries", "timeout_ms"), [(-1, 1000), (1.5, 1000), (2, 0), (2, -5)])
def test_bad_configuration_raises(retries: int, timeout_ms: float) -> None:
    with pytest.raises(DetectorError):
        RetryingDetector(FixedTimeoutDetector(1000), retries, timeout_ms)


def test_time_going_backwards_is_refused() -> None:
    detector = make()
    detector.poll(5000)
    with pytest.raises(ClockWentBackwards):
        detector.poll(4000)
    with pytest.raises(ClockWentBackwards):
        detector.heartbeat(4000)
