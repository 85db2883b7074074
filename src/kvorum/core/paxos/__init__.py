"""Paxos as pure state machines: the seed's Basic Paxos, and a CASPaxos keyspace.

Where things are: ``ballot`` (proposal numbers, unique and increasing, and the reservation
that keeps a restarted proposer from reusing one), ``acceptor`` (the acceptor's two rules,
shared by both cores), ``basic_messages`` and ``basic`` (single-decree Paxos with proposers,
acceptors and learners, back-off and a distinguished proposer), ``changes`` (CASPaxos's
register and its five change operations), ``cas_messages`` and ``cas`` (the CASPaxos core:
one per node and group, every key its own register), ``codec`` (bytes for what an acceptor
persists). Both cores have the shape of :mod:`kvorum.core.shape`.
"""

from kvorum.core.paxos.acceptor import AcceptorState
from kvorum.core.paxos.ballot import ZERO_BALLOT, Ballot
from kvorum.core.paxos.basic import (
    BasicConfig,
    BasicPaxosCore,
    Outcome,
    PaxosReady,
    UnsafeSwitches,
)
from kvorum.core.paxos.cas import CasConfig, CasPaxosCore, CasReady, CasResult, SlotState
from kvorum.core.paxos.changes import (
    Change,
    CompareAndSet,
    Delete,
    Get,
    Increment,
    Register,
    Set,
)
from kvorum.core.paxos.codec import decode_slot, encode_slot

__all__ = [
    "ZERO_BALLOT",
    "AcceptorState",
    "Ballot",
    "BasicConfig",
    "BasicPaxosCore",
    "CasConfig",
    "CasPaxosCore",
    "CasReady",
    "CasResult",
    "Change",
    "CompareAndSet",
    "Delete",
    "Get",
    "Increment",
    "Outcome",
    "PaxosReady",
    "Register",
    "Set",
    "SlotState",
    "UnsafeSwitches",
    "decode_slot",
    "encode_slot",
]
