"""A CASPaxos node's durable acceptor state on its simulated disk: a checksummed record log.

Theory of operation: everything an acceptor must not forget — each key's ``min_n``,
``accept_n`` and accepted register, and the proposer's reserved round — is appended as
records to one file, ``paxos/acceptors.log``, and fdatasynced before the round's replies are
sent (:meth:`AcceptorStore.write`). A record is ``length (u32) | crc32 (u32) | payload``; the
payload is ``S`` + :func:`~kvorum.core.paxos.encode_slot` or ``R`` + the round (u64). The newest
record of a key wins. Opening reads the records in order and stops at the first that is cut
short or fails its checksum: only writes that were never synced (and so never acknowledged)
can be damaged — a power cut tears them sector by sector — so everything after that point is
unacknowledged and is cut off (the file is truncated there and synced) before new records
are appended. The cut is counted and reported, never silent. A write the disk has no room
for raises :class:`~kvorum.storage.contracts.DiskFullError`; the next attempt rewrites the
same bytes at the same offset. Old records are never compacted: simulated runs are short
(compaction is the real host's job).
"""

from __future__ import annotations

import errno
import struct
import zlib
from pathlib import Path

from kvorum.core.paxos import SlotState, decode_slot, encode_slot
from kvorum.sim.disk import SimFileSystem
from kvorum.storage.contracts import DiskFullError

DIRECTORY = Path("/paxos")
LOG = DIRECTORY / "acceptors.log"
_HEAD = struct.Struct("<II")
_ROUND = struct.Struct("<Q")


class AcceptorStore:
    """One node's acceptor records on its :class:`SimFileSystem` (see the module docstring)."""

    def __init__(self, fs: SimFileSystem) -> None:
        self.fs = fs
        self.slots: dict[str, SlotState] = {}
        self.durable_round = 0
        self.cut_bytes = 0
        """How many bytes of torn tail the last :meth:`open` cut off."""
        self._end = 0

    def open(self) -> None:
        """Load what the disk holds (cutting a torn tail); raises ``OSError`` if the disk
        does not let it."""
        self.slots = {}
        self.durable_round = 0
        self.cut_bytes = 0
        fs = self.fs
        fs.make_dirs_durable(DIRECTORY)
        if not fs.exists(LOG):
            fs.open(LOG, create=True).close()
            fs.fsync_dir(DIRECTORY)
        data = fs.read_file(LOG)
        pos = 0
        while pos + _HEAD.size <= len(data):
            length, crc = _HEAD.unpack_from(data, pos)
            payload = data[pos + _HEAD.size : pos + _HEAD.size + length]
            if length == 0 or len(payload) < length or zlib.crc32(payload) != crc:
                break
            self._load(payload)
            pos += _HEAD.size + length
        self._end = pos
        if any(data[pos:]):  # zeros are what an earlier cut left: nothing to cut
            self.cut_bytes = len(data) - pos
            f = fs.open(LOG)
            try:
                f.pwrite(bytes(len(data) - pos), pos)  # zeros: never a valid record
                f.fdatasync()
            finally:
                f.close()

    def _load(self, payload: bytes) -> None:
        if payload[:1] == b"S":
            key, slot = decode_slot(payload[1:])
            self.slots[key] = slot
        elif payload[:1] == b"R":
            (self.durable_round,) = _ROUND.unpack(payload[1:])
        else:
            raise ValueError(f"unknown acceptor record type {payload[:1]!r}")

    def write(self, writes: dict[str, SlotState], round_reserved: int | None) -> None:
        """Append and fdatasync; durable when it returns."""
        payloads = [b"S" + encode_slot(key, slot) for key, slot in writes.items()]
        if round_reserved is not None:
            payloads.append(b"R" + _ROUND.pack(round_reserved))
        if not payloads:
            return
        blob = b"".join(_HEAD.pack(len(p), zlib.crc32(p)) + p for p in payloads)
        f = self.fs.open(LOG)
        try:
            try:
                f.pwrite(blob, self._end)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise DiskFullError(errno.ENOSPC, "no room for acceptor records") from exc
                raise
            f.fdatasync()
        finally:
            f.close()
        self._end += len(blob)
        self.slots.update(writes)
        if round_reserved is not None:
            self.durable_round = round_reserved
