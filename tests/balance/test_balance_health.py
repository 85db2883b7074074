"""Passive health checking with an injected clock: ejection, half-open probes, re-admission."""

from __future__ import annotations

import pytest

from kvorum.balance import (
    Backend,
    EjectionPolicy,
    HealthState,
    LeastConnections,
    PassiveHealth,
    RoundRobin,
)

POLICY = EjectionPolicy(consecutive_failures=3, base_ejection_ms=1_000.0,
                        max_ejection_ms=4_000.0, max_ejected_fraction=0.5)


def fail(health: PassiveHealth, name: str, times: int, now_ms: float) -> HealthState:
    state = HealthState.HEALTHY
    for _ in range(times):
        health.on_start(name, now_ms)
        state = health.record(name, ok=False, now_ms=now_ms)
    return state


def checker(names: str = "abcd", policy: EjectionPolicy = POLICY) -> PassiveHealth:
    health = PassiveHealth(policy)
    for name in names:
        health.add(name)
    return health


def test_ejects_after_n_consecutive_failures_only() -> None:
    health = checker()
    assert fail(health, "a", 2, 0.0) is HealthState.HEALTHY
    health.record("a", ok=True, now_ms=0.0)  # a success breaks the streak
    assert fail(health, "a", 2, 0.0) is HealthState.HEALTHY
    assert fail(health, "a", 1, 0.0) is HealthState.EJECTED
    assert not health.is_eligible("a", 999.0)
    assert health.ejected_until_ms("a") == 1_000.0


def test_error_rate_over_a_full_window_ejects() -> None:
    policy = EjectionPolicy(consecutive_failures=None, error_rate=0.5, window_requests=10)
    health = checker(policy=policy)
    # Alternate fail/ok: never 2 failures in a row, but a 50% error rate.
    for i in range(9):
        health.record("a", ok=i % 2 == 1, now_ms=0.0)
    assert health.state("a") is HealthState.HEALTHY  # window not yet full
    health.record("a", ok=False, now_ms=0.0)
    assert health.state("a") is HealthState.EJECTED


def test_error_rate_window_forgets_old_failures() -> None:
    policy = EjectionPolicy(consecutive_failures=None, error_rate=0.75, window_requests=4)
    health = checker(policy=policy)
    # 4 failures of 8 in all, but never 3 of the last 4.
    for ok in (False, False, True, True, True, True, False, False):
        health.record("a", ok=ok, now_ms=0.0)
    assert health.state("a") is HealthState.HEALTHY
    health.record("a", ok=False, now_ms=0.0)
    assert health.state("a") is HealthState.EJECTED


def test_half_open_lets_exactly_one_probe_through() -> None:
    health = checker()
    fail(health, "a", 3, 0.0)
    assert health.state("a", 1_000.0) is HealthState.PROBING
    assert health.is_eligible("a")
    health.on_start("a")
    assert not health.is_eligible("a")  # the probe is in flight; nobody else goes
    assert health.record("a", ok=True) is HealthState.HEALTHY
    assert health.is_eligible("a")


def test_failed_probes_double_the_ejection_up_to_the_max() -> None:
    health = checker()
    now_ms = 0.0
    fail(health, "a", 3, now_ms)
    lengths = []
    for _ in range(4):
        until = health.ejected_until_ms("a")
        assert until is not None
        lengths.append(until - now_ms)
        now_ms = until
        assert fail(health, "a", 1, now_ms) is HealthState.EJECTED  # the probe fails
    assert lengths == [1_000.0, 2_000.0, 4_000.0, 4_000.0]


def test_outcomes_while_ejected_are_ignored() -> None:
    health = checker()
    fail(health, "a", 3, 0.0)
    # Stragglers sent before the ejection come back; they neither extend nor end it.
    assert health.record("a", ok=True, now_ms=10.0) is HealthState.EJECTED
    assert health.record("a", ok=False, now_ms=20.0) is HealthState.EJECTED
    assert health.ejected_until_ms("a") == 1_000.0


def test_streak_is_forgotten_after_staying_healthy_long_enough() -> None:
    health = checker()
    fail(health, "a", 3, 0.0)
    health.on_start("a", 1_000.0)
    health.record("a", ok=True, now_ms=1_000.0)  # probe succeeds: healthy again
    fail(health, "a", 3, 2_000.0)  # soon after: the streak continues, 2 s
    assert health.ejected_until_ms("a") == 4_000.0
    health.on_start("a", 4_000.0)
    health.record("a", ok=True, now_ms=4_000.0)
    fail(health, "a", 3, 4_000.0 + 4_000.0)  # healthy for max_ejection_ms: fresh, 1 s
    assert health.ejected_until_ms("a") == 9_000.0


def test_never_ejects_more_than_the_max_fraction() -> None:
    health = checker("abcd")  # 50% of 4: two may be out
    for name in "abcd":
        fail(health, name, 3, 0.0)
    states = [health.state(n) for n in "abcd"]
    assert states.count(HealthState.EJECTED) == 2
    assert health.out_count() == 2


def test_never_ejects_the_last_backend() -> None:
    health = checker("a", EjectionPolicy(consecutive_failures=1, max_ejected_fraction=1.0))
    assert fail(health, "a", 10, 0.0) is HealthState.HEALTHY
    pair = checker("ab", EjectionPolicy(consecutive_failures=1, max_ejected_fraction=1.0))
    fail(pair, "a", 1, 0.0)
    assert fail(pair, "b", 5, 0.0) is HealthState.HEALTHY


def test_cap_frees_up_when_an_ejected_backend_recovers() -> None:
    health = checker("ab")  # one of two may be out
    fail(health, "a", 3, 0.0)
    assert fail(health, "b", 3, 0.0) is HealthState.HEALTHY
    health.on_start("a", 1_000.0)
    health.record("a", ok=True, now_ms=1_000.0)
    assert fail(health, "b", 1, 1_000.0) is HealthState.EJECTED  # its streak was kept


def test_balancer_skips_ejected_backends_and_readmits_them() -> None:
    a, b, c = Backend("a"), Backend("b"), Backend("c")
    balancer = RoundRobin([a, b, c], health=PassiveHealth(POLICY))
    for _ in range(3):
        balancer.on_start(b, 0.0)
        balancer.on_finish(b, 2.0, ok=False, now_ms=0.0)
    assert balancer.health_state(b) is HealthState.EJECTED
    assert b not in {balancer.pick(now_ms=500.0) for _ in range(10)}
    assert balancer.eligible(1_000.0) == [a, b, c]  # half-open
    picks = [balancer.pick(now_ms=1_000.0) for _ in range(3)]
    assert picks.count(b) == 1
    balancer.on_start(b, 1_000.0)
    assert b not in balancer.eligible()  # probe in flight
    balancer.on_finish(b, 2.0, ok=True, now_ms=1_001.0)
    assert balancer.health_state(b) is HealthState.HEALTHY
    assert b in balancer.eligible()


def test_balancer_panics_to_all_backends_when_none_is_eligible() -> None:
    a, b = Backend("a"), Backend("b")
    balancer = LeastConnections([a, b], health=PassiveHealth(
        EjectionPolicy(consecutive_failures=1, base_ejection_ms=1_000.0)))
    balancer.on_start(a, 0.0)
    balancer.on_finish(a, 1.0, ok=False, now_ms=0.0)
    balancer.remove(b)  # only the ejected backend is left
    assert balancer.eligible() == [a]
    assert balancer.pick() == a


def test_removed_backend_outcomes_are_ignored() -> None:
    a, b = Backend("a"), Backend("b")
    balancer = RoundRobin([a, b], health=PassiveHealth(POLICY))
    balancer.on_start(b, 0.0)
    balancer.remove(b)
    balancer.on_finish(b, 5.0, ok=False, now_ms=1.0)  # no error, nothing learned
    assert balancer.backends == (a,)


@pytest.mark.parametrize("ejections, expected_ms", [(1, 1_000.0), (2, 2_000.0), (3, 4_000.0),
                                                     (500, 4_000.0)])
def test_ejection_length_doubles_and_caps(ejections: int, expected_ms: float) -> None:
    assert POLICY.ejection_ms(ejections) == expected_ms
