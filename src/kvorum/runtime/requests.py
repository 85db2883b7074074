"""Client requests on a node: routed to their groups, carried out by the host, replied to.

Theory of operation: the RESP server hands a node whole batches — consecutive writes as
encoded payloads, consecutive reads as argument lists — and waits on one future per batch.
:class:`RequestRouter` finds each request's group (:mod:`kvorum.shard`), gives every group its
share of the batch as *one* submission (one proposal or one ReadIndex per group per batch),
and settles the batch's future once every group has answered, with the replies back in
request order. A request whose keys span groups is split by its :class:`~kvorum.shard.fanout.Plan`
and its parts' replies merged.

The common case is kept cheap: with one group, or a batch whose requests all fall in one
group, the batch's own future is handed to the host as the waiter (an ``asyncio.Future`` is
a host :class:`~kvorum.host.waiters.Waiter`), so nothing runs per request beyond routing.

Reads are evaluated against the group's state machine when the host says its read index is
applied; a stale read is evaluated at once against whatever this node has applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from kvorum.core.shape import GroupId
from kvorum.host.errors import RequestError
from kvorum.host.node import NodeHost
from kvorum.host.waiters import CallbackWaiter
from kvorum.kv.commands import CommandSpec, decode_write, lookup
from kvorum.kv.group_machine import KVGroupMachine
from kvorum.kv.replies import ErrorReply, Reply
from kvorum.kv.scan_cursors import ScanCursors, is_scan
from kvorum.server.executor import Consistency
from kvorum.shard.fanout import Plan, plan
from kvorum.shard.router import SlotRouter

ReplyFuture = asyncio.Future[list[Reply]]


class RequestRouter:
    """Routes client batches to groups on one node (see the module docstring)."""

    def __init__(
        self,
        host: NodeHost,
        router: SlotRouter,
        machines: dict[GroupId, KVGroupMachine],
        now_ms: Callable[[], int],
        on_submit: Callable[[], None],
    ) -> None:
        self._host = host
        self._router = router
        self._machines = machines
        self._now_ms = now_ms
        self._on_submit = on_submit
        self._single = router.group_ids[0] if len(router) == 1 else None
        self._cursors = ScanCursors(host.node_id)
        self.reads = 0

    # --- writes ------------------------------------------------------------------------------

    def submit_writes(self, payloads: Sequence[bytes]) -> ReplyFuture:
        fut: ReplyFuture = asyncio.get_running_loop().create_future()
        if self._single is not None:
            self._host.submit_writes(self._single, list(payloads), fut)
        else:
            plans = []
            for payload in payloads:
                now_ms, args = decode_write(payload)
                plans.append((_plan_of(args, self._router, self._cursors), payload, now_ms, args))
            self._scatter_writes(plans, fut)
        self._on_submit()
        return fut

    def _scatter_writes(
        self, plans: list[tuple[Plan | ErrorReply, bytes, int, list[bytes]]], fut: ReplyFuture
    ) -> None:
        by_group: dict[GroupId, list[bytes]] = {}
        slots: dict[GroupId, list[tuple[int, int]]] = {}
        for i, (p, payload, now_ms, args) in enumerate(plans):
            if isinstance(p, ErrorReply):
                continue
            for j, part in enumerate(p.parts):
                same = part.args is args
                data = payload if same else msgpack.packb([now_ms, part.args], use_bin_type=True)
                by_group.setdefault(part.group_id, []).append(data)
                slots.setdefault(part.group_id, []).append((i, j))
        simple = all(isinstance(p, Plan) and len(p.parts) == 1 for p, *_ in plans)
        if simple and len(by_group) == 1:
            # The whole batch is one group's, one part per request: the batch's own future
            # can wait on the host directly.
            gid = next(iter(by_group))
            self._host.submit_writes(gid, by_group[gid], fut)
            return
        gather = _Gather([p for p, *_ in plans], fut)
        for gid, datas in by_group.items():
            self._host.submit_writes(gid, datas, gather.waiter(slots[gid]))
        gather.check_done()

    # --- reads -------------------------------------------------------------------------------

    def submit_reads(
        self, requests: Sequence[Sequence[bytes]], consistency: Consistency
    ) -> ReplyFuture:
        self.reads += len(requests)
        fut: ReplyFuture = asyncio.get_running_loop().create_future()
        now_ms = self._now_ms()
        single = self._single
        if single is not None and not any(is_scan(r) for r in requests):
            read = self._machines[single].kv.read
            if consistency is Consistency.STALE:
                fut.set_result([read(r, now_ms) for r in requests])
                return fut
            self._host.submit_reads(single, lambda: [read(r, now_ms) for r in requests], fut)
            self._on_submit()
            return fut
        plans = [_plan_of(list(r), self._router, self._cursors) for r in requests]
        by_group: dict[GroupId, list[list[bytes]]] = {}
        slots: dict[GroupId, list[tuple[int, int]]] = {}
        for i, p in enumerate(plans):
            if isinstance(p, ErrorReply):
                continue
            for j, part in enumerate(p.parts):
                by_group.setdefault(part.group_id, []).append(part.args)
                slots.setdefault(part.group_id, []).append((i, j))
        gather = _Gather(plans, fut)
        for gid, reqs in by_group.items():
            evaluate = self._evaluator(gid, reqs, now_ms)
            waiter = gather.waiter(slots[gid])
            if consistency is Consistency.STALE:
                waiter.set_result(evaluate())
            else:
                self._host.submit_reads(gid, evaluate, waiter)
        gather.check_done()
        self._on_submit()
        return fut

    def _evaluator(
        self, gid: GroupId, requests: list[list[bytes]], now_ms: int
    ) -> Callable[[], list[Reply]]:
        read = self._machines[gid].kv.read
        return lambda: [read(r, now_ms) for r in requests]


def _plan_of(args: list[bytes], router: SlotRouter, cursors: ScanCursors) -> Plan | ErrorReply:
    spec = lookup(args)
    if isinstance(spec, ErrorReply):
        return spec
    assert isinstance(spec, CommandSpec)
    return plan(spec, args, router, cursors)


class _Gather:
    """Collects the parts' replies of a batch split over groups, then settles its future."""

    def __init__(self, plans: Sequence[Plan | ErrorReply], fut: ReplyFuture) -> None:
        self._plans = plans
        self._fut = fut
        self._results: dict[tuple[int, int], Reply] = {}
        self._waiting = 0
        self._asked = 0
        self._errors: list[BaseException] = []

    def waiter(self, slots: list[tuple[int, int]]) -> CallbackWaiter:
        self._waiting += 1
        self._asked += 1

        def done(result: Any, error: BaseException | None) -> None:
            self._waiting -= 1
            if error is not None:
                self._errors.append(error)
                reply: Reply = ErrorReply(
                    error.message if isinstance(error, RequestError) else "ERR internal error"
                )
                for slot in slots:
                    self._results[slot] = reply
            else:
                for slot, value in zip(slots, result, strict=True):
                    self._results[slot] = value
            self.check_done()

        return CallbackWaiter(done)

    def _parts_total(self) -> int:
        """How many groups were asked (each failure above is one group's)."""
        return self._asked

    def check_done(self) -> None:
        if self._waiting or self._fut.done():
            return
        if self._errors and len(self._errors) == self._parts_total():
            # Every group failed: the batch as a whole could not be carried out.
            self._fut.set_exception(self._errors[0])
            return
        replies: list[Reply] = []
        for i, p in enumerate(self._plans):
            if isinstance(p, ErrorReply):
                replies.append(p)
            else:
                replies.append(p.merge([self._results[(i, j)] for j in range(len(p.parts))]))
        self._fut.set_result(replies)
