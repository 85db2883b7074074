"""The RESP parser and encoder on their own: pipelining, partial reads, inline commands,
Redis's protocol-error texts, limits, and both reply protocols."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvorum.kv.replies import ErrorReply, Verbatim
from kvorum.server.resp import (
    ProtocolError,
    RequestParser,
    encode_command,
    encode_replies,
    encode_reply,
    split_inline,
)


def test_pipelined_multibulk_and_inline() -> None:
    parser = RequestParser()
    data = encode_command([b"SET", b"k", b"v\r\n"]) + b"PING\r\nget k\n" + b"*0\r\n*-1\r\n"
    assert parser.feed(data) == [[b"SET", b"k", b"v\r\n"], [b"PING"], [b"get", b"k"]]
    assert parser.pending_bytes() == 0


@given(
    st.lists(st.lists(st.binary(max_size=20), min_size=1, max_size=4), min_size=1, max_size=8),
    st.lists(st.integers(1, 50), min_size=1, max_size=40),
)
def test_any_split_of_the_stream_parses_the_same(
    requests: list[list[bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_command(r) for r in requests)
    parser = RequestParser()
    parsed: list[list[bytes]] = []
    pos = 0
    for cut in cuts:
        parsed += parser.feed(stream[pos : pos + cut])
        pos += cut
    parsed += parser.feed(stream[pos:])
    assert parsed == requests
    assert parser.pending_bytes() == 0


def test_large_bulk_in_many_reads() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    stream = encode_command([b"SET", b"k", value])
    parser = RequestParser()
    got = []
    for start in range(0, len(stream), 1000):
        got += parser.feed(stream[start : start + 1000])
    assert got == [[b"SET", b"k", value]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*1\r\n$x\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'"),
        (b"*abc\r\n", "Protocol error: invalid multibulk length"),
        (b"*3000000000\r\n", "Protocol error: invalid multibulk length"),
        (b'SET k "unterminated\r\n', "Protocol error: unbalanced quotes in request"),
        (b'SET k "a"b\r\n', "Protocol error: unbalanced quotes in request"),
        (b"x" * 70000, "Protocol error: too big inline request"),
        (b"*" + b"1" * 70000, "Protocol error: too big mbulk count string"),
        (b"*1\r\n$" + b"1" * 70000, "Protocol error: too big bulk count string"),
    ],
)
def test_malformed_input_raises_redis_texts(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        RequestParser().feed(data)
    assert caught.value.message == message
    assert caught.value.reply() == b"-ERR " + message.encode() + b"\r\n"


def test_requests_before_an_error_are_kept() -> None:
    with pytest.raises(ProtocolError) as caught:
        RequestParser().feed(b"PING\r\n" + encode_command([b"GET", b"a"]) + b"*1\r\n$?\r\n")
    assert caught.value.commands == [[b"PING"], [b"GET", b"a"]]


def test_limits() -> None:
    parser = RequestParser(max_bulk_bytes=10, max_multibulk_count=3)
    assert parser.feed(encode_command([b"SET", b"k", b"0123456789"])) == [
        [b"SET", b"k", b"0123456789"]
    ]
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        parser.feed(encode_command([b"SET", b"k", b"01234567890"]))
    with pytest.raises(ProtocolError, match="invalid multibulk length"):
        RequestParser(max_multibulk_count=3).feed(encode_command([b"DEL", b"a", b"b", b"c"]))
    with pytest.raises(ProtocolError, match="max request size"):
        RequestParser(max_request_bytes=100).feed(b"*2\r\n$3\r\nSET\r\n$200\r\n")
    with pytest.raises(ValueError, match="max_bulk_bytes"):
        RequestParser(max_bulk_bytes=0)


def test_inline_splitting_like_sdssplitargs() -> None:
    assert split_inline(b"  set  k   v ") == [b"set", b"k", b"v"]
    assert split_inline(b'set k "a b\\n\\x41"') == [b"set", b"k", b"a b\nA"]
    assert split_inline(b"set k 'it\\'s'") == [b"set", b"k", b"it's"]
    assert split_inline(b'set k ""') == [b"set", b"k", b""]
    assert split_inline(b"set 'k") is None
    assert split_inline(b"") == []


def test_encoding_resp2_and_resp3() -> None:
    assert encode_reply("OK") == b"+OK\r\n"
    assert encode_reply(b"v") == b"$1\r\nv\r\n"
    assert encode_reply(None) == b"$-1\r\n"
    assert encode_reply(None, resp3=True) == b"_\r\n"
    assert encode_reply(7) == b":7\r\n"
    assert encode_reply(-(2**63)) == b":-9223372036854775808\r\n"
    assert encode_reply(ErrorReply("ERR nope")) == b"-ERR nope\r\n"
    assert encode_reply([b"a", [1, None]]) == b"*2\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n"
    assert encode_reply({b"k": 1}) == b"*2\r\n$1\r\nk\r\n:1\r\n"
    assert encode_reply({b"k": 1}, resp3=True) == b"%1\r\n$1\r\nk\r\n:1\r\n"
    assert encode_reply(True) == b":1\r\n"
    assert encode_reply(True, resp3=True) == b"#t\r\n"
    assert encode_reply(1.5, resp3=True) == b",1.5\r\n"
    assert encode_reply(float("inf"), resp3=True) == b",inf\r\n"
    assert encode_reply(1.5) == b"$3\r\n1.5\r\n"
    assert encode_reply(Verbatim("a:1"), resp3=True) == b"=7\r\ntxt:a:1\r\n"
    assert encode_reply(Verbatim("a:1")) == b"$3\r\na:1\r\n"
    big = b"x" * 100_000
    assert encode_reply(big) == b"$100000\r\n" + big + b"\r\n"
    assert encode_replies(["OK", 1, b"x"]) == b"+OK\r\n:1\r\n$1\r\nx\r\n"
    with pytest.raises(TypeError, match="cannot encode"):
        encode_reply(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one line"):
        ErrorReply("ERR two\r\nlines")
