"""The seed's rumour spreading on the simulated network, round by round, and its model.

Theory of operation: :class:`RumourSim` puts one :class:`~kvorum.core.gossip.RumourCore` per
node on a :class:`~kvorum.sim.world.World` and its :class:`~kvorum.sim.world.Network`. All
nodes tick together once a round (10 ms of virtual time) and every message arrives within
the round it was sent in (network delays are 0.2-2 ms), so rounds are the seed's rounds.
Links can be cut (a partition is blocked links), nodes can die (they stop, messages to them
are lost) and join (a new node knows every live node, and they learn of it), between rounds.

:func:`expected_rounds` is the epidemic model's answer for the same process: with ``i``
nodes informed, each of the ``N - i`` others escapes all ``i`` pushes of a round with
probability (1 - f/(N-1))^i, so the newly informed are Binomial(N - i, 1 - that); the
expected number of rounds until all N know is computed exactly over that Markov chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from kvorum.core.gossip import Rumour, RumourCore
from kvorum.sim.machine import TICK_US
from kvorum.sim.world import Network, World

RUMOUR = 1


@dataclass(slots=True)
class Spread:
    """How one rumour spread."""

    rounds: int | None
    """Rounds until every live node knew it (None: not within the limit)."""
    informed_per_round: list[int] = field(default_factory=list)
    pushes: int = 0
    redundant_pushes: int = 0
    """Pushes that reached a node that already knew."""
    lost_pushes: int = 0
    """Pushes dropped by a cut link or sent to a dead node."""


class RumourSim:
    def __init__(self, seed: int, nodes: int, fanout: int) -> None:
        self.world = World(seed)
        self.network = Network(self.world, self._deliver)
        self.fanout = fanout
        ids = list(range(1, nodes + 1))
        self.cores = {i: RumourCore(i, ids, fanout, self.world.child_rng()) for i in ids}
        self.dead: set[int] = set()
        self.round = 0
        self._spread = Spread(None)

    @property
    def current(self) -> Spread:
        """The spread under way (or the last one)."""
        return self._spread

    def live(self) -> list[int]:
        return [i for i in self.cores if i not in self.dead]

    def cut(self, a: int, b: int) -> None:
        self.network.block(self.network.faults.blocked | {(a, b), (b, a)})

    def kill(self, node: int) -> None:
        self.dead.add(node)

    def join(self) -> int:
        new = max(self.cores) + 1
        live = self.live()
        self.cores[new] = RumourCore(new, live, self.fanout, self.world.child_rng())
        for i in live:
            self.cores[i].add_peer(new)
        return new

    def informed(self) -> list[int]:
        return [i for i in self.live() if RUMOUR in self.cores[i].heard]

    def spread(
        self,
        origin: int,
        *,
        max_rounds: int = 200,
        between_rounds: Callable[[RumourSim], None] | None = None,
    ) -> Spread:
        """Let ``origin`` have the rumour and run rounds until every live node knows it."""
        self._spread = s = Spread(None)
        self.cores[origin].originate(RUMOUR)
        s.informed_per_round.append(1)
        for _ in range(max_rounds):
            self.round += 1
            end = self.round * TICK_US
            for i in self.live():
                core = self.cores[i]
                core.tick()
                if core.has_ready():
                    rd = core.ready()
                    for msg in rd.messages:
                        s.pushes += 1
                        self.network.send(msg)
                    core.advance(rd)
            self.world.run_until(end + TICK_US - 1)
            if between_rounds is not None:
                between_rounds(self)
            informed = len(self.informed())
            s.informed_per_round.append(informed)
            if informed == len(self.live()):
                s.rounds = self.round
                break
        s.lost_pushes = self.network.dropped
        return s

    def _deliver(self, msg: Rumour) -> None:
        if msg.dst in self.dead:
            self.network.dropped += 1
            return
        core = self.cores[msg.dst]
        if msg.rumour_id in core.heard:
            self._spread.redundant_pushes += 1
        core.step(msg)


def _binomial_pmf(n: int, p: float) -> list[tuple[int, float]]:
    """(k, P(k)) of Binomial(n, p), for the k within 12 standard deviations of the mean
    (the rest weighs less than 1e-30 together)."""
    if p <= 0.0:
        return [(0, 1.0)]
    if p >= 1.0:
        return [(n, 1.0)]
    lp, lq = math.log(p), math.log1p(-p)
    lg = math.lgamma
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    lo, hi = max(0, math.floor(mean - 12 * sd - 1)), min(n, math.ceil(mean + 12 * sd + 1))
    head = lg(n + 1)
    return [
        (k, math.exp(head - lg(k + 1) - lg(n - k + 1) + k * lp + (n - k) * lq))
        for k in range(lo, hi + 1)
    ]


def expected_rounds(nodes: int, fanout: int, *, max_rounds: int = 200) -> float:
    """The epidemic model's expected rounds for one rumour to reach all ``nodes`` (see the
    module docstring). Exact over the chain; O(N²) per round."""
    n = nodes
    miss = 1.0 - min(1.0, fanout / max(1, n - 1))
    dist = [0.0] * (n + 1)
    dist[1] = 1.0
    expected = 0.0
    for r in range(1, max_rounds + 1):
        nxt = [0.0] * (n + 1)
        nxt[n] = dist[n]
        for i in range(1, n):
            if dist[i] < 1e-15:
                continue
            for k, pk in _binomial_pmf(n - i, 1.0 - miss**i):
                nxt[i + k] += dist[i] * pk
        newly_done = nxt[n] - dist[n]
        expected += r * newly_done
        dist = nxt
        if dist[n] > 1 - 1e-12:
            break
    return expected


def mean_field_rounds(nodes: int, fanout: int) -> float:
    """The deterministic (mean-field) epidemic curve's rounds until fewer than half a node
    is left uninformed — the model at sizes where the exact chain is too slow."""
    n, i, r = float(nodes), 1.0, 0
    miss = 1.0 - fanout / (n - 1)
    while n - i >= 0.5 and r < 1000:
        i += (n - i) * (1.0 - miss**i)
        r += 1
    return float(r)
