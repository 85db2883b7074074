"""The simulated clients of a KV cluster, and the history they leave for the checker.

Theory of operation: clients are sequential. Each sends one operation — a GET, a SET, or a
compare-and-set (``CAS``, or ``SET NX`` when it expects the key absent) on one of a few keys —
to a node, waits for the answer or gives up after a timeout (the outcome is then unknown),
then sends the next. An operation refused before it entered any log (no leader, a full disk,
a node that is down) certainly had no effect and is left out of the history; one that timed
out stays in it as possibly applied. The history is checked for linearizability per key
(:mod:`kvorum.sim.linearizability`); keys are spread over the groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from kvorum.sim.linearizability import Cas, Operation, Read, Write
from kvorum.sim.machine import TICK_US

if TYPE_CHECKING:
    from kvorum.sim.raft.cluster import RaftCluster


@dataclass(slots=True)
class ClientOp:
    """One client operation in flight or finished, as the simulator tracks it."""

    op_id: int
    client: int
    key: str
    kind: Read | Write | Cas
    invoke_tick: int
    node: int = -1
    complete_tick: int | None = None
    result: Any = None
    failed: bool = False
    """Definitely had no effect (refused before entering any log): left out of the history."""

    def to_operation(self) -> Operation:
        return Operation(
            self.client,
            self.key,
            self.kind,
            self.invoke_tick,
            self.complete_tick,
            self.result if self.complete_tick is not None else None,
        )


class KVClients:
    """``count`` sequential clients on ``keys`` (see the module docstring)."""

    def __init__(
        self, cluster: RaftCluster, count: int, keys: list[str], timeout_ticks: int
    ) -> None:
        self.cluster = cluster
        self.count = count
        self.keys = keys
        self.timeout_us = timeout_ticks * TICK_US
        self.ops: list[ClientOp] = []
        rng = cluster.world.rng
        self._target = {c: rng.choice(cluster.node_ids) for c in range(count)}
        self._busy: dict[int, ClientOp | None] = dict.fromkeys(range(count))
        self._next_value = 0
        self.running = False

    def start(self) -> None:
        self.running = True
        world = self.cluster.world
        for c in range(self.count):
            world.after(world.rng.randrange(1, 5 * TICK_US), partial(self._next, c))

    def stop(self) -> None:
        self.running = False

    def _next(self, client: int) -> None:
        if not self.running or self._busy[client] is not None:
            return
        c = self.cluster
        world = c.world
        rng = world.rng
        key = rng.choice(self.keys)
        roll = rng.random()
        kind: Read | Write | Cas
        if roll < 0.4:
            kind = Read()
        elif roll < 0.8:
            self._next_value += 1
            kind = Write(self._next_value)
        else:
            self._next_value += 1
            expected = rng.choice([None, *range(max(1, self._next_value - 4), self._next_value)])
            kind = Cas(expected, self._next_value)
        op = ClientOp(len(self.ops), client, key, kind, world.now_us // 1000)
        self.ops.append(op)
        self._busy[client] = op
        node = c.nodes[self._target[client]]
        c.trace(f"client{client} -> n{node.id} {op.kind} {key}")
        if not node.up:
            self.fail(op)  # connection refused: it never reached anyone
            return
        node.handle_client(op)
        world.after(self.timeout_us, lambda: self.give_up(op))

    def _done(self, op: ClientOp) -> None:
        if self._busy.get(op.client) is not op:
            return
        self._busy[op.client] = None
        world = self.cluster.world
        if op.failed or op.complete_tick is None:
            self._target[op.client] = world.rng.choice(self.cluster.node_ids)
        world.after(world.rng.randrange(1, 2 * TICK_US), lambda: self._next(op.client))

    def complete(self, op: ClientOp, result: Any) -> None:
        if self._busy.get(op.client) is not op:
            return
        op.complete_tick = self.cluster.world.now_us // 1000
        op.result = result
        self.cluster.trace(f"client{op.client} <- {op.kind} {op.key} = {result!r}")
        self._done(op)

    def fail(self, op: ClientOp) -> None:
        if self._busy.get(op.client) is not op:
            return
        op.failed = True
        self._done(op)

    def give_up(self, op: ClientOp) -> None:
        """The client stops waiting; the operation's outcome stays unknown."""
        if self._busy.get(op.client) is not op:
            return
        self._done(op)

    def history(self) -> list[Operation]:
        return [op.to_operation() for op in self.ops if not op.failed]
