"""Bad arguments raise clear errors instead of balancing garbage."""

from __future__ import annotations

import math
from collections.abc import Callable
from random import Random
from typing import Any

import pytest

from kvorum.balance import (
    Backend,
    Balancer,
    BalancerError,
    ClockWentBackwardsError,
    ConsistentHashBoundedLoad,
    EjectionPolicy,
    KeyHash,
    LeastConnections,
    LeastResponseTime,
    PassiveHealth,
    PeakEwmaP2C,
    PowerOfTwoChoices,
    RoundRobin,
    SmoothWeightedRoundRobin,
    WeightedRandom,
)

FACTORIES: list[Callable[[list[Backend]], Balancer]] = [
    RoundRobin,
    SmoothWeightedRoundRobin,
    lambda bs: WeightedRandom(bs, Random(0)),
    LeastConnections,
    lambda bs: PowerOfTwoChoices(bs, Random(0)),
    LeastResponseTime,
    lambda bs: PeakEwmaP2C(bs, Random(0)),
    KeyHash,
    ConsistentHashBoundedLoad,
]


@pytest.mark.parametrize("factory", FACTORIES)
def test_no_backends_is_an_error(factory: Callable[[list[Backend]], Balancer]) -> None:
    with pytest.raises(BalancerError, match="at least one backend"):
        factory([])


@pytest.mark.parametrize("factory", FACTORIES)
def test_every_strategy_drives_the_same_interface(
    factory: Callable[[list[Backend]], Balancer],
) -> None:
    balancer = factory([Backend("a", 2), Backend("b")])
    chosen = balancer.pick(b"key", now_ms=1.0)
    balancer.on_start(chosen, 1.0)
    assert balancer.active(chosen) == 1
    balancer.on_finish(chosen, 3.0, True, 4.0)
    assert balancer.active(chosen) == 0
    with pytest.raises(BalancerError, match="duplicate backend name 'a'"):
        balancer.add(Backend("a"))
    balancer.remove("a")
    assert balancer.pick(b"key") == Backend("b")
    with pytest.raises(BalancerError, match="last backend"):
        balancer.remove("b")


@pytest.mark.parametrize("weight", [0, -1, -100])
def test_zero_or_negative_weight_is_an_error(weight: int) -> None:
    with pytest.raises(BalancerError, match="weight must be positive"):
        Backend("a", weight)


@pytest.mark.parametrize("weight", [1.5, True, "2"])
def test_non_integer_weight_is_an_error(weight: Any) -> None:
    with pytest.raises(BalancerError, match="weight must be an int"):
        Backend("a", weight)


def test_empty_name_is_an_error() -> None:
    with pytest.raises(BalancerError, match="non-empty name"):
        Backend("")


def test_errors_are_value_errors() -> None:
    assert issubclass(BalancerError, ValueError)
    assert issubclass(ClockWentBackwardsError, BalancerError)


def test_duplicate_names_at_construction() -> None:
    with pytest.raises(BalancerError, match="duplicate"):
        RoundRobin([Backend("a"), Backend("a", 3)])


def test_not_a_backend() -> None:
    with pytest.raises(BalancerError, match="expected a Backend"):
        RoundRobin(["a"])  # type: ignore[list-item]


def test_unknown_backend() -> None:
    balancer = RoundRobin([Backend("a")])
    with pytest.raises(BalancerError, match="unknown backend 'zz'"):
        balancer.remove("zz")
    with pytest.raises(BalancerError, match="unknown backend"):
        balancer.on_start(Backend("zz"))


def test_finish_without_start() -> None:
    balancer = LeastConnections([Backend("a")])
    with pytest.raises(BalancerError, match="without a matching on_start"):
        balancer.on_finish(Backend("a"), 1.0, True)


@pytest.mark.parametrize("latency_ms", [-1.0, math.nan])
def test_bad_latency(latency_ms: float) -> None:
    balancer = LeastResponseTime([Backend("a")])
    balancer.on_start(Backend("a"))
    with pytest.raises(BalancerError, match="latency_ms must be >= 0"):
        balancer.on_finish(Backend("a"), latency_ms, True)


def test_clock_going_backwards() -> None:
    balancer = PeakEwmaP2C([Backend("a"), Backend("b")], Random(0))
    balancer.pick(now_ms=100.0)
    with pytest.raises(ClockWentBackwardsError, match=r"now_ms=99\.0 is before"):
        balancer.pick(now_ms=99.0)
    with pytest.raises(ValueError, match="finite"):
        balancer.pick(now_ms=math.inf)
    health = PassiveHealth()
    health.add("a")
    health.record("a", True, 50.0)
    with pytest.raises(ClockWentBackwardsError):
        health.record("a", True, 49.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"consecutive_failures": 0}, "consecutive_failures"),
        ({"error_rate": 0.0}, "error_rate"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"window_requests": 0}, "window_requests"),
        ({"base_ejection_ms": 0.0}, "base_ejection_ms"),
        ({"base_ejection_ms": 10.0, "max_ejection_ms": 5.0}, "max_ejection_ms"),
        ({"max_ejected_fraction": 0.0}, "max_ejected_fraction"),
        ({"max_ejected_fraction": 1.1}, "max_ejected_fraction"),
    ],
)
def test_bad_ejection_policy(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BalancerError, match=message):
        EjectionPolicy(**kwargs)


def test_health_checker_name_errors() -> None:
    health = PassiveHealth()
    health.add("a")
    with pytest.raises(BalancerError, match="already tracks"):
        health.add("a")
    with pytest.raises(BalancerError, match="does not track backend 'b'"):
        health.record("b", True)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: LeastResponseTime([Backend("a")], alpha=0.0), "alpha"),
        (lambda: LeastResponseTime([Backend("a")], failure_penalty_ms=-1.0), "penalty"),
        (lambda: PeakEwmaP2C([Backend("a")], Random(0), decay_ms=0.0), "decay_ms"),
        (lambda: PeakEwmaP2C([Backend("a")], Random(0), default_latency_ms=-1.0), "default"),
        (lambda: ConsistentHashBoundedLoad([Backend("a")], vnodes_per_weight=0), "vnodes"),
        (lambda: ConsistentHashBoundedLoad([Backend("a")], load_factor=0.9), "load_factor"),
    ],
)
def test_bad_strategy_parameters(build: Callable[[], object], message: str) -> None:
    with pytest.raises(BalancerError, match=message):
        build()
