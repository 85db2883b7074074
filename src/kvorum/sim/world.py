"""Virtual time and the network between simulated nodes.

Theory of operation: a simulation is one event queue ordered by (virtual time in
microseconds, sequence number), so two events at the same instant always run in the order
they were scheduled and a run is a pure function of its seed. :class:`World` owns the clock,
the queue and the one seeded :class:`random.Random` that every random choice in the run draws
from. :class:`Network` decides the fate of every message when it is sent — dropped by a
partition or by loss, delivered once or twice, after a random delay (random delays are what
reorder messages) — and schedules its delivery. Partitions are sets of blocked directed links,
so one-way partitions, bridges and rings are all the same mechanism.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

Action = Callable[[], None]


class World:
    """The clock, the event queue and the randomness of one simulation run."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.now_us = 0
        self._queue: list[tuple[int, int, Action]] = []
        self._seq = 0
        self.stats: Counter[str] = Counter()
        """What happened in the run, counted by name (faults that struck, disk errors met):
        tests use it to show that a fault really bit."""

    def at(self, when_us: int, action: Action) -> None:
        """Run ``action`` at virtual time ``when_us`` (never in the past)."""
        self._seq += 1
        heapq.heappush(self._queue, (max(when_us, self.now_us), self._seq, action))

    def after(self, delay_us: int, action: Action) -> None:
        self.at(self.now_us + delay_us, action)

    def run_until(self, end_us: int, after_each: Action | None = None) -> None:
        """Run events in order until the queue is empty or time passes ``end_us``."""
        while self._queue and self._queue[0][0] <= end_us:
            when, _, action = heapq.heappop(self._queue)
            self.now_us = when
            action()
            if after_each is not None:
                after_each()
        self.now_us = max(self.now_us, end_us)

    def child_rng(self) -> random.Random:
        """A new generator seeded from this run's, for a component that needs its own."""
        return random.Random(self.rng.getrandbits(64))


@dataclass(slots=True)
class NetworkFaults:
    """How unreliable the network is right now (the fault schedule changes these)."""

    loss: float = 0.0
    duplicate: float = 0.0
    min_delay_us: int = 200
    max_delay_us: int = 2_000
    slow_delay_us: int = 0
    """Occasionally (probability ``slow_p``) a message takes this much longer."""
    slow_p: float = 0.0
    blocked: set[tuple[int, int]] = field(default_factory=set)
    """Directed links (src, dst) that drop everything: partitions."""


class Network:
    """Delivers messages between nodes through the world's event queue."""

    def __init__(self, world: World, deliver: Callable[[Any], None]) -> None:
        self.world = world
        self.faults = NetworkFaults()
        self._deliver = deliver
        self.sent = 0
        self.dropped = 0

    def send(self, msg: Any) -> None:
        """Send ``msg`` (which names its ``src`` and ``dst``) subject to the current faults."""
        self.sent += 1
        f = self.faults
        rng = self.world.rng
        if (msg.src, msg.dst) in f.blocked or (f.loss and rng.random() < f.loss):
            self.dropped += 1
            return
        copies = 2 if f.duplicate and rng.random() < f.duplicate else 1
        span = f.max_delay_us - f.min_delay_us + 1
        for _ in range(copies):
            # random() rather than randint(): this runs for every message of every run, and
            # randint costs several times more for the same uniform draw.
            delay = f.min_delay_us + int(rng.random() * span)
            if f.slow_p and rng.random() < f.slow_p:
                delay += f.slow_delay_us
            self.world.after(delay, partial(self._arrive, msg))

    def _arrive(self, msg: Any) -> None:
        # A partition that starts while a message is in flight cuts it off too.
        if (msg.src, msg.dst) in self.faults.blocked:
            self.dropped += 1
            return
        self._deliver(msg)

    def block(self, links: set[tuple[int, int]]) -> None:
        self.faults.blocked = set(links)

    def heal(self) -> None:
        self.faults.blocked = set()
