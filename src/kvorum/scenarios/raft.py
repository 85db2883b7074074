"""RAFT-1..RAFT-4: the seed's Raft examples, run on real Raft cores message by message.

Theory of operation: each scenario builds an :class:`~kvorum.sim.interaction.InteractionEnv`
(pure :class:`~kvorum.core.raft.RaftCore` instances, a message queue delivered by hand, a
seeded ``Random`` per node), drives it through the seed's story, and prints the harness's own
transcript: who sent what at which term, what each node persisted, applied and decided. Lines
are ``src->dst Kind term=T ...``; log positions are ``term:index`` (the seed's ``<Term,Index>``).
The verdict is computed afterwards from what the cores actually did — the messages in
``env.sent``/``env.delivered``, the nodes' logs, terms and roles — never written in advance.

kvorum's core runs PreVote by default (Ongaro's thesis §9.6): before a real election a node
asks "would you vote for me?" without anyone changing term, so a node that cannot win never
disturbs the cluster. RAFT-1 and RAFT-2 show that round; RAFT-1's split vote and RAFT-3's
refused vote requests turn it off (``pre_vote=False``) to match the seed's plain description,
and each says so in its trace.
"""

from __future__ import annotations

from kvorum.core.raft import RaftConfig
from kvorum.core.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    RequestVote,
    RequestVoteResponse,
)
from kvorum.scenarios.registry import Printer, Verdict, scenario
from kvorum.sim.interaction import InteractionEnv, format_entry, message_filter

SEED = 20240902


def _show(out: Printer, text: str, indent: str = "    ") -> None:
    for line in text.splitlines():
        out(indent + line)


def _one_leader_per_term(*envs: InteractionEnv) -> bool:
    return all(len(ids) == 1 for env in envs for ids in env.leaders_by_term.values())


def _log_terms(env: InteractionEnv, node_id: int) -> list[tuple[int, int]]:
    core = env.core(node_id)
    return [(e.term, e.index) for e in core.entries(core.snapshot_index + 1, core.last_index + 1)]


# --- RAFT-1 ------------------------------------------------------------------------------------


@scenario("RAFT-1", "Raft election: heartbeats, timeouts, terms, majority, split vote")
def raft1(out: Printer) -> Verdict:
    t_ticks = RaftConfig().election_timeout_ticks
    env = InteractionEnv(5, RaftConfig(), seed=SEED)
    ids = sorted(env.nodes)
    out(f"Five servers, all followers at term 0. Election timeout T = {t_ticks} ticks; each")
    out("server draws its own random timeout in [T, 2T):")
    timeouts = {i: env.core(i).randomized_election_timeout for i in ids}
    out("    " + ", ".join(f"S{i}={t}" for i, t in timeouts.items()))
    timeouts_in_range = all(t_ticks <= t < 2 * t_ticks for t in timeouts.values())

    out("")
    out("1. Nobody hears a leader; everyone ticks until the first timeout runs out.")
    _show(out, env.tick_until_vote(ids))
    first = next(m.src for m in env.sent if isinstance(m, RequestVote))
    shortest_first = timeouts[first] == min(timeouts.values())
    out(f"   S{first} (shortest timeout: {timeouts[first]} ticks) asks first. PreVote is on")
    out("   (kvorum's default): this round asks 'would you vote for me at term 1?' and changes")
    out("   nobody's term; only with a majority of yes does the candidate increment its term,")
    out("   vote for itself and send real RequestVotes.")
    _show(out, env.stabilize())
    leader = env.leader()
    c = env.core(first)
    grants = [
        m
        for m in env.delivered
        if isinstance(m, RequestVoteResponse) and m.dst == first and m.granted and not m.pre_vote
    ]
    elected = leader == first and c.term == 1 and c.vote == first
    out(f"   -> S{first} votes for itself at term {c.term}, gets {len(grants)} more votes "
        f"(a majority is 3 of 5) and leads term {c.term}.")

    out("")
    out("2. The leader's heartbeats reset every follower's timer. 30 ticks pass (more than 2T):")
    followers = [i for i in ids if i != first]
    max_elapsed = 0
    votes_before = sum(isinstance(m, RequestVote) for m in env.sent)
    for tick_no in range(1, 31):
        env.tick(ids, 1)
        before = {i: env.core(i).election_elapsed for i in followers}
        env.stabilize()
        after = {i: env.core(i).election_elapsed for i in followers}
        max_elapsed = max(max_elapsed, *before.values())
        if tick_no <= 3:
            out(f"   tick {tick_no}: S{first} sends Heartbeat round {tick_no}; followers' elapsed "
                f"ticks {list(before.values())} -> {list(after.values())} after it arrives")
    no_new_election = sum(isinstance(m, RequestVote) for m in env.sent) == votes_before
    out(f"   ... after 30 ticks: the largest elapsed time any follower reached was {max_elapsed}"
        f" tick(s); no RequestVote was sent; still term {env.core(first).term}.")

    out("")
    out(f"3. S{first} sends one more heartbeat, then crashes; the heartbeat is delayed in the")
    out("   network. The followers time out and elect a new leader at a newer term.")
    env.tick([first], 1)
    delayed = env.take(message_filter(src=first))
    env.crash(first)
    _show(out, env.tick_until_vote(followers))
    _show(out, env.stabilize())
    new_leader = env.leader()
    new_term = env.core(new_leader).term if new_leader else 0
    out(f"   -> S{new_leader} leads term {new_term}.")
    out(f"   Now S{first}'s delayed heartbeats of term 1 arrive. A message from an older term is")
    out("   refused: each follower answers with its newer term instead of obeying.")
    env.inject(delayed)
    _show(out, env.stabilize())
    stale = [m for m in delayed if isinstance(m, Heartbeat)]
    stale_refused = all(
        any(
            isinstance(r, AppendEntriesResponse)
            and r.src == m.dst
            and r.dst == first
            and not r.success
            and r.term == new_term
            for r in env.sent
        )
        for m in stale
    ) and all(env.core(i).term == new_term for i in followers)

    out("")
    out("4. A split vote (PreVote off for this part, to show the plain algorithm of the seed).")
    out("   Five servers, S5 down. S1 and S2 time out together at term 1; S3 hears S1 first, S4")
    out("   hears S2 first, and a voter grants only the first candidate of a term.")
    split = InteractionEnv(5, RaftConfig(pre_vote=False), seed=SEED)
    split.crash(5)
    _show(out, split.campaign(1))
    _show(out, split.campaign(2))
    _show(out, split.deliver(message_filter(src=1, dst=3)))
    _show(out, split.deliver(message_filter(src=2, dst=4)))
    _show(out, split.stabilize())
    nobody_won = split.leader() is None and not split.leaders_by_term
    out("   -> S1 and S2 have 2 votes each out of the 3 needed: nobody leads term 1.")
    retry = {i: split.core(i).randomized_election_timeout for i in (1, 2)}
    out(f"   Each candidate redrew a random timeout in [T, 2T) for its next try: "
        f"S1={retry[1]}, S2={retry[2]} ticks. The first to run out tries again at term 2:")
    retry_in_range = all(t_ticks <= t < 2 * t_ticks for t in retry.values())
    _show(out, split.tick_until_vote([1, 2, 3, 4]))
    _show(out, split.stabilize())
    second = split.leader()
    retried = second is not None and split.core(second).term == 2
    out(f"   -> S{second} leads term 2.")

    one_leader = _one_leader_per_term(env, split)
    out("")
    terms = {**{t: sorted(v) for t, v in env.leaders_by_term.items()}}
    out(f"Leaders by term (first cluster): {terms}; split-vote cluster: "
        f"{ {t: sorted(v) for t, v in split.leaders_by_term.items()} }")
    ok = (
        timeouts_in_range
        and shortest_first
        and elected
        and len(grants) >= 2
        and max_elapsed <= 1
        and no_new_election
        and new_leader is not None
        and new_term > 1
        and stale_refused
        and nobody_won
        and retry_in_range
        and retried
        and one_leader
    )
    return Verdict(
        outcome=(
            f"S{first} elected at term 1 with {len(grants) + 1}/5 votes; heartbeats kept "
            f"followers' timers <= {max_elapsed} tick for 30 ticks; after a crash S{new_leader} "
            f"won term {new_term} and stale heartbeats were refused; a split vote at term 1 "
            f"elected nobody and the retry elected S{second} at term 2; one leader per term"
        ),
        matches_seed=ok,
    )


# --- RAFT-2 ------------------------------------------------------------------------------------


@scenario("RAFT-2", "Raft log replication: commit on a majority, followers learn later, catch-up")
def raft2(out: Printer) -> Verdict:
    env = InteractionEnv(5, RaftConfig(), seed=SEED + 2)
    env.campaign(1)
    env.stabilize()
    out("Five servers; S1 was elected leader of term 1 (a PreVote round, then the vote) and its")
    out("no-op entry 1:1 is committed everywhere.")
    out("")
    out("1. A client sends x=1 to the leader. S1 appends it (uncommitted: the seed's dashed")
    out("   box) and sends AppendEntries to every follower.")
    _show(out, env.propose(1, b"x=1"))
    index = env.core(1).last_index
    uncommitted_at_first = env.core(1).commit_index < index
    out(f"   S1: entry {index} written, commit index still {env.core(1).commit_index}.")
    out("2. S2 and S3 receive it; their acknowledgements reach S1 one by one.")
    _show(out, env.deliver(message_filter(src=1, dst=2)))
    _show(out, env.deliver(message_filter(src=1, dst=3)))
    _show(out, env.deliver(message_filter(src=2, dst=1)))
    after_one_ack = env.core(1).commit_index
    out(f"   After S2's ack: copies on S1, S2 = 2 of 5, commit index {after_one_ack} (not yet).")
    _show(out, env.deliver(message_filter(src=3, dst=1)))
    leader_commit = env.core(1).commit_index
    leader_applied = any(d == b"x=1" for _, d in env.node(1).applied)
    followers_behind = all(env.core(i).commit_index < index for i in (2, 3, 4, 5))
    out(f"   After S3's ack: 3 of 5 — a majority. S1 commits {index}, applies x=1 and can answer")
    out("   the client. The followers do not know yet: their commit indexes are "
        f"{[env.core(i).commit_index for i in (2, 3, 4, 5)]}.")
    out("3. Later AppendEntries (here: the rest of the queue and a heartbeat) carry the commit")
    out("   index; the followers commit and apply.")
    env.stabilize()
    _show(out, env.tick([1], 1))
    _show(out, env.stabilize())
    all_applied = all(any(d == b"x=1" for _, d in env.node(i).applied) for i in env.nodes)

    out("")
    out("4. S5 crashes. The client sends y=2; it commits on S1..S4; S1 keeps trying S5.")
    env.crash(5)
    _show(out, env.propose(1, b"y=2"))
    env.stabilize()
    tries = 0
    for _ in range(3):
        env.tick([1], 1)
        tries += sum(1 for m in env.queue if m.dst == 5)
        _show(out, env.stabilize(message_filter(dst=5)))
        env.stabilize()
    out(f"   S1 sent S5 {tries} messages while it was down; all were lost.")
    out("5. S5 restarts from its disk (term, vote and log survive). The next heartbeat reaches")
    out("   it, and S1 fills in what it missed:")
    _show(out, env.restart(5))
    _show(out, env.tick([1], 1))
    _show(out, env.stabilize())
    caught_up = _log_terms(env, 5) == _log_terms(env, 1) and any(
        d == b"y=2" for _, d in env.node(5).applied
    )
    out("   " + env.log_text(1))
    out("   " + env.log_text(5))
    ok = (
        uncommitted_at_first
        and after_one_ack < index
        and leader_commit >= index
        and leader_applied
        and followers_behind
        and all_applied
        and tries >= 3
        and caught_up
    )
    return Verdict(
        outcome=(
            f"x=1 stayed uncommitted with 2/5 copies, committed and applied by the leader at "
            f"3/5 while followers' commit lagged, then applied everywhere; crashed S5 was "
            f"retried {tries} times and caught up after restart"
        ),
        matches_seed=ok,
    )


# --- RAFT-3 ------------------------------------------------------------------------------------

RAFT3_LOGS = {1: [1, 1, 1, 2, 2], 2: [1, 1, 1, 2], 3: [1, 1, 1, 2, 2], 4: [1, 1, 1, 2, 2],
              5: [1, 1, 1, 1, 1, 1]}
"""The seed's figure: S2's log is shorter; S5's is longer but its last term is older."""


def _raft3_env(pre_vote: bool) -> InteractionEnv:
    env = InteractionEnv(5, RaftConfig(pre_vote=pre_vote), seed=SEED + 3)
    for node_id, terms in RAFT3_LOGS.items():
        env.load(node_id, terms, term=2, commit=3)
    return env


def _refusers(env: InteractionEnv, candidate: int, pre_vote: bool) -> list[int]:
    return sorted(
        m.src
        for m in env.delivered
        if isinstance(m, RequestVoteResponse)
        and m.dst == candidate
        and not m.granted
        and m.pre_vote == pre_vote
    )


@scenario("RAFT-3", "Raft election restriction: a stale log cannot win (S2 short, S5 old term)")
def raft3(out: Printer) -> Verdict:
    env = _raft3_env(pre_vote=False)
    out("Five servers at term 2 with the seed's logs (entries as term:index):")
    for i in sorted(env.nodes):
        out("    " + env.log_text(i))
    out("RequestVote carries the candidate's last <term,index>; a voter refuses a candidate")
    out("whose log is less up to date than its own (newer last term wins; same term: longer).")
    out("PreVote is off in part 1 so that the real vote requests and their refusals show.")
    out("")
    # candidate -> (behaved as the seed says: not elected, refused by exactly the voters with
    # more up-to-date logs; who refused)
    results: dict[int, tuple[bool, list[int]]] = {}
    for candidate, why in ((2, "its log is shorter"), (5, "its last term (1) is older")):
        out(f"S{candidate} times out and asks for votes ({why}):")
        _show(out, env.campaign(candidate))
        _show(out, env.stabilize())
        won = env.leader() == candidate
        refused = _refusers(env, candidate, pre_vote=False)
        last = env.core(candidate)
        more_up_to_date = sorted(
            i
            for i in env.nodes
            if i != candidate
            and (env.core(i).last_term, env.core(i).last_index) > (last.last_term, last.last_index)
        )
        out(f"   -> refused by {[f'S{r}' for r in refused]} (exactly the servers whose logs are "
            f"more up to date: {[f'S{r}' for r in more_up_to_date]}); S{candidate} is "
            f"{'LEADER' if won else 'not elected'}.")
        results[candidate] = (not won and refused == more_up_to_date, refused)
    out("S1 times out; its log is as up to date as any, so it wins:")
    _show(out, env.campaign(1))
    _show(out, env.stabilize())
    s1_leads = env.leader() == 1
    has_committed = all(
        (t, i) in _log_terms(env, 1) for i, t in enumerate(RAFT3_LOGS[1], start=1)
    )

    out("")
    out("Part 2, with PreVote (kvorum's default): the same two stale servers are refused already")
    out("at the pre-vote, so no server's term moves at all.")
    pv = _raft3_env(pre_vote=True)
    for candidate in (2, 5):
        _show(out, pv.campaign(candidate))
        _show(out, pv.stabilize())
    terms_unchanged = all(pv.core(i).term == 2 for i in pv.nodes) and pv.leader() is None
    pv_refused = {c: _refusers(pv, c, pre_vote=True) for c in (2, 5)}
    out(f"   -> pre-votes refused: S2 by {pv_refused[2]}, S5 by {pv_refused[5]}; every term is "
        f"still {[pv.core(i).term for i in sorted(pv.nodes)]}.")

    ok = results[2][0] and results[5][0] and s1_leads and has_committed and terms_unchanged
    return Verdict(
        outcome=(
            f"S2 refused by {results[2][1]}, S5 refused by {results[5][1]} (the more up-to-date "
            f"voters), neither elected; S1 then elected; with PreVote both were stopped before "
            f"any term changed"
        ),
        matches_seed=ok,
    )


# --- RAFT-4 ------------------------------------------------------------------------------------


@scenario("RAFT-4", "Raft log consistency check: <3,4> with previous <2,3>, refuse and back off")
def raft4(out: Printer) -> Verdict:
    env = InteractionEnv(3, RaftConfig(), seed=SEED + 4)
    env.load(1, [1, 1, 2])
    env.load(2, [1, 1, 2])
    env.load(3, [1, 1])
    out("Leader-to-be S1 and follower S2 hold <1,1> <1,2> <2,3>; follower S3 lacks <2,3>:")
    for i in (1, 2, 3):
        out("    " + env.log_text(i))
    out("S1 is elected at term 3 (a PreVote round, then the vote). Note: a kvorum leader's first")
    out("entry of its term is an empty no-op (it commits the entries before it, Raft §5.4.2), so")
    out("<3,4> is that no-op and the client's cmd follows as <3,5>.")
    _show(out, env.campaign(1))
    _show(out, env.stabilize(message_filter(kind="RequestVote")))
    out("The client's cmd arrives before any AppendEntries has been delivered:")
    _show(out, env.propose(1, b"cmd"))
    first_to = {
        d: next(m for m in env.queue if isinstance(m, AppendEntries) and m.dst == d)
        for d in (2, 3)
    }
    for d, m in first_to.items():
        out(f"   first AppendEntries to S{d}: entries "
            f"{[f'<{e.term},{e.index}>' for e in m.entries]} with previous "
            f"<{m.prev_log_term},{m.prev_log_index}>")
    seed_shape = all(
        (m.prev_log_term, m.prev_log_index) == (2, 3) and (m.entries[0].term, m.entries[0].index)
        == (3, 4)
        for m in first_to.values()
    )
    out("")
    out("(a) S2 has <2,3>: the check passes and it appends.")
    _show(out, env.deliver(message_filter(src=1, dst=2)))
    a_ok = any(
        isinstance(m, AppendEntriesResponse) and m.src == 2 and m.success and m.match_index == 4
        for m in env.queue
    )
    out("(b) S3 does not have <2,3>: it refuses, telling the leader its log ends at index 2.")
    _show(out, env.deliver(message_filter(src=1, dst=3)))
    _show(out, env.deliver(message_filter(src=3, dst=1)))
    retry = next(m for m in env.queue if isinstance(m, AppendEntries) and m.dst == 3)
    b_retry_ok = (retry.prev_log_term, retry.prev_log_index) == (1, 2) and [
        (e.term, e.index) for e in retry.entries[:2]
    ] == [(2, 3), (3, 4)]
    out(f"   The leader backs off: previous <{retry.prev_log_term},{retry.prev_log_index}>, "
        f"entries {[format_entry(e) for e in retry.entries]}; S3 checks <1,2>, which matches, "
        "and fills in the rest:")
    _show(out, env.stabilize())
    for i in (1, 2, 3):
        out("    " + env.log_text(i))
    same = _log_terms(env, 1) == _log_terms(env, 2) == _log_terms(env, 3)
    committed = all(any(d == b"cmd" for _, d in env.node(i).applied) for i in (1, 2, 3))
    ok = seed_shape and a_ok and b_retry_ok and same and committed
    return Verdict(
        outcome=(
            "<3,4> with previous <2,3>: S2 appended at once; S3 refused, the leader retried with "
            "previous <1,2> carrying <2,3>,<3,4> (and cmd), and all three logs ended identical"
        ),
        matches_seed=ok,
    )
