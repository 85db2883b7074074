"""A scripted, hand-driven harness for Raft cores: every message is delivered when you say so.

Theory of operation: an :class:`InteractionEnv` hosts N :class:`RaftCore` instances the way the
simulator does — after every input (a message, a tick, a local request) the node drains its
ready, *persists* it to in-memory storage that keeps the storage contracts
(:class:`~kvorum.storage.memory.MemoryNodeLog`), *sends* its messages (they join one shared
queue, in order), *applies* committed entries to a tiny state machine, then calls ``advance``.
Nothing moves on its own: messages wait in the queue until a command delivers or drops them,
and time passes only when a command ticks a node. So a script fixes every interleaving, and
the same script always prints the same transcript (randomness is a seeded
:class:`random.Random` per node, derived from the env's seed).

Every operation returns the text it "prints", one event per line, in the order things
happened: state changes (``2: follower -> candidate at term 3``), what was persisted
(``2: persist term=3 vote=2 commit=1``, ``2: persist entries [3:4 3:5]``), the messages sent
(``1->2 AppendEntries term=2 prev=1:1 entries=[2:2] commit=1``), what was applied. Entries and
log positions are always written ``term:index``, as the seed writes ``<Term,Index>``. When a
message is delivered, its line is printed and the receiver's reaction is indented under it.

:func:`run_script` reads the text form (``campaign 1``, ``stabilize``, ...; see
:data:`COMMANDS`) used by ``tests/raft/testdata/*.txt``: each command, a ``----`` line, its
expected output, and a blank line. This mirrors etcd-io/raft's interaction tests, with one
difference: each node's randomness is seeded here, so a transcript can always be replayed.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from itertools import pairwise
from random import Random
from typing import Any

from kvorum.core.raft import (
    ConfChange,
    ConfChangeKind,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RaftCore,
    Role,
    Snapshot,
)
from kvorum.core.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    ReadIndexRequest,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from kvorum.core.raft.messages import (
    RaftMessage as Message,
)
from kvorum.storage.memory import MemoryNodeLog, MemorySnapshotStore

MAX_DELIVERIES_PER_STABILIZE = 10_000
"""A ``stabilize`` that has not gone quiet after this many deliveries is a livelock (an error)."""


class ScriptError(ValueError):
    """A command line that the harness cannot run (unknown command, bad argument, no node)."""


# --- formatting --------------------------------------------------------------------------------


def format_entry(e: Entry) -> str:
    """``term:index``, then ``=data`` for a command or a readable form of a membership change."""
    head = f"{e.term}:{e.index}"
    if e.kind is EntryKind.CONF_CHANGE:
        cc = ConfChange.decode(e.data)
        names = {
            ConfChangeKind.ADD_LEARNER: "+learner",
            ConfChangeKind.PROMOTE: "promote",
            ConfChangeKind.REMOVE: "remove",
        }
        auto = "(auto-promote)" if cc.auto_promote else ""
        return f"{head}={names[cc.kind]}{cc.node_id}{auto}"
    return f"{head}={e.data.decode(errors='replace')}" if e.data else head


def format_message(msg: Message) -> str:
    """One line per message: ``src->dst Kind term=T`` and the fields that matter for it."""
    head = f"{msg.src}->{msg.dst} {type(msg).__name__} term={msg.term}"
    if isinstance(msg, RequestVote):
        tail = f" last={msg.last_log_term}:{msg.last_log_index}"
        tail += " pre-vote" if msg.pre_vote else ""
        tail += " transfer" if msg.transfer else ""
    elif isinstance(msg, RequestVoteResponse):
        tail = " granted" if msg.granted else " refused"
        tail += " pre-vote" if msg.pre_vote else ""
    elif isinstance(msg, AppendEntries):
        ents = " ".join(f"{e.term}:{e.index}" for e in msg.entries)
        tail = (
            f" prev={msg.prev_log_term}:{msg.prev_log_index} entries=[{ents}]"
            f" commit={msg.leader_commit}"
        )
    elif isinstance(msg, AppendEntriesResponse):
        if msg.success:
            tail = f" ok match={msg.match_index}"
        elif msg.rejected_index == 0:
            tail = (
                f" lost entries, log ends at {msg.match_index}"
                if msg.lost_entries
                else " refused (stale term)"
            )
        else:
            tail = (
                f" refused prev_index={msg.rejected_index}"
                f" hint=(term {msg.conflict_term}, index {msg.conflict_index})"
            )
            if msg.lost_entries:
                tail += f" lost entries, log ends at {msg.match_index}"
    elif isinstance(msg, Heartbeat):
        tail = f" commit={msg.leader_commit} round={msg.round}"
    elif isinstance(msg, HeartbeatResponse):
        tail = f" round={msg.round}"
    elif isinstance(msg, InstallSnapshot):
        tail = (
            f" snap={msg.meta.term}:{msg.meta.index} offset={msg.offset}"
            f" bytes={len(msg.data)}{' done' if msg.done else ''}"
        )
    elif isinstance(msg, InstallSnapshotResponse):
        tail = f" snap_index={msg.snapshot_index} next_offset={msg.next_offset}"
    elif isinstance(msg, TimeoutNow):
        tail = ""
    elif isinstance(msg, ReadIndexRequest):
        tail = f" ctx={msg.ctx}"
    else:
        tail = f" ctx={msg.ctx} index={msg.index} {'ok' if msg.ok else 'failed'}"
    return head + tail


def format_hard_state(hs: HardState) -> str:
    vote = "-" if hs.vote is None else str(hs.vote)
    return f"term={hs.term} vote={vote} commit={hs.commit}"


# --- storage and state machine -----------------------------------------------------------------


def encode_state(applied: Sequence[tuple[int, bytes]]) -> bytes:
    """The state machine (the list of applied commands) as snapshot bytes."""
    return b"|".join(b"%d=%s" % (index, data) for index, data in applied)


def decode_state(data: bytes) -> list[tuple[int, bytes]]:
    if not data:
        return []
    out = []
    for item in data.split(b"|"):
        index, _, payload = item.partition(b"=")
        out.append((int(index), payload))
    return out


class _Disk:
    """One node's durable storage: its log (one group) and its snapshots, by contract."""

    def __init__(self) -> None:
        self.log = MemoryNodeLog()
        self.log.create_group(0)
        self.snapshots = MemorySnapshotStore()

    def save(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> None:
        """Make a ready's writes durable: the snapshot first, then entries and hard state."""
        group = self.log.group(0)
        if snapshot is not None:
            self.snapshots.write(snapshot.meta, [snapshot.data_bytes()])
            group.stage_snapshot(snapshot.meta)
        group.stage(hard_state, entries)
        self.log.sync()

    def snapshot(self) -> Snapshot | None:
        meta = self.snapshots.latest()
        return None if meta is None else Snapshot(meta, self.snapshots.data(meta))


@dataclass(slots=True)
class HarnessNode:
    """One server: its core, its disk, its state machine, and whether it is running."""

    node_id: int
    core: RaftCore
    storage: _Disk
    applied: list[tuple[int, bytes]] = field(default_factory=list)
    """The state machine: every non-empty command applied so far, as (index, data)."""
    up: bool = True
    incarnation: int = 0
    """How many times this node was (re)started; seeds its next core's randomness."""


# --- the environment -----------------------------------------------------------------------------


MessagePredicate = Callable[[Message], bool]


def message_filter(
    src: int | None = None, dst: int | None = None, kind: str | None = None
) -> MessagePredicate:
    """A predicate selecting queued messages by sender, receiver and type-name prefix."""

    def pred(msg: Message) -> bool:
        return (
            (src is None or msg.src == src)
            and (dst is None or msg.dst == dst)
            and (kind is None or type(msg).__name__.startswith(kind))
        )

    return pred


class InteractionEnv:
    """N Raft cores, a message queue delivered by hand, and commands that return their output.

    ``voters`` are the bootstrap configuration (nodes ``1..voters`` when an int). Every node
    gets the same :class:`RaftConfig` and its own ``Random`` derived from ``seed``. After each
    command the env records which node led which term (:attr:`leaders_by_term`) so that a test
    can check "at most one leader per term" over a whole script.
    """

    def __init__(
        self, voters: int | Sequence[int] = 3, config: RaftConfig | None = None, seed: int = 0
    ) -> None:
        ids = list(range(1, voters + 1)) if isinstance(voters, int) else list(voters)
        if not ids or len(set(ids)) != len(ids) or min(ids) < 1:
            raise ValueError(f"voters must be distinct positive node ids, got {ids}")
        self.config = config or RaftConfig()
        self.seed = seed
        self.bootstrap = ConfState(frozenset(ids))
        self.nodes: dict[int, HarnessNode] = {}
        self.queue: list[Message] = []
        self.sent: list[Message] = []
        """Every message ever sent, in order (for verdicts computed after the fact)."""
        self.delivered: list[Message] = []
        """Every message delivered to a running node, in order."""
        self.leaders_by_term: dict[int, set[int]] = {}
        self._groups: list[frozenset[int]] | None = None
        self._out: list[str] = []
        self._indent = 0
        for node_id in ids:
            self._add_node(node_id)

    # --- nodes ---------------------------------------------------------------------------

    def _rng_for(self, node_id: int, incarnation: int) -> Random:
        # One stream per (seed, node, incarnation): a restart draws fresh timeouts, replayably.
        return Random(self.seed * 1_000_003 + node_id * 1_009 + incarnation)

    def _add_node(self, node_id: int) -> HarnessNode:
        core = RaftCore(node_id, self.bootstrap, self.config, self._rng_for(node_id, 0))
        node = HarnessNode(node_id, core, _Disk())
        self.nodes[node_id] = node
        return node

    def _restart_core(self, node: HarnessNode, incarnation: int) -> None:
        disk = node.storage
        snapshot = disk.snapshot()
        node.applied = decode_state(snapshot.data_bytes()) if snapshot is not None else []
        log = disk.log.group(0)
        node.core = RaftCore(
            node.node_id,
            self.bootstrap,
            self.config,
            self._rng_for(node.node_id, incarnation),
            hard_state=log.hard_state,
            snapshot=snapshot,
            entries=log.entries(log.first_index, log.last_index + 1),
            repair_fence=log.repair_fence,
        )

    def node(self, node_id: int) -> HarnessNode:
        if node_id not in self.nodes:
            raise ScriptError(f"no node {node_id} (nodes: {sorted(self.nodes)})")
        return self.nodes[node_id]

    def core(self, node_id: int) -> RaftCore:
        return self.node(node_id).core

    def leader(self) -> int | None:
        """The running node that believes it leads at the highest term, if any."""
        leaders = [n for n in self.nodes.values() if n.up and n.core.is_leader]
        return max(leaders, key=lambda n: n.core.term).node_id if leaders else None

    # --- output --------------------------------------------------------------------------

    def _print(self, line: str) -> None:
        self._out.append("  " * self._indent + line)

    def _take_output(self) -> str:
        text = "\n".join(self._out)
        self._out = []
        return text

    def _drive(self, node: HarnessNode, action: Callable[[], Any]) -> Any:
        """Run ``action`` against ``node``'s core, print state changes, then handle readies."""
        core = node.core
        before = (core.role, core.term)
        result = action()
        self._note_changes(node, before)
        self._handle_readies(node)
        return result

    def _note_changes(self, node: HarnessNode, before: tuple[Role, int]) -> None:
        core = node.core
        role, term = before
        if core.role is not role:
            self._print(f"{node.node_id}: {role.value} -> {core.role.value} at term {core.term}")
        elif core.term != term:
            self._print(f"{node.node_id}: term {term} -> {core.term} ({core.role.value})")
        if core.is_leader:
            self.leaders_by_term.setdefault(core.term, set()).add(node.node_id)

    def _handle_readies(self, node: HarnessNode) -> None:
        """Persist, then send, then apply, then advance — until the core has nothing more."""
        core = node.core
        while core.has_ready():
            rd = core.ready()
            nid = node.node_id
            if rd.snapshot is not None:
                meta = rd.snapshot.meta
                self._print(
                    f"{nid}: persist snapshot {meta.term}:{meta.index}"
                    f" voters={sorted(meta.conf.voters)} ({len(rd.snapshot.data)} bytes)"
                )
            if rd.hard_state is not None:
                self._print(f"{nid}: persist {format_hard_state(rd.hard_state)}")
            if rd.entries:
                self._print(f"{nid}: persist entries [{' '.join(map(format_entry, rd.entries))}]")
            node.storage.save(rd.hard_state, rd.entries, rd.snapshot)
            for msg in rd.all_messages:
                self._print(format_message(msg))
                self.queue.append(msg)
                self.sent.append(msg)
            if rd.snapshot is not None:
                node.applied = decode_state(rd.snapshot.data_bytes())
            if rd.committed_entries:
                self._print(
                    f"{nid}: apply [{' '.join(map(format_entry, rd.committed_entries))}]"
                )
                node.applied.extend(
                    (e.index, e.data)
                    for e in rd.committed_entries
                    if e.kind is EntryKind.NORMAL and e.data
                )
            for rs in rd.read_states:
                self._print(f"{nid}: read ctx={rs.ctx} may be served at index {rs.index}")
            for ctx in rd.failed_reads:
                self._print(f"{nid}: read ctx={ctx} failed")
            before = (core.role, core.term)
            core.advance(rd)
            self._note_changes(node, before)

    # --- time and elections ----------------------------------------------------------------

    def tick(self, node_ids: int | Iterable[int], times: int = 1) -> str:
        """Tick the given running nodes ``times`` times, in lockstep (one tick each per round)."""
        ids = [node_ids] if isinstance(node_ids, int) else list(node_ids)
        if times < 1:
            raise ScriptError(f"tick count must be >= 1, got {times}")
        for _ in range(times):
            self._tick_round(ids)
        return self._take_output()

    def _tick_round(self, ids: Sequence[int]) -> None:
        for nid in ids:
            node = self.node(nid)
            if node.up:
                self._drive(node, node.core.tick)

    def tick_until_vote(self, node_ids: Iterable[int]) -> str:
        """Tick the given nodes in lockstep until a round in which one of them asks for votes
        (the first random election timeout to run out); at most 2T rounds."""
        ids = list(node_ids)
        for _ in range(2 * self.config.election_timeout_ticks + 1):
            sent_before = len(self.sent)
            self._tick_round(ids)
            if any(isinstance(m, RequestVote) for m in self.sent[sent_before:]):
                return self._take_output()
        raise ScriptError(f"none of {ids} asked for votes within 2T ticks")

    def campaign(self, node_id: int) -> str:
        """Tick ``node_id`` until its election timer fires and it starts campaigning.

        The core has no "campaign now" input (a timer firing is just ticks), so this is how a
        script makes one node time out first. With PreVote on, the node becomes a
        pre-candidate; otherwise a candidate.
        """
        node = self.node(node_id)
        core = node.core
        if not node.up:
            raise ScriptError(f"node {node_id} is down")
        if core.is_leader:
            raise ScriptError(f"node {node_id} already leads term {core.term}")
        if node_id not in core.conf.voters:
            raise ScriptError(f"node {node_id} is not a voter and never campaigns")
        start = (core.role, core.term)
        for _ in range(2 * self.config.election_timeout_ticks + 1):
            sent_before = len(self.sent)
            self._drive(node, core.tick)
            asked = any(isinstance(m, RequestVote) for m in self.sent[sent_before:])
            if asked or (core.role, core.term) != start:
                return self._take_output()
        raise ScriptError(f"node {node_id} did not campaign within 2T ticks")

    # --- the network -------------------------------------------------------------------------

    def can_talk(self, a: int, b: int) -> bool:
        if self._groups is None:
            return True
        return any(a in g and b in g for g in self._groups)

    def partition(self, *groups: Iterable[int]) -> str:
        """Cut the network into ``groups``; nodes not named form one more group together."""
        parts = [frozenset(g) for g in groups]
        named = frozenset().union(*parts)
        rest = frozenset(self.nodes) - named
        if rest:
            parts.append(rest)
        self._groups = parts
        return "partition " + " | ".join(",".join(map(str, sorted(g))) for g in parts)

    def heal(self) -> str:
        self._groups = None
        return "network healed"

    def take(self, pred: MessagePredicate) -> list[Message]:
        """Remove and return queued messages matching ``pred`` (to delay or reorder them)."""
        taken = [m for m in self.queue if pred(m)]
        self.queue = [m for m in self.queue if not pred(m)]
        return taken

    def inject(self, msgs: Iterable[Message]) -> None:
        """Put messages (e.g. ones taken earlier) at the back of the queue."""
        self.queue.extend(msgs)

    def drop(self, pred: MessagePredicate | None = None) -> str:
        """Drop queued messages (all, or those matching ``pred``), printing each."""
        for msg in self.take(pred or (lambda m: True)):
            self._print(f"dropped {format_message(msg)}")
        return self._take_output()

    def _deliver_one(self, msg: Message) -> None:
        line = format_message(msg)
        target = self.nodes.get(msg.dst)
        if target is None:
            self._print(f"{line} (dropped: no node {msg.dst})")
            return
        if not target.up:
            self._print(f"{line} (dropped: {msg.dst} is down)")
            return
        if not self.can_talk(msg.src, msg.dst):
            self._print(f"{line} (dropped: partition)")
            return
        self._print(line)
        self.delivered.append(msg)
        self._indent += 1
        try:
            self._drive(target, lambda: target.core.step(msg))
        finally:
            self._indent -= 1

    def deliver(self, pred: MessagePredicate | None = None) -> str:
        """Deliver the messages queued now (all, or those matching ``pred``), in order; replies
        they cause are queued, not delivered."""
        for msg in self.take(pred or (lambda m: True)):
            self._deliver_one(msg)
        return self._take_output()

    def stabilize(self, pred: MessagePredicate | None = None) -> str:
        """Deliver queued messages (and the replies they cause) until none is left."""
        count = 0
        keep = pred or (lambda m: True)
        while True:
            nxt = next((m for m in self.queue if keep(m)), None)
            if nxt is None:
                return self._take_output()
            self.queue.remove(nxt)
            self._deliver_one(nxt)
            count += 1
            if count > MAX_DELIVERIES_PER_STABILIZE:
                raise ScriptError("stabilize did not go quiet (livelock?)")

    # --- crashes -------------------------------------------------------------------------------

    def crash(self, node_id: int) -> str:
        """Stop a node: its in-memory state is gone; its storage is kept for :meth:`restart`."""
        node = self.node(node_id)
        node.up = False
        return f"{node_id} crashed"

    def restart(self, node_id: int) -> str:
        """Start a crashed node from what its storage holds, as a real node restarts."""
        node = self.node(node_id)
        if node.up:
            raise ScriptError(f"node {node_id} is running")
        node.up = True
        node.incarnation += 1
        self._restart_core(node, node.incarnation)
        c = node.core
        self._print(
            f"{node_id} restarted: {format_hard_state(c.hard_state)} last={c.last_term}:"
            f"{c.last_index} applied={c.applied_index}"
        )
        self._handle_readies(node)
        return self._take_output()

    def damage(self, node_id: int, lost_from: int) -> str:
        """Crash ``node_id`` (if running) and restart it on a disk that lost its synced
        entries from ``lost_from`` on, repaired as the WAL repairs attributable damage: the
        log cut before the first lost entry, and the core fenced until it has them again."""
        node = self.node(node_id)
        if node.up:
            self._print(self.crash(node_id))
        try:
            fence = node.storage.log.damage(0, lost_from, "damaged by the script")
        except ValueError as exc:
            raise ScriptError(str(exc)) from None
        self._print(
            f"{node_id}: storage lost entries {fence.lost_from}..{fence.acknowledged_index}"
            f" (acknowledged in term {fence.fence_term} or before)"
        )
        self._print(self.restart(node_id))
        return self._take_output()

    def load(
        self,
        node_id: int,
        terms: Sequence[int],
        *,
        term: int | None = None,
        vote: int | None = None,
        commit: int = 0,
    ) -> str:
        """Replace a node's disk with a log whose entry ``i`` has term ``terms[i-1]`` (data
        ``cmd<i>``), then restart it: the way to set up a figure from the paper or the seed."""
        if any(b < a for a, b in pairwise(terms)) or any(t < 1 for t in terms):
            raise ScriptError(f"log terms must be >= 1 and non-decreasing, got {list(terms)}")
        node = self.nodes.get(node_id) or self._add_node(node_id)
        hs_term = term if term is not None else (terms[-1] if terms else 0)
        if terms and hs_term < terms[-1]:
            raise ScriptError(f"term {hs_term} is older than the log's last term {terms[-1]}")
        disk = _Disk()
        entries = [Entry(t, i, b"cmd%d" % i) for i, t in enumerate(terms, start=1)]
        disk.log.group(0).stage(HardState(hs_term, vote, commit), entries)
        disk.log.sync()
        node.storage = disk
        node.up = False
        return self.restart(node_id)

    # --- local requests --------------------------------------------------------------------------

    def _request(self, node_id: int, action: Callable[[RaftCore], Any]) -> Any:
        node = self.node(node_id)
        if not node.up:
            raise ScriptError(f"node {node_id} is down")
        try:
            return self._drive(node, lambda: action(node.core))
        except (NotLeader, ProposalDropped, ValueError) as exc:
            if isinstance(exc, ScriptError):
                raise
            self._print(f"{node_id}: error: {exc}")
            return None

    def propose(self, node_id: int, *data: bytes) -> str:
        """A client command (or several, as one batch) sent to ``node_id``."""
        if not data:
            raise ScriptError("propose needs at least one command")
        self._request(node_id, lambda c: c.propose_batch(list(data)))
        return self._take_output()

    def read_index(self, node_id: int, ctx: int, lease: bool = False) -> str:
        self._request(node_id, lambda c: c.read_index(ctx, lease=lease))
        return self._take_output()

    def transfer_leader(self, node_id: int, target: int) -> str:
        self._request(node_id, lambda c: c.transfer_leadership(target))
        return self._take_output()

    def conf_change(self, node_id: int, change: ConfChange) -> str:
        """Propose a membership change on ``node_id``; a learner being added is started with
        an empty disk first, so that it can receive the leader's log."""
        if change.kind is ConfChangeKind.ADD_LEARNER and change.node_id not in self.nodes:
            self._add_node(change.node_id)
            self._print(f"{change.node_id}: started empty (bootstrap voters "
                        f"{sorted(self.bootstrap.voters)})")
        self._request(node_id, lambda c: c.propose_conf_change(change))
        return self._take_output()

    def compact(self, node_id: int, index: int) -> str:
        """Snapshot ``node_id``'s state machine as of ``index`` and drop the log it covers."""
        node = self.node(node_id)
        core = node.core
        try:
            meta = core.snapshot_meta_at(index)
        except ValueError as exc:
            raise ScriptError(str(exc)) from None
        snap = Snapshot(meta, encode_state([a for a in node.applied if a[0] <= index]))
        node.storage.save(None, [], snap)
        core.compact(snap)
        return (
            f"{node_id}: snapshot {meta.term}:{meta.index} ({len(snap.data)} bytes),"
            f" log now starts after {core.snapshot_index}"
        )

    # --- inspection ------------------------------------------------------------------------------

    def log_text(self, node_id: int) -> str:
        node = self.node(node_id)
        core = node.core
        s = core.status()
        snap = ""
        if s.snapshot_index:
            snap = f"snap={core.term_at(s.snapshot_index)}:{s.snapshot_index} "
        ents = " ".join(map(format_entry, core.entries(s.first_index, s.last_index + 1)))
        return f"{node_id}: {snap}[{ents}] commit={s.commit_index} applied={s.applied_index}"

    def status_text(self, node_id: int) -> str:
        node = self.node(node_id)
        if not node.up:
            return f"{node_id}: down"
        s = node.core.status()
        vote = "-" if s.vote is None else s.vote
        leader = "-" if s.leader_id is None else s.leader_id
        line = (
            f"{node_id}: {s.role.value} term={s.term} vote={vote} leader={leader}"
            f" last={s.last_term}:{s.last_index} commit={s.commit_index}"
            f" applied={s.applied_index} voters={sorted(s.conf.voters)}"
        )
        if s.conf.learners:
            line += f" learners={sorted(s.conf.learners)}"
        if s.repair is not None:
            r = s.repair
            what = f"entries {r.fence.lost_from}-{r.fence.acknowledged_index}"
            if r.completed:
                line += f" repaired {what} from {r.repaired_from}"
            else:
                line += f" fenced: repairing {what}"
        if s.is_leader:
            prs = [
                f"{p}:{pr.state} match={pr.match_index} next={pr.next_index}"
                for p, pr in sorted(s.progress.items())
                if p != node_id
            ]
            line += "\n  progress " + ", ".join(prs)
        return line

    def queued_text(self) -> str:
        return "\n".join(map(format_message, self.queue)) or "(no messages queued)"

    # --- the text form ---------------------------------------------------------------------------

    def run_command(self, line: str) -> str:
        """Run one command line (see :data:`COMMANDS`) and return what it prints; a command
        that cannot run prints ``error: ...`` (the env is left as the failed command found it)."""
        words = shlex.split(line)
        name, args = (words[0], words[1:]) if words else ("", [])
        handler = COMMANDS.get(name)
        if handler is None:
            return f"error: unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}"
        try:
            text = handler(self, args)
        except (IndexError, KeyError) as exc:
            text = f"error: bad arguments for {name}: {args} ({exc})"
        except ScriptError as exc:
            # Part of the transcript, so that a script can show a refusal (and a typo shows).
            text = f"error: {exc}"
        finally:
            self._indent = 0
            self._out = []
        return text or "ok"


# --- command parsing -----------------------------------------------------------------------------


def _int(word: str) -> int:
    try:
        return int(word)
    except ValueError:
        raise ScriptError(f"expected a number, got {word!r}") from None


def _ids(word: str, env: InteractionEnv) -> list[int]:
    if word == "all":
        return sorted(env.nodes)
    return [_int(w) for w in word.split(",")]


def _options(args: Sequence[str]) -> dict[str, str]:
    out = {}
    for a in args:
        key, eq, value = a.partition("=")
        if not eq:
            raise ScriptError(f"expected key=value, got {a!r}")
        out[key] = value
    return out


def _filter(args: Sequence[str]) -> MessagePredicate:
    opts = _options(args)
    unknown = set(opts) - {"from", "to", "type"}
    if unknown:
        raise ScriptError(f"unknown filter {sorted(unknown)}; use from=, to=, type=")
    src = _int(opts["from"]) if "from" in opts else None
    dst = _int(opts["to"]) if "to" in opts else None
    return message_filter(src, dst, opts.get("type"))


def parse_config(opts: dict[str, str]) -> RaftConfig:
    """A :class:`RaftConfig` from ``key=value`` words (booleans as true/false)."""
    kwargs: dict[str, Any] = {}
    known = {f.name: f for f in fields(RaftConfig) if f.name != "unsafe"}
    for key, value in opts.items():
        if key not in known:
            raise ScriptError(f"unknown config option {key!r}; known: {', '.join(sorted(known))}")
        if value in ("true", "false"):
            kwargs[key] = value == "true"
        else:
            kwargs[key] = _int(value)
    try:
        return RaftConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ScriptError(f"bad config: {exc}") from None


def env_from_init(line: str) -> InteractionEnv:
    """The env an ``init N [seed=S] [config options...]`` line describes."""
    words = shlex.split(line)
    if len(words) < 2 or words[0] != "init":
        raise ScriptError(f"expected 'init N [options]', got {line!r}")
    opts = _options(words[2:])
    seed = _int(opts.pop("seed", "0"))
    return InteractionEnv(_int(words[1]), parse_config(opts), seed)


def _cmd_load(env: InteractionEnv, args: list[str]) -> str:
    opts = _options(args[1:])
    terms = [_int(t) for t in opts["log"].split(",") if t] if opts.get("log") else []
    vote = _int(opts["vote"]) if "vote" in opts else None
    term = _int(opts["term"]) if "term" in opts else None
    commit = _int(opts.get("commit", "0"))
    return env.load(_int(args[0]), terms, term=term, vote=vote, commit=commit)


def _cmd_tick(env: InteractionEnv, args: list[str]) -> str:
    ids = _ids(args[0], env)
    if args[1:] == ["until-vote"]:
        return env.tick_until_vote(ids)
    return env.tick(ids, _int(args[1]) if len(args) > 1 else 1)


def _cmd_status(env: InteractionEnv, args: list[str]) -> str:
    ids = _ids(args[0], env) if args else sorted(env.nodes)
    return "\n".join(env.status_text(i) for i in ids)


def _cmd_log(env: InteractionEnv, args: list[str]) -> str:
    ids = _ids(args[0], env) if args else sorted(env.nodes)
    return "\n".join(env.log_text(i) for i in ids)


def _cmd_partition(env: InteractionEnv, args: list[str]) -> str:
    return env.partition(*[[_int(w) for w in g.split(",")] for g in args])


def _cmd_add_learner(env: InteractionEnv, args: list[str]) -> str:
    auto = "auto-promote" in args[2:]
    change = ConfChange(ConfChangeKind.ADD_LEARNER, _int(args[1]), auto)
    return env.conf_change(_int(args[0]), change)


COMMANDS: dict[str, Callable[[InteractionEnv, list[str]], str]] = {
    "load": _cmd_load,
    "campaign": lambda env, a: env.campaign(_int(a[0])),
    "tick": _cmd_tick,
    "propose": lambda env, a: env.propose(_int(a[0]), *[w.encode() for w in a[1:]]),
    "deliver-msgs": lambda env, a: env.deliver(_filter(a)),
    "drop-msgs": lambda env, a: env.drop(_filter(a)),
    "stabilize": lambda env, a: env.stabilize(_filter(a)),
    "queued": lambda env, a: env.queued_text(),
    "partition": _cmd_partition,
    "heal": lambda env, a: env.heal(),
    "crash": lambda env, a: env.crash(_int(a[0])),
    "restart": lambda env, a: env.restart(_int(a[0])),
    "status": _cmd_status,
    "log": _cmd_log,
    "read-index": lambda env, a: env.read_index(_int(a[0]), _int(a[1]), "lease" in a[2:]),
    "transfer-leader": lambda env, a: env.transfer_leader(_int(a[0]), _int(a[1])),
    "add-learner": _cmd_add_learner,
    "promote": lambda env, a: env.conf_change(
        _int(a[0]), ConfChange(ConfChangeKind.PROMOTE, _int(a[1]))
    ),
    "remove": lambda env, a: env.conf_change(
        _int(a[0]), ConfChange(ConfChangeKind.REMOVE, _int(a[1]))
    ),
    "compact": lambda env, a: env.compact(_int(a[0]), _int(a[1])),
    "damage": lambda env, a: env.damage(_int(a[0]), _int(_options(a[1:])["from"])),
}
"""Every command of the text form besides ``init``. Node lists are ``2`` or ``1,2,3`` or ``all``;
``tick IDS N`` ticks them N times, ``tick IDS until-vote`` until one asks for votes;
filters are ``from=N to=N type=Prefix``. ``load N log=1,1,2 [term=T vote=V commit=C]`` sets
a node's disk and restarts it; ``damage N from=I`` restarts it on a disk that lost its entries
from index I on (repaired and fenced, as the WAL does)."""


# --- scripts -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScriptBlock:
    """One command of a script file, with the comment lines above it and its output."""

    comments: tuple[str, ...]
    command: str
    expected: str


def parse_script(text: str) -> list[ScriptBlock]:
    """Split a script file into blocks: ``# comments``, a command, ``----``, output, blank."""
    blocks: list[ScriptBlock] = []
    lines = text.splitlines()
    i = 0
    comments: list[str] = []
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("#"):
            comments.append(line)
            i += 1
            continue
        command = line
        i += 1
        if i >= len(lines) or lines[i] != "----":
            raise ScriptError(f"line {i}: expected '----' after command {command!r}")
        i += 1
        out: list[str] = []
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        blocks.append(ScriptBlock(tuple(comments), command, "\n".join(out)))
        comments = []
    return blocks


def run_script(text: str) -> tuple[list[ScriptBlock], str]:
    """Run every command of a script (``init`` lines start a fresh env; before the first one
    there are three default voters); returns the blocks and the script text
    rewritten with the actual outputs (equal to ``text`` when everything matches)."""
    env = InteractionEnv()
    blocks = parse_script(text)
    parts: list[str] = []
    actual_blocks: list[ScriptBlock] = []
    for block in blocks:
        if block.command.startswith("init"):
            # ``init`` starts over: a script may hold several independent stories.
            env = env_from_init(block.command)
            actual = (
                f"{len(env.nodes)} nodes, voters {sorted(env.bootstrap.voters)}, seed {env.seed}"
            )
        else:
            actual = env.run_command(block.command)
        actual_blocks.append(ScriptBlock(block.comments, block.command, actual))
        head = "\n".join(block.comments)
        parts.append((head + "\n" if head else "") + f"{block.command}\n----\n{actual}\n")
    return actual_blocks, "\n".join(parts)
