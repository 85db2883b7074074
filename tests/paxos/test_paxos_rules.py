"""One test per rule of the seed's Paxos, on the pure cores (acceptor, proposer, learner)."""

from __future__ import annotations

import random

import pytest

from kvorum.core.paxos import (
    AcceptorState,
    Ballot,
    BasicConfig,
    BasicPaxosCore,
    UnsafeSwitches,
)
from kvorum.core.paxos.acceptor import AcceptorRules, on_accept, on_prepare
from kvorum.core.paxos.basic_messages import Accept, Accepted, Learn, Prepare, Promise

ACCEPTORS = (1, 2, 3)


def core(node_id: int = 1, **kwargs: object) -> BasicPaxosCore:
    return BasicPaxosCore(
        BasicConfig(node_id, ACCEPTORS, **kwargs),  # type: ignore[arg-type]
        random.Random(node_id),
    )


def test_prepare_raises_min_n_only_upwards() -> None:
    empty: AcceptorState[str] = AcceptorState()
    state = on_prepare(empty, Ballot(2, 1))
    assert state.min_n == Ballot(2, 1)
    assert on_prepare(state, Ballot(1, 3)).min_n == Ballot(2, 1)


def test_acceptor_refuses_n_below_min_n_and_keeps_its_value() -> None:
    state = AcceptorState(Ballot(2, 5), Ballot(1, 1), "X")
    after, accepted = on_accept(state, Ballot(1, 2), "Y")
    assert not accepted
    assert after == state


def test_acceptor_accepts_n_equal_to_min_n() -> None:
    state: AcceptorState[str] = AcceptorState(Ballot(2, 5))
    after, accepted = on_accept(state, Ballot(2, 5), "Y")
    assert accepted
    assert after == AcceptorState(Ballot(2, 5), Ballot(2, 5), "Y")


def test_unsafe_switch_accepts_below_min_n() -> None:
    state: AcceptorState[str] = AcceptorState(Ballot(2, 5))
    rules = AcceptorRules(accept_below_min_n=True)
    after, accepted = on_accept(state, Ballot(1, 1), "X", rules)
    assert accepted and after.accept_value == "X"


def test_every_reply_carries_min_n() -> None:
    a = core(2)
    a.step(Prepare(5, 2, Ballot(3, 5)))
    a.step(Accept(1, 2, Ballot(1, 1), "X"))
    a.step(Prepare(1, 2, Ballot(1, 1)))
    msgs = a.ready().messages
    promise, refused, late_promise = msgs
    assert isinstance(promise, Promise) and promise.min_n == Ballot(3, 5)
    assert isinstance(refused, Accepted) and refused.min_n == Ballot(3, 5)
    assert isinstance(late_promise, Promise) and late_promise.min_n == Ballot(3, 5)


def test_acceptor_state_is_in_the_ready_with_its_reply() -> None:
    """Persist before send: the state the reply promises comes out in the same ready, and
    the host persists it before sending the ready's messages."""
    a = core(2)
    a.step(Prepare(1, 2, Ballot(1, 1)))
    rd = a.ready()
    assert rd.acceptor_state == AcceptorState(Ballot(1, 1))
    assert [type(m) for m in rd.messages] == [Promise]
    a.advance(rd)
    a.step(Prepare(1, 2, Ballot(1, 1)))  # a duplicate: nothing new to persist
    assert a.ready().acceptor_state is None


def test_phase_one_sends_only_n_and_phase_two_sends_n_and_value() -> None:
    p = core(1)
    p.propose("X")
    prepares = p.ready().messages
    assert all(isinstance(m, Prepare) and m._fields == ("src", "dst", "n") for m in prepares)
    for a in ACCEPTORS[:2]:
        p.step(Promise(a, 1, Ballot(1, 1), Ballot(1, 1), Ballot(0, 0), None))
    accepts = p.ready().messages
    assert {(type(m), m.n, m.value) for m in accepts} == {(Accept, Ballot(1, 1), "X")}  # type: ignore[union-attr]


def test_proposal_numbers_are_unique_across_nodes_and_increase() -> None:
    a, b = core(1), core(2)
    a.propose("X")
    b.propose("Y")
    na = a.ready().messages[0].n  # type: ignore[union-attr]
    nb = b.ready().messages[0].n  # type: ignore[union-attr]
    assert na != nb and na.round == nb.round
    a.step(Promise(3, 1, na, nb, Ballot(0, 0), None))  # pre-empted by b's number
    retry = a.ready().messages[0].n  # type: ignore[union-attr]
    assert retry > nb > na


def test_round_is_reserved_before_its_prepare_leaves() -> None:
    p = core(1)
    p.propose("X")
    rd = p.ready()
    assert rd.round_reserved == 1 and rd.messages
    restarted = BasicPaxosCore(BasicConfig(1, ACCEPTORS), random.Random(1), durable_round=1)
    restarted.propose("Z")
    assert restarted.ready().messages[0].n == Ballot(2, 1)  # type: ignore[union-attr]


@pytest.mark.parametrize("unsafe", [False, True])
def test_proposer_adopts_the_value_with_the_highest_accept_n(unsafe: bool) -> None:
    p = core(1, unsafe=UnsafeSwitches(skip_adopt_highest=unsafe))
    p.propose("X")
    n = p.ready().messages[0].n  # type: ignore[union-attr]
    p.step(Promise(2, 1, n, n, Ballot(0, 0), None))
    p.step(Promise(3, 1, n, n, Ballot(1, 3), "old"))
    p.step(Promise(1, 1, n, n, Ballot(1, 2), "older"))
    # Only two promises were needed; the third arrives after phase 2 began.
    value = p.ready().messages[0].value  # type: ignore[union-attr]
    assert value == ("X" if unsafe else "old")


def test_adoption_picks_highest_among_the_majority() -> None:
    p = BasicPaxosCore(BasicConfig(1, (1, 2, 3, 4, 5)), random.Random(1))
    p.propose("X")
    n = p.ready().messages[0].n  # type: ignore[union-attr]
    p.step(Promise(2, 1, n, n, Ballot(1, 2), "A"))
    p.step(Promise(3, 1, n, n, Ballot(2, 4), "B"))
    p.step(Promise(4, 1, n, n, Ballot(1, 9), "C"))
    assert p.ready().messages[0].value == "B"  # type: ignore[union-attr]


def test_a_refusal_with_higher_min_n_fails_the_round_and_starts_a_higher_one() -> None:
    p = core(1)
    p.propose("X")
    n = p.ready().messages[0].n  # type: ignore[union-attr]
    for a in (1, 2):
        p.step(Promise(a, 1, n, n, Ballot(0, 0), None))
    p.ready()
    p.step(Accepted(2, 1, n, Ballot(7, 3)))
    rd = p.ready()
    assert [o.chosen for o in rd.outcomes] == [False]
    assert all(isinstance(m, Prepare) and m.n == Ballot(8, 1) for m in rd.messages)


def test_backoff_delays_the_new_round() -> None:
    p = core(1, backoff_ticks=4)
    p.propose("X")
    n = p.ready().messages[0].n  # type: ignore[union-attr]
    p.step(Promise(2, 1, n, Ballot(5, 2), Ballot(0, 0), None))
    assert not p.ready().messages
    ticks = 0
    while not p.has_ready() or not p.ready().messages:
        p.tick()
        ticks += 1
    assert 1 <= ticks <= 4


def test_non_distinguished_proposer_forwards() -> None:
    p = core(2, distinguished_proposer=1)
    p.propose("Y")
    (fwd,) = p.ready().messages
    assert fwd.dst == 1 and fwd.value == "Y"  # type: ignore[union-attr]


def test_learner_needs_a_majority_of_one_number() -> None:
    learner = core(3)
    learner.step(Learn(1, 3, Ballot(1, 1), "X"))
    learner.step(Learn(2, 3, Ballot(2, 2), "Y"))
    assert learner.chosen is None
    learner.step(Learn(3, 3, Ballot(2, 2), "Y"))
    assert learner.chosen == "Y"


def test_both_cores_have_the_one_core_shape() -> None:
    from kvorum.core.paxos import CasConfig, CasPaxosCore, CasReady, PaxosReady
    from kvorum.core.paxos.basic_messages import BasicMessage
    from kvorum.core.paxos.cas_messages import CasMessage
    from kvorum.core.shape import Core

    basic: Core[BasicMessage, PaxosReady] = core(1)
    cas: Core[CasMessage, CasReady] = CasPaxosCore(CasConfig(1, ACCEPTORS), random.Random(1))
    assert basic.node_id == cas.node_id == 1
