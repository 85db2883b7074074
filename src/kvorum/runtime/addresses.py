"""Where every member of the cluster listens: the node's address book.

Theory of operation: a node starts knowing the addresses its configuration gives (the initial
members, or the peers named on the command line). A server added later announces its
addresses inside the membership change that adds it (the ``context`` of its ADD_LEARNER
entry), so every member learns them by appending that entry. Membership entries may later be
compacted into a snapshot, which keeps only node ids, so every address learnt is also written
to ``addresses.json`` in the data folder (atomically: written aside, then renamed) and read
back at start-up. Listeners are told of each new address so the transport can dial it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kvorum.core.raft import ConfChange, ConfChangeKind


@dataclass(frozen=True, slots=True)
class PeerAddress:
    raft: str
    """host:port peers use for node-to-node traffic."""
    client: str
    """host:port Redis clients use."""


class AddressBook:
    """Every known member's addresses, persisted in ``addresses.json``."""

    def __init__(self, data_dir: Path, initial: Mapping[int, PeerAddress]) -> None:
        self._file = data_dir / "addresses.json"
        self.addresses: dict[int, PeerAddress] = dict(initial)
        if self._file.exists():
            for key, (raft, client) in json.loads(self._file.read_text()).items():
                self.addresses.setdefault(int(key), PeerAddress(raft, client))
        self.on_new: list[Callable[[int, PeerAddress], None]] = []

    def get(self, node_id: int) -> PeerAddress | None:
        return self.addresses.get(node_id)

    def learn_from(self, change: ConfChange) -> None:
        """Take the addresses a membership change carries (an ADD_LEARNER's context)."""
        if change.kind is ConfChangeKind.ADD_LEARNER and change.context:
            info = json.loads(change.context)
            self.set(change.node_id, PeerAddress(info["raft"], info["client"]))

    def set(self, node_id: int, address: PeerAddress) -> None:
        if self.addresses.get(node_id) == address:
            return
        self.addresses[node_id] = address
        book = {str(i): [a.raft, a.client] for i, a in sorted(self.addresses.items())}
        tmp = self._file.with_name(self._file.name + ".tmp")
        tmp.write_text(json.dumps(book))
        tmp.replace(self._file)
        for listener in self.on_new:
            listener(node_id, address)
