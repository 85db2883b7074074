"""The KV state machine: Redis semantics per command, expiry by the entry's clock, and
determinism (the same log gives the same engine on every replica)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvorum.kv.commands import (
    COMMANDS,
    Kind,
    check_command,
    decode_write,
    encode_write,
    restamp_write,
)
from kvorum.kv.memory_engine import MemoryEngine
from kvorum.kv.replies import ErrorReply, Reply
from kvorum.kv.scan_cursors import ScanCursors, is_scan, scan_with_handles
from kvorum.kv.state_machine import KVStateMachine, encode_expire_sweep
from kvorum.kv.values import unpack_value


class Node:
    """A state machine driven the way the server drives it: check, encode, apply or read."""

    def __init__(self, max_value_bytes: int = 1 << 20) -> None:
        self.machine = KVStateMachine(MemoryEngine(), max_value_bytes=max_value_bytes)
        self.now_ms = 1_000_000
        self.log: list[bytes] = []
        self.cursors = ScanCursors(1)

    def __call__(self, *words: str | bytes) -> Reply:
        args = [w.encode() if isinstance(w, str) else w for w in words]
        spec = check_command(args, self.now_ms)
        if isinstance(spec, ErrorReply):
            return spec
        if spec.kind is Kind.WRITE:
            payload = encode_write(spec, args, self.now_ms)
            self.log.append(payload)
            return self.machine.apply(payload, len(self.log))
        assert spec.kind is Kind.READ
        if is_scan(args):  # as a node does: the client holds a handle, not the key
            return scan_with_handles(self.cursors, self.machine.read, args, self.now_ms)
        return self.machine.read(args, self.now_ms)


def err(text: str) -> ErrorReply:
    return ErrorReply(text)


def test_strings_and_counters() -> None:
    kv = Node()
    assert kv("SET", "a", "1") == "OK"
    assert kv("get", "a") == b"1"
    assert kv("INCR", "a") == 2
    assert kv("INCRBY", "a", "40") == 42
    assert kv("DECRBY", "a", "2") == 40
    assert kv("DECR", "a") == 39
    assert kv("APPEND", "a", "x") == 3
    assert kv("STRLEN", "a") == 3
    assert kv("STRLEN", "missing") == 0
    assert kv("INCR", "a") == err("ERR value is not an integer or out of range")
    assert kv("INCRBY", "n", "1.5") == err("ERR value is not an integer or out of range")
    assert kv("SET", "big", str(2**63 - 1)) == "OK"
    assert kv("INCR", "big") == err("ERR increment or decrement would overflow")
    assert kv("DECRBY", "n", str(-(2**63))) == err("ERR decrement would overflow")
    assert kv("MSET", "x", "1", "y", "2") == "OK"
    assert kv("MGET", "x", "nope", "y") == [b"1", None, b"2"]
    assert kv("MSET", "x", "1", "y") == err("ERR wrong number of arguments for 'mset' command")
    assert kv("GETSET", "x", "9") == b"1"
    assert kv("GETDEL", "x") == b"9"
    assert kv("GETDEL", "x") is None
    assert kv("SETNX", "y", "3") == 0
    assert kv("SETNX", "z", "3") == 1
    assert kv("EXISTS", "y", "z", "y", "nope") == 3
    assert kv("DEL", "y", "z", "nope") == 2
    assert kv("DBSIZE") == 2


def test_set_options() -> None:
    kv = Node()
    assert kv("SET", "k", "v", "NX") == "OK"
    assert kv("SET", "k", "w", "NX") is None
    assert kv("SET", "k", "w", "XX", "GET") == b"v"
    assert kv("SET", "k2", "w", "XX") is None
    assert kv("SET", "k", "x", "NX", "XX") == err("ERR syntax error")
    assert kv("SET", "k", "x", "EX", "10", "PX", "5") == err("ERR syntax error")
    assert kv("SET", "k", "x", "EX", "10", "KEEPTTL") == err("ERR syntax error")
    assert kv("SET", "k", "x", "EX") == err("ERR syntax error")
    assert kv("SET", "k", "x", "EX", "0") == err("ERR invalid expire time in 'set' command")
    assert kv("SET", "k", "x", "EX", "ten") == err("ERR value is not an integer or out of range")
    assert kv("SET", "k", "x", "EX", "1", "EX", "100") == "OK"  # repeating is allowed
    assert kv("TTL", "k") == 100
    assert kv("SET", "k", "y", "KEEPTTL") == "OK"
    assert kv("TTL", "k") == 100
    assert kv("SET", "k", "z") == "OK"
    assert kv("TTL", "k") == -1
    assert kv("SET", "k", "z", "PXAT", str(kv.now_ms - 1)) == "OK"  # already past: gone
    assert kv("GET", "k") is None
    assert kv("SET", "k", "z", "EXAT", str(kv.now_ms // 1000 + 5)) == "OK"
    assert kv("TTL", "k") == 5


def test_expiry_follows_the_entry_clock_not_the_replica() -> None:
    kv = Node()
    kv("SET", "k", "v", "PX", "1500")
    assert kv("PTTL", "k") == 1500
    assert kv("TTL", "k") == 2  # Redis rounds to the nearest second
    kv.now_ms += 1499
    assert kv("GET", "k") == b"v"
    kv.now_ms += 1
    assert kv("GET", "k") is None
    assert kv("TTL", "k") == -2
    assert kv("EXISTS", "k") == 0
    # Reads only hide the key: it is still stored until a replicated command removes it.
    assert kv.machine.engine.count() == 1
    assert kv("INCR", "k") == 1  # a write sees it absent and replaces it, without a TTL
    assert kv("TTL", "k") == -1


def test_expire_family_and_conditions() -> None:
    kv = Node()
    kv("SET", "k", "v")
    assert kv("EXPIRE", "missing", "10") == 0
    assert kv("EXPIRE", "k", "10", "XX") == 0
    assert kv("EXPIRE", "k", "10", "GT") == 0  # no TTL counts as infinite
    assert kv("EXPIRE", "k", "10", "NX") == 1
    assert kv("EXPIRE", "k", "20", "NX") == 0
    assert kv("EXPIRE", "k", "5", "GT") == 0
    assert kv("EXPIRE", "k", "30", "GT") == 1
    assert kv("PEXPIRE", "k", "40000", "LT") == 0
    assert kv("PEXPIRE", "k", "20000", "LT") == 1
    assert kv("PTTL", "k") == 20000
    assert kv("EXPIREAT", "k", str(kv.now_ms // 1000 + 7)) == 1
    assert kv("TTL", "k") == 7
    assert kv("PERSIST", "k") == 1
    assert kv("PERSIST", "k") == 0
    assert kv("EXPIRE", "k", "1", "NX", "GT") == err(
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    )
    assert kv("EXPIRE", "k", "1", "GT", "LT") == err(
        "ERR GT and LT options at the same time are not compatible"
    )
    assert kv("EXPIRE", "k", "1", "soon") == err("ERR Unsupported option soon")
    assert kv("EXPIRE", "k", str(2**62)) == err("ERR invalid expire time in 'expire' command")
    assert kv("EXPIRE", "k", "-1") == 1  # a past time deletes
    assert kv("GET", "k") is None
    assert kv.machine.engine.count() == 0


def test_cas_is_compare_and_set() -> None:
    kv = Node()
    assert kv("CAS", "lock", "", "me") == 0  # a missing key equals nothing
    kv("SET", "lock", "me", "EX", "30")
    assert kv("CAS", "lock", "you", "them") == 0
    assert kv("CAS", "lock", "me", "you") == 1
    assert kv("GET", "lock") == b"you"
    assert kv("TTL", "lock") == 30  # the lease keeps its deadline
    assert kv("CAS", "lock", "you") == err("ERR wrong number of arguments for 'cas' command")


def test_append_respects_max_value_size() -> None:
    kv = Node(max_value_bytes=8)
    assert kv("APPEND", "k", "12345") == 5
    assert kv("APPEND", "k", "6789") == err(
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    )
    assert kv("GET", "k") == b"12345"


def test_unknown_and_arity_errors_match_redis() -> None:
    kv = Node()
    assert kv("FOO", "a", "b") == err(
        "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    )
    assert kv("GET") == err("ERR wrong number of arguments for 'get' command")
    assert kv("GET", "a", "b") == err("ERR wrong number of arguments for 'get' command")
    assert kv("COMMAND", "NOPE") == err("ERR unknown subcommand 'NOPE'. Try COMMAND HELP.")
    long_arg = "x" * 200
    message = kv("FOO", long_arg)
    assert isinstance(message, ErrorReply)
    assert message.message == f"ERR unknown command 'FOO', with args beginning with: '{'x' * 128}' "


def test_scan_visits_every_key_once_with_match_and_count() -> None:
    kv = Node()
    keys = [b"user:%d" % i for i in range(57)] + [b"other:%d" % i for i in range(20)]
    keys.append(b"\x00\x00lead")  # leading zero bytes survive the cursor encoding
    kv("MSET", *[part for key in keys for part in (key, b"v")])
    seen: list[bytes] = []
    cursor = b"0"
    pages = 0
    while True:
        reply = kv("SCAN", cursor, "COUNT", "7")
        assert isinstance(reply, list)
        cursor, page = reply  # type: ignore[assignment]
        seen += page  # type: ignore[arg-type]
        pages += 1
        if cursor == b"0":
            break
    assert sorted(seen) == sorted(keys)
    assert pages >= len(keys) // 7
    matched = kv("SCAN", "0", "MATCH", "user:1*", "COUNT", "1000")
    assert matched == [b"0", sorted(k for k in keys if k.startswith(b"user:1"))]
    assert kv("SCAN", "0", "TYPE", "hash", "COUNT", "1000") == [b"0", []]
    assert kv("SCAN", "abc") == err("ERR invalid cursor")
    assert kv("SCAN", "0", "COUNT", "0") == err("ERR syntax error")
    assert kv("SCAN", "0", "COUNT") == err("ERR syntax error")
    assert kv("SCAN", "0", "LIMIT", "3") == err("ERR syntax error")


def test_scan_cursor_never_names_a_huge_key() -> None:
    kv = Node()
    long_keys = [b"k" + bytes([i]) * 2000 for i in range(5)]
    # Clients cannot write keys this long (MAX_KEY_BYTES); SCAN stays safe should an engine
    # hold them anyway, so they go into the engine directly.
    kv.machine.engine.apply_batch([(key, b"\x00v") for key in [*long_keys, b"z"]], 1)
    kv.log.append(b"")
    reply = kv("SCAN", "0", "COUNT", "2")
    assert isinstance(reply, list)
    cursor, page = reply
    assert cursor == b"0" or len(cursor) < 2600  # type: ignore[arg-type]
    assert len(page) >= 5  # type: ignore[arg-type]


def test_payload_roundtrip_restamp_and_bad_payloads() -> None:
    spec = COMMANDS["set"]
    payload = encode_write(spec, [b"SeT", b"k", b"v", b"EX", b"10"], 123)
    assert decode_write(payload) == (123, [b"set", b"k", b"v", b"EX", b"10"])
    assert decode_write(restamp_write(payload, 456))[0] == 456
    with pytest.raises(ValueError, match="not a kvorum write payload"):
        decode_write(b"\xc1")
    with pytest.raises(ValueError, match="not a kvorum write payload"):
        decode_write(msgpack.packb([1, "set"]))
    with pytest.raises(ValueError, match="not a write"):
        encode_write(COMMANDS["get"], [b"get", b"k"], 1)


def test_entries_apply_once_atomically_and_see_each_other() -> None:
    machine = KVStateMachine(MemoryEngine())
    spec_set, spec_incr = COMMANDS["set"], COMMANDS["incr"]
    batch = [
        encode_write(spec_set, [b"set", b"n", b"5"], 1),
        encode_write(spec_incr, [b"incr", b"n"], 1),
        encode_write(spec_incr, [b"incr", b"n"], 1),
    ]
    assert machine.apply_many(batch, 1) == ["OK", 6, 7]
    assert machine.engine.applied_index() == 1
    with pytest.raises(ValueError, match="already applied"):
        machine.apply(batch[1], 1)
    assert machine.read([b"get", b"n"], 1) == b"7"


def test_expire_sweep_removes_exactly_the_keys_due() -> None:
    kv = Node()
    for i in range(10):
        kv("SET", f"k{i}", "v", "PX", str(100 if i % 2 else 10_000))
    kv("SET", "plain", "v")
    assert kv.machine.engine.expiring_count() == 10
    kv.now_ms += 200
    deleted: list[Reply] = []
    index = len(kv.log)
    while not deleted or deleted[-1]:
        index += 1
        deleted.append(kv.machine.apply(encode_expire_sweep(kv.now_ms, 2), index))
    assert deleted == [2, 2, 1, 0]
    assert (kv.machine.engine.count(), kv.machine.engine.expiring_count()) == (6, 5)
    assert kv.machine.read([b"get", b"plain"], kv.now_ms) == b"v"
    with pytest.raises(ValueError, match="at least one"):
        encode_expire_sweep(0, 0)


def test_a_sweep_leaves_a_key_an_earlier_write_of_its_entry_renewed() -> None:
    kv = Node()
    kv("SET", "lease", "v", "PX", "100")
    kv("SET", "gone", "v", "PX", "100")
    kv.now_ms += 200
    persist = encode_write(COMMANDS["pexpire"], [b"pexpire", b"lease", b"5000"], kv.now_ms - 150)
    replies = kv.machine.apply_many([persist, encode_expire_sweep(kv.now_ms, 10)], 3)
    # PEXPIRE ran at a time the lease was still alive; the sweep then finds it renewed.
    assert replies == [1, 1]
    assert kv.machine.read([b"pttl", b"lease"], kv.now_ms) == 4850
    assert kv.machine.read([b"exists", b"gone"], kv.now_ms) == 0
    assert kv.machine.engine.count() == 1


def test_the_page_sweep_of_older_logs_still_replays() -> None:
    kv = Node()
    for i in range(10):
        kv("SET", f"k{i}", "v", "PX", str(100 if i % 2 else 10_000))
    kv.now_ms += 200
    start: bytes = b""
    index = len(kv.log)
    while True:
        index += 1
        old_sweep = msgpack.packb(
            [kv.now_ms, [b"\x00expire-sweep", start, b"3"]], use_bin_type=True
        )
        next_key = kv.machine.apply(old_sweep, index)
        if next_key is None:
            break
        assert isinstance(next_key, bytes)
        start = next_key
    assert kv.machine.engine.count() == 5


# -- determinism ------------------------------------------------------------------------------

_KEYS = st.sampled_from(["a", "b", "c"])
_NUM = st.integers(-3, 3).map(str)
_COMMANDS = st.one_of(
    st.tuples(st.just("SET"), _KEYS, st.sampled_from(["1", "x", "7"])),
    st.tuples(st.just("SET"), _KEYS, _NUM, st.sampled_from(["EX", "PX", "NX", "XX", "KEEPTTL"]),
              st.sampled_from(["1", "2", "1500"])),
    st.tuples(st.sampled_from(["INCR", "DECR", "GETDEL", "PERSIST"]), _KEYS),
    st.tuples(st.sampled_from(["INCRBY", "APPEND", "SETNX", "GETSET"]), _KEYS, _NUM),
    st.tuples(st.sampled_from(["EXPIRE", "PEXPIRE"]), _KEYS, st.sampled_from(["-1", "1", "900"])),
    st.tuples(st.just("DEL"), _KEYS, _KEYS),
    st.tuples(st.just("CAS"), _KEYS, _NUM, _NUM),
)


@settings(max_examples=60)
@given(st.lists(st.tuples(_COMMANDS, st.integers(0, 1200)), max_size=40))
def test_same_log_same_state_on_every_replica(steps: list[tuple[tuple[str, ...], int]]) -> None:
    leader = Node()
    replies = []
    for command, advance_ms in steps:
        leader.now_ms += advance_ms
        replies.append(leader(*command))
    # Two fresh replicas apply the leader's log, batched differently and at other "times".
    one = KVStateMachine(MemoryEngine())
    two = KVStateMachine(MemoryEngine())
    replayed = [one.apply(payload, i) for i, payload in enumerate(leader.log, start=1)]
    for start in range(0, len(leader.log), 3):
        two.apply_many(leader.log[start : start + 3], start // 3 + 1)
    expected = [r for r in replies if not _rejected_before_log(r)]
    assert replayed == expected[: len(replayed)]
    leader_state = leader.machine.engine.scan(b"", None, 10**6)
    assert one.engine.scan(b"", None, 10**6) == leader_state
    assert two.engine.scan(b"", None, 10**6) == leader_state
    for _, stored in leader_state:
        unpack_value(stored)  # every stored value has the documented layout


def _rejected_before_log(reply: Reply) -> bool:
    return isinstance(reply, ErrorReply) and (
        "syntax" in reply.message or "expire time" in reply.message
    )


def test_keys_over_the_engine_limit_are_refused_at_admission_and_when_applied() -> None:
    from kvorum.kv.commands import check_command
    from kvorum.kv.key_order import MAX_KEY_BYTES
    from kvorum.kv.replies import ERR_KEY_TOO_LONG

    long_key = b"k" * (MAX_KEY_BYTES + 1)
    assert check_command([b"SET", long_key, b"v"], 1) == ERR_KEY_TOO_LONG
    assert check_command([b"MSET", b"a", b"1", long_key, b"2"], 1) == ERR_KEY_TOO_LONG
    assert check_command([b"GET", long_key], 1) == ERR_KEY_TOO_LONG
    assert not isinstance(check_command([b"SET", b"k" * MAX_KEY_BYTES, b"v"], 1), ErrorReply)
    # Had one reached the log, applying answers the error instead of failing the engine.
    machine = KVStateMachine(MemoryEngine())
    writes = [(1, [b"set", long_key, b"v"]), (1, [b"mset", b"a", b"1", long_key, b"2"]),
              (1, [b"set", b"ok", b"v"])]
    assert machine.apply_writes(writes, 1) == [ERR_KEY_TOO_LONG, ERR_KEY_TOO_LONG, "OK"]
    assert machine.read([b"get", b"a"], 1) is None and machine.read([b"get", b"ok"], 1) == b"v"
