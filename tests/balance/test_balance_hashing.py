"""Key hash and consistent hashing with bounded loads: affinity, few moves, capped load."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvorum.balance import (
    Backend,
    BalancerError,
    ConsistentHashBoundedLoad,
    EjectionPolicy,
    KeyHash,
    PassiveHealth,
    stable_hash64,
)

ABC = [Backend("a"), Backend("b"), Backend("c")]
KEYS = [f"key-{i}".encode() for i in range(2_000)]


def test_stable_hash_is_fixed_across_processes() -> None:
    # Python's own hash() of bytes is salted per process; this must not be. (The same
    # BLAKE2b-64 as kvorum.sharding, so balancer and shard placement agree.)
    assert stable_hash64(b"192.168.1.7") == 0xC24C8B3794EA8EA2
    assert stable_hash64(b"a") != stable_hash64(b"b")


@given(st.binary(max_size=32))
def test_key_hash_sends_the_same_key_to_the_same_backend(key: bytes) -> None:
    balancer = KeyHash(ABC)
    assert len({balancer.pick(key) for _ in range(5)}) == 1
    # Another client with the same list agrees.
    assert KeyHash(ABC).pick(key) == balancer.pick(key)


def test_key_hash_uses_every_backend() -> None:
    counts = Counter(KeyHash(ABC).pick(k).name for k in KEYS)
    assert all(500 < counts[n] < 830 for n in "abc")


def test_hash_strategies_need_a_key() -> None:
    for balancer in (KeyHash(ABC), ConsistentHashBoundedLoad(ABC)):
        with pytest.raises(BalancerError, match="needs a key"):
            balancer.pick()


def test_ring_adding_a_backend_moves_only_keys_to_it_and_about_a_quarter() -> None:
    ring = ConsistentHashBoundedLoad(ABC)
    before = [ring.pick(k).name for k in KEYS]
    ring.add(Backend("d"))
    after = [ring.pick(k).name for k in KEYS]
    moved = [(x, y) for x, y in zip(before, after, strict=True) if x != y]
    assert all(y == "d" for _, y in moved)
    assert 0.15 * len(KEYS) < len(moved) < 0.35 * len(KEYS)
    # hash mod n, for contrast, moves most keys.
    modulo = KeyHash(ABC)
    mod_before = [modulo.pick(k) for k in KEYS]
    modulo.add(Backend("d"))
    mod_moved = sum(x != modulo.pick(k) for k, x in zip(KEYS, mod_before, strict=True))
    assert mod_moved > 0.6 * len(KEYS)


def test_ring_removing_a_backend_moves_only_its_keys() -> None:
    ring = ConsistentHashBoundedLoad([*ABC, Backend("d")])
    before = [ring.pick(k).name for k in KEYS]
    ring.remove("b")
    after = [ring.pick(k).name for k in KEYS]
    for x, y in zip(before, after, strict=True):
        assert x == y if x != "b" else y != "b"


def test_ring_weights_scale_the_share() -> None:
    ring = ConsistentHashBoundedLoad([Backend("big", 3), Backend("small", 1)])
    counts = Counter(ring.home(k).name for k in KEYS)
    assert 2.2 < counts["big"] / counts["small"] < 4.0


def test_ring_home_ignores_load_but_pick_respects_the_cap() -> None:
    ring = ConsistentHashBoundedLoad(ABC, load_factor=1.25)
    key = b"hot-key"
    home = ring.home(key)
    picks = []
    for _ in range(30):
        chosen = ring.pick(key)
        ring.on_start(chosen)  # the hot key's requests pile up
        picks.append(chosen)
    assert picks[0] == home
    assert all(ring.home(key) == home for _ in range(3))
    loads = [ring.active(b) for b in ABC]
    assert max(loads) <= 13  # ceil(1.25 * 30 / 3) = 13: the cap holds
    assert sum(loads) == 30


def test_ring_without_cap_sends_a_hot_key_to_one_backend() -> None:
    ring = ConsistentHashBoundedLoad(ABC, load_factor=None)
    for _ in range(30):
        ring.on_start(ring.pick(b"hot-key"))
    assert sorted(ring.active(b) for b in ABC) == [0, 0, 30]


@given(st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=120),
       st.sampled_from([1.0, 1.1, 1.25, 2.0]))
def test_ring_never_exceeds_the_bounded_load(keys: list[bytes], load_factor: float) -> None:
    backends = [Backend("a", 1), Backend("b", 2), Backend("c", 1)]
    ring = ConsistentHashBoundedLoad(backends, vnodes_per_weight=20, load_factor=load_factor)
    total_weight = 4
    for placed, key in enumerate(keys, start=1):
        chosen = ring.pick(key)
        ring.on_start(chosen)
        # Right after placing request number `placed`, every backend is within its cap.
        for b in backends:
            cap = -(-load_factor * placed * b.weight // total_weight)
            assert ring.active(b) <= cap


def test_ring_routes_around_an_ejected_backend_and_back() -> None:
    health = PassiveHealth(EjectionPolicy(consecutive_failures=1, base_ejection_ms=100.0))
    ring = ConsistentHashBoundedLoad(ABC, health=health)
    b_keys = [k for k in KEYS if ring.home(k).name == "b"][:50]
    ring.on_start(ABC[1], 0.0)
    ring.on_finish(ABC[1], 1.0, ok=False, now_ms=0.0)
    rerouted = Counter(ring.pick(k, now_ms=10.0).name for k in b_keys)
    assert "b" not in rerouted
    assert set(rerouted) == {"a", "c"}  # spread by b's many points, not all onto one
    assert all(ring.pick(k, now_ms=10.0) == ring.home(k) for k in KEYS[:200]
               if ring.home(k).name != "b")
    # Re-admitted after the ejection: b's keys come home.
    assert ring.pick(b_keys[0], now_ms=100.0).name == "b"
