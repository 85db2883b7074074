"""The linearizability checker: hand-written histories with known verdicts, then properties.

Hand-written cases pin the model (what precedes what, unknown outcomes, compare-and-set) and
the report; the properties say that any history produced by a real sequential execution is
accepted however its intervals are widened, and that one read of a value nobody wrote is
always caught and shrunk to exactly that read.
"""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvorum.sim.linearizability import (
    Cas,
    CheckResult,
    HistoryError,
    HistoryRecorder,
    Operation,
    Outcome,
    Read,
    Write,
    check_history,
)

NEVER_WRITTEN = "never-written"


def done(client: str, kind: Read | Write | Cas, invoke: int, complete: int,
         result: object = None, *, key: str = "x") -> Operation:
    return Operation(client, key, kind, invoke, complete, result)


def unknown(client: str, kind: Read | Write | Cas, invoke: int, key: str = "x") -> Operation:
    return Operation(client, key, kind, invoke)


def assert_violation(result: CheckResult, key: str = "x") -> None:
    assert result.outcome is Outcome.VIOLATION, result.explanation
    assert not result.ok
    assert result.key == key
    assert result.minimal


def assert_linearizable(result: CheckResult) -> None:
    assert result.outcome is Outcome.LINEARIZABLE, result.explanation
    assert result.ok


# ---------------------------------------------------------------------------- violations


def test_stale_read_after_a_completed_write_is_a_violation() -> None:
    history = [done("a", Write(1), 0, 1), done("b", Read(), 2, 3, None)]
    result = check_history(history)
    assert_violation(result)
    assert result.witness == tuple(history)


def test_reading_an_overwritten_value_after_both_writes_completed_is_a_violation() -> None:
    history = [
        done("a", Write(1), 0, 1),
        done("b", Write(2), 2, 3),
        done("c", Read(), 4, 5, 1),
    ]
    result = check_history(history)
    assert_violation(result)
    assert result.witness == tuple(history)
    assert "client 'c'" in result.explanation
    assert "read -> 1" in result.explanation
    assert "invoked t=4, completed t=5" in result.explanation


def test_two_readers_seeing_two_concurrent_writes_in_opposite_orders_is_a_violation() -> None:
    history = [
        done("w1", Write(1), 0, 100),
        done("w2", Write(2), 0, 100),
        done("c", Read(), 1, 2, 1),
        done("c", Read(), 3, 4, 2),
        done("d", Read(), 1, 2, 2),
        done("d", Read(), 3, 4, 1),
    ]
    result = check_history(history)
    assert_violation(result)
    # The four reads are the contradiction; the writes' completion times play no part.
    assert set(result.witness) == set(history[2:])
    assert {op.client_id for op in result.context} == {"w1", "w2"}
    assert "(outcome ignored)" in result.explanation


def test_one_reader_seeing_the_writes_in_either_order_is_fine() -> None:
    history = [
        done("w1", Write(1), 0, 100),
        done("w2", Write(2), 0, 100),
        done("c", Read(), 1, 2, 1),
        done("c", Read(), 3, 4, 2),
        done("d", Read(), 1, 2, 1),
        done("d", Read(), 3, 4, 2),
    ]
    assert_linearizable(check_history(history))


def test_cas_cannot_succeed_twice_from_the_same_expected_value() -> None:
    history = [
        done("a", Write(0), 0, 1),
        done("b", Cas(0, 1), 2, 10, True),
        done("c", Cas(0, 2), 2, 10, True),
    ]
    result = check_history(history)
    assert_violation(result)
    # The write may be relaxed (an unknown write of 0 still cannot help both swaps), the two
    # swaps never can.
    assert {op.client_id for op in result.witness} >= {"b", "c"}


def test_cas_from_absent_cannot_succeed_twice() -> None:
    history = [done("b", Cas(None, 1), 0, 5, True), done("c", Cas(None, 2), 0, 5, True)]
    result = check_history(history)
    assert_violation(result)
    assert "cas(absent, 1) -> swapped" in result.explanation


def test_only_one_of_two_racing_cas_succeeding_is_fine() -> None:
    history = [
        done("b", Cas(None, 1), 0, 5, True),
        done("c", Cas(None, 2), 0, 5, False),
        done("d", Read(), 6, 7, 1),
    ]
    assert_linearizable(check_history(history))


def test_a_failed_cas_with_nothing_to_make_it_fail_is_a_violation() -> None:
    history = [done("a", Cas(None, 1), 0, 1, False)]
    assert_violation(check_history(history))


def test_a_read_of_a_value_never_written_is_a_violation_and_says_so() -> None:
    history = [done("a", Write(1), 0, 1), done("b", Read(), 2, 3, 7)]
    result = check_history(history)
    assert_violation(result)
    assert result.witness == (history[1],)
    assert "this operation cannot be explained" in result.explanation
    assert "no operation on key 'x' ever wrote 7" in result.explanation


def test_a_read_from_the_future_is_a_violation() -> None:
    # The write of 1 was invoked only after the read had already returned 1.
    history = [done("a", Read(), 0, 1, 1), done("b", Write(1), 2, 3)]
    result = check_history(history)
    assert_violation(result)
    assert result.witness == (history[0],)
    assert "every write of 1 was invoked too late" in result.explanation
    assert "client 'b'    write 1" in result.explanation


# ---------------------------------------------------------------------------- concurrency


def test_overlapping_operations_may_take_effect_in_either_order() -> None:
    history = [
        done("a", Write(1), 0, 10),
        done("b", Read(), 1, 2, None),  # before the write took effect
        done("c", Read(), 3, 4, 1),  # after it
        done("b", Read(), 5, 20, 1),
        done("c", Write(2), 6, 8),
        done("d", Read(), 9, 9, 2),  # zero-length, inside both writes' windows
    ]
    assert_linearizable(check_history(history))


def test_an_operation_invoked_on_the_tick_another_completes_is_concurrent_with_it() -> None:
    same_tick = [done("a", Write(1), 0, 5), done("b", Read(), 5, 6, None)]
    assert_linearizable(check_history(same_tick))
    next_tick = [done("a", Write(1), 0, 5), done("b", Read(), 6, 7, None)]
    assert_violation(check_history(next_tick))


def test_empty_history_is_linearizable() -> None:
    assert_linearizable(check_history([]))


# ---------------------------------------------------------------------------- unknown outcomes


def test_an_unknown_write_may_explain_a_later_read() -> None:
    history = [unknown("a", Write(1), 0), done("b", Read(), 50, 51, 1)]
    assert_linearizable(check_history(history))


def test_an_unknown_write_may_also_never_happen() -> None:
    history = [unknown("a", Write(1), 0), done("b", Read(), 50, 51, None)]
    assert_linearizable(check_history(history))


def test_an_unknown_write_may_take_effect_long_after_its_client_gave_up() -> None:
    history = [
        unknown("a", Write(1), 0),
        done("b", Read(), 10, 11, None),
        done("b", Read(), 20, 21, 1),
        done("c", Read(), 30, 31, 1),
    ]
    assert_linearizable(check_history(history))


def test_an_unknown_write_cannot_explain_a_read_that_finished_before_it_was_invoked() -> None:
    history = [done("b", Read(), 0, 1, 1), unknown("a", Write(1), 5)]
    result = check_history(history)
    assert_violation(result)
    assert result.witness == (history[0],)
    assert "every write of 1 was invoked too late" in result.explanation
    assert "client 'a'    write 1" in result.explanation
    assert "outcome unknown" in result.explanation


def test_an_unknown_write_takes_effect_once_not_twice() -> None:
    history = [
        unknown("a", Write(1), 0),
        done("b", Read(), 10, 11, 1),
        done("c", Write(2), 12, 13),
        done("b", Read(), 14, 15, 1),
    ]
    assert_violation(check_history(history))


def test_an_unknown_cas_takes_effect_only_from_its_expected_value() -> None:
    may_swap = [
        done("a", Write(0), 0, 1),
        unknown("b", Cas(0, 5), 2),
        done("c", Read(), 10, 11, 5),
    ]
    assert_linearizable(check_history(may_swap))
    wrong_expected = [
        done("a", Write(0), 0, 1),
        unknown("b", Cas(3, 5), 2),
        done("c", Read(), 10, 11, 5),
    ]
    assert_violation(check_history(wrong_expected))


def test_an_unknown_read_constrains_nothing() -> None:
    history = [done("a", Write(1), 0, 1), unknown("b", Read(), 2)]
    assert_linearizable(check_history(history))


def test_a_client_may_move_on_while_its_unknown_operation_is_still_in_flight() -> None:
    history = [unknown("a", Write(1), 0), done("a", Read(), 1, 2, None)]
    assert_linearizable(check_history(history))


# ---------------------------------------------------------------------------- keys and budget


def test_keys_are_checked_independently_and_the_violating_key_is_named() -> None:
    history = [
        done("a", Write(1), 0, 1, key="good"),
        done("a", Write(1), 2, 3, key="bad"),
        done("b", Read(), 4, 5, 1, key="good"),
        done("b", Read(), 6, 7, None, key="bad"),
    ]
    result = check_history(history)
    assert_violation(result, key="bad")
    assert all(op.key == "bad" for op in result.witness)
    assert "key 'bad'" in result.explanation


def test_the_same_values_on_different_keys_do_not_interfere() -> None:
    history = [
        done("a", Write(1), 0, 1, key="p"),
        done("b", Read(), 2, 3, None, key="q"),
        done("b", Read(), 4, 5, 1, key="p"),
    ]
    assert_linearizable(check_history(history))


def busy_history() -> list[Operation]:
    """Five concurrent writers and readers: needs more than a couple of search steps."""
    history = [done(f"w{v}", Write(v), 0, 100) for v in range(5)]
    history += [done(f"r{v}", Read(), 101, 102, 4) for v in range(3)]
    return history


def test_running_out_of_budget_is_unknown_not_a_violation() -> None:
    result = check_history(busy_history(), max_search_steps_per_key=2)
    assert result.outcome is Outcome.UNKNOWN
    assert not result.ok
    assert result.undecided_keys == ("x",)
    assert "undecided" in result.explanation
    assert "budget" in result.explanation
    assert_linearizable(check_history(busy_history()))


def test_a_proven_violation_on_one_key_outranks_an_undecided_key() -> None:
    history = [*busy_history(), done("z", Read(), 0, 1, 7, key="y")]
    result = check_history(history, max_search_steps_per_key=2)
    assert_violation(result, key="y")


def test_shrinking_out_of_budget_still_reports_a_valid_violation() -> None:
    history = [
        done("a", Write(1), 0, 1),
        done("b", Write(2), 2, 3),
        done("c", Read(), 4, 5, 1),
    ]
    result = check_history(history, max_shrink_steps=0)
    assert result.outcome is Outcome.VIOLATION
    assert not result.minimal
    assert "may not be minimal" in result.explanation
    assert set(result.witness) <= set(history)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Write(None), "cannot be written"),
        (lambda: Cas(1, None), "cannot be written"),
        (lambda: done("a", Read(), 5, 4, None), "before its invocation"),
        (lambda: done("a", Write(1), 0, 1, "ok"), "completed write returns None"),
        (lambda: done("a", Cas(1, 2), 0, 1, 1), "True or False"),
        (lambda: Operation("a", "x", Read(), 0, None, 3), "unknown-outcome operation has no"),
        (lambda: Operation("a", "x", Read(), True), "invoke_tick must be an int"),
        (lambda: Operation("a", "x", "read", 0), "kind must be"),  # type: ignore[arg-type]
    ],
)
def test_malformed_operations_are_rejected(build: object, message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        build()  # type: ignore[operator]


def test_a_client_with_overlapping_operations_is_rejected() -> None:
    history = [done("a", Write(1), 0, 10), done("a", Read(), 5, 6, 1)]
    with pytest.raises(HistoryError, match=r"client 'a'.*sequential"):
        check_history(history)


def test_bad_budgets_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_search_steps_per_key"):
        check_history([], max_search_steps_per_key=0)
    with pytest.raises(ValueError, match="max_shrink_steps"):
        check_history([], max_shrink_steps=-1)


# ---------------------------------------------------------------------------- recorder


def test_recorder_builds_the_history_and_leaves_pending_operations_unknown() -> None:
    recorder = HistoryRecorder()
    write = recorder.invoke("a", "x", Write(1), now_tick=0)
    read = recorder.invoke("b", "x", Read(), now_tick=1)
    recorder.invoke("c", "x", Write(2), now_tick=2)
    recorder.complete(write, now_tick=3)
    recorder.complete(read, now_tick=4, result=1)
    assert recorder.history() == (
        done("a", Write(1), 0, 3),
        done("b", Read(), 1, 4, 1),
        unknown("c", Write(2), 2),
    )
    assert_linearizable(check_history(recorder.history()))


def test_recorder_rejects_backwards_clocks_double_completion_and_bad_results() -> None:
    recorder = HistoryRecorder()
    handle = recorder.invoke("a", "x", Cas(None, 1), now_tick=5)
    with pytest.raises(HistoryError, match="backwards"):
        recorder.invoke("b", "x", Read(), now_tick=4)
    with pytest.raises(HistoryError, match="True or False"):
        recorder.complete(handle, now_tick=6, result=None)
    recorder.complete(handle, now_tick=6, result=True)
    with pytest.raises(HistoryError, match="already completed"):
        recorder.complete(handle, now_tick=7, result=True)
    with pytest.raises(HistoryError, match="unknown operation handle"):
        recorder.complete(99, now_tick=7)


# ---------------------------------------------------------------------------- properties


def sequential_history(rng: Random, *, operations: int, clients: int, keys: int,
                       widen_ticks: int, unknown_ratio: float = 0.1) -> list[Operation]:
    """Run ``operations`` random operations one at a time against a dict (operation j takes
    effect at tick 10*j), then widen each interval around that point at random, keeping every
    client sequential. Some operations end with an unknown outcome: some of those took effect,
    some never did. The last one is always a completed read. Always linearizable."""
    register: dict[str, int] = {}
    plan: list[tuple[int, int, str, Read | Write | Cas, bool, object]] = []
    for j in range(operations):
        key = f"k{rng.randrange(keys)}"
        roll = rng.random()
        kind: Read | Write | Cas
        if roll < 0.4 or j == operations - 1:
            kind = Read()
        elif roll < 0.7:
            kind = Write(rng.randrange(4))
        else:
            kind = Cas(rng.choice([None, 0, 1, 2, 3]), rng.randrange(4))
        fate = rng.random()
        known = j == operations - 1 or fate >= unknown_ratio
        took_effect = known or fate < unknown_ratio / 2
        result: object = None
        if took_effect:
            current = register.get(key)
            if isinstance(kind, Read):
                result = current
            elif isinstance(kind, Write):
                register[key] = kind.value  # type: ignore[assignment]
            else:
                result = current == kind.expected
                if result:
                    register[key] = kind.new  # type: ignore[assignment]
        plan.append((10 * j, rng.randrange(clients), key, kind, known, result))

    history: list[Operation] = []
    for client in range(clients):
        mine = [entry for entry in plan if entry[1] == client]
        free_tick = -widen_ticks - 1
        for index, (point, _, key, kind, known, result) in enumerate(mine):
            invoke = rng.randint(max(free_tick, point - widen_ticks), point)
            if not known:
                history.append(Operation(client, key, kind, invoke))
                free_tick = invoke
                continue
            latest = mine[index + 1][0] if index + 1 < len(mine) else point + widen_ticks
            complete = rng.randint(point, min(latest, point + widen_ticks))
            history.append(Operation(client, key, kind, invoke, complete, result))
            free_tick = complete
    history.sort(key=lambda op: op.invoke_tick)
    return history


history_shapes = st.fixed_dictionaries(
    {
        "operations": st.integers(1, 40),
        "clients": st.integers(1, 5),
        "keys": st.integers(1, 3),
        "widen_ticks": st.integers(0, 40),
    }
)


@given(rng=st.randoms(use_true_random=False), shape=history_shapes)
def test_histories_of_a_sequential_execution_are_always_linearizable(
    rng: Random, shape: dict[str, int]
) -> None:
    history = sequential_history(rng, **shape)
    assert_linearizable(check_history(history))


@given(rng=st.randoms(use_true_random=False), shape=history_shapes, data=st.data())
def test_one_read_of_a_value_never_written_is_always_caught_and_isolated(
    rng: Random, shape: dict[str, int], data: st.DataObject
) -> None:
    history = sequential_history(rng, **shape)
    reads = [i for i, op in enumerate(history) if isinstance(op.kind, Read) and op.outcome_known]
    victim = data.draw(st.sampled_from(reads))
    original = history[victim]
    mutated = Operation(original.client_id, original.key, original.kind, original.invoke_tick,
                        original.complete_tick, NEVER_WRITTEN)
    history[victim] = mutated
    result = check_history(history)
    assert_violation(result, key=str(original.key))
    assert result.witness == (mutated,)
    assert result.context == ()
    assert f"ever wrote {NEVER_WRITTEN!r}" in result.explanation


def test_a_few_hundred_operations_with_five_clients_are_checked_well_within_budget() -> None:
    # Not a timing test: the step count is what the cache keeps polynomial.
    history = sequential_history(Random(7), operations=400, clients=5, keys=1, widen_ticks=30)
    result = check_history(history)
    assert_linearizable(result)
    assert result.search_steps < 20_000
    reads = [i for i, op in enumerate(history) if isinstance(op.kind, Read) and op.outcome_known]
    victim = reads[len(reads) // 2]
    history[victim] = Operation(history[victim].client_id, "k0", Read(),
                                history[victim].invoke_tick, history[victim].complete_tick,
                                NEVER_WRITTEN)
    broken = check_history(history)
    assert_violation(broken, key="k0")
    assert broken.witness == (history[victim],)


# ---------------------------------------------------------------------------- against an oracle


def brute_force_linearizable(history: list[Operation]) -> bool:
    """The definition, searched exhaustively without any cleverness: some order of all
    completed operations and any subset of unknown writes/cas respects real time and replays.
    Only for a handful of operations."""
    ops = [op for op in history if op.outcome_known or not isinstance(op.kind, Read)]

    def extend(remaining: list[Operation], state: object) -> bool:
        if all(not op.outcome_known for op in remaining):
            return True
        for op in remaining:
            others = [other for other in remaining if other is not op]
            if any(o.complete_tick is not None and o.complete_tick < op.invoke_tick
                   for o in others):
                continue  # something still unplaced had to come before it
            kind = op.kind
            if isinstance(kind, Read):
                ok, after = state == op.result, state
            elif isinstance(kind, Write):
                ok, after = True, kind.value
            elif op.outcome_known and op.result is False:
                ok, after = state != kind.expected, state
            else:
                ok, after = state == kind.expected, kind.new
            if ok and extend(others, after):
                return True
        return False

    return extend(ops, None)


@st.composite
def small_random_histories(draw: st.DrawFn) -> list[Operation]:
    """Arbitrary small histories (mostly not linearizable), one client per operation."""
    history = []
    values = st.sampled_from([0, 1, 2])
    for client in range(draw(st.integers(1, 7))):
        invoke = draw(st.integers(0, 12))
        kind = draw(st.one_of(st.just(Read()), values.map(Write),
                              st.builds(Cas, st.sampled_from([None, 0, 1, 2]), values)))
        if draw(st.integers(0, 3)) == 0:
            history.append(Operation(client, "x", kind, invoke))
            continue
        complete = invoke + draw(st.integers(0, 6))
        result: object = None
        if isinstance(kind, Read):
            result = draw(st.sampled_from([None, 0, 1, 2]))
        elif isinstance(kind, Cas):
            result = draw(st.booleans())
        history.append(Operation(client, "x", kind, invoke, complete, result))
    return history


@given(history=small_random_histories())
def test_the_verdict_agrees_with_brute_force_and_the_witness_is_a_real_minimal_one(
    history: list[Operation],
) -> None:
    result = check_history(history)
    expected = brute_force_linearizable(history)
    assert result.ok == expected, result.explanation
    if expected:
        return
    assert result.minimal
    # The witness, with its context allowed any time after invocation or never, still fails...
    claim = list(result.witness) + list(result.context)
    assert not brute_force_linearizable(claim)
    # ...and every one of its operations is needed: weaken any one and the rest passes (a read
    # or failed cas weakens by going, a write or swap by becoming an unknown-outcome write).
    for op in result.witness:
        others = [other for other in claim if other is not op]
        if isinstance(op.kind, Read) or (isinstance(op.kind, Cas) and op.result is False):
            assert brute_force_linearizable(others)
        else:
            new_value = op.kind.value if isinstance(op.kind, Write) else op.kind.new
            relaxed = Operation(op.client_id, op.key, Write(new_value), op.invoke_tick)
            assert brute_force_linearizable([*others, relaxed])
