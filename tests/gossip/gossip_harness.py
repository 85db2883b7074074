"""A tiny lockstep network for gossip unit tests: every tick, every member ticks, then every
message sent is delivered (unless its link is cut or its receiver is paused or down)."""

from __future__ import annotations

import random
from collections.abc import Iterable

from kvorum.core.gossip import GossipConfig, GossipCore, GossipMessage, MemberState, Verdict


class Net:
    def __init__(self, n: int, config: GossipConfig | None = None, seed: int = 1) -> None:
        self.config = config or GossipConfig()
        self.rng = random.Random(seed)
        self.cores: dict[int, GossipCore] = {}
        self.down: set[int] = set()
        self.paused: set[int] = set()
        self.blocked: set[tuple[int, int]] = set()
        self.inbox: dict[int, list[GossipMessage]] = {}
        self.sent: list[GossipMessage] = []
        self.verdicts: dict[int, list[Verdict]] = {}
        for i in range(1, n + 1):
            self.start(i, seeds=[] if i == 1 else [1])

    def start(self, node: int, seeds: Iterable[int]) -> GossipCore:
        core = GossipCore(node, self.config, random.Random(self.rng.getrandbits(64)),
                          seeds=list(seeds))
        self.cores[node] = core
        self.down.discard(node)
        self.inbox[node] = []
        self.verdicts.setdefault(node, [])
        return core

    def crash(self, node: int) -> None:
        self.down.add(node)

    def cut(self, a: int, b: int) -> None:
        self.blocked |= {(a, b), (b, a)}

    def live(self) -> list[int]:
        return [i for i in self.cores if i not in self.down]

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            outbox: list[GossipMessage] = []
            for i in self.live():
                if i in self.paused:
                    continue  # a paused member's inbox waits for it
                core = self.cores[i]
                for msg in self.inbox[i]:
                    core.step(msg)
                self.inbox[i] = []
                core.tick()
                self._drain(core, outbox)
            # Delivered once every member ticked: one hop per tick.
            for msg in outbox:
                if (msg.src, msg.dst) in self.blocked or msg.dst in self.down:
                    continue
                self.inbox[msg.dst].append(msg)

    def _drain(self, core: GossipCore, outbox: list[GossipMessage]) -> None:
        if not core.has_ready():
            return
        rd = core.ready()
        self.verdicts[core.node_id].extend(rd.verdicts)
        self.sent.extend(rd.messages)
        outbox.extend(rd.messages)
        core.advance(rd)

    def state(self, observer: int, member: int) -> MemberState | None:
        s = self.cores[observer].state_of(member)
        return None if s is None else s[0]

    def all_alive(self) -> bool:
        live = self.live()
        return all(self.state(o, m) == MemberState.ALIVE for o in live for m in live)
