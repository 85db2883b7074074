"""The CASPaxos core: changes, the one-round-trip path, retries that never apply twice, and
the codec of what acceptors persist."""

from __future__ import annotations

import random

from kvorum.core.paxos import (
    AcceptorState,
    Ballot,
    CasConfig,
    CasPaxosCore,
    CasResult,
    CompareAndSet,
    Delete,
    Get,
    Increment,
    Register,
    Set,
    decode_slot,
    encode_slot,
)
from kvorum.core.paxos.cas_messages import (
    CasAccept,
    CasAccepted,
    CasMessage,
    CasPrepare,
    CasPromise,
)
from kvorum.core.paxos.changes import AppliedChange

NODES = (1, 2, 3)


class Net:
    """Three cores; messages delivered FIFO until none is left (persistence is instant)."""

    def __init__(self, **config: object) -> None:
        self.cores = {
            i: CasPaxosCore(CasConfig(i, NODES, **config), random.Random(i))  # type: ignore[arg-type]
            for i in NODES
        }
        self.sent: list[CasMessage] = []
        self.results: list[CasResult] = []
        self.drop: set[int] = set()

    def run(self) -> None:
        queue: list[CasMessage] = []
        while True:
            for c in self.cores.values():
                if c.has_ready():
                    rd = c.ready()
                    queue.extend(rd.messages)
                    self.sent.extend(rd.messages)
                    self.results.extend(rd.results)
                    c.advance(rd)
            if not queue:
                return
            msg = queue.pop(0)
            if msg.dst not in self.drop:
                self.cores[msg.dst].step(msg)


def test_changes_apply_in_order_and_answer() -> None:
    net = Net()
    n1 = net.cores[1]
    n1.propose(1, "k", Set(b"5"))
    n1.propose(2, "k", Increment(2))
    n1.propose(3, "k", CompareAndSet(b"7", b"x"))
    n1.propose(4, "k", CompareAndSet(b"7", b"y"))
    n1.propose(5, "k", Get())
    n1.propose(6, "k", Delete())
    n1.propose(7, "k", Get())
    n1.propose(8, "k", Increment())
    net.run()
    got = [(r.request_id, r.result, r.error) for r in net.results]
    assert got == [
        (1, None, None), (2, 7, None), (3, True, None), (4, False, None), (5, b"x", None),
        (6, True, None), (7, None, None), (8, 1, None),
    ]


def test_increment_of_a_non_number_is_an_error_without_effect() -> None:
    net = Net()
    net.cores[1].propose(1, "k", Set(b"abc"))
    net.cores[1].propose(2, "k", Increment())
    net.run()
    net.cores[2].propose(3, "k", Get())
    net.run()
    by_id = sorted(net.results, key=lambda r: r.request_id)
    assert [(r.result, r.error) for r in by_id] == [
        (None, None), (None, "value is not an integer"), (b"abc", None)
    ]


def test_repeated_changes_on_a_key_skip_phase_one() -> None:
    net = Net()
    for i in range(5):
        net.cores[1].propose(i, "k", Increment())
    net.run()
    prepares = [m for m in net.sent if isinstance(m, CasPrepare)]
    assert len(prepares) == len(NODES)  # only the first change ran phase 1
    assert net.results[-1].result == 5
    assert net.cores[1].fast_rounds == 4


def test_without_the_optimisation_every_change_runs_both_phases() -> None:
    net = Net(one_round_trip=False)
    for i in range(3):
        net.cores[1].propose(i, "k", Increment())
    net.run()
    assert len([m for m in net.sent if isinstance(m, CasPrepare)]) == 3 * len(NODES)


def test_another_proposer_voids_the_fast_path_safely() -> None:
    net = Net()
    net.cores[1].propose(1, "k", Increment())
    net.run()
    net.cores[2].propose(2, "k", Increment())
    net.run()
    net.cores[1].propose(3, "k", Increment())  # its cached promise was overtaken by node 2
    net.run()
    assert [r.result for r in net.results] == [1, 2, 3]


def test_acceptor_writes_come_out_with_the_replies() -> None:
    core = CasPaxosCore(CasConfig(2, NODES), random.Random(2))
    core.step(CasPrepare(1, 2, "k", Ballot(1, 1)))
    rd = core.ready()
    assert rd.acceptor_writes == {"k": AcceptorState(Ballot(1, 1))}
    assert len(rd.messages) == 1


def test_a_retry_of_an_applied_change_does_not_apply_it_twice() -> None:
    """Node 1's accept reaches everyone, but every reply is lost: it retries with a higher
    ballot, finds its own change in the newest state, and answers from the record."""
    core = CasPaxosCore(
        CasConfig(1, NODES, backoff_ticks=0, retry_timeout_ticks=2), random.Random(1)
    )
    core.propose(1, "k", Increment())
    prepare = core.ready()
    n = prepare.messages[0].n
    for a in (2, 3):
        core.step(CasPromise(a, 1, "k", n, n, Ballot(0, 0), None))
    accepts = core.ready().messages
    assert isinstance(accepts[0], CasAccept)
    state = accepts[0].state
    assert state.value == b"1"
    core.tick()
    core.tick()  # the accept's replies never came: a new round
    retry = core.ready().messages
    n2 = retry[0].n
    assert n2 > n
    for a in (2, 3):
        core.step(CasPromise(a, 1, "k", n2, n2, n, state))
    rewrite = core.ready().messages
    assert rewrite[0].state == state  # type: ignore[union-attr]
    for a in (2, 3):
        core.step(CasAccepted(a, 1, "k", n2, True, n2))
    assert [r.result for r in core.ready().results] == [1]


def test_slot_codec_round_trips() -> None:
    register = Register(
        b"v", (AppliedChange(1, 7, True), AppliedChange(2, 9, b"x"), AppliedChange(3, 4, -5),
               AppliedChange(4, 1, None), AppliedChange(5, 2, False))
    )
    for slot in (
        AcceptorState(),
        AcceptorState(Ballot(3, 2), Ballot(2, 1), register),
        AcceptorState(Ballot(3, 2), Ballot(3, 2), Register(None, ())),
    ):
        assert decode_slot(encode_slot("key é", slot)) == ("key é", slot)
