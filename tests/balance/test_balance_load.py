"""Load-aware strategies prefer the backend that should answer soonest."""

from __future__ import annotations

import math
from collections import Counter
from random import Random

import pytest

from kvorum.balance import (
    Backend,
    LeastConnections,
    LeastResponseTime,
    PeakEwmaP2C,
    PowerOfTwoChoices,
)

A, B, C = Backend("a"), Backend("b"), Backend("c")


def test_least_connections_avoids_the_busy_backend() -> None:
    balancer = LeastConnections([A, B, C])
    for _ in range(3):
        balancer.on_start(B)
    picks = []
    for _ in range(6):
        chosen = balancer.pick()
        balancer.on_start(chosen)
        picks.append(chosen.name)
    assert Counter(picks) == {"a": 3, "c": 3}
    # Now everyone has 3 in flight: b is as good as the others again.
    assert balancer.active(B) == balancer.active(A) == balancer.active(C) == 3


def test_least_connections_counts_finished_requests_down() -> None:
    balancer = LeastConnections([A, B])
    balancer.on_start(A)
    balancer.on_start(A)
    balancer.on_start(B)
    assert balancer.pick() == B
    balancer.on_finish(A, 1.0, True)
    balancer.on_finish(A, 1.0, True)
    assert balancer.pick() == A


def test_least_connections_is_weighted() -> None:
    big, small = Backend("big", 3), Backend("small", 1)
    balancer = LeastConnections([big, small])
    for _ in range(8):
        balancer.on_start(balancer.pick())
    # 8 in flight split 3:1 -> 6 and 2: equal load per unit of weight.
    assert (balancer.active(big), balancer.active(small)) == (6, 2)


def test_least_connections_shares_ties_instead_of_favouring_the_first() -> None:
    balancer = LeastConnections([A, B, C])
    assert Counter(balancer.pick().name for _ in range(30)) == {"a": 10, "b": 10, "c": 10}


def test_p2c_with_two_backends_always_takes_the_less_loaded() -> None:
    balancer = PowerOfTwoChoices([A, B], Random(1))
    balancer.on_start(A)
    assert all(balancer.pick() == B for _ in range(50))


def test_p2c_never_picks_the_most_loaded_of_three() -> None:
    balancer = PowerOfTwoChoices([A, B, C], Random(2))
    for _ in range(4):
        balancer.on_start(C)
    balancer.on_start(B)
    picks = Counter(balancer.pick().name for _ in range(300))
    assert picks["c"] == 0
    # a (idle) wins every pair it is drawn into: two of the three pairs.
    assert picks["a"] > 150


def test_p2c_balances_load_better_than_chance() -> None:
    rng = Random(3)
    backends = [Backend(f"s{i}") for i in range(10)]
    balancer = PowerOfTwoChoices(backends, rng)
    for _ in range(1_000):
        balancer.on_start(balancer.pick())
    loads = [balancer.active(b) for b in backends]
    # Random placement of 1000 over 10 spreads about +-30; P2C stays within a few.
    assert max(loads) - min(loads) <= 4


def _serve(balancer: LeastResponseTime | PeakEwmaP2C, latency_ms: dict[str, float],
           requests: int, gap_ms: float, start_ms: float = 0.0) -> Counter[str]:
    """Requests every ``gap_ms``; each takes its backend's fixed latency."""
    in_flight: list[tuple[float, Backend]] = []
    now_ms = start_ms
    picks: Counter[str] = Counter()
    for _ in range(requests):
        now_ms += gap_ms
        for done in sorted((r for r in in_flight if r[0] <= now_ms), key=lambda r: r[0]):
            in_flight.remove(done)
            balancer.on_finish(done[1], latency_ms[done[1].name], True, done[0])
        chosen = balancer.pick(now_ms=now_ms)
        balancer.on_start(chosen, now_ms)
        in_flight.append((now_ms + latency_ms[chosen.name], chosen))
        picks[chosen.name] += 1
    return picks


def test_least_response_time_prefers_the_fast_backend() -> None:
    balancer = LeastResponseTime([A, B])
    picks = _serve(balancer, {"a": 100.0, "b": 10.0}, requests=200, gap_ms=5.0)
    assert picks["b"] > 4 * picks["a"]
    assert balancer.latency_ms(B) == pytest.approx(10.0)


def test_least_response_time_still_uses_the_slow_one_when_the_fast_one_is_busy() -> None:
    balancer = LeastResponseTime([A, B])
    # Requests every 1 ms, fast takes 10 ms: fast alone would queue 10 deep.
    picks = _serve(balancer, {"a": 30.0, "b": 10.0}, requests=300, gap_ms=1.0)
    assert picks["a"] > 30
    assert picks["b"] > picks["a"]


def test_least_response_time_penalises_fast_failures() -> None:
    balancer = LeastResponseTime([A, B], failure_penalty_ms=500.0)
    for _ in range(3):
        balancer.on_start(A)
        balancer.on_finish(A, 1.0, ok=False)   # fails in 1 ms: "fast" but useless
        balancer.on_start(B)
        balancer.on_finish(B, 50.0, ok=True)
    assert balancer.latency_ms(A) == pytest.approx(500.0)
    assert balancer.pick() == B


def test_least_response_time_ewma_moves_by_alpha() -> None:
    balancer = LeastResponseTime([A], alpha=0.5)
    assert balancer.latency_ms(A) is None
    for latency_ms in (10.0, 20.0):
        balancer.on_start(A)
        balancer.on_finish(A, latency_ms, True)
    assert balancer.latency_ms(A) == pytest.approx(15.0)


def test_peak_ewma_jumps_to_a_peak_and_decays_with_time() -> None:
    balancer = PeakEwmaP2C([A, B], Random(1), decay_ms=1_000.0)
    assert balancer.latency_ms(A) == 1.0  # default before any sample
    balancer.on_start(A, 0.0)
    balancer.on_finish(A, 10.0, True, 0.0)
    balancer.on_start(A, 0.0)
    balancer.on_finish(A, 200.0, True, 0.0)
    assert balancer.latency_ms(A, 0.0) == pytest.approx(200.0)  # the peak, at once
    assert balancer.latency_ms(A, 1_000.0) == pytest.approx(200.0 / math.e)
    # A fast sample 1 s (one time constant) after the last one pulls it 1 - 1/e of the way.
    decayed = 200.0 / math.e
    balancer.on_start(A, 1_000.0)
    balancer.on_finish(A, 5.0, True, 1_000.0)
    after_one = decayed + (5.0 - decayed) * (1 - 1 / math.e)
    assert balancer.latency_ms(A) == pytest.approx(after_one)
    # Another fast sample 1 ms later barely moves it: the average is over time, not samples.
    balancer.on_start(A, 1_001.0)
    balancer.on_finish(A, 5.0, True, 1_001.0)
    assert balancer.latency_ms(A) == pytest.approx(after_one, rel=0.01)
    # A fast sample much later replaces a long-decayed estimate almost entirely.
    balancer.on_start(A, 20_000.0)
    balancer.on_finish(A, 5.0, True, 20_000.0)
    assert balancer.latency_ms(A) == pytest.approx(5.0)


def test_peak_ewma_cost_grows_with_requests_in_flight() -> None:
    balancer = PeakEwmaP2C([A, B], Random(1))
    balancer.on_start(A, 0.0)
    balancer.on_finish(A, 10.0, True, 0.0)
    idle = balancer.cost(A)
    balancer.on_start(A, 0.0)
    balancer.on_start(A, 0.0)
    assert balancer.cost(A) == pytest.approx(3 * idle)


def test_peak_ewma_prefers_the_fast_backend() -> None:
    balancer = PeakEwmaP2C([A, B], Random(4), decay_ms=500.0)
    picks = _serve(balancer, {"a": 100.0, "b": 10.0}, requests=400, gap_ms=5.0)
    assert picks["b"] > 4 * picks["a"]


def test_peak_ewma_reacts_to_a_sudden_slowdown() -> None:
    balancer = PeakEwmaP2C([A, B], Random(5), decay_ms=2_000.0)
    _serve(balancer, {"a": 10.0, "b": 10.0}, requests=200, gap_ms=5.0)
    # a becomes 20x slower; within the next 100 requests most go to b.
    picks = _serve(balancer, {"a": 200.0, "b": 10.0}, requests=100, gap_ms=5.0,
                   start_ms=balancer.now_ms)
    assert picks["b"] > 4 * picks["a"]
