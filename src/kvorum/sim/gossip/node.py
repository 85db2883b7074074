"""One simulated gossip member: a :class:`~kvorum.core.gossip.GossipCore` on a simulated
machine, as a host would carry it.

Theory of operation: the node ticks its core at its machine's clock rate, steps it with the
envelopes the network delivers, and after each input drains the core's ready — sending every
message in a :class:`~kvorum.core.shape.Envelope` of protocol ``GOSSIP`` and handing the
member changes and verdicts to the cluster's observers — then advances it. Gossip keeps
nothing durable, so a crash loses the core and a restart builds a fresh one that joins again
through a few members it knows the address of (the cluster's address book). A *pause* (a
stop-the-world GC, a starved CPU) stops ticks and input handling; what arrives meanwhile
waits, as in a socket buffer, and is handled first when the node wakes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from kvorum.core.gossip import GossipConfig, GossipCore, GossipReady
from kvorum.core.shape import Envelope, ProtocolId
from kvorum.sim.machine import SimMachine


class GossipSimNode:
    """A :class:`~kvorum.sim.plugin.NodeHandle` carrying one gossip core."""

    def __init__(
        self,
        node_id: int,
        config: GossipConfig,
        rng: random.Random,
        *,
        send: Callable[[Envelope], None],
        observe: Callable[[GossipSimNode, GossipReady], None],
        seeds: Callable[[int], Sequence[int]],
        on_boot: Callable[[GossipSimNode], None],
    ) -> None:
        self._id = node_id
        self._config = config
        self._rng = rng
        self._send = send
        self._observe = observe
        self._seeds = seeds
        self._on_boot = on_boot
        self.machine = SimMachine(rng)
        self.life = 0
        """Counts starts: events scheduled for an earlier life find a newer one and do nothing."""
        self._up = False
        self.retired = False
        self.paused = False
        self._held: list[Envelope] = []
        self.core: GossipCore | None = None

    @property
    def id(self) -> int:
        return self._id

    @property
    def up(self) -> bool:
        return self._up

    def boot(self, seeds: Sequence[int]) -> None:
        self.life += 1
        self._up = True
        self.paused = False
        self._held = []
        self.core = GossipCore(
            self._id, self._config, random.Random(self._rng.getrandbits(64)), seeds=seeds
        )
        self._on_boot(self)

    def crash(self) -> None:
        self._up = False
        self.paused = False
        self._held = []
        self.core = None
        self.life += 1

    def crash_mid_sync(self) -> None:
        self.crash()  # no disk: a power cut is a crash

    def restart(self) -> bool:
        self.boot(self._seeds(self._id))
        return True

    def retire(self) -> None:
        self.crash()
        self.retired = True

    def tick(self) -> None:
        if self.core is None or self.paused:
            return
        self.core.tick()
        self._drain()

    def receive(self, env: Envelope) -> None:
        if self.core is None:
            return
        if self.paused:
            self._held.append(env)
            return
        self.core.step(env.body)  # type: ignore[arg-type]
        self._drain()

    def resume(self) -> None:
        """Wake from a pause: handle everything that arrived meanwhile, in order."""
        self.paused = False
        held, self._held = self._held, []
        for env in held:
            self.receive(env)

    def _drain(self) -> None:
        core = self.core
        if core is None or not core.has_ready():
            return
        rd = core.ready()
        for msg in rd.messages:
            self._send(Envelope(ProtocolId.GOSSIP, 0, msg.src, msg.dst, msg))
        self._observe(self, rd)
        core.advance(rd)
