"""The Raft consensus core: a pure state machine, one per server.

Theory of operation: a :class:`RaftCore` never performs I/O. The driver feeds it messages
(:meth:`RaftCore.step`), time (:meth:`RaftCore.tick`) and local requests (:meth:`propose`,
:meth:`read_index`, :meth:`transfer_leadership`, :meth:`propose_conf_change`, :meth:`compact`),
then drains a :class:`RaftReady` and carries it out *in order*: persist the hard state,
entries and snapshot (fsync), then send the messages, then apply the committed entries, then
call :meth:`advance`. The leader counts its own copy of an entry towards a majority only after
``advance`` says it is durable, so a commit never rests on an unpersisted log.

Per role, a different handler receives messages (``_step_leader``, ``_step_candidate``,
``_step_follower``); the rules common to all roles — adopt a newer term, answer a stale one,
vote — are applied first in :meth:`step`. The implementation follows Ongaro's thesis: PreVote
and CheckQuorum (§9.6), fast log back-off with conflict hints, pipelined replication bounded per
follower, commitment of current-term entries only (§3.6.2), ReadIndex and lease reads (§6.4),
leader transfer (§3.10), single-server membership changes with learners (§4), and snapshots
streamed in chunks (§5). A server whose storage lost entries it had acknowledged starts fenced
from elections until a leader has sent them again (:mod:`kvorum.core.raft.repair`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from random import Random

from kvorum.core.raft.config import RaftConfig
from kvorum.core.raft.log import RaftLog
from kvorum.core.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    ConfChange,
    ConfChangeKind,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    JoinedSnapshotData,
    NodeId,
    RaftMessage,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    SnapshotData,
    SnapshotMeta,
    TimeoutNow,
    normal_entries,
)
from kvorum.core.raft.progress import Inflights, Progress, ProgressState
from kvorum.core.raft.quorum import VoteResult, majority, quorum_value, tally_votes
from kvorum.core.raft.ready import RaftReady, ReadState
from kvorum.core.raft.repair import RepairFence, RepairReport
from kvorum.core.raft.status import PeerStatus, RaftStatus, Role


class NotLeader(Exception):
    """The request needs the leader; ``leader_hint`` is who this node believes leads (or None)."""

    def __init__(self, leader_hint: NodeId | None) -> None:
        super().__init__(f"not the leader (leader is {leader_hint})")
        self.leader_hint = leader_hint


class ProposalDropped(Exception):
    """The leader refused a proposal (transfer in progress, tail full, change pending)."""


_EARLY_TYPES = (AppendEntries, Heartbeat, InstallSnapshot)


@dataclass  # not slotted: mypyc refuses ``slots=True`` (see kvorum.corebuild)
class _PendingRead:
    ctx: int
    index: int
    round: int
    requester: NodeId


class RaftCore:
    """One Raft server's protocol state. See the module docstring for the driving contract."""

    def __init__(
        self,
        node_id: NodeId,
        conf: ConfState,
        config: RaftConfig,
        rng: Random,
        *,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: Sequence[Entry] = (),
        applied: int | None = None,
        repair_fence: RepairFence | None = None,
    ) -> None:
        """Start (or restart from what storage holds) server ``node_id``.

        ``conf`` is the bootstrap configuration, used when neither the snapshot nor the log
        says otherwise. ``applied`` is how far the application's state machine already is
        (default: the snapshot's index); it must be at least the snapshot's index (it may be
        past the log: entries applied before storage lost them are not applied again).
        ``repair_fence`` says that storage lost entries this server had acknowledged: it
        then stays out of elections until a leader has sent them again
        (:mod:`kvorum.core.raft.repair`).
        """
        self.id = node_id
        self.config = config
        self.rng = rng
        hs = hard_state or HardState()
        self.term = hs.term
        self.vote: NodeId | None = hs.vote
        self.log = RaftLog()
        self._snapshot = snapshot
        if snapshot is not None:
            self.log.restore(snapshot.meta.index, snapshot.meta.term)
            self._base_conf = snapshot.meta.conf
        else:
            self._base_conf = conf
        if entries:
            if entries[0].index != self.log.last_index + 1:
                raise ValueError(
                    f"entries start at {entries[0].index}, expected {self.log.last_index + 1}"
                )
            self.log.entries.extend(entries)
        self.log.stable_index = self.log.last_index
        self.log.unstable_from = self.log.last_index + 1
        self.log.committed = max(self.log.committed, min(hs.commit, self.log.last_index))
        first_applied = self.log.snapshot_index if applied is None else applied
        if first_applied < self.log.snapshot_index:
            raise ValueError(
                f"applied {first_applied} is behind the snapshot {self.log.snapshot_index}"
            )
        self.log.applied = min(first_applied, self.log.committed)
        self._persisted_hs = HardState(self.term, self.vote, self.log.committed)
        self.role = Role.FOLLOWER
        self.progress: dict[NodeId, Progress] = {}
        self.conf = self._base_conf
        self._conf_index = 0
        self._recompute_conf()

        self.leader_id: NodeId | None = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.ticks = 0
        self.randomized_election_timeout = self._random_timeout()
        self.votes: dict[NodeId, bool] = {}
        self.lead_transferee: NodeId | None = None
        self._transfer_elapsed = 0
        self._pending_conf_index = 0
        self._uncommitted_bytes = 0
        self._msgs: list[RaftMessage] = []
        self._read_states: list[ReadState] = []
        self._failed_reads: list[int] = []
        self._pending_reads: list[_PendingRead] = []
        self._reads_awaiting_term_commit: list[tuple[int, NodeId, bool]] = []
        self._round = 0
        self._round_sent_tick: dict[int, int] = {}
        self._lease_forfeited = False
        self._heartbeat_wanted = False
        self._read_round_wanted = False
        self._read_round_askers: set[NodeId] = set()
        self._snap_recv: tuple[InstallSnapshot, list[bytes | SnapshotData], int] | None = None
        """A snapshot being received: its first chunk, the pieces so far, their total bytes."""
        self._stored_chunk: SnapshotData | None = None
        self._snapshot_to_install: Snapshot | None = None
        self._step_role = self._step_follower
        self._repair: RepairReport | None = None
        self._repair_asked: tuple[NodeId | None, int] | None = None
        """Whom this fenced server last asked for its lost entries, and at which tick."""
        if repair_fence is not None:
            self._repair = RepairReport(repair_fence, completed=False)
            self._maybe_finish_repair(None)

    # --- public API ------------------------------------------------------------------------

    @property
    def node_id(self) -> NodeId:
        return self.id

    @property
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def snapshot(self) -> Snapshot | None:
        """The newest snapshot this core knows (what it would send a lagging follower)."""
        return self._snapshot

    @property
    def repair(self) -> RepairReport | None:
        """Where the repair of entries storage lost stands (None: nothing was lost)."""
        return self._repair

    @property
    def fenced(self) -> bool:
        """Whether this server lost acknowledged entries it has not got back yet (so it does
        not stand for election, and votes only for a candidate that holds them)."""
        rep = self._repair
        return rep is not None and not rep.completed

    def _out_of_elections(self) -> bool:
        return self.fenced and not self.config.unsafe.vote_while_repairing

    def tick(self) -> None:
        self.ticks += 1
        if self.role is Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def step_stored_snapshot_chunk(self, msg: InstallSnapshot, stored: SnapshotData) -> None:
        """:meth:`step` an InstallSnapshot whose ``data`` the host has already written
        somewhere of its own, offering it back as ``stored`` (same bytes): the core keeps
        that instead of the bytes, so receiving a snapshot needs no memory for its data."""
        if len(stored) != len(msg.data):
            raise ValueError(f"stored chunk holds {len(stored)} bytes, message {len(msg.data)}")
        self._stored_chunk = stored
        try:
            self.step(msg)
        finally:
            self._stored_chunk = None

    def step(self, msg: RaftMessage) -> None:
        """Handle one message addressed to this node (messages for others are ignored)."""
        if msg.dst != self.id:
            return
        if msg.term > self.term:
            if isinstance(msg, RequestVote):
                in_lease = (
                    self.config.check_quorum
                    and self.leader_id is not None
                    and self.election_elapsed < self.config.election_timeout_ticks
                )
                if in_lease and not msg.transfer:
                    # A leader we heard from recently is alive: a vote request now comes from
                    # a partitioned or removed server, and must not disrupt the cluster.
                    return
            if isinstance(msg, RequestVote) and msg.pre_vote:
                pass  # a PreVote changes nobody's term
            elif isinstance(msg, RequestVoteResponse) and msg.pre_vote and msg.granted:
                pass  # granted PreVotes carry the term we asked about, not a newer one
            else:
                from_leader = isinstance(msg, (AppendEntries, Heartbeat, InstallSnapshot))
                self._become_follower(msg.term, msg.src if from_leader else None)
        elif msg.term < self.term:
            if isinstance(msg, (AppendEntries, Heartbeat, InstallSnapshot)) and (
                self.config.check_quorum or self.config.pre_vote
            ):
                # A stale leader would otherwise never learn that it was deposed: with PreVote
                # and CheckQuorum, our higher term may never reach it through an election.
                self._send(AppendEntriesResponse(self.id, msg.src, self.term, False, 0))
            elif isinstance(msg, RequestVote) and msg.pre_vote:
                self._send(RequestVoteResponse(self.id, msg.src, self.term, False, pre_vote=True))
            elif isinstance(msg, ReadIndexRequest):
                self._send(ReadIndexResponse(self.id, msg.src, self.term, msg.ctx, 0, False))
            return
        if isinstance(msg, RequestVote):
            self._handle_vote_request(msg)
            return
        self._step_role(msg)

    def propose(self, data: bytes) -> int:
        """Append an application command; returns its log index. Leader only."""
        return self.propose_batch([data])[-1]

    def propose_batch(self, batch: Sequence[bytes]) -> list[int]:
        """Append several commands at once (one append, one round of messages)."""
        self._check_can_propose(sum(len(d) for d in batch))
        first = self.log.last_index + 1
        entries = normal_entries(self.term, first, batch)
        self._append_as_leader(entries)
        return [e.index for e in entries]

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose a single-server membership change; returns its log index. Leader only."""
        self._check_can_propose(0)
        if self._pending_conf_index > self.log.committed:
            raise ProposalDropped("a membership change is already in progress")
        n = change.node_id
        if change.kind is ConfChangeKind.ADD_LEARNER and n in self.conf.members:
            raise ProposalDropped(f"node {n} is already a member")
        if change.kind is ConfChangeKind.ADD_LEARNER and n in self.conf.retired:
            raise ProposalDropped(
                f"node id {n} was removed from this group and is never reused; "
                "add the server under a new id"
            )
        if change.kind is ConfChangeKind.ADD_VOTER:
            raise ProposalDropped("add servers as learners; they are promoted once caught up")
        if change.kind is ConfChangeKind.PROMOTE and n not in self.conf.learners:
            raise ProposalDropped(f"node {n} is not a learner")
        if change.kind is ConfChangeKind.REMOVE:
            if n not in self.conf.members:
                raise ProposalDropped(f"node {n} is not a member")
            if self.conf.voters == {n}:
                raise ProposalDropped("cannot remove the last voter")
        entry = Entry(self.term, self.log.last_index + 1, change.encode(), EntryKind.CONF_CHANGE)
        self._append_as_leader([entry])
        return entry.index

    def read_index(self, ctx: int, lease: bool = False) -> None:
        """Ask for a linearizable read point; the answer is a :class:`ReadState` with ``ctx``
        in a later ready (or ``ctx`` in ``failed_reads``).

        With ``lease=True`` a leader that holds a lease answers without a heartbeat round; a
        lease exists only with CheckQuorum, since only then does a leader step down before
        its followers could elect another.
        """
        if lease and not self.config.check_quorum:
            raise ValueError("lease reads need check_quorum (otherwise a deposed leader serves)")
        if self.role is Role.LEADER:
            self._leader_read(ctx, self.id, lease)
        elif self.leader_id is None:
            self._failed_reads.append(ctx)
        else:
            self._send(ReadIndexRequest(self.id, self.leader_id, self.term, ctx))

    def transfer_leadership(self, target: NodeId) -> None:
        """Hand leadership to ``target`` (TimeoutNow once it has caught up). Leader only."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader_id)
        if target in (self.id, self.lead_transferee):
            return
        if target not in self.conf.voters:
            raise ValueError(f"node {target} is not a voter")
        self.lead_transferee = target
        self._transfer_elapsed = 0
        if self.progress[target].match_index == self.log.last_index:
            self._send_timeout_now(target)
        else:
            self._send_append(target)

    def compact(self, snapshot: Snapshot) -> None:
        """The application durably saved ``snapshot`` (at or below applied): drop the log it
        covers and keep the snapshot to send to followers that fall behind."""
        if snapshot.meta.index > self.log.applied:
            raise ValueError(f"snapshot {snapshot.meta.index} is beyond applied {self.log.applied}")
        if snapshot.meta.index <= self.log.snapshot_index:
            return
        self.log.compact(snapshot.meta.index)
        self._snapshot = snapshot
        self._base_conf = snapshot.meta.conf
        if self._conf_index <= snapshot.meta.index:
            self._conf_index = 0

    def snapshot_stored(self, snapshot: Snapshot) -> None:
        """The host has stored the snapshot this core handed it to install, and offers its
        data in a form it keeps outside memory: hold that instead of the received bytes."""
        if self._snapshot is not None and self._snapshot.meta == snapshot.meta:
            self._snapshot = snapshot

    def snapshot_meta_at(self, index: int) -> SnapshotMeta:
        """The metadata a snapshot of the state machine at ``index`` must carry (its term and
        the configuration as of that index); ``index`` must be applied and not compacted."""
        if not self.log.snapshot_index <= index <= self.log.applied:
            raise ValueError(
                f"index {index} outside [{self.log.snapshot_index}, {self.log.applied}]"
            )
        conf = self._base_conf
        for e in self.log.slice(self.log.snapshot_index + 1, index + 1):
            if e.kind is EntryKind.CONF_CHANGE:
                conf = conf.apply(ConfChange.decode(e.data))
        term = self.log.term(index)
        assert term is not None
        return SnapshotMeta(index, term, conf)

    # --- quiescence ----------------------------------------------------------------------------

    def can_quiesce(self) -> bool:
        """Whether this leader has nothing to do until something new happens: every member
        holds and has acknowledged the whole log, which is committed and applied, and no
        read, transfer or membership change is pending. A host may then stop ticking it (and
        ask its followers to stop too: :meth:`may_follow_quiesced`)."""
        log = self.log
        if self.role is not Role.LEADER or self._msgs or self._heartbeat_wanted:
            return False
        if not log.stable_index == log.committed == log.applied == log.last_index:
            return False
        if self._pending_reads or self._reads_awaiting_term_commit or self._read_round_wanted:
            return False
        if self.lead_transferee is not None or self._pending_conf_index > log.committed:
            return False
        for peer in self.conf.members:
            if peer == self.id:
                continue
            pr = self.progress.get(peer)
            if pr is None or pr.state is not ProgressState.REPLICATE:
                return False
            if pr.match_index != log.last_index or not pr.recent_active:
                return False
        return True

    def may_follow_quiesced(self, leader: NodeId, term: int, commit: int) -> bool:
        """Whether this follower may stop ticking because ``leader`` of ``term``, whose log is
        committed through ``commit``, asked it to: only if it follows that very leader and
        holds, has committed and has applied exactly that log."""
        log = self.log
        return (
            self.role is Role.FOLLOWER
            and self.leader_id == leader
            and self.term == term
            and log.stable_index == log.last_index == log.committed == log.applied == commit
            and self._snap_recv is None
            and not self._msgs
        )

    def void_lease(self) -> None:
        """Time passed that this core's ticks did not count (its host dropped ticks): a
        leader's lease, measured in ticks, is void until a new heartbeat round is confirmed.
        Reads meanwhile go by ReadIndex; nothing else changes."""
        self._round_sent_tick.clear()

    def wake(self) -> None:
        """The host ticks this core again after a pause in which it did not (quiescence).

        The pause took time the core never saw, so nothing measured in ticks across it can be
        trusted: a leader's lease is void until a new heartbeat round is confirmed, and its
        CheckQuorum starts a fresh window in which a quorum must be heard from anew."""
        if self.role is Role.LEADER:
            self._round_sent_tick.clear()
            self.election_elapsed = 0
            for peer, pr in self.progress.items():
                pr.recent_active = peer == self.id

    def _hard_state_changed(self) -> bool:
        # Compared field by field: this runs on every input, and building a HardState to
        # compare would cost more than everything else has_ready does.
        hs = self._persisted_hs
        return hs.term != self.term or hs.vote != self.vote or hs.commit != self.log.committed

    def has_ready(self) -> bool:
        return bool(
            self._msgs
            or self._read_states
            or self._failed_reads
            or self._heartbeat_wanted
            or self._read_round_wanted
            or self._snapshot_to_install is not None
            or self._hard_state_changed()
            or self.log.unstable_from <= self.log.last_index
            or self.log.committed > self.log.applied
        )

    def ready(self) -> RaftReady:
        if self.role is Role.LEADER:
            if self._heartbeat_wanted or (
                self._read_round_wanted and not self.config.narrow_read_rounds
            ):
                self._broadcast_heartbeat()
            elif self._read_round_wanted:
                self._broadcast_heartbeat(self._read_round_targets())
        self._heartbeat_wanted = self._read_round_wanted = False
        self._read_round_askers.clear()
        persisted = self._persisted_hs
        vote_changed = persisted.term != self.term or persisted.vote != self.vote
        messages: list[RaftMessage] = self._msgs
        early: list[RaftMessage] = []
        if self.role is Role.LEADER and not vote_changed:
            early = [m for m in messages if isinstance(m, _EARLY_TYPES)]
            if early:
                messages = [m for m in messages if not isinstance(m, _EARLY_TYPES)]
        rd = RaftReady(
            messages=messages,
            early_messages=early,
            hard_state=self.hard_state if self._hard_state_changed() else None,
            entries=self.log.unstable_entries(),
            snapshot=self._snapshot_to_install,
            read_states=self._read_states,
            failed_reads=self._failed_reads,
        )
        rd.must_sync = vote_changed or bool(rd.entries) or rd.snapshot is not None
        if self.log.committed > self.log.applied:
            hi = min(self.log.committed, self.log.applied + self.config.max_apply_entries)
            rd.committed_entries = self.log.slice(self.log.applied + 1, hi + 1)
        self.log.mark_handed_out()
        self._msgs, self._read_states, self._failed_reads = [], [], []
        return rd

    def advance(self, rd: RaftReady) -> None:
        if rd.hard_state is not None:
            self._persisted_hs = rd.hard_state
        if rd.snapshot is not None:
            self._snapshot_to_install = None
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
            if self.role is Role.LEADER:
                self.progress[self.id].maybe_update(self.log.stable_index)
                if self._maybe_commit() and self.role is Role.LEADER:
                    self._broadcast_append()
        if rd.committed_entries:
            self.log.applied = rd.committed_entries[-1].index
            if self.role is Role.LEADER:
                self._maybe_auto_promote()

    def status(self) -> RaftStatus:
        """A read-only copy of what the outside may know of this server (see
        :mod:`kvorum.core.raft.status`)."""
        log = self.log
        progress = {
            p: PeerStatus(pr.match_index, pr.next_index, pr.state.value, pr.recent_active)
            for p, pr in self.progress.items()
        }
        return RaftStatus(
            node_id=self.id,
            role=self.role,
            term=self.term,
            vote=self.vote,
            leader_id=self.leader_id,
            commit_index=log.committed,
            applied_index=log.applied,
            first_index=log.first_index,
            last_index=log.last_index,
            last_term=log.last_term,
            snapshot_index=log.snapshot_index,
            conf=self.conf,
            lead_transferee=self.lead_transferee,
            progress=progress if self.role is Role.LEADER else {},
            repair=self._repair,
        )

    # Cheap read-only scalars for hosts that consult them every round.

    @property
    def commit_index(self) -> int:
        return self.log.committed

    @property
    def applied_index(self) -> int:
        return self.log.applied

    @property
    def last_index(self) -> int:
        return self.log.last_index

    @property
    def last_term(self) -> int:
        return self.log.last_term

    @property
    def snapshot_index(self) -> int:
        return self.log.snapshot_index

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index`` (None if compacted or not there)."""
        return self.log.term(index)

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """The entries ``lo <= index < hi`` this core holds (for checkers and tools; ValueError
        if any of them is compacted or missing)."""
        if lo < self.log.first_index or hi > self.log.last_index + 1:
            raise ValueError(
                f"entries [{lo}, {hi}) outside the log [{self.log.first_index}, "
                f"{self.log.last_index + 1})"
            )
        return self.log.slice(lo, hi)

    # --- roles -----------------------------------------------------------------------------

    def _become_follower(self, term: int, leader: NodeId | None) -> None:
        if self.role is Role.LEADER:
            self._fail_pending_reads()
        if term != self.term:
            self.term = term
            self.vote = None
        self.role = Role.FOLLOWER
        self.leader_id = leader
        self._step_role = self._step_follower
        self._reset_timers()
        self.lead_transferee = None

    def _become_pre_candidate(self) -> None:
        # Term and vote stay as they are: a PreVote round must not disturb anyone.
        self.role = Role.PRE_CANDIDATE
        self.leader_id = None
        self._step_role = self._step_candidate
        self.votes = {}

    def _become_candidate(self) -> None:
        self.term += 1
        self.vote = self.id
        self.role = Role.CANDIDATE
        self.leader_id = None
        self._step_role = self._step_candidate
        self._reset_timers()
        self.votes = {}

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.leader_id = self.id
        self._step_role = self._step_leader
        self._reset_timers()
        self.lead_transferee = None
        self.progress = {}
        for member in self.conf.members | {self.id}:
            self._add_progress(member)
        self.progress[self.id].match_index = self.log.stable_index
        self.progress[self.id].state = ProgressState.REPLICATE
        # Until the log as of now is committed, we cannot tell whether an uncommitted
        # membership change in it is still pending, so refuse new ones (as etcd does).
        self._pending_conf_index = self.log.last_index
        self._uncommitted_bytes = 0
        self._round = 0
        self._round_sent_tick = {}
        self._lease_forfeited = False
        # The no-op commits our term, and with it every earlier entry (Raft §5.4.2); ReadIndex
        # also waits for it, since until then we may not know the true commit index.
        self._append_as_leader([Entry(self.term, self.log.last_index + 1, b"")])

    def _campaign(self, pre_vote: bool, transfer: bool = False) -> None:
        if self._out_of_elections():
            # No leader heard from for an election timeout: instead of standing, ask every
            # voter (whichever leads will answer) for what we lost.
            self.leader_id = None
            self._request_repair(None)
            return
        if self.id not in self.conf.voters:
            return
        if pre_vote:
            self._become_pre_candidate()
            vote_term = self.term + 1
        else:
            self._become_candidate()
            vote_term = self.term
        self.votes[self.id] = True
        if tally_votes(self.conf.voters, self.votes) is VoteResult.WON:
            self._won_election(pre_vote)
            return
        for voter in sorted(self.conf.voters - {self.id}):
            self._send(
                RequestVote(
                    self.id,
                    voter,
                    vote_term,
                    self.log.last_index,
                    self.log.last_term,
                    pre_vote=pre_vote,
                    transfer=transfer,
                )
            )

    def _won_election(self, pre_vote: bool) -> None:
        if pre_vote:
            self._campaign(pre_vote=False)
        else:
            self._become_leader()

    # --- timers ----------------------------------------------------------------------------

    def _random_timeout(self) -> int:
        t = self.config.election_timeout_ticks
        return self.rng.randrange(t, 2 * t)

    def _reset_timers(self) -> None:
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self._random_timeout()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self._campaign(pre_vote=self.config.pre_vote)

    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.config.election_timeout_ticks:
            self.election_elapsed = 0
            if self.config.check_quorum:
                active = {p for p, pr in self.progress.items() if pr.recent_active} | {self.id}
                if len(active & self.conf.voters) < majority(len(self.conf.voters)):
                    self._become_follower(self.term, None)
                    return
                for pr in self.progress.values():
                    pr.recent_active = False
            if self.lead_transferee is not None:
                self.lead_transferee = None  # the transfer timed out: serve again
        if self.heartbeat_elapsed >= self.config.heartbeat_interval_ticks:
            self.heartbeat_elapsed = 0
            self._broadcast_heartbeat()

    # --- voting ----------------------------------------------------------------------------

    def _handle_vote_request(self, msg: RequestVote) -> None:
        rep = self._repair
        if self._out_of_elections() and rep is not None and not rep.fence.covered_by_candidate(
            msg.last_log_index, msg.last_log_term
        ):
            # Our log lost entries we acknowledged: an up-to-date check against it could
            # elect a candidate that lacks a committed entry (kvorum.core.raft.repair).
            self._send(RequestVoteResponse(self.id, msg.src, self.term, False, msg.pre_vote))
            return
        can_vote = (
            self.vote == msg.src
            or (self.vote is None and self.leader_id is None)
            or (msg.pre_vote and msg.term > self.term)
        )
        up_to_date = self.config.unsafe.skip_election_restriction or self.log.is_up_to_date(
            msg.last_log_index, msg.last_log_term
        )
        if can_vote and up_to_date:
            self._send(RequestVoteResponse(self.id, msg.src, msg.term, True, msg.pre_vote))
            if not msg.pre_vote:
                self.election_elapsed = 0
                self.vote = msg.src
        else:
            self._send(RequestVoteResponse(self.id, msg.src, self.term, False, msg.pre_vote))

    def _step_candidate(self, msg: RaftMessage) -> None:
        if isinstance(msg, (AppendEntries, Heartbeat, InstallSnapshot)):
            self._become_follower(msg.term, msg.src)
            self._step_follower(msg)
        elif isinstance(msg, RequestVoteResponse):
            if msg.pre_vote != (self.role is Role.PRE_CANDIDATE):
                return  # an answer to an earlier round of the other kind
            self.votes[msg.src] = msg.granted
            result = tally_votes(self.conf.voters, self.votes)
            if result is VoteResult.WON:
                self._won_election(msg.pre_vote)
            elif result is VoteResult.LOST:
                self._become_follower(self.term, None)
        elif isinstance(msg, TimeoutNow):
            pass  # already campaigning
        elif isinstance(msg, ReadIndexRequest):
            self._send(ReadIndexResponse(self.id, msg.src, self.term, msg.ctx, 0, False))

    # --- follower --------------------------------------------------------------------------

    def _step_follower(self, msg: RaftMessage) -> None:
        if isinstance(msg, AppendEntries):
            self._heard_from_leader(msg.src)
            self._handle_append(msg)
        elif isinstance(msg, Heartbeat):
            self._heard_from_leader(msg.src)
            self.log.commit_to(min(msg.leader_commit, self.log.last_index))
            self._send(HeartbeatResponse(self.id, msg.src, self.term, msg.round))
            if self.fenced:
                self._request_repair(msg.src)
        elif isinstance(msg, InstallSnapshot):
            self._heard_from_leader(msg.src)
            self._handle_snapshot_chunk(msg)
        elif isinstance(msg, TimeoutNow):
            if self._out_of_elections():
                self._repair_asked = None  # the leader thinks we are caught up: tell it now
                self._request_repair(msg.src)
            elif self.id in self.conf.voters:
                self._campaign(pre_vote=False, transfer=True)
        elif isinstance(msg, ReadIndexResponse):
            if msg.ok:
                self._read_states.append(ReadState(msg.ctx, msg.index))
            else:
                self._failed_reads.append(msg.ctx)
        elif isinstance(msg, ReadIndexRequest):
            self._send(ReadIndexResponse(self.id, msg.src, self.term, msg.ctx, 0, False))

    def _heard_from_leader(self, leader: NodeId) -> None:
        self.election_elapsed = 0
        self.leader_id = leader

    def _handle_append(self, msg: AppendEntries) -> None:
        if msg.prev_log_index < self.log.committed:
            # Everything up to our commit already matches the leader's log.
            self._send(AppendEntriesResponse(self.id, msg.src, self.term, True, self.log.committed))
            return
        had_conf = any(e.kind is EntryKind.CONF_CHANGE for e in msg.entries)
        truncates_conf = bool(msg.entries) and msg.entries[0].index <= self._conf_index
        last_new = self.log.maybe_append(
            msg.prev_log_index, msg.prev_log_term, msg.leader_commit, msg.entries
        )
        if last_new is None:
            rejected = msg.prev_log_index
            if rejected > self.log.last_index:
                hint_index, hint_term = self.log.last_index + 1, 0
            else:
                hint_term = self.log.term(rejected) or 0
                hint_index = self.log.first_index_of_term_before(rejected)
            fenced = self.fenced
            if fenced:
                self._repair_asked = (msg.src, self.ticks)  # this answer is the request
            self._send(
                AppendEntriesResponse(
                    self.id,
                    msg.src,
                    self.term,
                    False,
                    self.log.last_index if fenced else 0,
                    rejected,
                    hint_index,
                    hint_term,
                    lost_entries=fenced,
                )
            )
            return
        if had_conf or truncates_conf:
            self._recompute_conf()
        self._maybe_finish_repair(msg.src)
        self._send(AppendEntriesResponse(self.id, msg.src, self.term, True, last_new))

    def _handle_snapshot_chunk(self, msg: InstallSnapshot) -> None:
        recv = self._snap_recv
        if msg.offset == 0:
            recv = (msg, [], 0)
        elif recv is None or recv[0].meta != msg.meta or msg.offset > recv[2]:
            self._snap_recv = None
            self._send(InstallSnapshotResponse(self.id, msg.src, self.term, msg.meta.index, 0))
            return
        first, pieces, received = recv
        if msg.offset == received and msg.data:
            pieces.append(msg.data if self._stored_chunk is None else self._stored_chunk)
            received += len(msg.data)
        self._snap_recv = (first, pieces, received)
        if not (msg.done and msg.offset + len(msg.data) == received):
            self._send(
                InstallSnapshotResponse(self.id, msg.src, self.term, msg.meta.index, received)
            )
            return
        self._snap_recv = None
        meta = msg.meta
        if meta.index <= self.log.committed:
            self._send(AppendEntriesResponse(self.id, msg.src, self.term, True, self.log.committed))
            return
        if self.log.match_term(meta.index, meta.term):
            # Our log already holds the snapshot's last entry: keep the suffix, fast-forward.
            self.log.commit_to(meta.index)
            self._maybe_finish_repair(msg.src)
        else:
            # Conflicting or missing: the snapshot replaces our whole log.
            self.log.restore(meta.index, meta.term)
            in_memory = [p for p in pieces if isinstance(p, bytes)]
            data: bytes | SnapshotData = (
                b"".join(in_memory) if len(in_memory) == len(pieces)
                else JoinedSnapshotData(pieces)
            )
            self._snapshot = Snapshot(meta, data)
            self._snapshot_to_install = self._snapshot
            self._base_conf = meta.conf
            self._conf_index = 0
            self._recompute_conf()
            self._maybe_finish_repair(msg.src)
        self._send(AppendEntriesResponse(self.id, msg.src, self.term, True, meta.index))

    # --- repair of lost entries -----------------------------------------------------------

    def _request_repair(self, leader: NodeId | None) -> None:
        """Tell ``leader`` (or, when none is known, every other voter: whichever leads will
        act on it) that our log lost acknowledged entries and now ends at our last index. At
        most once per election timeout to the same leader, since a fenced follower repeats
        this on every heartbeat until the leader has acted."""
        asked = self._repair_asked
        if (
            asked is not None
            and asked[0] == leader
            and self.ticks - asked[1] < self.config.election_timeout_ticks
        ):
            return
        self._repair_asked = (leader, self.ticks)
        targets = [leader] if leader is not None else sorted(self.conf.voters - {self.id})
        for dst in targets:
            self._send(
                AppendEntriesResponse(
                    self.id, dst, self.term, False, self.log.last_index, lost_entries=True
                )
            )

    def _maybe_finish_repair(self, source: NodeId | None) -> None:
        """Lift the fence once the log again holds everything we may have acknowledged
        (:meth:`RepairFence.satisfied_by`); ``source`` is the leader whose entries did it."""
        rep = self._repair
        if rep is None or rep.completed:
            return
        if rep.fence.satisfied_by(self.log.last_index, self.log.last_term):
            self._repair = RepairReport(rep.fence, True, source, self.log.last_index)
            self._repair_asked = None

    # --- leader ----------------------------------------------------------------------------

    def _check_can_propose(self, size_bytes: int) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader_id)
        if self.lead_transferee is not None:
            raise ProposalDropped("leadership transfer in progress")
        limit = self.config.max_uncommitted_bytes
        if self._uncommitted_bytes > 0 and self._uncommitted_bytes + size_bytes > limit:
            raise ProposalDropped("too much uncommitted data; the cluster may be unreachable")

    def _append_as_leader(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        self._uncommitted_bytes += sum(len(e.data) for e in entries)
        if any(e.kind is EntryKind.CONF_CHANGE for e in entries):
            self._pending_conf_index = entries[-1].index
            self._recompute_conf()
        self._broadcast_append()

    def _add_progress(self, node: NodeId) -> None:
        self.progress[node] = Progress(
            match_index=0,
            next_index=self.log.last_index + 1,
            inflights=Inflights(self.config.max_inflight_appends),
            recent_active=True,
        )

    def _step_leader(self, msg: RaftMessage) -> None:
        if isinstance(msg, ReadIndexRequest):
            self._leader_read(msg.ctx, msg.src, lease=False)
            return
        pr = self.progress.get(msg.src)
        if pr is None:
            return
        if isinstance(msg, AppendEntriesResponse):
            pr.recent_active = True
            self._handle_append_response(msg, pr)
        elif isinstance(msg, HeartbeatResponse):
            pr.recent_active = True
            pr.probe_sent = False
            pr.acked_round = max(pr.acked_round, msg.round)
            if pr.state is ProgressState.SNAPSHOT:
                self._send_snapshot_chunk(msg.src, pr)
            elif pr.match_index < self.log.last_index:
                if pr.state is ProgressState.REPLICATE and pr.inflights.full():
                    # Appends may have been lost; let one more through so that a gap shows
                    # up as a rejection and the follower drops back to probing.
                    pr.inflights.last_indexes.popleft()
                self._send_append(msg.src)
            self._release_reads()
        elif isinstance(msg, InstallSnapshotResponse):
            pr.recent_active = True
            current = msg.snapshot_index == pr.pending_snapshot_index
            if pr.state is ProgressState.SNAPSHOT and current:
                pr.snapshot_offset = msg.next_offset
                self._send_snapshot_chunk(msg.src, pr)

    def _handle_append_response(self, msg: AppendEntriesResponse, pr: Progress) -> None:
        if not msg.success:
            lost = msg.lost_entries and not self.config.unsafe.ignore_lost_entries
            if lost and self._follower_lost_entries(msg, pr):
                return
            if msg.rejected_index == 0:
                return  # a stale-term notice, already handled by the term rules
            if pr.state is ProgressState.REPLICATE:
                if msg.rejected_index <= pr.match_index:
                    return  # stale: answers an append sent before a newer success
                pr.become_probe()
            elif pr.next_index - 1 != msg.rejected_index:
                return  # stale: not the probe we are waiting for
            next_index = self._next_after_rejection(msg, pr)
            if next_index == msg.rejected_index + 1:
                # The follower rejects the very entry it once acknowledged (match_index): it
                # lost its log (a wiped data folder), and backing off below match_index is
                # not allowed. Probing again at once would ping-pong as fast as the network
                # goes (seen: 26k messages a second); wait for the next heartbeat instead.
                return
            pr.next_index = next_index
            pr.probe_sent = False
            self._send_append(msg.src)
            return
        was_paused = pr.is_paused()
        if not pr.maybe_update(msg.match_index):
            if pr.state is ProgressState.PROBE:
                pr.probe_sent = False
                if was_paused:
                    self._send_append(msg.src, send_empty=False)
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match_index >= pr.pending_snapshot_index:
            pr.become_probe()
            pr.become_replicate()
        elif pr.state is ProgressState.REPLICATE:
            pr.inflights.free_to(pr.match_index)
        if self._maybe_commit() and self.role is Role.LEADER:
            self._broadcast_append()
        while self._send_append(msg.src, send_empty=False):
            pass
        if msg.src == self.lead_transferee and pr.match_index == self.log.last_index:
            self._send_timeout_now(msg.src)
        self._maybe_auto_promote()

    def _follower_lost_entries(self, msg: AppendEntriesResponse, pr: Progress) -> bool:
        """A follower says storage damage cut its log back to ``msg.match_index``. If we
        believed it held more, lower its match index to that and replicate from there;
        returns whether that was done. (Safe: a lower match index only delays commitment,
        and the follower's log does match ours up to the lower value; see
        :mod:`kvorum.core.raft.repair`.)"""
        have = msg.match_index
        if pr.match_index <= have:
            return False  # our view already allows for the loss: an ordinary rejection
        pr.match_index = have
        if pr.state is ProgressState.SNAPSHOT:
            return True  # the snapshot under way brings the follower past what it lost
        pr.become_probe()
        self._send_append(msg.src)
        return True

    def _next_after_rejection(self, msg: AppendEntriesResponse, pr: Progress) -> int:
        nxt = msg.conflict_index
        if msg.conflict_term > 0:
            j = self.log.last_index_of_term_at_most(msg.rejected_index, msg.conflict_term)
            if j is not None:
                nxt = j + 1
        return max(pr.match_index + 1, min(nxt, msg.rejected_index), 1)

    def _send_append(self, peer: NodeId, send_empty: bool = True) -> bool:
        """Send ``peer`` the next entries (or a snapshot); False if nothing was sent."""
        pr = self.progress[peer]
        if pr.is_paused():
            return False
        prev_index = pr.next_index - 1
        prev_term = self.log.term(prev_index)
        if prev_term is None or pr.next_index < self.log.first_index:
            if self._snapshot is None:
                return False
            pr.become_snapshot(self._snapshot.meta.index)
            self._send_snapshot_chunk(peer, pr)
            return True
        hi = min(self.log.last_index + 1, pr.next_index + self.config.max_entries_per_append)
        entries = tuple(self.log.slice(pr.next_index, hi))
        if not entries and not send_empty:
            return False
        commit = self.log.committed
        self._send(AppendEntries(self.id, peer, self.term, prev_index, prev_term, entries, commit))
        if pr.state is ProgressState.REPLICATE and entries:
            pr.next_index = entries[-1].index + 1
            pr.inflights.add(entries[-1].index)
        elif pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        return bool(entries)

    def _send_snapshot_chunk(self, peer: NodeId, pr: Progress) -> None:
        snap = self._snapshot
        if snap is None:
            return
        if snap.meta.index != pr.pending_snapshot_index:
            pr.become_snapshot(snap.meta.index)  # a newer snapshot replaced it: start over
        off = pr.snapshot_offset
        if off >= len(snap.data) and off > 0:
            return  # all sent; waiting for the follower's final answer
        chunk = snap.data[off : off + self.config.snapshot_chunk_bytes]
        done = off + len(chunk) >= len(snap.data)
        self._send(InstallSnapshot(self.id, peer, self.term, snap.meta, off, chunk, done))

    def _broadcast_append(self) -> None:
        for peer in sorted(self.progress):
            if peer != self.id:
                self._send_append(peer)

    def _broadcast_heartbeat(self, targets: Collection[NodeId] | None = None) -> None:
        """Start heartbeat round ``_round + 1``: to every peer, or only to ``targets``."""
        self._round += 1
        self._round_sent_tick[self._round] = self.ticks
        for peer, pr in sorted(self.progress.items()):
            if peer != self.id and (targets is None or peer in targets):
                commit = min(pr.match_index, self.log.committed)
                self._send(Heartbeat(self.id, peer, self.term, commit, self._round))
        if len(self.conf.voters) == 1:
            self._release_reads()

    def _maybe_commit(self) -> bool:
        match = {p: pr.match_index for p, pr in self.progress.items()}
        index = quorum_value(self.conf.voters, match)
        if index <= self.log.committed:
            return False
        if self.log.term(index) != self.term and not self.config.unsafe.commit_any_term:
            return False  # only current-term entries commit by counting (Raft §5.4.2)
        committed_before = self.log.committed
        self.log.commit_to(index)
        self._uncommitted_bytes = max(
            0,
            self._uncommitted_bytes
            - sum(len(e.data) for e in self.log.slice(committed_before + 1, index + 1)),
        )
        if self._reads_awaiting_term_commit and self.log.term(index) == self.term:
            waiting, self._reads_awaiting_term_commit = self._reads_awaiting_term_commit, []
            for ctx, requester, lease in waiting:
                self._leader_read(ctx, requester, lease)
        if self.id not in self.conf.voters and self.log.committed >= self._conf_index:
            # We were removed; we led until the change committed (thesis §4.2.2). Tell the
            # others the new commit index, then step down.
            self._broadcast_append()
            self._become_follower(self.term, None)
        return True

    def _maybe_auto_promote(self) -> None:
        if self.role is not Role.LEADER or self._pending_conf_index > self.log.committed:
            return
        if self.lead_transferee is not None:
            return  # proposals wait until the transfer ends; the promotion comes after
        for learner in sorted(self.conf.auto_promote & self.conf.learners):
            pr = self.progress.get(learner)
            if pr is not None and pr.match_index >= self.log.committed:
                try:
                    self.propose_conf_change(ConfChange(ConfChangeKind.PROMOTE, learner))
                except ProposalDropped:
                    return  # e.g. the uncommitted tail is full: try again on a later ack
                return

    # --- reads -----------------------------------------------------------------------------

    def _leader_read(self, ctx: int, requester: NodeId, lease: bool) -> None:
        if self.log.term(self.log.committed) != self.term:
            self._reads_awaiting_term_commit.append((ctx, requester, lease))
            return
        if len(self.conf.voters) == 1 and self.id in self.conf.voters:
            self._deliver_read(ctx, self.log.committed, requester)
            return
        if lease and self._lease_valid():
            self._deliver_read(ctx, self.log.committed, requester)
            return
        read = _PendingRead(ctx, self.log.committed, self._round + 1, requester)
        self._pending_reads.append(read)
        self._read_round_wanted = True
        if requester != self.id:
            self._read_round_askers.add(requester)

    def _read_round_targets(self) -> set[NodeId]:
        """The followers a ReadIndex round asks (see ``RaftConfig.narrow_read_rounds``): the
        voters that answered the newest rounds, as many as a quorum needs besides this
        leader, plus every follower waiting for the read's answer (the heartbeat brings it
        the commit index it must reach)."""
        others = sorted(
            (p for p in self.conf.voters if p != self.id and p in self.progress),
            key=lambda p: (-self.progress[p].acked_round, p),
        )
        needed = majority(len(self.conf.voters)) - (1 if self.id in self.conf.voters else 0)
        return set(others[:needed]) | self._read_round_askers

    def _confirmed_round(self) -> int:
        rounds = {p: pr.acked_round for p, pr in self.progress.items()}
        rounds[self.id] = self._round
        return quorum_value(self.conf.voters, rounds)

    def _send_timeout_now(self, target: NodeId) -> None:
        # The target's election skips the voters' lease check (that is the point of a
        # transfer), so our lease no longer proves that nobody else leads: from now on this
        # term serves reads by ReadIndex only.
        self._lease_forfeited = True
        self._send(TimeoutNow(self.id, target, self.term))

    def _lease_valid(self) -> bool:
        if self._lease_forfeited:
            return False
        confirmed = self._confirmed_round()
        sent = self._round_sent_tick.get(confirmed)
        if sent is None:
            return False
        lease_ticks = self.config.election_timeout_ticks - self.config.lease_margin_ticks
        return self.ticks < sent + lease_ticks

    def _release_reads(self) -> None:
        confirmed = self._confirmed_round()
        # The confirmed round only moves forward, so older send times are never needed again.
        for r in [r for r in self._round_sent_tick if r < confirmed]:
            del self._round_sent_tick[r]
        still: list[_PendingRead] = []
        for read in self._pending_reads:
            if read.round <= confirmed:
                self._deliver_read(read.ctx, read.index, read.requester)
            else:
                still.append(read)
        self._pending_reads = still

    def _deliver_read(self, ctx: int, index: int, requester: NodeId) -> None:
        if requester == self.id:
            self._read_states.append(ReadState(ctx, index))
        else:
            self._send(ReadIndexResponse(self.id, requester, self.term, ctx, index, True))

    def _fail_pending_reads(self) -> None:
        pending = [(r.ctx, r.requester) for r in self._pending_reads]
        pending += [(ctx, req) for ctx, req, _ in self._reads_awaiting_term_commit]
        self._pending_reads, self._reads_awaiting_term_commit = [], []
        for ctx, requester in pending:
            if requester == self.id:
                self._failed_reads.append(ctx)
            else:
                self._send(ReadIndexResponse(self.id, requester, self.term, ctx, 0, False))

    # --- membership ------------------------------------------------------------------------

    def _recompute_conf(self) -> None:
        """The configuration is the newest one in the log, committed or not (thesis §4.1)."""
        conf, conf_index = self._base_conf, 0
        for e in self.log.entries:
            if e.kind is EntryKind.CONF_CHANGE:
                conf, conf_index = conf.apply(ConfChange.decode(e.data)), e.index
        self.conf, self._conf_index = conf, conf_index
        if self.role is Role.LEADER:
            for member in conf.members:
                if member not in self.progress:
                    self._add_progress(member)
            for gone in [p for p in self.progress if p not in conf.members and p != self.id]:
                del self.progress[gone]

    # --- output ----------------------------------------------------------------------------

    def _send(self, msg: RaftMessage) -> None:
        self._msgs.append(msg)
