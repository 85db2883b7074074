"""Single-node detectors with injected time: growth with silence, tolerated pauses, errors."""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kvorum.detect as detect_pkg
from kvorum.detect import (
    LOG10_E,
    ClockWentBackwards,
    DetectorError,
    ExponentialAccrualDetector,
    FailureDetector,
    FixedTimeoutDetector,
    IntervalWindow,
    PhiAccrualDetector,
    phi_normal,
)

MAKERS: dict[str, Callable[[], FailureDetector]] = {
    "fixed": lambda: FixedTimeoutDetector(timeout_ms=3000),
    "phi": lambda: PhiAccrualDetector(threshold=8.0),
    "phi-pause": lambda: PhiAccrualDetector(threshold=8.0, acceptable_heartbeat_pause_ms=3000),
    "exponential": lambda: ExponentialAccrualDetector(threshold=8.0),
}


def regular(detector: FailureDetector, count: int, interval_ms: float = 1000.0) -> float:
    """Feed ``count`` heartbeats ``interval_ms`` apart starting at 0; return the last time."""
    for i in range(count):
        detector.heartbeat(i * interval_ms)
    return (count - 1) * interval_ms


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_every_detector_satisfies_the_interface(name: str) -> None:
    assert isinstance(MAKERS[name](), FailureDetector)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_before_any_heartbeat_nothing_is_suspected(name: str) -> None:
    detector = MAKERS[name]()
    assert detector.suspicion(10_000_000) == 0.0
    assert detector.is_available(10_000_000)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_suspicion_grows_with_silence_and_a_heartbeat_resets_it(name: str) -> None:
    detector = MAKERS[name]()
    last = regular(detector, 60)
    levels = [detector.suspicion(last + silence) for silence in range(0, 60_001, 250)]
    assert all(b >= a for a, b in pairwise(levels)), levels
    assert levels[-1] > levels[40] > levels[0]  # 60 s > 10 s > no silence
    assert not detector.is_available(last + 60_000), "a minute of silence must be a failure"
    detector.heartbeat(last + 60_000)
    assert detector.is_available(last + 60_000)
    assert detector.suspicion(last + 60_000) < 1.0


@pytest.mark.parametrize("name", sorted(MAKERS))
@given(
    gaps=st.lists(st.floats(min_value=1, max_value=5000), min_size=1, max_size=40),
    probe_a=st.floats(min_value=0, max_value=1e7),
    probe_b=st.floats(min_value=0, max_value=1e7),
)
def test_suspicion_is_monotone_and_finite_for_any_history(
    name: str, gaps: list[float], probe_a: float, probe_b: float
) -> None:
    detector = MAKERS[name]()
    now = 0.0
    detector.heartbeat(now)
    for gap in gaps:
        now += gap
        detector.heartbeat(now)
    low, high = sorted((probe_a, probe_b))
    s_low, s_high = detector.suspicion(now + low), detector.suspicion(now + high)
    assert 0.0 <= s_low <= s_high
    assert math.isfinite(s_high)
    assert detector.is_available(now + high) == (s_high < detector.threshold)


def test_fixed_timeout_flips_exactly_at_the_timeout() -> None:
    detector = FixedTimeoutDetector(timeout_ms=3000)
    detector.heartbeat(500)
    assert detector.suspicion(2000) == 1500
    assert detector.is_available(3499.9)
    assert not detector.is_available(3500)


def test_phi_pause_below_the_acceptable_pause_is_not_suspected() -> None:
    detector = PhiAccrualDetector(threshold=3.0, acceptable_heartbeat_pause_ms=3000)
    last = regular(detector, 100)
    # A 1 s interval plus a pause up to the acceptable 3 s scores at most phi(mean) ≈ 0.3.
    assert detector.suspicion(last + 4000) < 0.31
    assert detector.is_available(last + 4000)
    # Without the acceptable pause, the same silence is far beyond the threshold.
    strict = PhiAccrualDetector(threshold=3.0)
    regular(strict, 100)
    assert not strict.is_available(last + 4000)


def test_phi_is_half_at_the_mean_and_uses_the_min_std_deviation() -> None:
    detector = PhiAccrualDetector(min_std_deviation_ms=100.0)
    last = regular(detector, 1001)  # window full of exact 1000 ms intervals: std would be 0
    assert detector.suspicion(last + 1000) == pytest.approx(-math.log10(0.5))
    # With the deviation floored at 100 ms, 3 std above the mean is ≈ 2.91, not infinity.
    assert detector.suspicion(last + 1300) == pytest.approx(phi_normal(1300, 1000, 100))
    assert 2.5 < detector.suspicion(last + 1300) < 3.5


def test_phi_first_heartbeat_estimate_gives_meaning_to_the_second_heartbeat() -> None:
    detector = PhiAccrualDetector(first_heartbeat_estimate_ms=1000.0)
    detector.heartbeat(0)
    assert detector.sample_count == 2
    assert detector.suspicion(1000) == pytest.approx(-math.log10(0.5))
    assert detector.suspicion(1400) > detector.suspicion(1000)


def test_phi_does_not_learn_the_gap_of_an_outage() -> None:
    detector = PhiAccrualDetector(threshold=8.0)
    last = regular(detector, 50)
    samples = detector.sample_count
    detector.heartbeat(last + 60_000)  # the node came back after it was declared unavailable
    assert detector.sample_count == samples
    detector.heartbeat(last + 61_000)
    assert detector.sample_count == samples + 1
    assert not detector.is_available(last + 61_000 + 3000), "the outage did not widen the model"


@pytest.mark.parametrize("y", [-3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0])
def test_phi_normal_approximates_the_exact_normal_tail(y: float) -> None:
    exact = -math.log10(0.5 * math.erfc(y / math.sqrt(2)))
    assert phi_normal(1000 + 100 * y, 1000, 100) == pytest.approx(exact, rel=0.1, abs=1e-3)


def test_phi_normal_is_numerically_safe_for_absurd_silences() -> None:
    for elapsed in (1e6, 1e9, 1e15, -1e15):
        phi = phi_normal(elapsed, 1000.0, 1.0)
        assert math.isfinite(phi) and phi >= 0.0
    assert phi_normal(1e9, 1000.0, 1.0) > phi_normal(1e6, 1000.0, 1.0)


def test_exponential_phi_is_elapsed_over_mean_times_log10_e() -> None:
    detector = ExponentialAccrualDetector(threshold=8.0, max_sample_size=10)
    last = regular(detector, 11)  # ten 1000 ms intervals push the 2000 ms initial value out
    assert detector.mean_interval_ms == pytest.approx(1000.0)
    assert detector.suspicion(last + 2500) == pytest.approx(2.5 * LOG10_E)
    # The silence it tolerates is threshold * mean / log10(e) ≈ 18.4 s.
    tolerated_ms = 8.0 * 1000.0 / LOG10_E
    assert detector.is_available(last + tolerated_ms - 1)
    assert not detector.is_available(last + tolerated_ms + 1)


def test_exponential_does_not_record_intervals_above_the_max_interval() -> None:
    detector = ExponentialAccrualDetector(max_sample_size=10, max_interval_ms=2000.0)
    last = regular(detector, 11)
    detector.heartbeat(last + 9000)  # a 9 s gap: ignored, as Cassandra does
    assert detector.ignored_intervals == 1
    assert detector.mean_interval_ms == pytest.approx(1000.0)
    detector.heartbeat(last + 11_000)  # exactly the cap is still recorded
    assert detector.ignored_intervals == 1
    assert detector.mean_interval_ms == pytest.approx((9 * 1000.0 + 2000.0) / 10)


def test_interval_window_evicts_and_stays_exact_over_many_updates() -> None:
    window = IntervalWindow(capacity=3)
    for value in (1.0, 2.0, 3.0, 10.0):
        window.add(value)
    assert len(window) == 3
    assert window.mean_ms == pytest.approx(5.0)
    assert window.std_deviation_ms == pytest.approx(math.sqrt(((2 - 5) ** 2 + 4 + 25) / 3))
    big = IntervalWindow(capacity=50)
    for i in range(20_017):  # ends mid-way between exact recomputations
        big.add(1e6 + (i % 7) * 0.001)
    tail = [1e6 + (i % 7) * 0.001 for i in range(20_017 - 50, 20_017)]
    mean = sum(tail) / 50
    assert big.mean_ms == pytest.approx(mean, rel=1e-12)
    assert big.std_deviation_ms == pytest.approx(
        math.sqrt(sum((x - mean) ** 2 for x in tail) / 50), abs=1e-4
    )


def test_interval_window_refuses_to_report_when_empty() -> None:
    with pytest.raises(DetectorError, match="empty"):
        _ = IntervalWindow(4).mean_ms


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FixedTimeoutDetector(timeout_ms=0), "timeout_ms"),
        (lambda: FixedTimeoutDetector(timeout_ms=-5), "timeout_ms"),
        (lambda: FixedTimeoutDetector(timeout_ms=math.nan), "timeout_ms"),
        (lambda: PhiAccrualDetector(threshold=0), "threshold"),
        (lambda: PhiAccrualDetector(threshold=-1), "threshold"),
        (lambda: PhiAccrualDetector(max_sample_size=0), "max_sample_size"),
        (lambda: PhiAccrualDetector(max_sample_size=2.5), "max_sample_size"),  # type: ignore[arg-type]
        (lambda: PhiAccrualDetector(min_std_deviation_ms=0), "min_std_deviation_ms"),
        (lambda: PhiAccrualDetector(acceptable_heartbeat_pause_ms=-1), "acceptable_heartbeat"),
        (lambda: PhiAccrualDetector(first_heartbeat_estimate_ms=0), "first_heartbeat"),
        (lambda: ExponentialAccrualDetector(threshold=0), "threshold"),
        (lambda: ExponentialAccrualDetector(max_sample_size=-3), "max_sample_size"),
        (lambda: ExponentialAccrualDetector(max_interval_ms=0), "max_interval_ms"),
        (lambda: ExponentialAccrualDetector(initial_interval_ms=-1), "initial_interval_ms"),
        (lambda: IntervalWindow(0), "max_sample_size"),
    ],
)
def test_bad_configuration_raises_a_clear_error(build: Callable[[], object], message: str) -> None:
    with pytest.raises(DetectorError, match=message):
        build()


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_time_going_backwards_is_refused(name: str) -> None:
    detector = MAKERS[name]()
    detector.heartbeat(5000)
    with pytest.raises(ClockWentBackwards, match=r"earlier than 5000\.0 ms, a time already seen"):
        detector.heartbeat(4999)
    with pytest.raises(ClockWentBackwards):
        detector.suspicion(1000)
    with pytest.raises(DetectorError, match="finite"):
        detector.heartbeat(math.inf)
    # A refused call leaves the detector as it was.
    assert detector.suspicion(5000) == pytest.approx(0.0, abs=0.5)


def test_queries_do_not_change_state() -> None:
    detector = PhiAccrualDetector()
    last = regular(detector, 20)
    late = detector.suspicion(last + 9000)
    early = detector.suspicion(last + 500)  # asking about an earlier time afterwards is fine
    assert early < late
    assert detector.suspicion(last + 9000) == late


def test_the_detect_package_imports_nothing_that_touches_the_world() -> None:
    forbidden = {"time", "random", "asyncio", "socket", "threading", "os", "io", "subprocess"}
    package_dir = Path(detect_pkg.__file__).parent
    for path in sorted(package_dir.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            else:
                continue
            assert not forbidden.intersection(names), f"{path.name} imports {names}"
