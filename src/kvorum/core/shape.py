"""The one shape every protocol core has, so one simulator and one runtime drive them all.

A core is fed inputs and drained of outputs::

    core.step(msg)            # a message from a peer (or a timer fed back as a message)
    core.tick()               # one unit of logical time has passed
    ...local requests...      # protocol-specific: propose, read_index, prepare, ...
    if core.has_ready():
        rd = core.ready()     # what to persist, then send, then apply
        driver persists rd (fsync), then sends rd.messages, then applies rd's outputs
        core.advance(rd)      # the core learns that rd was carried out

The base :class:`Ready` holds only what every protocol has: messages. Each protocol extends it
with what it needs to persist and to hand to the application (Raft: hard state, entries,
snapshot, committed entries, read states). The invariant that the drivers keep for every core:
*nothing in ``rd.messages`` leaves the node before everything ``rd`` asks to persist is
durable*. A core may also hand out messages it has proven safe to send earlier in a field of
its own (Raft's ``early_messages``: a leader's appends, thesis §10.2.1); a driver that does
not care sends them with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

NodeId = int
"""Nodes are named by small integers inside cores; drivers map them to addresses."""


@dataclass(slots=True)
class Ready:
    """Outputs common to every core: messages to send once the rest is durable."""

    messages: list[Any] = field(default_factory=list)


ReadyT = TypeVar("ReadyT", bound=Ready)
ReadyT_co = TypeVar("ReadyT_co", bound=Ready, covariant=True)


class Core(Protocol[ReadyT]):
    """What a driver (simulator or runtime) needs from any protocol core."""

    @property
    def node_id(self) -> NodeId: ...

    def step(self, msg: Any) -> None:
        """Feed one message addressed to this node."""

    def tick(self) -> None:
        """Advance logical time by one tick."""

    def has_ready(self) -> bool:
        """Whether :meth:`ready` would return anything worth doing."""

    def ready(self) -> ReadyT:
        """Collect outputs; the driver must carry them out and then call :meth:`advance`."""

    def advance(self, ready: ReadyT) -> None:
        """Tell the core that ``ready`` was persisted, sent and applied."""
