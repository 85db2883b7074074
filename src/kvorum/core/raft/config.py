"""How one Raft server is tuned (:class:`RaftConfig`), and the test-only switches that break it.

Theory of operation: a configuration is an immutable value given to a
:class:`~kvorum.core.raft.node.RaftCore` when it starts; the core only reads it. It lives in a
module of its own, apart from the core's code, because that code may be compiled with mypyc
(``python3 dev.py compile``) while these values stay plain Python dataclasses: frozen and
slotted, replaceable with :func:`dataclasses.replace`, and built the same way by the simulator,
the runtime and the tests whichever way the core runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class UnsafeSwitches:
    """Test-only switches that break one safety rule each, to prove the checkers have teeth.

    Never set outside tests: each one lets the simulator find a real violation.
    """

    skip_election_restriction: bool = False
    """Grant votes without checking that the candidate's log is at least as up to date."""
    commit_any_term: bool = False
    """Commit by counting replicas even for entries of earlier terms (Raft §5.4.2's trap)."""
    vote_while_repairing: bool = False
    """A server whose log lost acknowledged entries votes and campaigns as if it had not."""
    ignore_lost_entries: bool = False
    """A leader ignores a follower's report that it lost entries (and so never backs off
    below the match index it once had for it)."""


@dataclass(frozen=True, slots=True)
class RaftConfig:
    election_timeout_ticks: int = 10
    """Followers wait a random time in [T, 2T) without hearing a leader before campaigning."""
    heartbeat_interval_ticks: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_entries_per_append: int = 64
    max_inflight_appends: int = 64
    max_uncommitted_bytes: int = 8 << 20
    """A leader refuses proposals while this many bytes wait to commit (a cut-off leader
    must not grow its log without limit)."""
    snapshot_chunk_bytes: int = 256 << 10
    lease_margin_ticks: int = 2
    """Lease reads stop this many ticks before the election timeout runs out, to allow for
    clocks that run at slightly different rates."""
    max_apply_entries: int = 4096
    narrow_read_rounds: bool = True
    """Send a ReadIndex round's heartbeat only to the most responsive followers that make a
    quorum with the leader (plus any follower that asked for the read), not to everyone: the
    others do no work for the read. If one of those fails to answer, the next periodic
    heartbeat (to all) confirms the read instead, at most ``heartbeat_interval_ticks`` late."""
    unsafe: UnsafeSwitches = field(default_factory=UnsafeSwitches)

    def __post_init__(self) -> None:
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks:
            raise ValueError("election_timeout_ticks must exceed heartbeat_interval_ticks")
        if self.heartbeat_interval_ticks < 1 or self.max_entries_per_append < 1:
            raise ValueError("heartbeat_interval_ticks and max_entries_per_append must be >= 1")
        if self.max_inflight_appends < 1 or self.snapshot_chunk_bytes < 1:
            raise ValueError("max_inflight_appends and snapshot_chunk_bytes must be >= 1")
