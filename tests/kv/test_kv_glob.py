"""SCAN's MATCH globs agree with a direct transcription of Redis's ``stringmatchlen``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kvorum.kv.glob_match import compile_glob


def redis_stringmatch(pattern: bytes, string: bytes) -> bool:
    """Reference: Redis 7.0 util.c stringmatchlen (case-sensitive), step by step."""
    p, s = 0, 0
    plen, slen = len(pattern), len(string)
    while plen - p > 0 and slen - s > 0:
        ch = pattern[p]
        if ch == ord("*"):
            while plen - p > 1 and pattern[p + 1] == ord("*"):
                p += 1
            if plen - p == 1:
                return True
            while slen - s > 0:
                if redis_stringmatch(pattern[p + 1 :], string[s:]):
                    return True
                s += 1
            return False
        if ch == ord("?"):
            s += 1
        elif ch == ord("["):
            p += 1
            negate = p < plen and pattern[p] == ord("^")
            if negate:
                p += 1
            match = False
            while True:
                if p < plen and pattern[p] == ord("\\") and plen - p >= 2:
                    p += 1
                    if pattern[p] == string[s]:
                        match = True
                elif p < plen and pattern[p] == ord("]"):
                    break
                elif plen - p == 0:
                    p -= 1
                    break
                elif plen - p >= 3 and pattern[p + 1] == ord("-"):
                    low, high = sorted((pattern[p], pattern[p + 2]))
                    p += 2
                    if low <= string[s] <= high:
                        match = True
                elif pattern[p] == string[s]:
                    match = True
                p += 1
            if negate:
                match = not match
            if not match:
                return False
            s += 1
        else:
            if ch == ord("\\") and plen - p >= 2:
                p += 1
            if pattern[p] != string[s]:
                return False
            s += 1
        p += 1
        if slen - s == 0:
            while p < plen and pattern[p] == ord("*"):
                p += 1
            break
    return plen - p == 0 and slen - s == 0


def test_examples() -> None:
    assert compile_glob(b"user:*")(b"user:42")
    assert not compile_glob(b"user:*")(b"users")
    assert compile_glob(b"h?llo")(b"hallo")
    assert compile_glob(b"h[ae]llo")(b"hello")
    assert not compile_glob(b"h[^e]llo")(b"hello")
    assert compile_glob(b"h[a-b]llo")(b"hbllo")
    assert compile_glob(b"h[b-a]llo")(b"hallo")  # reversed ranges are swapped
    assert compile_glob(b"a\\*b")(b"a*b")
    assert not compile_glob(b"a\\*b")(b"axb")
    assert not compile_glob(b"*")(b"")  # Redis's matcher never matches an empty key


_ALPHABET = st.sampled_from(list(b"ab-^*?[]\\"))


@given(st.lists(_ALPHABET, max_size=7).map(bytes), st.lists(_ALPHABET, max_size=6).map(bytes))
def test_matches_redis_reference(pattern: bytes, key: bytes) -> None:
    assert compile_glob(pattern)(key) == redis_stringmatch(pattern, key)
