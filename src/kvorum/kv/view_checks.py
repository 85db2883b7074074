"""The checks every keyspace implementation makes the same way, with the same messages.

Theory of operation: the in-memory and the LMDB keyspaces must refuse the same inputs with the
same errors (the contract tests run against both), so the checks of a write batch, of a
snapshot pair and of a new group's span live here once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kvorum.core.shape import GroupId
from kvorum.kv.key_order import KeySpan


def typed_writes(
    writes: Sequence[tuple[bytes, bytes | None]],
) -> Iterator[tuple[bytes, bytes | None]]:
    """``writes``, raising ValueError at the first that is not ``(bytes, bytes | None)``."""
    for key, value in writes:
        if type(key) is not bytes or (value is not None and type(value) is not bytes):
            raise ValueError(
                f"a write must be (bytes, bytes | None), got ({type(key).__name__}, "
                f"{type(value).__name__})"
            )
        yield key, value


def check_snapshot_pairs(pairs: object) -> list[list[bytes]]:
    """One decoded snapshot chunk, checked to be a list of ``[bytes, bytes]`` pairs."""
    if not isinstance(pairs, list):
        raise ValueError(f"snapshot chunk holds a {type(pairs).__name__}, not pairs")
    for pair in pairs:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or type(pair[0]) is not bytes
            or type(pair[1]) is not bytes
        ):
            raise ValueError(f"snapshot pair is not [bytes, bytes]: {pair!r:.80}")
    return pairs


def check_new_group(group_id: GroupId, span: KeySpan, spans: dict[GroupId, KeySpan]) -> None:
    """ValueError unless ``group_id`` is new and ``span`` overlaps no other group's: a key
    must never belong to two groups."""
    if group_id < 0:
        raise ValueError(f"group ids are >= 0, got {group_id}")
    if group_id in spans:
        raise ValueError(f"group {group_id} already exists")
    for other, other_span in spans.items():
        if span.overlaps(other_span):
            raise ValueError(f"span {span} overlaps group {other}'s span {other_span}")
