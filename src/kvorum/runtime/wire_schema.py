"""The protocols this build speaks between nodes: the wire schema every node process uses.

Theory of operation: :class:`~kvorum.runtime.codec.WireSchema` is generic; this module is
the one place that says which protocols a kvorum node carries and where their tag tables
live. Each table is declared beside its protocol's messages, numbered once and never
renumbered. A protocol joins the wire by adding its :class:`~kvorum.runtime.codec.WireProtocol`
here; the codec itself does not change, and the schema fingerprint every hello carries
changes with it, so nodes that do not speak the same protocols refuse each other at connect
time.
"""

from __future__ import annotations

from kvorum.core.raft.messages import RAFT_RETIRED_WIRE_TAGS, RAFT_WIRE_TAGS, HardState
from kvorum.core.shape import ProtocolId
from kvorum.host.messages import NODE_WIRE_TAGS
from kvorum.runtime.codec import WireProtocol, WireSchema

NODE_WIRE = WireProtocol(ProtocolId.NODE, NODE_WIRE_TAGS)
RAFT_WIRE = WireProtocol(
    ProtocolId.RAFT,
    RAFT_WIRE_TAGS,
    retired_tags=RAFT_RETIRED_WIRE_TAGS,
    standalone_records=(HardState,),
)

WIRE_SCHEMA = WireSchema((NODE_WIRE, RAFT_WIRE))
"""Every protocol a kvorum node speaks to its peers."""
