"""The knobs of a gossip member, in ticks, with hashicorp/memberlist's proportions.

Theory of operation: a host ticks a :class:`~kvorum.core.gossip.node.GossipCore` at a fixed
rate (``tick_ms`` says how long a tick is, for the phi detector and for people); every period
here is a number of those ticks. The defaults suit a 10 ms tick: a probe every 100 ms with a
40 ms direct timeout, gossip every 20 ms to 3 members, push-pull every 500 ms — memberlist's
LAN settings scaled down about tenfold, so that simulations cover many protocol periods.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class GossipUnsafe:
    """TEST ONLY: switches that break a rule, to prove the simulator's checkers catch it."""

    ignore_refutations: bool = False
    """Never let a higher incarnation clear a suspicion or a death: a member that came back
    and refuted stays suspect or dead in this member's view."""


@dataclass(frozen=True, slots=True)
class GossipConfig:
    probe_interval_ticks: int = 10
    """One member is probed per interval (stretched by local health)."""
    probe_timeout_ticks: int = 4
    """Wait this long for a direct ack before asking relays (stretched by local health)."""
    indirect_checks: int = 3
    """Relays asked to probe a target that missed its direct ack (SWIM's k)."""
    gossip_interval_ticks: int = 2
    gossip_fanout: int = 3
    """Members each gossip round sends pending updates to."""
    gossip_to_dead_ticks: int = 100
    """Keep gossiping to a member this long after it was declared dead, so that it can learn
    it and refute if it is in fact alive."""
    retransmit_mult: int = 4
    """Each update is sent retransmit_mult * ceil(log10(N + 1)) times (SWIM's λ log N)."""
    max_updates_per_message: int = 16
    suspicion_mult: int = 4
    """The minimum suspicion timeout is suspicion_mult * log10(N) probe intervals; the
    suspicion needs suspicion_mult - 2 independent confirmations to shrink to it."""
    suspicion_max_timeout_mult: int = 6
    """A lone accuser's suspicion lasts this many times the minimum (Lifeguard)."""
    push_pull_interval_ticks: int = 50
    reconnect_interval_ticks: int = 20
    """Every this many ticks, push-pull with a random dead member (as Serf reconnects): how
    two sides of a healed partition that declared each other dead find each other again."""
    reap_dead_ticks: int = 6000
    """Stop trying to reconnect to a member dead this long."""
    join_retry_ticks: int = 10
    max_health_score: int = 8
    opinion_validity_probe_rounds: int = 3
    """A down-opinion counts for this many full probe rounds (N probe intervals each)."""
    tick_ms: float = 10.0
    """How long a tick is: the phi detector works in milliseconds."""
    phi_threshold: float = 8.0
    """A member whose probe failed (direct and indirect) is subjectively down for this
    member once the phi of its silence reaches this (φ 8: such a silence happens once in
    10^8 under the history of its acks)."""
    sdown_after_ticks: int = 150
    """For a member never acked yet (no history for phi): subjectively down after this much
    silence following a failed probe (Sentinel's down-after-milliseconds)."""
    unsafe: GossipUnsafe = field(default_factory=GossipUnsafe)

    def __post_init__(self) -> None:
        for name in (
            "probe_interval_ticks",
            "probe_timeout_ticks",
            "gossip_interval_ticks",
            "push_pull_interval_ticks",
            "reconnect_interval_ticks",
            "join_retry_ticks",
            "suspicion_max_timeout_mult",
            "retransmit_mult",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.probe_timeout_ticks >= self.probe_interval_ticks:
            raise ValueError("probe_timeout_ticks must be shorter than probe_interval_ticks")
