"""One test per rule of SWIM + Lifeguard as :class:`GossipCore` implements it."""

from __future__ import annotations

import itertools
import random

from gossip_harness import Net

from kvorum.core.gossip import (
    GossipConfig,
    GossipCore,
    GossipUnsafe,
    MemberState,
    MemberUpdate,
    Ping,
    PingReq,
)
from kvorum.core.gossip.broadcasts import TransmitQueue, retransmit_limit
from kvorum.core.gossip.suspicion import suspicion_bounds_ticks, suspicion_timeout_ticks

ALIVE, SUSPECT, DEAD, LEFT = (
    MemberState.ALIVE,
    MemberState.SUSPECT,
    MemberState.DEAD,
    MemberState.LEFT,
)


def test_members_join_through_one_member_and_learn_each_other() -> None:
    net = Net(8)  # everyone but n1 names only n1
    net.run(40)
    assert net.all_alive()
    assert {v.member for v in net.cores[8].members()} == set(range(1, 9))


def test_a_crashed_member_is_suspected_then_declared_dead_everywhere() -> None:
    net = Net(8)
    net.run(40)
    net.crash(5)
    seen: list[set[MemberState | None]] = []
    for _ in range(300):
        net.run(1)
        seen.append({net.state(o, 5) for o in net.live()})
    first_suspect = next(i for i, states in enumerate(seen) if SUSPECT in states)
    first_dead = next(i for i, states in enumerate(seen) if DEAD in states)
    assert first_suspect < first_dead  # suspected first: the suspect may still refute
    assert all(net.state(o, 5) == DEAD for o in net.live())


def test_probe_order_is_a_shuffled_round_robin_over_every_member() -> None:
    net = Net(6, GossipConfig(probe_interval_ticks=5, probe_timeout_ticks=2))
    net.run(40)
    net.sent.clear()
    net.run(5 * 5 * 4)  # four full passes of five targets
    pings = [m.dst for m in net.sent if isinstance(m, Ping) and m.src == 1]
    assert len(pings) == 20
    # Round-robin: however the passes fall in this window, a member is probed once per pass,
    # so never twice within 5 probes of each other but always again within 9.
    for member in range(2, 7):
        at = [i for i, dst in enumerate(pings) if dst == member]
        gaps = [b - a for a, b in itertools.pairwise(at)]
        assert 3 <= len(at) <= 5 and all(1 <= g <= 9 for g in gaps)
    firsts = {tuple(pings[i : i + 5]) for i in range(20)}
    assert len(firsts) > 5  # reshuffled after each pass, not one fixed order


def test_a_cut_link_is_bridged_by_indirect_probes_and_never_suspected() -> None:
    net = Net(6)
    net.run(40)
    net.cut(1, 2)
    for _ in range(40):
        net.run(10)
        assert net.state(1, 2) == ALIVE and net.state(2, 1) == ALIVE
    assert any(isinstance(m, PingReq) and m.src == 1 and m.target == 2 for m in net.sent)


def test_a_suspected_member_refutes_by_raising_its_incarnation() -> None:
    net = Net(8)
    net.run(40)
    net.paused.add(3)
    net.run(30)
    assert any(net.state(o, 3) == SUSPECT for o in net.live() if o != 3)
    net.paused.clear()
    net.run(60)
    assert net.cores[3].incarnation >= 1
    assert all(net.cores[o].state_of(3) == (ALIVE, net.cores[3].incarnation) for o in net.live())


def test_a_member_declared_dead_comes_back_by_refuting() -> None:
    net = Net(8)
    net.run(40)
    net.paused.add(3)
    net.run(400)
    assert all(net.state(o, 3) == DEAD for o in net.live() if o != 3)
    net.paused.clear()
    net.run(100)
    assert net.all_alive()


def test_without_refutations_a_member_that_came_back_stays_dead() -> None:
    """The switch the simulator's teeth test uses, shown on the core."""
    net = Net(8, GossipConfig(unsafe=GossipUnsafe(ignore_refutations=True)))
    net.run(40)
    net.paused.add(3)
    net.run(400)
    net.paused.clear()
    net.run(300)
    assert any(net.state(o, 3) == DEAD for o in net.live() if o != 3)


def test_a_restarted_member_learns_its_old_incarnation_and_refutes_above_it() -> None:
    net = Net(6)
    net.run(40)
    net.paused.add(4)
    net.run(30)
    net.paused.clear()
    net.run(60)  # n4 refuted: incarnation >= 1
    old = net.cores[4].incarnation
    assert old >= 1
    net.crash(4)
    net.run(400)
    core = net.start(4, seeds=[2])  # a fresh core: nothing durable, incarnation 0
    assert core.incarnation == 0
    net.run(80)
    assert core.incarnation > old
    assert net.all_alive()


def test_suspicion_timeout_shrinks_with_independent_confirmations() -> None:
    lo, hi = suspicion_bounds_ticks(10, 10, suspicion_mult=4, max_timeout_mult=6)
    assert (lo, hi) == (40, 240)
    timeouts = [suspicion_timeout_ticks(lo, hi, c, expected_confirmations=2) for c in range(4)]
    assert timeouts[0] == hi
    assert timeouts[0] > timeouts[1] > timeouts[2] == lo == timeouts[3]


def test_bigger_clusters_suspect_longer() -> None:
    assert suspicion_bounds_ticks(100, 10, 4, 6)[0] > suspicion_bounds_ticks(10, 10, 4, 6)[0]


def test_a_lone_accuser_waits_the_longest_timeout() -> None:
    """n1 alone cannot reach n2 (every other link of n2 works): n1 suspects it, nobody
    confirms, and n2 refutes long before the lone suspicion could run out."""
    net = Net(6, GossipConfig(indirect_checks=0))
    net.run(40)
    net.cut(1, 2)
    net.run(200)
    assert all(net.state(o, 2) == ALIVE for o in net.live() if o != 1)
    assert net.state(1, 2) in (ALIVE, SUSPECT)


def test_a_member_that_hears_no_acks_stretches_its_own_timeouts() -> None:
    net = Net(6)
    net.run(40)
    assert net.cores[1].health_score == 0
    for other in range(2, 7):
        net.blocked.add((other, 1))  # n1 can send but hears nothing: it is the sick one
    net.run(60)
    assert net.cores[1].health_score >= 2
    net.blocked.clear()
    net.run(600)
    assert net.cores[1].health_score == 0


def test_updates_are_sent_a_bounded_number_of_times() -> None:
    q = TransmitQueue()
    q.enqueue(MemberUpdate(2, 0, ALIVE, 2))
    limit = retransmit_limit(4, 10)
    assert limit == 8
    sent = [q.take(limit, 10) for _ in range(limit + 3)]
    assert sum(len(s) for s in sent) == limit
    assert len(q) == 0


def test_a_newer_update_about_a_member_replaces_the_queued_one() -> None:
    q = TransmitQueue()
    q.enqueue(MemberUpdate(2, 0, ALIVE, 2))
    q.enqueue(MemberUpdate(2, 0, SUSPECT, 1))
    assert q.take(5, 10) == (MemberUpdate(2, 0, SUSPECT, 1),)


def test_push_pull_repairs_what_gossip_missed() -> None:
    net = Net(6, GossipConfig(retransmit_mult=1, push_pull_interval_ticks=20))
    net.run(40)
    net.crash(6)
    net.run(300)
    # n5 was cut off while n6's death spread; gossip gave up long ago; push-pull tells it.
    assert all(net.state(o, 6) == DEAD for o in net.live())


def test_a_member_that_leaves_is_left_everywhere_never_dead() -> None:
    net = Net(6)
    net.run(40)
    net.cores[4].leave()
    while not net.cores[4].leave_announced:
        net.run(1)
    net.crash(4)  # the host stops it once its leave has gone out
    net.run(300)
    assert all(net.state(o, 4) == LEFT for o in net.live())
    assert not any(v.member == 4 for vs in net.verdicts.values() for v in vs)


def test_two_sides_of_a_healed_partition_merge_again() -> None:
    net = Net(8)
    net.run(40)
    for a in (1, 2, 3, 4):
        for b in (5, 6, 7, 8):
            net.cut(a, b)
    net.run(400)
    assert net.state(1, 8) == DEAD and net.state(8, 1) == DEAD
    net.blocked.clear()
    net.run(200)
    assert net.all_alive()


def test_odown_needs_a_quorum_and_carries_its_evidence() -> None:
    net = Net(8)
    net.run(40)
    net.crash(5)
    net.run(200)
    for o in net.live():
        downs = [v for v in net.verdicts[o] if v.member == 5 and v.down]
        assert len(downs) == 1
        assert len(downs[0].evidence) >= 4  # a majority of the 7 other members


def test_one_observers_sdown_alone_makes_no_odown() -> None:
    net = Net(8)
    net.run(40)
    for other in range(1, 9):
        if other != 2:
            net.cut(2, other)  # n2 is cut off: it thinks everyone is down
    net.run(300)
    sdown_at_2 = {v.member for v in net.cores[2].members() if v.sdown}
    assert len(sdown_at_2) >= 3
    assert not any(v.member != 2 and v.down for vs in net.verdicts.values() for v in vs)


def test_odown_clears_when_the_member_comes_back() -> None:
    net = Net(8)
    net.run(40)
    net.paused.add(3)
    net.run(200)
    assert all(3 in net.cores[o].odown() for o in net.live() if o != 3)
    net.paused.clear()
    net.run(100)
    assert not any(net.cores[o].odown() for o in net.live())
    ups = [v for v in net.verdicts[1] if v.member == 3]
    assert [v.down for v in ups] == [True, False]


def test_phi_rises_for_a_silent_member_and_is_low_for_a_live_one() -> None:
    net = Net(5, GossipConfig(phi_threshold=3.0))
    net.run(400)
    views = {v.member: v for v in net.cores[1].members()}
    assert views[2].phi < 3.0 and views[2].rtt_ticks is not None
    net.crash(2)
    net.run(150)
    views = {v.member: v for v in net.cores[1].members()}
    assert views[2].phi > 3.0
    assert views[2].last_heard_tick is not None and views[2].last_heard_tick < 400 + 20


def test_the_core_is_deterministic_for_a_seed() -> None:
    def trace(seed: int) -> list[object]:
        net = Net(6, seed=seed)
        net.run(100)
        net.crash(3)
        net.run(200)
        return list(net.sent)

    assert trace(7) == trace(7)
    assert trace(7) != trace(8)


def test_a_member_answers_pings_with_acks_piggybacking_news() -> None:
    core = GossipCore(1, GossipConfig(), random.Random(1))
    core.step(Ping(2, 1, 9, (MemberUpdate(2, 0, ALIVE, 2),)))
    rd = core.ready()
    acks = [m for m in rd.messages if m.dst == 2]
    assert len(acks) == 1 and acks[0].seq == 9  # type: ignore[union-attr]
    assert core.state_of(2) == (ALIVE, 0)
    assert any(c.member == 2 for c in rd.changes)
