"""Client-side load balancing: choose a backend per request, learn from each outcome.

Theory of operation: a client holds one :class:`Balancer` over its list of backends. For each
request it calls ``pick(key, now_ms=...)``, then ``on_start(backend)`` when the request is
sent and ``on_finish(backend, latency_ms, ok, now_ms)`` when it ends; strategies that care
about load or latency learn from those two hooks, and an optional :class:`PassiveHealth`
checker ejects backends whose requests keep failing and re-admits them on probation.
Strategies, from "knows nothing" to "knows most":

==============================  ===============================================================
:class:`RoundRobin`             each backend in turn
:class:`SmoothWeightedRoundRobin`  nginx's interleaved weighted rotation (5,1,1 → a a b a c a a)
:class:`WeightedRandom`         random, in proportion to weight
:class:`KeyHash`                same key → same backend (``hash mod n``; IP hash)
:class:`ConsistentHashBoundedLoad`  same key → same backend, few keys move, no backend overfull
:class:`LeastConnections`       fewest requests in flight per unit weight
:class:`PowerOfTwoChoices`      of two random backends, the one with fewer in flight
:class:`LeastResponseTime`      least EWMA latency × (in flight + 1)
:class:`PeakEwmaP2C`            P2C by peak-EWMA latency × (in flight + 1) (Finagle / Linkerd)
==============================  ===============================================================

Everything here is pure: time is the ``now_ms`` the caller passes (and may never go
backwards), randomness is a seeded :class:`random.Random` handed to the constructor, and
nothing is read from or written to the world — so the same inputs give the same picks, in a
simulator or a test as in production.
"""

from kvorum.balance._backend import Backend, BalancerError, ClockWentBackwardsError
from kvorum.balance._base import Balancer
from kvorum.balance._hashing import ConsistentHashBoundedLoad, KeyHash, stable_hash64
from kvorum.balance._health import EjectionPolicy, HealthState, PassiveHealth
from kvorum.balance._load import (
    LeastConnections,
    LeastResponseTime,
    PeakEwmaP2C,
    PowerOfTwoChoices,
)
from kvorum.balance._rotation import RoundRobin, SmoothWeightedRoundRobin, WeightedRandom

__all__ = [
    "Backend",
    "Balancer",
    "BalancerError",
    "ClockWentBackwardsError",
    "ConsistentHashBoundedLoad",
    "EjectionPolicy",
    "HealthState",
    "KeyHash",
    "LeastConnections",
    "LeastResponseTime",
    "PassiveHealth",
    "PeakEwmaP2C",
    "PowerOfTwoChoices",
    "RoundRobin",
    "SmoothWeightedRoundRobin",
    "WeightedRandom",
    "stable_hash64",
]
