"""Decide whether a recorded key-value history is linearizable, and explain why not.

Theory of operation: the simulator records every client operation as an :class:`Operation`
(invoke tick, and completion tick plus result — or an *unknown outcome* when the client timed
out or crashed). A history is linearizable when the operations can be put in one total order
that (a) respects real time — if A completed before B was invoked, A comes first — and (b)
replays correctly against a single register per key that starts absent. Registers are
independent, so the history is linearizable iff every key's sub-history is
(P-compositionality); each key is checked alone, which keeps the search small.

Per key the search is Wing & Gong's backtracking with Lowe's memoisation (the "just-in-time"
linearization of Lowe's *Testing for linearizability*, 2017): invocations and completions sit
in one time-ordered doubly linked list; the search walks it, tentatively linearizes any
operation whose invocation it reaches (if the register allows its result), lifts that
operation out of the list and restarts from the head; meeting the *completion* of an
operation not yet linearized means the current order is hopeless, so it backtracks. A cache of
(linearized-set bitmask, register value) pairs already explored cuts repeated work: two search
paths that linearized the same operations and left the register equal have the same future.
Unknown-outcome writes and compare-and-sets have no completion entry — they may take effect
anywhere after their invocation, or never — so the search succeeds once every *completed*
operation is linearized. Unknown-outcome reads constrain nothing and are dropped.

Real time and equal ticks: A *precedes* B iff ``A.complete_tick < B.invoke_tick``. An
operation that completes at tick t and one invoked at the same tick t are concurrent (either
order is allowed). Ticks are coarse — several events share one — so treating a tie as an
ordering would report violations that the finer real order might not contain; a checker must
never cry wolf.

A search budget (steps = tentative linearizations tried) bounds the work: when it runs out the
answer is :attr:`Outcome.UNKNOWN`, never a violation. On a violation the offending key's
history is shrunk to a small witness by *relaxations* only — dropping reads and failed
compare-and-sets (which remove constraints) and turning writes and successful compare-and-sets
into unknown-outcome ones (which only add freedom) — so the witness still fails for a real
reason and never for one the shrinking invented.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "DEFAULT_MAX_SEARCH_STEPS_PER_KEY",
    "DEFAULT_MAX_SHRINK_STEPS",
    "Cas",
    "CheckResult",
    "HistoryError",
    "HistoryRecorder",
    "Operation",
    "OperationKind",
    "Outcome",
    "Read",
    "Write",
    "check_history",
]

#: Steps (tentative linearizations) the search may try per key before answering UNKNOWN.
#: About a second or two of pure Python; a few hundred operations with five clients usually
#: need well under a tenth of it.
DEFAULT_MAX_SEARCH_STEPS_PER_KEY = 1_000_000
#: Steps all the re-checks made while shrinking one violation may spend together.
DEFAULT_MAX_SHRINK_STEPS = 2_000_000
#: How many of the witness's context operations the explanation prints before summarising.
_MAX_CONTEXT_LINES = 8


class HistoryError(ValueError):
    """A history (or one operation in it) is malformed: the recorder or simulator is buggy."""


@dataclass(frozen=True, slots=True)
class Read:
    """Read the key. Its result is the value read, or None when the key was absent."""


@dataclass(frozen=True, slots=True)
class Write:
    """Set the key to ``value`` (never None: None means "absent" and there is no delete)."""

    value: Hashable

    def __post_init__(self) -> None:
        if self.value is None:
            raise HistoryError("Write(value=None): None means 'key absent' and cannot be written")


@dataclass(frozen=True, slots=True)
class Cas:
    """Compare-and-set: if the key holds ``expected`` (None: the key is absent) set it to
    ``new``. Its result is True when it swapped, False when it did not."""

    expected: Hashable | None
    new: Hashable

    def __post_init__(self) -> None:
        if self.new is None:
            raise HistoryError("Cas(new=None): None means 'key absent' and cannot be written")


OperationKind = Read | Write | Cas


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation on one key, as the simulator saw it.

    ``complete_tick`` None means the outcome is unknown (the client timed out or crashed): the
    operation may have taken effect at any time after ``invoke_tick``, or never, and
    ``result`` must be None. Otherwise ``result`` is what the client was told: the value (or
    None for absent) for a read, None for a write, a bool for a compare-and-set. Values are
    compared with ``==`` and must be hashable. Construction validates all of this and raises
    :class:`HistoryError` on a malformed operation.
    """

    client_id: Hashable
    key: Hashable
    kind: OperationKind
    invoke_tick: int
    complete_tick: int | None = None
    result: Hashable | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Read | Write | Cas):
            raise HistoryError(f"operation kind must be Read, Write or Cas, not {self.kind!r}")
        if not _is_tick(self.invoke_tick):
            raise HistoryError(f"invoke_tick must be an int, not {self.invoke_tick!r}")
        if self.complete_tick is None:
            if self.result is not None:
                raise HistoryError(
                    f"an unknown-outcome operation has no result, got {self.result!r}"
                    f" for {self.kind!r} on {self.key!r}"
                )
            return
        if not _is_tick(self.complete_tick):
            raise HistoryError(f"complete_tick must be an int or None, not {self.complete_tick!r}")
        if self.complete_tick < self.invoke_tick:
            raise HistoryError(
                f"operation on {self.key!r} by client {self.client_id!r} completes at tick"
                f" {self.complete_tick}, before its invocation at tick {self.invoke_tick}"
            )
        if isinstance(self.kind, Write) and self.result is not None:
            raise HistoryError(f"a completed write returns None, got {self.result!r}")
        if isinstance(self.kind, Cas) and not isinstance(self.result, bool):
            raise HistoryError(f"a completed cas returns True or False, got {self.result!r}")

    @property
    def outcome_known(self) -> bool:
        """True when the client learnt how the operation ended."""
        return self.complete_tick is not None

    def describe(self) -> str:
        """One readable line: client, operation, result and ticks (for violation reports)."""
        kind = self.kind
        if isinstance(kind, Read):
            what = "read"
        elif isinstance(kind, Write):
            what = f"write {kind.value!r}"
        else:
            what = f"cas({_show_value(kind.expected)}, {kind.new!r})"
        if self.complete_tick is None:
            return (
                f"client {self.client_id!r:<6} {what:<28} invoked t={self.invoke_tick},"
                " outcome unknown"
            )
        if isinstance(kind, Read):
            what = f"read -> {_show_value(self.result)}"
        elif isinstance(kind, Cas):
            what = f"{what} -> {'swapped' if self.result else 'failed'}"
        return (
            f"client {self.client_id!r:<6} {what:<28} invoked t={self.invoke_tick},"
            f" completed t={self.complete_tick}"
        )


class Outcome(enum.Enum):
    """What the checker concluded."""

    LINEARIZABLE = "linearizable"
    VIOLATION = "violation"
    #: The search budget ran out before an answer: neither a pass nor a failure.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on a whole history.

    For a VIOLATION, ``key`` is the first key (in history order) whose sub-history is not
    linearizable, ``witness`` the completed operations on it that cannot be ordered, and
    ``context`` the unknown-outcome operations (original or relaxed by the shrinking) that were
    allowed to take effect any time after their invocation, or never, and still could not
    help. ``minimal`` says whether shrinking finished: then dropping or relaxing any one
    witness operation makes the rest linearizable. For UNKNOWN, ``undecided_keys`` lists the
    keys whose budget ran out. ``explanation`` is ready to print next to the seed.
    """

    outcome: Outcome
    explanation: str
    key: Hashable | None = None
    witness: tuple[Operation, ...] = ()
    context: tuple[Operation, ...] = ()
    minimal: bool = True
    undecided_keys: tuple[Hashable, ...] = ()
    search_steps: int = 0

    @property
    def ok(self) -> bool:
        """True only for a proven-linearizable history."""
        return self.outcome is Outcome.LINEARIZABLE


def check_history(
    history: Iterable[Operation],
    *,
    max_search_steps_per_key: int = DEFAULT_MAX_SEARCH_STEPS_PER_KEY,
    max_shrink_steps: int = DEFAULT_MAX_SHRINK_STEPS,
) -> CheckResult:
    """Decide whether ``history`` is linearizable (see the module docstring for the model).

    Keys are checked one at a time in order of first appearance; the first violating key
    ends the check. Each key may spend ``max_search_steps_per_key`` steps; a key that runs out
    makes the answer UNKNOWN unless another key is a proven violation. Shrinking a violation
    to its witness spends at most ``max_shrink_steps`` (a witness cut short is still a valid
    one, marked ``minimal=False``). Raises :class:`HistoryError` if an operation is malformed
    or one client has a completed operation overlapping its next one (a client is
    sequential; after an unknown outcome it may move on at once).
    """
    if max_search_steps_per_key < 1:
        raise ValueError(f"max_search_steps_per_key must be >= 1, got {max_search_steps_per_key}")
    if max_shrink_steps < 0:
        raise ValueError(f"max_shrink_steps must be >= 0, got {max_shrink_steps}")
    operations = list(history)
    for op in operations:
        if not isinstance(op, Operation):
            raise HistoryError(f"history items must be Operation, not {type(op).__name__}")
    _check_clients_are_sequential(operations)

    by_key: dict[Hashable, list[Operation]] = {}
    for op in operations:
        by_key.setdefault(op.key, []).append(op)

    total_steps = 0
    undecided: list[Hashable] = []
    for key, key_ops in by_key.items():
        verdict, steps = _search(key_ops, max_search_steps_per_key)
        total_steps += steps
        if verdict is _Search.BUDGET_EXHAUSTED:
            undecided.append(key)
        elif verdict is _Search.VIOLATION:
            return _violation(key, key_ops, max_search_steps_per_key, max_shrink_steps,
                              total_steps)
    if undecided:
        shown = ", ".join(repr(k) for k in undecided)
        return CheckResult(
            outcome=Outcome.UNKNOWN,
            explanation=(
                f"undecided: the search budget of {max_search_steps_per_key} steps per key ran"
                f" out on {len(undecided)} of {len(by_key)} keys ({shown}); no violation was"
                " found on the others"
            ),
            undecided_keys=tuple(undecided),
            search_steps=total_steps,
        )
    return CheckResult(
        outcome=Outcome.LINEARIZABLE,
        explanation=f"linearizable: {len(operations)} operations on {len(by_key)} keys",
        search_steps=total_steps,
    )


class HistoryRecorder:
    """Collects a history as the simulator runs: :meth:`invoke` when a client sends an
    operation, :meth:`complete` when it learns the result. Anything never completed ends up
    with an unknown outcome. Ticks come from the caller's clock and must not go backwards."""

    def __init__(self) -> None:
        self._invoked: list[tuple[Hashable, Hashable, OperationKind, int]] = []
        self._completed: dict[int, tuple[int, Hashable | None]] = {}
        self._last_tick: int | None = None

    def invoke(self, client_id: Hashable, key: Hashable, kind: OperationKind,
               now_tick: int) -> int:
        """Record an invocation at ``now_tick``; returns the handle to complete it with."""
        self._advance(now_tick)
        if not isinstance(kind, Read | Write | Cas):
            raise HistoryError(f"operation kind must be Read, Write or Cas, not {kind!r}")
        self._invoked.append((client_id, key, kind, now_tick))
        return len(self._invoked) - 1

    def complete(self, handle: int, now_tick: int, result: Hashable | None = None) -> None:
        """Record that operation ``handle`` returned ``result`` to its client at ``now_tick``."""
        if not 0 <= handle < len(self._invoked):
            raise HistoryError(f"unknown operation handle {handle}")
        if handle in self._completed:
            raise HistoryError(f"operation {handle} was already completed")
        self._advance(now_tick)
        client_id, key, kind, invoke_tick = self._invoked[handle]
        # Build it now so a bad result is reported where it was recorded, not at check time.
        Operation(client_id, key, kind, invoke_tick, now_tick, result)
        self._completed[handle] = (now_tick, result)

    def history(self) -> tuple[Operation, ...]:
        """Every operation recorded so far, in invocation order; pending ones as unknown."""
        operations = []
        for handle, (client_id, key, kind, invoke_tick) in enumerate(self._invoked):
            done = self._completed.get(handle)
            if done is None:
                operations.append(Operation(client_id, key, kind, invoke_tick))
            else:
                operations.append(Operation(client_id, key, kind, invoke_tick, done[0], done[1]))
        return tuple(operations)

    def _advance(self, now_tick: int) -> None:
        if not _is_tick(now_tick):
            raise HistoryError(f"now_tick must be an int, not {now_tick!r}")
        if self._last_tick is not None and now_tick < self._last_tick:
            raise HistoryError(f"clock went backwards: tick {now_tick} after {self._last_tick}")
        self._last_tick = now_tick


# --------------------------------------------------------------------------------------------
# The search


class _Search(enum.Enum):
    LINEARIZABLE = enum.auto()
    VIOLATION = enum.auto()
    BUDGET_EXHAUSTED = enum.auto()


# How each operation acts on the register, decided once so the search loop only branches on
# small ints. An unknown-outcome cas is coded like a successful one: failing would have no
# effect, which is the same as never being linearized, and "never" is always allowed.
_READ, _WRITE, _CAS_SWAP, _CAS_FAIL = range(4)


def _search(key_ops: Sequence[Operation], max_steps: int) -> tuple[_Search, int]:
    """Wing & Gong search with Lowe's cache over one key's operations; returns the verdict and
    the steps spent."""
    ops = _prune(key_ops)
    count = len(ops)
    if not any(op.outcome_known for op in ops):
        return _Search.LINEARIZABLE, 0

    codes: list[int] = []
    first_args: list[Hashable | None] = []
    second_args: list[Hashable | None] = []
    for op in ops:
        kind = op.kind
        if isinstance(kind, Read):
            codes.append(_READ)
            first_args.append(op.result)
            second_args.append(None)
        elif isinstance(kind, Write):
            codes.append(_WRITE)
            first_args.append(kind.value)
            second_args.append(None)
        else:
            codes.append(_CAS_FAIL if op.result is False else _CAS_SWAP)
            first_args.append(kind.expected)
            second_args.append(kind.new)
    completed = [op.outcome_known for op in ops]
    bits = [1 << i for i in range(count)]

    # Node 0 heads the list; operation i's invocation is node 2i+1 and its completion node
    # 2i+2 (unknown outcomes have none). At equal ticks invocations sort first, which makes a
    # completion and an invocation at the same tick concurrent (see the module docstring).
    events = [(op.invoke_tick, 0, i) for i, op in enumerate(ops)]
    events += [(op.complete_tick, 1, i) for i, op in enumerate(ops) if op.complete_tick is not None]
    events.sort()
    order = [0] + [2 * i + 1 + is_completion for _, is_completion, i in events]
    nxt = [-1] * (2 * count + 1)
    prv = [-1] * (2 * count + 1)
    for before, after in itertools.pairwise(order):
        nxt[before] = after
        prv[after] = before

    explored: set[tuple[int, Hashable | None]] = set()
    # (operation linearized, register value before it) for each tentative step, to undo it.
    undo: list[tuple[int, Hashable | None]] = []
    linearized = 0
    state: Hashable | None = None
    remaining = sum(completed)
    steps = 0
    node = nxt[0]
    while remaining:
        if node == -1 or node % 2 == 0:
            # The completion of an operation not yet linearized (or, defensively, the end of
            # the list): nothing later can fix the current prefix, so undo its last choice.
            if not undo:
                return _Search.VIOLATION, steps
            i, state = undo.pop()
            linearized ^= bits[i]
            call = 2 * i + 1
            if completed[i]:
                remaining += 1
                ret = call + 1
                nxt[prv[ret]] = ret
                if nxt[ret] != -1:
                    prv[nxt[ret]] = ret
            nxt[prv[call]] = call
            if nxt[call] != -1:
                prv[nxt[call]] = call
            node = nxt[call]
            continue

        i = node >> 1
        steps += 1
        if steps > max_steps:
            return _Search.BUDGET_EXHAUSTED, steps
        code = codes[i]
        if code == _READ:
            allowed = state == first_args[i]
            after_state = state
        elif code == _WRITE:
            allowed = True
            after_state = first_args[i]
        elif code == _CAS_SWAP:
            allowed = state == first_args[i]
            after_state = second_args[i]
        else:
            allowed = state != first_args[i]
            after_state = state
        if allowed:
            grown = linearized | bits[i]
            if (grown, after_state) not in explored:
                explored.add((grown, after_state))
                undo.append((i, state))
                linearized = grown
                state = after_state
                # Dancing links: the removed nodes keep their own pointers so that undoing in
                # reverse order puts them back exactly.
                nxt[prv[node]] = nxt[node]
                if nxt[node] != -1:
                    prv[nxt[node]] = prv[node]
                if completed[i]:
                    remaining -= 1
                    ret = node + 1
                    nxt[prv[ret]] = nxt[ret]
                    if nxt[ret] != -1:
                        prv[nxt[ret]] = prv[ret]
                node = nxt[0]
                continue
        node = nxt[node]
    return _Search.LINEARIZABLE, steps


def _prune(key_ops: Sequence[Operation]) -> list[Operation]:
    """Drop operations that cannot change the verdict, to keep the search narrow.

    Unknown-outcome reads constrain nothing. An unknown-outcome write or cas whose new value
    nobody observes (no read returns it, no cas expects it) can matter only by making a
    compare-and-set fail; without completed failing cas on the key, removing it from any
    valid order leaves that order valid, so it is dropped. These are the ops that otherwise
    stay open to the end of the search and multiply its paths.
    """
    observed: set[Hashable] = set()
    has_failed_cas = False
    for op in key_ops:
        if not op.outcome_known:
            continue
        if isinstance(op.kind, Read):
            observed.add(op.result)
        elif isinstance(op.kind, Cas):
            observed.add(op.kind.expected)
            has_failed_cas = has_failed_cas or op.result is False
    kept = []
    for op in key_ops:
        if not op.outcome_known:
            kind = op.kind
            if isinstance(kind, Read):
                continue
            new_value = kind.value if isinstance(kind, Write) else kind.new
            if new_value not in observed and not has_failed_cas:
                continue
        kept.append(op)
    return kept


# --------------------------------------------------------------------------------------------
# Explaining a violation


class _Budget:
    """Steps left for shrinking (shared by all its re-checks) and what it has relaxed."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.ran_out = False
        # Relaxed operation -> the completed one it replaced, to print what really happened.
        self.originals: dict[Operation, Operation] = {}

    def exhausted(self) -> bool:
        """True once some re-check was cut short (a method, so checks see it change)."""
        return self.ran_out

    def violates(self, ops: Sequence[Operation], max_steps_per_check: int) -> bool:
        """True only if ``ops`` is *proven* non-linearizable within the budget."""
        allowance = min(self.steps, max_steps_per_check)
        if allowance < 1:
            self.ran_out = True
            return False
        verdict, spent = _search(ops, allowance)
        self.steps -= min(spent, allowance)
        if verdict is _Search.BUDGET_EXHAUSTED:
            self.ran_out = True
        return verdict is _Search.VIOLATION


def _relaxed(op: Operation) -> Operation | None:
    """The weaker form of a completed operation: None (drop it) for reads and failed cas, whose
    only role is to constrain; unknown outcome for writes and successful cas, which may then
    take effect any time after invocation, or never."""
    if isinstance(op.kind, Read) or (isinstance(op.kind, Cas) and op.result is False):
        return None
    return replace(op, complete_tick=None, result=None)


def _prefix(ops: Sequence[Operation], cut_tick: int,
            originals: dict[Operation, Operation] | None = None) -> list[Operation]:
    """The history as it stood at ``cut_tick``: operations invoked later are dropped and those
    still open are relaxed. A relaxation of ``ops``, so if it violates, ``ops`` does too."""
    kept = []
    for op in ops:
        if op.invoke_tick > cut_tick:
            continue
        if op.complete_tick is not None and op.complete_tick > cut_tick:
            weaker = _relaxed(op)
            if weaker is not None:
                kept.append(weaker)
                if originals is not None:
                    originals[weaker] = op
            continue
        kept.append(op)
    return kept


def _shrink(key_ops: Sequence[Operation], max_steps_per_check: int,
            budget: _Budget) -> list[Operation]:
    """A small sub-history, obtained by relaxations only, that is still not linearizable."""
    current = list(key_ops)
    # The earliest moment the history is already broken (monotone, so bisect on it).
    cut_ticks = sorted({op.complete_tick for op in current if op.complete_tick is not None})
    low, high = 0, len(cut_ticks) - 1
    while low < high:
        middle = (low + high) // 2
        if budget.violates(_prefix(current, cut_ticks[middle]), max_steps_per_check):
            high = middle
        else:
            low = middle + 1
    if cut_ticks:
        candidate = _prefix(current, cut_ticks[high], budget.originals)
        if high == len(cut_ticks) - 1 or budget.violates(candidate, max_steps_per_check):
            current = candidate

    # Then weaken one completed operation at a time, latest first (a relaxed early write stays
    # open for the rest of the history and makes every later check wider), until a whole pass
    # changes nothing. Slots hold None once their operation is dropped.
    slots: list[Operation | None] = list(current)
    changed = True
    while changed and not budget.exhausted():
        changed = False
        order = sorted(
            (i for i, op in enumerate(slots) if op is not None and op.outcome_known),
            key=lambda i: (_invoke_of(slots[i]), i),
            reverse=True,
        )
        for i in order:
            original = slots[i]
            assert original is not None
            weaker = _relaxed(original)
            slots[i] = weaker
            if weaker is not None:
                budget.originals[weaker] = original
            if budget.violates([op for op in slots if op is not None], max_steps_per_check):
                changed = True
            else:
                slots[i] = original
            if budget.exhausted():
                break
    current = [op for op in slots if op is not None]
    return current


def _violation(key: Hashable, key_ops: Sequence[Operation], max_steps_per_check: int,
               max_shrink_steps: int, steps_so_far: int) -> CheckResult:
    budget = _Budget(max_shrink_steps)
    shrunk = _shrink(key_ops, max_steps_per_check, budget)
    pruned = _prune(shrunk)
    witness = tuple(op for op in pruned if op.outcome_known)
    context = tuple(op for op in pruned if not op.outcome_known)

    if len(witness) == 1:
        lines = [f"not linearizable: key {key!r} — this operation cannot be explained by any"
                 " order that respects real time and replays on one register starting absent:"]
    else:
        lines = [f"not linearizable: key {key!r} — these {len(witness)} operations cannot be put"
                 " in any order that respects real time and replays on one register starting"
                 " absent:"]
    lines += [f"  {op.describe()}" for op in _by_time(witness)]
    if context:
        lines.append(
            "  ...even allowing these to take effect any time after their invocation, or never:"
        )
        for op in _by_time(context)[:_MAX_CONTEXT_LINES]:
            original = budget.originals.get(op)
            if original is None:
                lines.append(f"  {op.describe()}")
            else:
                lines.append(f"  {original.describe()} (outcome ignored)")
        if len(context) > _MAX_CONTEXT_LINES:
            lines.append(f"  ... and {len(context) - _MAX_CONTEXT_LINES} more like them")
    written = {op.kind.value if isinstance(op.kind, Write) else op.kind.new
               for op in key_ops if isinstance(op.kind, Write | Cas)}
    expected_values = {op.result for op in witness if isinstance(op.kind, Read)}
    expected_values |= {op.kind.expected for op in witness if isinstance(op.kind, Cas)}
    for value in sorted((v for v in expected_values if v is not None and v not in written),
                        key=repr):
        lines.append(f"  note: no operation on key {key!r} ever wrote {value!r}")
    if budget.ran_out:
        lines.append("  (shrinking stopped at its step budget: this witness may not be minimal)")
    return CheckResult(
        outcome=Outcome.VIOLATION,
        explanation="\n".join(lines),
        key=key,
        witness=_by_time(witness),
        context=_by_time(context),
        minimal=not budget.ran_out,
        search_steps=steps_so_far,
    )


# --------------------------------------------------------------------------------------------
# Small helpers


def _check_clients_are_sequential(operations: Sequence[Operation]) -> None:
    by_client: dict[Hashable, list[Operation]] = {}
    for op in operations:
        by_client.setdefault(op.client_id, []).append(op)
    for client_id, client_ops in by_client.items():
        client_ops.sort(key=lambda op: op.invoke_tick)
        for earlier, later in itertools.pairwise(client_ops):
            if earlier.complete_tick is not None and earlier.complete_tick > later.invoke_tick:
                raise HistoryError(
                    f"client {client_id!r} invoked an operation at tick {later.invoke_tick}"
                    f" while its previous one (invoked at {earlier.invoke_tick}) was still"
                    f" running until {earlier.complete_tick}; a client is sequential"
                )


def _by_time(ops: Iterable[Operation]) -> tuple[Operation, ...]:
    return tuple(sorted(ops, key=lambda op: (op.invoke_tick, _end_tick(op))))


def _end_tick(op: Operation) -> float:
    return float("inf") if op.complete_tick is None else op.complete_tick


def _invoke_of(op: Operation | None) -> int:
    return 0 if op is None else op.invoke_tick


def _is_tick(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show_value(value: Hashable | None) -> str:
    return "absent" if value is None else repr(value)
