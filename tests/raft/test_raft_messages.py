"""The fast builder of a leader's new entries makes exactly what ``Entry(...)`` makes.

``normal_entries`` writes an :class:`Entry`'s slots directly instead of calling its frozen
dataclass ``__init__``; these tests pin that the objects are indistinguishable: equal, equally
hashed, just as frozen, and of the right kind.
"""

from __future__ import annotations

import dataclasses

import pytest

from kvorum.core.raft import Entry, EntryKind
from kvorum.core.raft.messages import normal_entries


def test_normal_entries_equal_entries_built_by_the_constructor() -> None:
    batch = [b"", b"a", b"x" * 100]
    built = normal_entries(7, 41, batch)
    expected = [Entry(7, 41 + i, data) for i, data in enumerate(batch)]
    assert built == expected
    assert [hash(e) for e in built] == [hash(e) for e in expected]
    assert [repr(e) for e in built] == [repr(e) for e in expected]
    assert all(e.kind is EntryKind.NORMAL for e in built)


def test_normal_entries_are_frozen() -> None:
    (entry,) = normal_entries(1, 1, [b"v"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.term = 2  # type: ignore[misc]


def test_no_commands_make_no_entries() -> None:
    assert normal_entries(3, 10, []) == []
