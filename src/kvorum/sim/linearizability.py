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
operation is linearized. Unknown-outcome reads constrain nothing and are dropped. Left alone,
every unknown write would stay a candidate to the end of the history and multiply the search;
three exact cuts (an unknown write must be observed at once, only while something could
still observe it, and identical ones are used in invocation order) keep them cheap.

Real time and equal ticks: A *precedes* B iff ``A.complete_tick < B.invoke_tick``. An
operation that completes at tick t and one invoked at the same tick t are concurrent (either
order is allowed). Ticks are coarse — several events share one — so treating a tie as an
ordering would report violations that the finer real order might not contain; a checker must
never cry wolf.

A search budget (steps = tentative linearizations tried) bounds the work: when it runs out the
answer is :attr:`Outcome.UNKNOWN`, never a violation. On a violation the offending key's
history is shrunk to a small witness by *relaxations* only — dropping reads and failed
compare-and-sets (which remove constraints) and turning writes and successful compare-and-sets
into unknown-outcome writes (which only add freedom) — so the witness still fails for a real
reason and never for one the shrinking invented.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Hashable, Iterable, Sequence
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

#: Steps (tentative linearizations) the search may try per key before answering UNKNOWN:
#: a few seconds of pure Python at most. A linearizable key of a few hundred operations from
#: five clients takes thousands; refuting one takes more, up to about a million when a tenth
#: of its operations have unknown outcomes (see benchmarks/results/linearizability.md).
DEFAULT_MAX_SEARCH_STEPS_PER_KEY = 4_000_000
#: Steps all the re-checks made while shrinking one violation may spend together.
DEFAULT_MAX_SHRINK_STEPS = 5_000_000
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
        verdict, steps, stuck_tick = _search(key_ops, max_search_steps_per_key)
        total_steps += steps
        if verdict is _Search.BUDGET_EXHAUSTED:
            undecided.append(key)
        elif verdict is _Search.VIOLATION:
            return _violation(key, key_ops, max_search_steps_per_key, max_shrink_steps,
                              refute_steps=steps, stuck_tick=stuck_tick,
                              steps_so_far=total_steps)
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
_NEVER = float("-inf")
_ALWAYS = float("inf")


def _search(key_ops: Sequence[Operation], max_steps: int) -> tuple[_Search, int, float]:
    """Wing & Gong search with Lowe's cache over one key's operations; returns the verdict,
    the steps spent and the latest completion tick the search ever got stuck at. For a
    violation that tick is where the history is already broken: cut there, it still fails.

    Unknown-outcome writes and cas never have to be linearized, so without care each one
    stays a candidate to the end of the history and doubles the configurations to explore.
    Exact cuts keep them cheap; each holds because any valid order can be rewritten into one
    that obeys it. *Observed at once*: an unknown operation is tried only if it changes the
    register, and the operation linearized right after it must not be a write — otherwise its
    value is overwritten unseen and it may as well never have happened. *Useful-until*: it can
    only matter by leaving its value for some completed operation to observe
    (:func:`_useful_until_ticks`); once every completed operation that could is linearized, it
    is skipped. *Symmetry*: unknown operations with the same effect are interchangeable once
    invoked, so they are linearized in invocation order only — the earlier one can stand in
    for the later anywhere. Whether the last step was an unknown operation is part of the
    configuration, so it is part of the cache key.
    """
    ops = sorted(_prune(key_ops), key=lambda op: op.invoke_tick)
    useful_until = _useful_until_ticks(ops)
    count = len(ops)
    if not any(op.outcome_known for op in ops):
        return _Search.LINEARIZABLE, 0, _NEVER

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

    # Symmetry groups: group[i] is -1 for completed operations; otherwise operation i may be
    # linearized only when it is next in its group (rank[i] == used_in_group[group[i]]), so the
    # linearized members of a group are always a prefix of it and the cache sees one mask
    # where there would be many.
    group = [-1] * count
    rank = [0] * count
    group_ids: dict[tuple[int, Hashable | None, Hashable | None], int] = {}
    group_sizes: list[int] = []
    for i in range(count):
        if not completed[i]:
            g = group_ids.setdefault((codes[i], first_args[i], second_args[i]), len(group_ids))
            if g == len(group_sizes):
                group_sizes.append(0)
            group[i] = g
            rank[i] = group_sizes[g]
            group_sizes[g] += 1
    used_in_group = [0] * len(group_sizes)

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
    # A second list threads only the completions, so the earliest completion not yet
    # linearized (the "frontier") is always at its head. Slot ``count`` is its head.
    completion_order = [count] + [i for _, is_completion, i in events if is_completion]
    rnxt = [-1] * (count + 1)
    rprv = [-1] * (count + 1)
    for before, after in itertools.pairwise(completion_order):
        rnxt[before] = after
        rprv[after] = before
    complete_ticks = [_end_tick(op) for op in ops]

    explored: set[tuple[int, Hashable | None, bool]] = set()
    # (operation linearized, register value and after_unknown before it) for each tentative
    # step, to undo it.
    undo: list[tuple[int, Hashable | None, bool]] = []
    linearized = 0
    state: Hashable | None = None
    after_unknown = False
    remaining = sum(completed)
    steps = 0
    stuck_tick = _NEVER
    node = nxt[0]
    while remaining:
        if node == -1 or node % 2 == 0:
            # The completion of an operation not yet linearized (or, defensively, the end of
            # the list): nothing later can fix the current prefix, so undo its last choice.
            if node != -1 and complete_ticks[node // 2 - 1] > stuck_tick:
                stuck_tick = complete_ticks[node // 2 - 1]
            if not undo:
                return _Search.VIOLATION, steps, stuck_tick
            i, state, after_unknown = undo.pop()
            linearized ^= bits[i]
            call = 2 * i + 1
            if completed[i]:
                remaining += 1
                ret = call + 1
                nxt[prv[ret]] = ret
                if nxt[ret] != -1:
                    prv[nxt[ret]] = ret
                rnxt[rprv[i]] = i
                if rnxt[i] != -1:
                    rprv[rnxt[i]] = i
            else:
                used_in_group[group[i]] -= 1
            nxt[prv[call]] = call
            if nxt[call] != -1:
                prv[nxt[call]] = call
            node = nxt[call]
            continue

        i = node >> 1
        if (after_unknown and codes[i] == _WRITE) or (not completed[i] and (
            rank[i] != used_in_group[group[i]]
            or complete_ticks[rnxt[count]] > useful_until[i]
        )):
            node = nxt[node]
            continue
        steps += 1
        if steps > max_steps:
            return _Search.BUDGET_EXHAUSTED, steps, stuck_tick
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
        if allowed and (completed[i] or after_state != state):
            grown = linearized | bits[i]
            configuration = (grown, after_state, not completed[i])
            if configuration not in explored:
                explored.add(configuration)
                undo.append((i, state, after_unknown))
                linearized = grown
                state = after_state
                after_unknown = not completed[i]
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
                    rnxt[rprv[i]] = rnxt[i]
                    if rnxt[i] != -1:
                        rprv[rnxt[i]] = rprv[i]
                else:
                    used_in_group[group[i]] += 1
                node = nxt[0]
                continue
        node = nxt[node]
    return _Search.LINEARIZABLE, steps, stuck_tick


def _useful_until_ticks(key_ops: Sequence[Operation]) -> list[float]:
    """For each operation, the last tick at which linearizing it could still matter.

    Completed operations always matter. An unknown-outcome read never does. An
    unknown-outcome write or cas matters only through the value ``v`` it leaves, and only to
    an operation that could observe it: a completed read returning ``v``, a completed swap
    expecting ``v``, a completed *failed* cas expecting something else, or an unknown cas
    expecting ``v`` (for as long as that cas itself matters). Once all such completed operations are
    linearized — the earliest completion still open is past the last of them — leaving ``v``
    can only break what follows, so the operation may as well never happen. A tick before
    the operation's own invocation means it can never matter and is dropped up front.
    """
    last_reader: dict[Hashable | None, float] = {}
    failed_cas: list[tuple[Hashable | None, float]] = []
    for op in key_ops:
        kind = op.kind
        if op.complete_tick is None or isinstance(kind, Write):
            continue
        if isinstance(kind, Read):
            observed = op.result
        elif op.result is True:
            observed = kind.expected
        else:
            failed_cas.append((kind.expected, op.complete_tick))
            continue
        last_reader[observed] = max(last_reader.get(observed, _NEVER), op.complete_tick)

    ticks: list[float] = []
    for op in key_ops:
        value = _new_value(op)
        if op.outcome_known:
            ticks.append(_ALWAYS)
        elif value is None:  # an unknown read
            ticks.append(_NEVER)
        else:
            until = last_reader.get(value, _NEVER)
            for expected, complete_tick in failed_cas:
                if expected != value:
                    until = max(until, complete_tick)
            ticks.append(until)
    # An unknown cas expecting v extends the usefulness of whatever leaves v to its own; a
    # chain can be as long as there are unknown cas, so iterate to the fixpoint.
    chained = [(i, op.kind.expected) for i, op in enumerate(key_ops)
               if not op.outcome_known and isinstance(op.kind, Cas)]
    changed = bool(chained)
    while changed:
        changed = False
        for cas_index, expected in chained:
            for i, op in enumerate(key_ops):
                if (not op.outcome_known and _new_value(op) == expected
                        and ticks[i] < ticks[cas_index]):
                    ticks[i] = ticks[cas_index]
                    changed = True
    return ticks


def _prune(key_ops: Sequence[Operation]) -> list[Operation]:
    """The operations the search keeps: all but the unknown-outcome ones that could never
    matter (see :func:`_useful_until_ticks`). Used to decide what a witness shows."""
    useful_until = _useful_until_ticks(key_ops)
    return [op for op, until in zip(key_ops, useful_until, strict=True)
            if until >= op.invoke_tick]


# --------------------------------------------------------------------------------------------
# Explaining a violation


class _Budget:
    """Steps left for shrinking (shared by all its re-checks) and what it has relaxed."""

    def __init__(self, total_steps: int, steps_per_check: int) -> None:
        self.steps_left = total_steps
        self.steps_per_check = steps_per_check
        # Set when a re-check was cut short: its relaxation was refused without proof, so the
        # witness may not be minimal (it is still a valid witness).
        self.undecided = False
        # Relaxed operation -> the completed one it replaced, to print what really happened.
        self.originals: dict[Operation, Operation] = {}

    def exhausted(self) -> bool:
        """True once the whole shrinking budget is spent."""
        return self.steps_left < 1

    def violates(self, ops: Sequence[Operation]) -> bool:
        """True only if ``ops`` is *proven* non-linearizable within the budget."""
        allowance = min(self.steps_left, self.steps_per_check)
        if allowance < 1:
            self.undecided = True
            return False
        verdict, spent, _ = _search(ops, allowance)
        self.steps_left -= min(spent, allowance)
        if verdict is _Search.BUDGET_EXHAUSTED:
            self.undecided = True
        return verdict is _Search.VIOLATION


def _relaxed(op: Operation) -> Operation | None:
    """The weaker form of a completed operation: None (drop it) for reads and failed cas, whose
    only role is to constrain; an unknown-outcome write for writes and successful cas, which
    may then take effect any time after invocation, or never. A swap becomes a plain write of
    its new value: that can do anything the swap could (and more), and unlike unknown cas,
    plain writes do not chain into each other and blow up the re-checks."""
    if _only_constrains(op):
        return None
    return replace(op, kind=Write(_new_value(op)), complete_tick=None, result=None)


def _only_constrains(op: Operation) -> bool:
    return isinstance(op.kind, Read) or (isinstance(op.kind, Cas) and op.result is False)


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


def _shrink(key_ops: Sequence[Operation], budget: _Budget,
            stuck_tick: float) -> list[Operation]:
    """A small sub-history, obtained by relaxations only, that is still not linearizable."""
    current = list(key_ops)
    # Cut the history where it is already broken: first where the refuting search got stuck
    # (one check, usually enough), else bisect for the earliest such moment (failing is
    # monotone in the cut: a later cut's history relaxes to an earlier one's).
    cut_ticks = sorted({op.complete_tick for op in current if op.complete_tick is not None})
    if stuck_tick in cut_ticks and stuck_tick < cut_ticks[-1]:
        candidate = _prefix(current, int(stuck_tick), budget.originals)
        if budget.violates(candidate):
            current = candidate
            cut_ticks = [tick for tick in cut_ticks if tick <= stuck_tick]
    low, high = 0, len(cut_ticks) - 1
    while low < high and not budget.exhausted():
        middle = (low + high) // 2
        if budget.violates(_prefix(current, cut_ticks[middle])):
            high = middle
        else:
            low = middle + 1
    if cut_ticks:
        candidate = _prefix(current, cut_ticks[high], budget.originals)
        if high == len(cut_ticks) - 1 or budget.violates(candidate):
            current = candidate
    current = _window(current, budget)

    # Then weaken completed operations. Reads and failed cas go first: dropping them only
    # removes constraints, and once the reads of a value are gone, relaxing its writes costs
    # nothing (an unknown write nobody reads is pruned before the search). Writes and swaps
    # relaxed early instead would stay open as unknown operations and widen every check.
    # Each phase works delta-debugging style — try a large chunk at once (most operations are
    # irrelevant, so this usually succeeds), halve the chunk when nothing can go — and the
    # last phase retries everything one operation at a time until a pass changes nothing.
    slots: list[Operation | None] = list(current)
    _relax_in_chunks(slots, budget, _only_constrains, halving=True)
    _relax_in_chunks(slots, budget, lambda op: not _only_constrains(op), halving=True)
    _relax_in_chunks(slots, budget, lambda op: True, halving=False)
    return [op for op in slots if op is not None]


def _window(ops: list[Operation], budget: _Budget) -> list[Operation]:
    """Relax every completed operation invoked before the latest tick that keeps the history
    failing: the shortest tail of the history that is broken on its own.

    Found by galloping back from the end (tails of 1, 2, 4... start ticks) and bisecting the
    last gap, so most checks are of short tails, which are cheap; the full history — whose
    refutation can cost a million steps when many outcomes are unknown — is never re-checked.
    """
    starts = sorted({op.invoke_tick for op in ops if op.outcome_known})

    def relaxed_before(start_tick: int) -> list[Operation]:
        kept = []
        for op in ops:
            if op.outcome_known and op.invoke_tick < start_tick:
                weaker = _relaxed(op)
                if weaker is not None:
                    budget.originals[weaker] = op
                    kept.append(weaker)
            else:
                kept.append(op)
        return kept

    # Invariant: starts[failing] keeps the history failing (index 0 relaxes nothing), and
    # starts[passing] (if any) does not. Find adjacent indexes.
    failing, passing = 0, len(starts)
    back = 1
    while back <= len(starts) and not budget.exhausted():
        index = len(starts) - back
        if index <= failing:
            break
        if budget.violates(relaxed_before(starts[index])):
            failing = index
            break
        passing = index
        back *= 2
    while passing - failing > 1 and not budget.exhausted():
        middle = (failing + passing) // 2
        if budget.violates(relaxed_before(starts[middle])):
            failing = middle
        else:
            passing = middle
    return relaxed_before(starts[failing]) if starts else ops


def _relax_in_chunks(slots: list[Operation | None], budget: _Budget,
                     eligible: Callable[[Operation], bool], *, halving: bool) -> None:
    """Relax eligible completed operations in ``slots`` (in place, None = dropped) wherever the
    history stays proven non-linearizable; stops when a pass of single relaxations fails."""
    chunk = 1
    if halving:
        chunk = max(1, sum(1 for op in slots if op is not None and op.outcome_known
                           and eligible(op)) // 2)
    while not budget.exhausted():
        candidates = sorted(
            (i for i, op in enumerate(slots)
             if op is not None and op.outcome_known and eligible(op)),
            key=lambda i: (_invoke_of(slots[i]), i),
            reverse=True,
        )
        if not candidates:
            return
        chunk = min(chunk, len(candidates))
        progress = False
        for start in range(0, len(candidates), chunk):
            chosen = candidates[start:start + chunk]
            saved = [slots[i] for i in chosen]
            for i, original in zip(chosen, saved, strict=True):
                assert original is not None
                weaker = _relaxed(original)
                slots[i] = weaker
                if weaker is not None:
                    budget.originals[weaker] = original
            if budget.violates([op for op in slots if op is not None]):
                progress = True
            else:
                for i, original in zip(chosen, saved, strict=True):
                    slots[i] = original
            if budget.exhausted():
                return
        if not progress:
            if chunk == 1:
                return
            chunk //= 2


def _violation(key: Hashable, key_ops: Sequence[Operation], max_steps_per_check: int,
               max_shrink_steps: int, *, refute_steps: int, stuck_tick: float,
               steps_so_far: int) -> CheckResult:
    # A relaxed history should cost about what the original did to refute; one that costs far
    # more is not worth the shrinking budget (its relaxation is refused, unproven).
    budget = _Budget(max_shrink_steps, min(max_steps_per_check, max(20_000, 4 * refute_steps)))
    shrunk = _shrink(key_ops, budget, stuck_tick)
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
            "  ...even allowing each of these to take effect any time after its invocation, or"
            " never (and a cas whose outcome is ignored even without its expected value):"
        )
        for op in _by_time(context)[:_MAX_CONTEXT_LINES]:
            original = budget.originals.get(op)
            if original is None:
                lines.append(f"  {op.describe()}")
            else:
                lines.append(f"  {original.describe()} (outcome ignored)")
        if len(context) > _MAX_CONTEXT_LINES:
            lines.append(f"  ... and {len(context) - _MAX_CONTEXT_LINES} more like them")
    lines += _value_notes(key, key_ops, witness, pruned)
    if budget.undecided or budget.exhausted():
        lines.append("  (shrinking stopped at its step budget: this witness may not be minimal)")
    return CheckResult(
        outcome=Outcome.VIOLATION,
        explanation="\n".join(lines),
        key=key,
        witness=_by_time(witness),
        context=_by_time(context),
        minimal=not (budget.undecided or budget.exhausted()),
        search_steps=steps_so_far,
    )


def _value_notes(key: Hashable, key_ops: Sequence[Operation], witness: Sequence[Operation],
                 shrunk: Sequence[Operation]) -> list[str]:
    """Say where the values the witness observed came from, when the witness cannot show it:
    never written at all, or written only by operations the shrinking cut off because they
    were invoked after the history had already gone wrong (a read from the future)."""
    observed = {op.result for op in witness if isinstance(op.kind, Read)}
    observed |= {op.kind.expected for op in witness if isinstance(op.kind, Cas)}
    shown = set(shrunk)
    notes = []
    for value in sorted((v for v in observed if v is not None), key=repr):
        writers = [op for op in key_ops if _new_value(op) == value]
        if not writers:
            notes.append(f"  note: no operation on key {key!r} ever wrote {value!r}")
            continue
        late = [op for op in writers if op not in shown]
        if late and len(late) == len(writers):
            notes.append(f"  note: every write of {value!r} was invoked too late to explain it:")
            notes += [f"    {op.describe()}" for op in _by_time(late)[:3]]
    return notes


# --------------------------------------------------------------------------------------------
# Small helpers


def _new_value(op: Operation) -> Hashable | None:
    """The value ``op`` would store, or None for a read."""
    if isinstance(op.kind, Write):
        return op.kind.value
    if isinstance(op.kind, Cas):
        return op.kind.new
    return None



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
