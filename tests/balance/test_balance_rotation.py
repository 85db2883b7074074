"""Round robin, smooth weighted round robin and weighted random: exact sequences and shares."""

from __future__ import annotations

from collections import Counter
from random import Random

from hypothesis import given
from hypothesis import strategies as st

from kvorum.balance import (
    Backend,
    EjectionPolicy,
    PassiveHealth,
    RoundRobin,
    SmoothWeightedRoundRobin,
    WeightedRandom,
)


def names(picks: list[Backend]) -> str:
    return " ".join(b.name for b in picks)


def test_round_robin_cycles_in_insertion_order() -> None:
    balancer = RoundRobin([Backend("a"), Backend("b"), Backend("c")])
    assert names([balancer.pick() for _ in range(7)]) == "a b c a b c a"


def test_round_robin_ignores_weights() -> None:
    balancer = RoundRobin([Backend("a", 5), Backend("b", 1)])
    assert Counter(balancer.pick().name for _ in range(100)) == {"a": 50, "b": 50}


def test_round_robin_picks_up_added_and_drops_removed_backends() -> None:
    balancer = RoundRobin([Backend("a"), Backend("b")])
    balancer.add(Backend("c"))
    assert {balancer.pick().name for _ in range(3)} == {"a", "b", "c"}
    balancer.remove("b")
    assert {balancer.pick().name for _ in range(10)} == {"a", "c"}


def test_smooth_wrr_gives_nginx_sequence_for_5_1_1() -> None:
    balancer = SmoothWeightedRoundRobin([Backend("a", 5), Backend("b", 1), Backend("c", 1)])
    assert names([balancer.pick() for _ in range(14)]) == "a a b a c a a a a b a c a a"


def test_smooth_wrr_equal_weights_is_round_robin() -> None:
    balancer = SmoothWeightedRoundRobin([Backend("a", 3), Backend("b", 3), Backend("c", 3)])
    assert names([balancer.pick() for _ in range(6)]) == "a b c a b c"


@given(st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=6))
def test_smooth_wrr_every_round_gives_exact_shares(weights: list[int]) -> None:
    backends = [Backend(f"s{i}", w) for i, w in enumerate(weights)]
    balancer = SmoothWeightedRoundRobin(backends)
    total = sum(weights)
    for _ in range(3):
        round_picks = Counter(balancer.pick().name for _ in range(total))
        assert round_picks == {b.name: b.weight for b in backends}


@given(st.lists(st.integers(min_value=1, max_value=9), min_size=2, max_size=6))
def test_smooth_wrr_never_bursts_beyond_its_share(weights: list[int]) -> None:
    # Smoothness: in any window of k picks a backend of weight w gets at most
    # ceil(k * w / total) + 1 picks, i.e. picks are interleaved, not bunched.
    backends = [Backend(f"s{i}", w) for i, w in enumerate(weights)]
    balancer = SmoothWeightedRoundRobin(backends)
    total = sum(weights)
    picks = [balancer.pick().name for _ in range(2 * total)]
    for k in range(1, total + 1):
        for start in range(len(picks) - k + 1):
            window = Counter(picks[start:start + k])
            for b in backends:
                assert window[b.name] <= -(-k * b.weight // total) + 1


def test_smooth_wrr_skips_an_ejected_backend_without_banking_its_turns() -> None:
    health = PassiveHealth(EjectionPolicy(consecutive_failures=1, base_ejection_ms=100.0,
                                          max_ejected_fraction=0.5))
    balancer = SmoothWeightedRoundRobin([Backend("a", 2), Backend("b", 1), Backend("c", 1)],
                                        health=health)
    b = balancer.backends[1]
    balancer.on_start(b, 0.0)
    balancer.on_finish(b, 1.0, ok=False, now_ms=0.0)
    during = [balancer.pick(now_ms=50.0).name for _ in range(30)]
    assert "b" not in during
    assert Counter(during) == {"a": 20, "c": 10}
    # Back from ejection (probing, then healthy after one good probe): b's share returns and
    # it did not save up a burst while it was out.
    balancer.on_start(b, 100.0)
    balancer.on_finish(b, 1.0, ok=True, now_ms=100.0)
    after = [balancer.pick(now_ms=100.0).name for _ in range(40)]
    assert Counter(after) == {"a": 20, "b": 10, "c": 10}
    assert "b b" not in " ".join(after)


def test_weighted_random_is_reproducible_from_the_seed() -> None:
    backends = [Backend("a", 2), Backend("b", 1)]
    first = [WeightedRandom(backends, Random(7)).pick().name for _ in range(1)]
    one = WeightedRandom(backends, Random(7))
    two = WeightedRandom(backends, Random(7))
    assert [one.pick() for _ in range(50)] == [two.pick() for _ in range(50)]
    assert first[0] in {"a", "b"}


def test_weighted_random_follows_weights() -> None:
    balancer = WeightedRandom([Backend("a", 3), Backend("b", 1)], Random(1))
    counts = Counter(balancer.pick().name for _ in range(8_000))
    # Expected 6000 / 2000; a binomial sd is ~39, so 200 is a five-sigma margin.
    assert abs(counts["a"] - 6_000) < 200
    assert counts["a"] + counts["b"] == 8_000


def test_weighted_random_equal_weights_spread_evenly() -> None:
    balancer = WeightedRandom([Backend(n) for n in "abcd"], Random(3))
    counts = Counter(balancer.pick().name for _ in range(8_000))
    assert set(counts) == set("abcd")
    assert all(abs(c - 2_000) < 200 for c in counts.values())
