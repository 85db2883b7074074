"""One test per rule of the Raft paper's Figure 2, plus §5.4.1 and §5.4.2 (Figure 8).

The rules are checked on bare :class:`RaftCore` instances (stepping hand-made messages) or on
the interaction harness when several servers must talk. PreVote and CheckQuorum are off unless
a test says otherwise, so that the cores behave as the paper's basic algorithm.
"""

from __future__ import annotations

from random import Random
from typing import Any

import pytest

from kvorum.core.raft import ConfState, Entry, HardState, RaftConfig, RaftCore, RaftReady, Role
from kvorum.core.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    RequestVote,
    RequestVoteResponse,
)
from kvorum.core.raft.quorum import quorum_value
from kvorum.sim.interaction import InteractionEnv, message_filter

PLAIN = RaftConfig(pre_vote=False, check_quorum=False)
T = PLAIN.election_timeout_ticks


def make_core(
    node_id: int = 1,
    voters: tuple[int, ...] = (1, 2, 3),
    *,
    term: int = 0,
    vote: int | None = None,
    log_terms: tuple[int, ...] = (),
    config: RaftConfig = PLAIN,
) -> RaftCore:
    entries = [Entry(t, i, b"c%d" % i) for i, t in enumerate(log_terms, start=1)]
    return RaftCore(
        node_id,
        ConfState(frozenset(voters)),
        config,
        Random(node_id),
        hard_state=HardState(term, vote, 0),
        entries=entries,
    )


def role_of(core: RaftCore) -> Role:
    # A call, not an attribute, so that mypy does not carry a narrowed role across steps.
    return core.role


def drain(core: RaftCore) -> RaftReady:
    """Carry out one ready (as a driver would) and return it."""
    rd = core.ready()
    core.advance(rd)
    return rd


def sent(rd: RaftReady, kind: type) -> list[Any]:
    return [m for m in rd.all_messages if isinstance(m, kind)]


def become_candidate(core: RaftCore) -> None:
    for _ in range(2 * T):
        core.tick()
        if core.role is Role.CANDIDATE:
            return
    raise AssertionError("never campaigned")


def make_leader(core: RaftCore) -> None:
    become_candidate(core)
    drain(core)
    for voter in sorted(core.conf.voters - {core.id}):
        core.step(RequestVoteResponse(voter, core.id, core.term, True))
    assert core.role is Role.LEADER
    drain(core)


def elected_env(n: int = 3, config: RaftConfig = PLAIN) -> InteractionEnv:
    env = InteractionEnv(n, config, seed=3)
    env.campaign(1)
    env.stabilize()
    assert env.leader() == 1
    return env


# --- all servers ---------------------------------------------------------------------------------


def test_all_servers_apply_committed_entries_in_log_order() -> None:
    env = elected_env()
    env.propose(1, b"a", b"b")
    env.propose(1, b"c")
    env.stabilize()
    env.tick([1], 1)
    env.stabilize()
    for node in env.nodes.values():
        assert [d for _, d in node.applied] == [b"a", b"b", b"c"]
        assert node.core.log.applied == node.core.log.committed == 4


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE, Role.LEADER])
def test_any_server_seeing_a_newer_term_adopts_it_and_becomes_follower(role: Role) -> None:
    core = make_core(term=2)
    if role is Role.CANDIDATE:
        become_candidate(core)
    elif role is Role.LEADER:
        make_leader(core)
    assert core.role is role
    newer = core.term + 3
    core.step(RequestVoteResponse(2, 1, newer, False))  # even a response carries the term
    assert (core.role, core.term, core.vote) == (Role.FOLLOWER, newer, None)
    assert drain(core).hard_state == HardState(newer, None, core.log.committed)


# --- followers ---------------------------------------------------------------------------------


def test_followers_respond_to_candidates_and_leaders() -> None:
    core = make_core(node_id=2)
    core.step(RequestVote(1, 2, 1, 0, 0))
    assert [m.granted for m in sent(drain(core), RequestVoteResponse)] == [True]
    core.step(AppendEntries(1, 2, 1, 0, 0, (Entry(1, 1),), 0))
    assert [m.success for m in sent(drain(core), AppendEntriesResponse)] == [True]


def test_follower_without_a_leader_becomes_candidate_after_its_timeout() -> None:
    core = make_core()
    timeout = core.randomized_election_timeout
    assert T <= timeout < 2 * T
    for _ in range(timeout - 1):
        core.tick()
    assert core.role is Role.FOLLOWER
    core.tick()
    assert (core.role, core.term) == (Role.CANDIDATE, 1)


def test_appends_from_the_leader_keep_a_follower_from_campaigning() -> None:
    core = make_core(node_id=2)
    for tick in range(5 * T):
        core.tick()
        if tick % (T // 2) == 0:
            core.step(Heartbeat(1, 2, 1, 0, tick))
        assert core.role is Role.FOLLOWER


def test_granting_a_vote_resets_the_election_timer() -> None:
    core = make_core(node_id=3)
    for _ in range(T - 1):
        core.tick()
    core.step(RequestVote(1, 3, 1, 0, 0))
    assert core.vote == 1 and core.election_elapsed == 0


# --- candidates --------------------------------------------------------------------------------


def test_candidate_on_conversion_increments_term_votes_for_itself_and_asks_everyone() -> None:
    core = make_core(voters=(1, 2, 3, 4, 5), term=4, log_terms=(1, 4))
    become_candidate(core)
    assert (core.term, core.vote, core.election_elapsed) == (5, 1, 0)
    rd = drain(core)
    assert rd.hard_state == HardState(5, 1, 0)  # persisted before the requests go out
    requests = sent(rd, RequestVote)
    assert sorted(m.dst for m in requests) == [2, 3, 4, 5]
    assert {(m.term, m.last_log_term, m.last_log_index) for m in requests} == {(5, 4, 2)}


def test_candidate_becomes_leader_with_votes_from_a_majority() -> None:
    core = make_core(voters=(1, 2, 3, 4, 5))
    become_candidate(core)
    core.step(RequestVoteResponse(2, 1, 1, True))
    core.step(RequestVoteResponse(3, 1, 1, False))
    assert role_of(core) is Role.CANDIDATE  # 2 of 5
    core.step(RequestVoteResponse(4, 1, 1, True))
    assert role_of(core) is Role.LEADER  # 3 of 5


def test_candidate_receiving_append_from_a_leader_of_its_term_becomes_follower() -> None:
    core = make_core()
    become_candidate(core)
    core.step(AppendEntries(2, 1, core.term, 0, 0, (), 0))
    assert (core.role, core.leader_id, core.term) == (Role.FOLLOWER, 2, 1)


def test_candidate_starts_a_new_election_when_its_timeout_elapses() -> None:
    core = make_core()
    become_candidate(core)
    drain(core)
    for _ in range(core.randomized_election_timeout):
        core.tick()
    assert (core.role, core.term) == (Role.CANDIDATE, 2)
    assert {m.term for m in sent(drain(core), RequestVote)} == {2}


# --- leaders -----------------------------------------------------------------------------------


def test_leader_announces_itself_at_once_and_heartbeats_while_idle() -> None:
    core = make_core()
    become_candidate(core)
    drain(core)
    core.step(RequestVoteResponse(2, 1, 1, True))
    rd = drain(core)
    # The announcement carries the leader's no-op entry (it also commits the term).
    assert sorted(m.dst for m in sent(rd, AppendEntries)) == [2, 3]
    for _ in range(3 * PLAIN.heartbeat_interval_ticks):
        core.tick()
    beats = sent(drain(core), Heartbeat)
    assert sorted(m.dst for m in beats) == [2, 2, 2, 3, 3, 3]


def test_leader_appends_a_command_and_applies_it_only_once_a_majority_has_it() -> None:
    env = elected_env()
    env.propose(1, b"x")
    leader = env.core(1)
    index = leader.log.last_index
    assert leader.log.entry(index).data == b"x" and leader.log.committed < index
    env.deliver(message_filter(dst=3))  # a follower stores it...
    assert leader.log.committed < index  # ...but the leader has not heard back yet
    env.deliver(message_filter(src=3))
    assert leader.log.committed == index
    assert env.node(1).applied[-1] == (index, b"x")


def test_leader_sends_from_next_index_and_advances_match_and_next_on_success() -> None:
    env = elected_env()
    env.propose(1, b"a", b"b")
    appends = [m for m in env.queue if isinstance(m, AppendEntries) and m.dst == 2]
    assert [(m.prev_log_index, [e.index for e in m.entries]) for m in appends] == [(1, [2, 3])]
    env.stabilize()
    progress = env.core(1).progress[2]
    assert (progress.match_index, progress.next_index) == (3, 4)


def test_leader_moves_next_index_back_after_an_inconsistency_and_retries() -> None:
    env = InteractionEnv(3, PLAIN, seed=3)
    env.load(1, [1, 2, 2])
    env.load(2, [1, 2, 2])
    env.load(3, [1, 1, 1])
    env.campaign(1)
    env.stabilize(message_filter(kind="RequestVote"))
    env.deliver(message_filter(src=1, dst=3))
    first = next(m for m in env.delivered if isinstance(m, AppendEntries) and m.dst == 3)
    env.deliver(message_filter(src=3, dst=1))
    retry = next(m for m in env.queue if isinstance(m, AppendEntries) and m.dst == 3)
    assert retry.prev_log_index < first.prev_log_index
    env.stabilize()
    assert [e.term for e in env.core(3).log.entries] == [1, 2, 2, 3]


def test_quorum_value_is_the_majority_th_largest_match_index() -> None:
    assert quorum_value([1, 2, 3], {1: 5, 2: 3, 3: 1}) == 3
    assert quorum_value([1, 2, 3, 4], {1: 5, 2: 3, 3: 1, 4: 0}) == 1
    assert quorum_value([1, 2, 3, 4, 5], {1: 9, 2: 9}) == 0


# --- RequestVote receiver ------------------------------------------------------------------------


def test_request_vote_from_an_older_term_is_never_granted() -> None:
    core = make_core(node_id=2, term=5)
    core.step(RequestVote(1, 2, 3, 10, 3))
    rd = drain(core)
    # Like etcd, a stale vote request is dropped rather than answered false; either way no
    # vote is granted and the voter's term and vote stay as they were.
    assert not [m for m in sent(rd, RequestVoteResponse) if m.granted]
    assert (core.term, core.vote) == (5, None)


def test_vote_is_granted_to_the_first_candidate_of_a_term_only() -> None:
    core = make_core(node_id=3)
    core.step(RequestVote(1, 3, 1, 0, 0))
    core.step(RequestVote(2, 3, 1, 0, 0))
    core.step(RequestVote(1, 3, 1, 0, 0))  # a retried request from the same candidate
    answers = [(m.dst, m.granted) for m in sent(drain(core), RequestVoteResponse)]
    assert answers == [(1, True), (2, False), (1, True)]
    assert core.vote == 1


@pytest.mark.parametrize(
    ("voter_log", "cand_last_term", "cand_last_index", "granted"),
    [
        ((1, 1, 2), 2, 3, True),  # same last entry
        ((1, 1, 2), 2, 5, True),  # same last term, longer
        ((1, 1, 2), 2, 2, False),  # same last term, shorter (S2 in RAFT-3)
        ((1, 1, 2), 3, 1, True),  # newer last term wins even if much shorter
        ((1, 1, 2), 1, 9, False),  # older last term loses even if longer (S5 in RAFT-3)
        ((), 1, 1, True),
    ],
)
def test_election_restriction_5_4_1(
    voter_log: tuple[int, ...], cand_last_term: int, cand_last_index: int, granted: bool
) -> None:
    core = make_core(node_id=2, term=3, log_terms=voter_log)
    core.step(RequestVote(1, 2, 4, cand_last_index, cand_last_term))
    assert [m.granted for m in sent(drain(core), RequestVoteResponse)] == [granted]
    assert core.term == 4  # the term moves either way; only the vote depends on the log


# --- AppendEntries receiver ----------------------------------------------------------------------


def test_append_from_an_older_term_is_refused_with_the_newer_term() -> None:
    core = make_core(node_id=2, term=5, config=RaftConfig(check_quorum=True))
    core.step(AppendEntries(1, 2, 3, 0, 0, (Entry(3, 1),), 0))
    (resp,) = sent(drain(core), AppendEntriesResponse)
    assert (resp.success, resp.term) == (False, 5)
    assert core.log.last_index == 0


def test_append_is_refused_when_prev_does_not_match() -> None:
    core = make_core(node_id=2, term=2, log_terms=(1, 1))
    core.step(AppendEntries(1, 2, 2, 2, 2, (Entry(2, 3),), 0))  # we have <1,2>, not <2,2>
    (resp,) = sent(drain(core), AppendEntriesResponse)
    assert not resp.success and resp.rejected_index == 2
    assert core.log.last_index == 2


def test_a_conflicting_entry_and_everything_after_it_are_deleted() -> None:
    core = make_core(node_id=2, term=3, log_terms=(1, 1, 2, 2))
    core.step(AppendEntries(1, 2, 3, 2, 1, (Entry(3, 3),), 0))
    assert [(e.term, e.index) for e in core.log.entries] == [(1, 1), (1, 2), (3, 3)]
    assert drain(core).entries == [Entry(3, 3)]


def test_entries_already_present_are_kept_and_only_new_ones_appended() -> None:
    core = make_core(node_id=2, term=1, log_terms=(1, 1, 1))
    # A delayed, shorter append must not truncate entries that came after it.
    core.step(AppendEntries(1, 2, 1, 0, 0, (Entry(1, 1, b"c1"),), 0))
    assert core.log.last_index == 3
    core.step(AppendEntries(1, 2, 1, 3, 1, (Entry(1, 4), Entry(1, 5)), 0))
    assert core.log.last_index == 5


def test_commit_index_follows_leader_commit_up_to_the_last_new_entry() -> None:
    core = make_core(node_id=2, term=1, log_terms=(1, 1, 1, 1))
    # The leader has committed 4, but this message only vouches for entries up to 2.
    core.step(AppendEntries(1, 2, 1, 1, 1, (Entry(1, 2, b"c2"),), 4))
    assert core.log.committed == 2
    core.step(AppendEntries(1, 2, 1, 2, 1, (Entry(1, 3, b"c3"),), 4))
    assert core.log.committed == 3


# --- persistence ---------------------------------------------------------------------------------


def test_vote_and_term_are_in_the_same_ready_as_the_granted_response() -> None:
    core = make_core(node_id=2, term=1)
    core.step(RequestVote(1, 2, 2, 0, 0))
    rd = core.ready()
    assert sent(rd, RequestVoteResponse)[0].granted
    assert rd.hard_state == HardState(2, 1, 0)  # the driver persists this before sending


def test_appended_entries_are_in_the_same_ready_as_the_success_response() -> None:
    core = make_core(node_id=2, term=1)
    core.step(AppendEntries(1, 2, 1, 0, 0, (Entry(1, 1, b"a"), Entry(1, 2, b"b")), 0))
    rd = core.ready()
    (resp,) = sent(rd, AppendEntriesResponse)
    assert resp.success and resp.match_index == 2
    assert [e.index for e in rd.entries] == [1, 2]


def test_leader_counts_its_own_copy_only_once_it_is_durable() -> None:
    core = make_core()
    make_leader(core)
    core.step(AppendEntriesResponse(2, 1, 1, True, 1))
    drain(core)
    index = core.propose(b"x")
    rd = core.ready()  # not yet persisted by the driver
    core.step(AppendEntriesResponse(2, 1, 1, True, index))
    assert core.log.committed < index  # 2 has it, but the leader's own copy is not durable
    core.advance(rd)
    assert core.log.committed == index


# --- §5.4.2: Figure 8 ----------------------------------------------------------------------------


def figure8_c(config: RaftConfig = PLAIN) -> InteractionEnv:
    """Drive five servers by hand into the paper's Figure 8 (c).

    Our leaders open each term with a no-op, so indexes shift by one from the paper's picture;
    the story is the same: the entry 2:2 of an old term ends up on a majority while leader S1
    of term 4 is in charge, and it must not be committed by counting.
    """
    cfg = RaftConfig(
        pre_vote=False,
        check_quorum=False,
        max_entries_per_append=1,
        unsafe=config.unsafe,
    )
    env = InteractionEnv(5, cfg, seed=8)
    env.campaign(1)
    env.stabilize()  # term 1: 1:1 everywhere, committed
    # (a) S1 leads term 2 (after a restart it times out first again); its no-op 2:2 reaches
    # only S2.
    env.crash(1)
    env.restart(1)
    env.campaign(1)
    env.stabilize(message_filter(kind="RequestVote"))
    assert env.leader() == 1 and env.core(1).term == 2
    env.deliver(message_filter(src=1, dst=2))
    env.drop()
    # (b) S1 crashes; S5 is elected at term 3 by S3, S4 (and itself); its 3:2 stays on S5.
    env.crash(1)
    env.campaign(5)
    env.stabilize(message_filter(kind="RequestVote"))
    assert env.leader() == 5 and env.core(5).term == 3
    env.drop()
    # (c) S5 crashes; S1 restarts and is elected at term 4; it appends its no-op 4:3 and
    # brings S3 and S4 up to index 2 (one entry per message), but no further.
    env.crash(5)
    env.restart(1)
    env.campaign(1)
    while env.core(1).role is not Role.LEADER:
        env.stabilize(message_filter(kind="RequestVote"))
        if env.core(1).role is Role.CANDIDATE and env.leader() is None and not env.queue:
            env.campaign(1)
    assert env.core(1).term == 4
    env.drop(message_filter(dst=2))

    def rejected_or_old_term_only(m: Any) -> bool:
        # Deliver to S3/S4 what they will refuse or what carries no term-4 entry.
        if not isinstance(m, AppendEntries) or m.dst not in (3, 4):
            return False
        matches = env.core(m.dst).log.match_term(m.prev_log_index, m.prev_log_term)
        return not matches or all(e.term != 4 for e in m.entries)

    for _ in range(4):
        env.deliver(message_filter(kind="AppendEntriesResponse"))
        env.deliver(rejected_or_old_term_only)
    env.drop()
    return env


def test_figure8_old_term_entry_on_a_majority_is_not_committed_by_counting() -> None:
    env = figure8_c()
    holders = [i for i in (1, 2, 3, 4, 5) if (2, 2) in [(e.term, e.index) for e in
                                                         env.core(i).log.entries]]
    assert holders == [1, 2, 3, 4]  # a majority holds 2:2 ...
    assert env.core(1).log.committed == 1  # ... yet it is not committed: its term is old
    # (d) Had it been, S5 could still win (its last term 3 beats 2) and overwrite index 2:
    env.crash(1)
    env.restart(5)
    for _ in range(3):
        if env.leader() == 5:
            break
        env.campaign(5)
        env.stabilize()
    assert env.leader() == 5
    env.tick([5], 1)
    env.stabilize()
    assert all(env.core(i).log.entries[1].term == 3 for i in (2, 3, 4, 5))


def test_figure8_a_current_term_entry_on_a_majority_commits_the_old_one_too() -> None:
    env = figure8_c()
    # (e) S1 gets its own term-4 entry onto S3 as well: now index 3 (term 4) is on a majority
    # and commits, and with it 2:2. S5 can no longer win: S3 and S4 end in term 4, newer
    # than S5's last term 3, so with S1 down it can gather at most S2's vote and its own.
    env.tick([1], 1)
    env.stabilize(lambda m: m.dst in (1, 3) and m.src in (1, 3))
    env.stabilize(lambda m: m.dst in (1, 3, 4) and m.src in (1, 3, 4))
    assert env.core(1).log.committed >= 3
    env.crash(1)
    env.restart(5)
    for _ in range(3):
        env.campaign(5)
        env.stabilize()
    assert env.leader() != 5


def test_figure8_with_commit_any_term_the_checker_would_see_a_lost_commit() -> None:
    from kvorum.core.raft import UnsafeSwitches

    env = figure8_c(RaftConfig(unsafe=UnsafeSwitches(commit_any_term=True)))
    assert env.core(1).log.committed == 2  # the unsafe rule commits 2:2 by counting ...
    env.crash(1)
    env.restart(5)
    for _ in range(3):
        if env.leader() == 5:
            break
        env.campaign(5)
        env.stabilize()
    env.tick([5], 1)
    env.stabilize()
    assert env.core(3).log.entries[1].term == 3  # ... and S5 overwrites a "committed" entry
