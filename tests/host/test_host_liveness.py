"""When a node suspects a peer: after the liveness timeout, or later for a peer that is slow.

A suspected peer's quiesced groups are woken on every node, so a false suspicion costs every
group that peer leads; these tests drive one :class:`NodeHost` with a hand-cranked clock and
feed it a peer's node heartbeats at chosen times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvorum.core.shape import Envelope, ProtocolId
from kvorum.host.messages import NodeHeartbeat
from kvorum.host.node import HostConfig, NodeHost
from kvorum.storage.memory import MemoryNodeLog

TICK_MS = 20.0


class Clock:
    """A HostWorld whose time moves only when the test says so."""

    def __init__(self) -> None:
        self.now_ms = 0.0

    def monotonic_ms(self) -> float:
        return self.now_ms

    def wall_ms(self) -> int:
        return int(self.now_ms)

    def call_later(self, delay_ms: float, action: Callable[[], None]) -> Any:
        raise AssertionError("no timers expected")

    def run_in_background(
        self, work: Callable[[], Any], done: Callable[[Any, BaseException | None], None]
    ) -> None:
        done(work(), None)


def host(clock: Clock) -> NodeHost:
    h = NodeHost(
        1,
        MemoryNodeLog(),
        world=clock,
        send=lambda env: None,
        incarnation=1,
        config=HostConfig(heartbeat_interval_ms=100, liveness_timeout_ms=300),
    )
    h.set_peers([2])
    return h


def beat(h: NodeHost) -> None:
    h.receive(Envelope(ProtocolId.NODE, 0, 2, 1, NodeHeartbeat(2, 1, 7)))


def tick_until(h: NodeHost, clock: Clock, until_ms: float) -> None:
    while clock.now_ms + TICK_MS <= until_ms:
        clock.now_ms += TICK_MS
        h.tick()


def test_a_peer_silent_past_the_timeout_is_suspected() -> None:
    clock = Clock()
    h = host(clock)
    for _ in range(10):  # a steady peer: a heartbeat every 100 ms
        beat(h)
        tick_until(h, clock, clock.now_ms + 100)
    beat(h)
    silent_from = clock.now_ms
    tick_until(h, clock, silent_from + 280)
    assert h.peer_alive(2)
    tick_until(h, clock, silent_from + 340)
    assert not h.peer_alive(2), "a peer silent past the timeout was not suspected"


def test_a_peer_that_is_slow_but_regular_is_given_twice_its_longest_gap() -> None:
    clock = Clock()
    h = host(clock)
    for _ in range(4):  # an overloaded peer: a heartbeat every 800 ms, never missed
        beat(h)
        tick_until(h, clock, clock.now_ms + 800)
    beat(h)
    silent_from = clock.now_ms
    tick_until(h, clock, silent_from + 1500)
    assert h.peer_alive(2), "a slow peer was suspected within twice its usual gap"
    tick_until(h, clock, silent_from + 1700)
    assert not h.peer_alive(2), "a slow peer that went silent was never suspected"
