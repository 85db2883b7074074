"""Many concurrent client proposers on a CASPaxos keyspace, and the history they leave.

Theory of operation: each client is sequential — it sends one operation (a read, a write,
or a compare-and-set) on one of a few keys to a node it picked, waits for the answer, then
sends the next; with many clients on few keys, proposers on different nodes contend for the
same registers all the time. An answer with an unknown outcome (the node's deadline passed,
or the node crashed) leaves the operation in the history as possibly applied, and the
client moves to another node; there is no leader to find, any node will do. The history is
checked for linearizability per key (:mod:`kvorum.sim.linearizability`). Values are distinct
integers, stored as decimal bytes.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from kvorum.core.paxos import Change, CompareAndSet, Get, Set
from kvorum.sim.linearizability import Cas, Operation, Read, Write
from kvorum.sim.machine import TICK_US
from kvorum.sim.raft.clients import ClientOp

if TYPE_CHECKING:
    from kvorum.sim.paxos.cluster import PaxosCluster


def _bytes(value: int | None) -> bytes | None:
    return None if value is None else str(value).encode()


def to_change(kind: Read | Write | Cas) -> Change:
    if isinstance(kind, Read):
        return Get()
    if isinstance(kind, Write):
        return Set(str(kind.value).encode())
    expected = kind.expected
    assert expected is None or isinstance(expected, int)
    return CompareAndSet(_bytes(expected), str(kind.new).encode())


class PaxosClients:
    """``count`` sequential clients on ``keys`` (see the module docstring)."""

    def __init__(
        self, cluster: PaxosCluster, count: int, keys: list[str], timeout_ticks: int
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
        elif roll < 0.75:
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
        op.node = node.id
        c.trace(f"client{client} -> n{node.id} {op.kind} {key}")
        if not node.up:
            self._fail(op)  # connection refused: it never reached anyone
            return
        node.request(op.op_id, key, to_change(kind), partial(self._answered, op))
        world.after(self.timeout_us, partial(self._give_up, op))

    def _answered(
        self, op: ClientOp, _request_id: int, result: object, error: str | None, known: bool
    ) -> None:
        if not known:
            self._give_up(op)
        elif error is not None:
            self._fail(op)
        else:
            self._complete(op, result)

    def _done(self, op: ClientOp) -> None:
        if self._busy.get(op.client) is not op:
            return
        self._busy[op.client] = None
        world = self.cluster.world
        if op.failed or op.complete_tick is None:
            self._target[op.client] = world.rng.choice(self.cluster.node_ids)
        world.after(world.rng.randrange(1, 2 * TICK_US), partial(self._next, op.client))

    def _complete(self, op: ClientOp, raw: object) -> None:
        if self._busy.get(op.client) is not op:
            return
        result: object
        if isinstance(op.kind, Read):
            assert raw is None or isinstance(raw, bytes)
            result = None if raw is None else int(raw)
        else:
            result = raw
        op.complete_tick = self.cluster.world.now_us // 1000
        op.result = result
        self.cluster.trace(f"client{op.client} <- {op.kind} {op.key} = {result!r}")
        self._done(op)

    def _fail(self, op: ClientOp) -> None:
        if self._busy.get(op.client) is not op:
            return
        op.failed = True
        self._done(op)

    def _give_up(self, op: ClientOp) -> None:
        """The client stops waiting; the operation's outcome stays unknown."""
        if self._busy.get(op.client) is not op:
            return
        self.cluster.trace(f"client{op.client} gives up on {op.kind} {op.key}")
        self._done(op)

    def history(self) -> list[Operation]:
        return [op.to_operation() for op in self.ops if not op.failed]
