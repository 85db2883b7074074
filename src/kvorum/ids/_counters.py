"""Counter-based IDs: database-style sequences with start and step, and an INCR-style counter.

Theory of operation: the oldest way to hand out unique IDs is one counter that only goes up.
Two variations from the seed live here.

* **Several masters, disjoint progressions (ID-1).** One counter is a single point of failure,
  so N masters each count on their own: master ``i`` (1-based) of N hands out
  ``i, i + N, i + 2N, ...`` — MySQL's ``auto_increment_offset`` / ``auto_increment_increment``.
  Their sets never meet because every master owns a different residue modulo N. The price:
  IDs are unique but not ordered across masters (a busy master races ahead), and N is fixed —
  adding a master means renumbering the progressions.
* **One shared atomic counter (ID-2).** Redis ``INCR``/``INCRBY``: the server applies increments
  one at a time, so every caller sees a different value. :class:`AtomicCounter` is that contract
  as an interface — the cluster's Raft-backed INCR implements it later, and
  :class:`InMemoryCounter` implements it for tests and the simulator. Every ID costs a round
  trip to a central service; :mod:`kvorum.ids._segment` amortises that.
"""

from __future__ import annotations

from typing import Protocol


class AtomicCounter(Protocol):
    """A shared counter whose increments are applied one at a time (Redis ``INCRBY``).

    Contract: ``incr_by(n)`` adds ``n`` (``n >= 1``) and returns the value *after* adding, so
    the caller owns the ``n`` values ``result - n + 1 .. result``. Across all callers and all
    time the owned ranges never overlap — the implementation must make the increment durable
    (replicated, for the Raft-backed one) before returning, or a crash could hand a range out
    twice. A counter that was never incremented reads 0, so the first value handed out is 1.
    """

    def incr_by(self, amount: int) -> int:
        """Atomically add ``amount`` (>= 1) and return the new value."""
        ...


class InMemoryCounter:
    """:class:`AtomicCounter` in one process's memory: atomic because kvorum's pure code is
    driven from one thread. Counts calls so tests can check how many round trips were made."""

    def __init__(self, start: int = 0) -> None:
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.value = start
        self.calls = 0

    def incr_by(self, amount: int) -> int:
        """Add ``amount`` (>= 1) and return the new value; ValueError for ``amount < 1``."""
        if amount < 1:
            raise ValueError(f"amount must be >= 1, got {amount}")
        self.calls += 1
        self.value += amount
        return self.value

    def incr(self) -> int:
        """Redis ``INCR``: add one and return the new value."""
        return self.incr_by(1)


class StepSequence:
    """One master's auto-increment: ``start, start + step, start + 2*step, ...``.

    ``start`` must be in ``[1, step]`` (as MySQL requires of the offset) so that the masters
    ``1..step`` of a group cover every positive integer exactly once between them. A restarted
    master passes ``last_issued`` (the last ID it handed out, from its durable state) and
    continues after it.
    """

    def __init__(self, start: int, step: int, *, last_issued: int | None = None) -> None:
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        if not 1 <= start <= step:
            raise ValueError(f"start must be in [1, step={step}], got {start}")
        if last_issued is not None and (last_issued < start or (last_issued - start) % step):
            raise ValueError(
                f"last_issued {last_issued} is not in this sequence (start {start}, step {step})"
            )
        self.start = start
        self.step = step
        self._next = start if last_issued is None else last_issued + step

    def owns(self, value: int) -> bool:
        """Whether this sequence could ever hand out ``value``."""
        return value >= self.start and (value - self.start) % self.step == 0

    def next_id(self) -> int:
        """The next ID of this master's progression."""
        value = self._next
        self._next = value + self.step
        return value

    def next_ids(self, count: int) -> list[int]:
        """The next ``count`` IDs, in increasing order."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        first = self._next
        self._next = first + count * self.step
        return list(range(first, self._next, self.step))


def multi_master(masters: int) -> list[StepSequence]:
    """``masters`` sequences that together never repeat: master i (1-based) gets start i and
    step ``masters``. ValueError if ``masters < 1``."""
    if masters < 1:
        raise ValueError(f"need at least one master, got {masters}")
    return [StepSequence(start=i, step=masters) for i in range(1, masters + 1)]
