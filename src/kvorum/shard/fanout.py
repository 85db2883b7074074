"""Client commands whose keys live in several groups: split them, and merge their replies.

Theory of operation: :func:`plan` turns one checked command into a :class:`Plan` — one part
per group it touches, and how to merge the parts' replies into the one reply the client
expects. Most commands name one key and become one part. The rest follow what Redis Cluster
proxies do for commands that span shards:

- ``DEL``/``EXISTS`` over keys in several groups: one command per group, replies summed;
- ``MGET``: one per group, values put back in the order the keys were asked for;
- ``DBSIZE``: every group, summed; ``FLUSHDB``: every group;
- ``SCAN``: one group at a time. With more than one group the cursor names a *position* —
  two bytes of group index, then the key to resume at inside that group; a group that is
  done hands over to the next one. The client sees a short handle for it
  (:mod:`kvorum.kv.scan_cursors`), never the position itself;
- ``MSET`` and anything else whose keys fall in different groups would lose its atomicity:
  it is refused with Redis Cluster's ``CROSSSLOT`` error, and hash tags are the remedy.

Commands split this way are not atomic across groups (a ``DEL a b`` may delete ``a`` before
``b``), exactly as in Redis Cluster proxies; each group's part is atomic in its group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kvorum.core.shape import GroupId
from kvorum.kv.commands import CommandSpec, encode_scan_cursor, lookup
from kvorum.kv.replies import ErrorReply, Reply
from kvorum.kv.scan_cursors import ScanCursors
from kvorum.kv.transactions import decode_transaction
from kvorum.shard.router import SlotRouter

CROSSSLOT = ErrorReply("CROSSSLOT Keys in request don't hash to the same slot")
_GROUP_INDEX_BYTES = 2


@dataclass(frozen=True, slots=True)
class Part:
    group_id: GroupId
    args: list[bytes]


@dataclass(frozen=True, slots=True)
class Plan:
    parts: list[Part]
    merge: Callable[[list[Reply]], Reply]


def _only(replies: list[Reply]) -> Reply:
    return replies[0]


def _first_error(replies: list[Reply]) -> ErrorReply | None:
    return next((r for r in replies if isinstance(r, ErrorReply)), None)


def _sum(replies: list[Reply]) -> Reply:
    error = _first_error(replies)
    if error is not None:
        return error
    return sum(r for r in replies if isinstance(r, int))


def _all_ok(replies: list[Reply]) -> Reply:
    return _first_error(replies) or replies[0]


def plan(
    spec: CommandSpec, args: list[bytes], router: SlotRouter, cursors: ScanCursors
) -> Plan | ErrorReply:
    """How to run ``args`` (already checked: ``spec`` is its command) over the groups;
    ``cursors`` holds the node's SCAN cursor handles."""
    name = spec.name
    if name == "scan":
        return _plan_scan(args, router, cursors)
    if len(router) == 1:
        return Plan([Part(router.group_ids[0], args)], _only)
    if name == "exec":
        return _plan_transaction(args, router)
    if name in ("dbsize", "flushdb"):
        merge = _sum if name == "dbsize" else _all_ok
        return Plan([Part(g, args) for g in router.group_ids], merge)
    positions = spec.key_positions(len(args))
    if not positions:
        return Plan([Part(router.group_ids[0], args)], _only)
    by_group: dict[GroupId, list[int]] = {}
    for pos in positions:
        by_group.setdefault(router.group_of(args[pos]), []).append(pos)
    if len(by_group) == 1:
        return Plan([Part(next(iter(by_group)), args)], _only)
    if name in ("del", "exists"):
        parts = [Part(g, [args[0], *(args[p] for p in ps)]) for g, ps in by_group.items()]
        return Plan(parts, _sum)
    if name == "mget":
        return _plan_mget(args, by_group)
    return CROSSSLOT


def _plan_mget(args: list[bytes], by_group: dict[GroupId, list[int]]) -> Plan:
    groups = list(by_group.items())
    parts = [Part(g, [args[0], *(args[p] for p in ps)]) for g, ps in groups]

    def merge(replies: list[Reply]) -> Reply:
        error = _first_error(replies)
        if error is not None:
            return error
        values: list[Reply] = [None] * (len(args) - 1)
        for (_, ps), reply in zip(groups, replies, strict=True):
            assert isinstance(reply, list)
            for pos, value in zip(ps, reply, strict=True):
                values[pos - 1] = value
        return values

    return Plan(parts, merge)


def _plan_transaction(args: list[bytes], router: SlotRouter) -> Plan | ErrorReply:
    """A MULTI/EXEC runs in one group, as one entry: every key it names or watches must be
    there (CROSSSLOT otherwise, as Redis Cluster answers); one without keys goes to the first."""
    try:
        watches, commands = decode_transaction(args)
    except ValueError:
        return ErrorReply("ERR malformed transaction")
    keys = [w.key for w in watches]
    for command in commands:
        spec = lookup(command)
        if isinstance(spec, ErrorReply):
            continue  # refused when queued; the state machine answers it
        if spec.name in ("dbsize", "flushdb"):
            if len(router) > 1:
                return CROSSSLOT  # needs every group: not one entry
            continue
        keys += [command[p] for p in spec.key_positions(len(command)) if p < len(command)]
    groups = {router.group_of(key) for key in keys}
    if len(groups) > 1:
        return CROSSSLOT
    group = groups.pop() if groups else router.group_ids[0]
    return Plan([Part(group, args)], _only)


def _plan_scan(args: list[bytes], router: SlotRouter, cursors: ScanCursors) -> Plan | ErrorReply:
    inner_cursor = cursors.resolve(args[1])
    if isinstance(inner_cursor, ErrorReply):
        return inner_cursor
    if len(router) == 1:
        # One group: its state machine's cursor is the whole story.

        def merge_one(replies: list[Reply]) -> Reply:
            (reply,) = replies
            if isinstance(reply, ErrorReply):
                return reply
            assert isinstance(reply, list) and isinstance(reply[0], bytes)
            return [cursors.issue(reply[0]), reply[1]]

        return Plan([Part(router.group_ids[0], [args[0], inner_cursor, *args[2:]])], merge_one)
    cursor = int(inner_cursor)
    position = b""
    if cursor:
        position = cursor.to_bytes((cursor.bit_length() + 7) // 8, "big")[1:]
    if cursor and len(position) < _GROUP_INDEX_BYTES:
        return ErrorReply("ERR invalid cursor")
    index = int.from_bytes(position[:_GROUP_INDEX_BYTES], "big") if cursor else 0
    if index >= len(router):
        return ErrorReply("ERR invalid cursor")
    key = position[_GROUP_INDEX_BYTES:]
    inner = encode_scan_cursor(key) if key else b"0"
    group_id = router.group_ids[index]

    def merge(replies: list[Reply]) -> Reply:
        (reply,) = replies
        if isinstance(reply, ErrorReply):
            return reply
        assert isinstance(reply, list) and len(reply) == 2
        next_inner, keys = reply
        assert isinstance(next_inner, bytes)
        if next_inner != b"0":
            cursor_int = int(next_inner)
            next_key = cursor_int.to_bytes((cursor_int.bit_length() + 7) // 8, "big")[1:]
            return [cursors.issue(_position_cursor(index, next_key)), keys]
        if index + 1 < len(router):
            return [cursors.issue(_position_cursor(index + 1, b"")), keys]
        return [b"0", keys]

    return Plan([Part(group_id, [args[0], inner, *args[2:]])], merge)


def _position_cursor(index: int, key: bytes) -> bytes:
    return encode_scan_cursor(index.to_bytes(_GROUP_INDEX_BYTES, "big") + key)


def merge_in_order(
    plans: Sequence[Plan], results: dict[tuple[int, int], Reply]
) -> list[Reply]:
    """Each plan's merged reply, given every part's reply keyed by (plan, part) index."""
    return [
        p.merge([results[(i, j)] for j in range(len(p.parts))]) for i, p in enumerate(plans)
    ]
