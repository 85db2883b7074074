"""The node's request deadlines: due requests fail with a timeout, answered ones leave early.

Answered requests must not stay queued for the whole timeout: at thousands of requests a
second that held tens of thousands of futures, which the garbage collector walked again and
again (pauses longer than the election timeout on a busy leader).
"""

from __future__ import annotations

from kvorum.host.errors import CommitTimeoutError
from kvorum.host.waiters import CallbackWaiter, Deadlines


def _waiter(outcomes: list[object]) -> CallbackWaiter:
    return CallbackWaiter(lambda r, e: outcomes.append(e if e is not None else r))


def test_due_requests_fail_with_a_timeout_and_answered_ones_do_not() -> None:
    deadlines = Deadlines(100)
    outcomes: list[object] = []
    answered, waiting = _waiter(outcomes), _waiter(outcomes)
    deadlines.track(answered, 0)
    deadlines.track(waiting, 10)
    answered.set_result("ok")
    assert deadlines.expire(105) == 0  # only `answered` was due, and it had its answer
    assert deadlines.expire(110) == 1
    assert outcomes[0] == "ok" and isinstance(outcomes[1], CommitTimeoutError)


def test_answered_requests_leave_the_queue_before_their_deadline() -> None:
    deadlines = Deadlines(5_000)
    outcomes: list[object] = []
    for i in range(10_000):
        w = _waiter(outcomes)
        deadlines.track(w, i * 0.1)
        w.set_result(i)
    assert len(deadlines) <= 1


def test_one_slow_request_does_not_keep_the_answered_ones_behind_it() -> None:
    deadlines = Deadlines(5_000)
    outcomes: list[object] = []
    slow = _waiter(outcomes)
    deadlines.track(slow, 0)
    for i in range(10_000):
        w = _waiter(outcomes)
        deadlines.track(w, 1 + i * 0.1)
        w.set_result(i)
    assert len(deadlines) < 2_100
    assert deadlines.expire(5_000) == 1 and isinstance(outcomes[-1], CommitTimeoutError)
