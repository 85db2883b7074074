"""Routing keys to groups and splitting commands over groups (kvorum.shard)."""

from __future__ import annotations

from kvorum.kv.commands import COMMANDS, encode_scan_cursor
from kvorum.kv.replies import ErrorReply
from kvorum.kv.scan_cursors import ScanCursors
from kvorum.shard.fanout import CROSSSLOT, Plan, plan
from kvorum.shard.router import SlotRouter
from kvorum.sharding import SLOT_COUNT, key_slot

ROUTER = SlotRouter([0, 1, 2, 3])
CURSORS = ScanCursors(1)


def key_in(group: int, start: int = 0) -> bytes:
    i = start
    while True:
        key = b"key%d" % i
        if ROUTER.group_of(key) == group:
            return key
        i += 1


def test_slots_are_cut_into_equal_contiguous_runs() -> None:
    spans = [ROUTER.slot_span(g) for g in range(4)]
    assert spans == [(0, 4096), (4096, 8192), (8192, 12288), (12288, SLOT_COUNT)]
    for key in (b"a", b"b", b"{user1}x", b"zzz"):
        lo, hi = ROUTER.slot_span(ROUTER.group_of(key))
        assert lo <= key_slot(key) < hi


def test_hash_tags_keep_keys_in_one_group() -> None:
    assert ROUTER.group_of(b"{user1000}.following") == ROUTER.group_of(b"{user1000}.followers")


def run(p: Plan | ErrorReply, replies: list[object]) -> object:
    assert isinstance(p, Plan)
    return p.merge(replies)  # type: ignore[arg-type]


def test_single_key_commands_are_one_part() -> None:
    args = [b"SET", b"k", b"v"]
    p = plan(COMMANDS["set"], args, ROUTER, CURSORS)
    assert isinstance(p, Plan) and len(p.parts) == 1
    assert p.parts[0].group_id == ROUTER.group_of(b"k") and p.parts[0].args is args


def test_del_and_exists_over_groups_are_summed() -> None:
    a, b, c = key_in(0), key_in(1), key_in(1, 1000)
    p = plan(COMMANDS["del"], [b"DEL", a, b, c], ROUTER, CURSORS)
    assert isinstance(p, Plan)
    assert sorted((part.group_id, part.args) for part in p.parts) == [
        (0, [b"DEL", a]),
        (1, [b"DEL", b, c]),
    ]
    assert run(p, [1, 2]) == 3
    assert run(p, [1, ErrorReply("CLUSTERDOWN no leader")]) == ErrorReply("CLUSTERDOWN no leader")


def test_mget_puts_values_back_in_the_order_asked() -> None:
    a, b, c = key_in(2), key_in(0), key_in(2, 1000)
    p = plan(COMMANDS["mget"], [b"MGET", a, b, c], ROUTER, CURSORS)
    assert isinstance(p, Plan)
    by_group = {part.group_id: part.args for part in p.parts}
    assert by_group == {2: [b"MGET", a, c], 0: [b"MGET", b]}
    replies: list[object] = [[b"A", b"C"] if part.group_id == 2 else [None] for part in p.parts]
    assert run(p, replies) == [b"A", None, b"C"]


def test_mset_over_groups_is_crossslot_but_within_a_tag_is_allowed() -> None:
    a, b = key_in(0), key_in(3)
    assert plan(COMMANDS["mset"], [b"MSET", a, b"1", b, b"2"], ROUTER, CURSORS) == CROSSSLOT
    same = plan(COMMANDS["mset"], [b"MSET", b"{t}a", b"1", b"{t}b", b"2"], ROUTER, CURSORS)
    assert isinstance(same, Plan) and len(same.parts) == 1


def test_dbsize_and_flushdb_reach_every_group() -> None:
    p = plan(COMMANDS["dbsize"], [b"DBSIZE"], ROUTER, CURSORS)
    assert isinstance(p, Plan) and [part.group_id for part in p.parts] == [0, 1, 2, 3]
    assert run(p, [1, 2, 3, 4]) == 10
    f = plan(COMMANDS["flushdb"], [b"FLUSHDB"], ROUTER, CURSORS)
    assert isinstance(f, Plan) and run(f, ["OK"] * 4) == "OK"


def test_scan_walks_the_groups_in_turn() -> None:
    cursor = b"0"
    seen_groups = []
    for _ in range(4):
        p = plan(COMMANDS["scan"], [b"SCAN", cursor, b"COUNT", b"5"], ROUTER, CURSORS)
        assert isinstance(p, Plan) and len(p.parts) == 1
        part = p.parts[0]
        seen_groups.append(part.group_id)
        assert part.args[1] == b"0"  # every group starts from its beginning
        reply = run(p, [[b"0", [b"k"]]])
        assert isinstance(reply, list)
        cursor = reply[0]
    assert seen_groups == [0, 1, 2, 3] and cursor == b"0"


def test_scan_resumes_inside_a_group() -> None:
    p = plan(COMMANDS["scan"], [b"SCAN", b"0"], ROUTER, CURSORS)
    inner_next = encode_scan_cursor(b"mykey")
    reply = run(p, [[inner_next, [b"a"]]])
    assert isinstance(reply, list)
    again = plan(COMMANDS["scan"], [b"SCAN", reply[0]], ROUTER, CURSORS)
    assert isinstance(again, Plan)
    assert again.parts[0].group_id == 0 and again.parts[0].args[1] == inner_next


def test_a_cursor_that_names_no_group_is_refused() -> None:
    # A handle (as a client holds it) for a position whose group index is past the last group.
    handle = CURSORS.issue(encode_scan_cursor(b"\x00\x09rest"))
    bogus = plan(COMMANDS["scan"], [b"SCAN", handle], ROUTER, CURSORS)
    assert bogus == ErrorReply("ERR invalid cursor")


def test_scan_cursors_stay_below_2_64_whatever_the_key() -> None:
    p = plan(COMMANDS["scan"], [b"SCAN", b"0"], ROUTER, CURSORS)
    reply = run(p, [[encode_scan_cursor(b"k" * 500), [b"a"]]])
    assert isinstance(reply, list) and 0 < int(reply[0]) < 2**64
    again = plan(COMMANDS["scan"], [b"SCAN", reply[0]], ROUTER, CURSORS)
    assert isinstance(again, Plan) and again.parts[0].args[1] == encode_scan_cursor(b"k" * 500)


def test_one_group_passes_everything_through() -> None:
    router = SlotRouter([0])
    args = [b"MSET", b"a", b"1", b"b", b"2"]
    p = plan(COMMANDS["mset"], args, router, CURSORS)
    assert isinstance(p, Plan) and p.parts[0].args is args
