"""Redis-style glob patterns (SCAN ... MATCH), compiled to regular expressions.

Theory of operation: Redis matches with ``stringmatchlen`` — ``*``, ``?``, ``[...]`` classes
with ``^`` negation and ``a-z`` ranges (reversed ranges are swapped), and ``\\`` escaping the
next byte. Python's ``fnmatch`` differs (``[!...]``, no escapes), so this module walks the
pattern the way Redis does and emits an equivalent ``re`` pattern over bytes, cached per
pattern because SCAN clients repeat the same one for every page. Quirks kept on purpose so
results equal Redis's: an unterminated ``[`` class runs to the end of the pattern, and an
empty key matches only the empty pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

_STAR, _QUESTION, _OPEN, _CLOSE, _BACKSLASH, _CARET, _DASH = b"*?[]\\^-"


def _literal(byte: int) -> bytes:
    return re.escape(bytes([byte]))


def _class(pattern: bytes, i: int) -> tuple[bytes, int]:
    """Translate the class starting after ``[`` at ``i``; return regex and the next index."""
    n = len(pattern)
    negate = i < n and pattern[i] == _CARET
    if negate:
        i += 1
    parts: list[bytes] = []
    while i < n:
        byte = pattern[i]
        if byte == _BACKSLASH and n - i >= 2:
            parts.append(_literal(pattern[i + 1]))
            i += 2
        elif byte == _CLOSE:
            i += 1
            break
        elif n - i >= 3 and pattern[i + 1] == _DASH:
            low, high = sorted((byte, pattern[i + 2]))
            parts.append(_literal(low) + b"-" + _literal(high))
            i += 3
        else:
            parts.append(_literal(byte))
            i += 1
    if not parts:
        # `[]` matches nothing and `[^]` any one byte, as in Redis.
        return (b"." if negate else b"(?!)"), i
    return b"[" + (b"^" if negate else b"") + b"".join(parts) + b"]", i


def glob_to_regex(pattern: bytes) -> bytes:
    """The ``re`` source (for ``fullmatch`` with DOTALL) equivalent to Redis glob ``pattern``."""
    out: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        byte = pattern[i]
        if byte == _STAR:
            while i + 1 < n and pattern[i + 1] == _STAR:
                i += 1
            out.append(b".*")
            i += 1
        elif byte == _QUESTION:
            out.append(b".")
            i += 1
        elif byte == _OPEN:
            piece, i = _class(pattern, i + 1)
            out.append(piece)
        elif byte == _BACKSLASH and n - i >= 2:
            out.append(_literal(pattern[i + 1]))
            i += 2
        else:
            out.append(_literal(byte))
            i += 1
    return b"".join(out)


@lru_cache(maxsize=256)
def compile_glob(pattern: bytes) -> Callable[[bytes], bool]:
    """A predicate telling whether a key matches ``pattern`` exactly as Redis would."""
    if pattern == b"*":
        return lambda key: len(key) > 0
    regex = re.compile(glob_to_regex(pattern), re.DOTALL)

    def matches(key: bytes) -> bool:
        if not key:
            return not pattern
        return regex.fullmatch(key) is not None

    return matches
