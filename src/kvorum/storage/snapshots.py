"""Snapshot files: written atomically, checksummed, streamed in chunks, newest two kept.

Theory of operation. A snapshot is the state machine's bytes as of a log index, plus the Raft
metadata that goes with it (index, term, configuration). It is written to a temporary file
chunk by chunk (nothing is held whole in memory), fsynced, renamed to
``<index>-<term>.snap`` and the directory fsynced; only then does it exist. A crash before the
rename leaves a ``*.tmp`` file, which no reader looks at and the next open deletes.

File layout (little-endian)::

    MAGIC (8 bytes)
    chunk*          each: length:u32 | bytes          (the engine's chunks, boundaries kept)
    footer          msgpack [index, term, voters, learners, auto_promote, data_bytes, data_crc,
                    retired]
    footer_len:u32 | footer_crc:u32 | END_MAGIC (8 bytes)

``data_crc`` is the CRC32C of every chunk frame (lengths and bytes). Chunk boundaries are kept
because an engine may rely on them (each of the in-memory engine's chunks is one msgpack
object). The footer sits at the end because the checksum is only known after streaming.

All file I/O goes through a :class:`~kvorum.storage.fs.FileSystem` (the real one by default),
so the simulator runs the same code over a disk that fails. A store's directory is created
(durably) by its first write, so a node with thousands of groups that never snapshot pays
nothing for their stores.

Neither end of a transfer holds a snapshot in memory. A node sends from
:class:`SnapshotFileData`, which reads the slice it is asked for from the file. A node
receiving one writes each chunk to a :class:`SnapshotSpool` file as it arrives; the core keeps
:class:`SpooledChunk` views, and the finished snapshot is written from them with
:meth:`SnapshotStore.write` like any other.

Choice on a bad latest snapshot: :meth:`SnapshotStore.latest` raises
:class:`SnapshotCorruptionError` naming the file rather than falling back to the older one.
Falling back is sound only if the WAL still holds every entry between the two snapshots, and
the log store compacts the WAL as soon as a newer snapshot is durable, so the fallback would
almost never be possible and would be a rarely-run recovery path. A renamed snapshot was
fsynced whole, so a bad one means the disk lost acknowledged data: stop and let an operator
decide (wiping the node lets the leader send it a fresh snapshot). The older file is kept so
that operator has something to look at.
"""

from __future__ import annotations

import bisect
import re
import struct
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import crc32c
import msgpack

from kvorum.core.raft.messages import ConfState, SnapshotMeta, plain_slice
from kvorum.storage.fs import OS_FILE_SYSTEM, File, FileSystem

MAGIC = b"KVSNAP01"
END_MAGIC = b"KVSNPEND"
_CHUNK_LENGTH = struct.Struct("<I")
_TAIL = struct.Struct("<II8s")
"""footer length, footer CRC32C, end magic."""
_NAME = re.compile(r"^(\d{20})-(\d{20})\.snap$")
_TEMP_SUFFIX = ".tmp"
DEFAULT_KEEP = 2


class SnapshotCorruptionError(Exception):
    """A snapshot file fails its checksum or is malformed; ``path`` names it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"snapshot {path} is corrupt: {reason}")
        self.path = path
        self.reason = reason


def snapshot_name(index: int, term: int) -> str:
    """The file name of the snapshot at ``index`` taken in ``term`` (sorts by index)."""
    return f"{index:020d}-{term:020d}.snap"


def _encode_footer(meta: SnapshotMeta, data_bytes: int, data_crc: int) -> bytes:
    conf = meta.conf
    return msgpack.packb(
        [
            meta.index,
            meta.term,
            sorted(conf.voters),
            sorted(conf.learners),
            sorted(conf.auto_promote),
            data_bytes,
            data_crc,
            sorted(conf.retired),
        ]
    )


class _Writer:
    """Sequential writes into a :class:`File` (the snapshot is streamed front to back)."""

    __slots__ = ("file", "offset")

    def __init__(self, file: File) -> None:
        self.file = file
        self.offset = 0

    def write(self, data: bytes) -> None:
        self.file.pwrite(data, self.offset)
        self.offset += len(data)


class SnapshotStore:
    """The snapshots of one group, in one directory
    (:class:`kvorum.storage.contracts.SnapshotStore`).

    :meth:`write` may run on a background thread while the node's thread keeps using the
    rest of the store; it touches only its own temporary file until the final rename.
    """

    def __init__(
        self, directory: Path, *, keep: int = DEFAULT_KEEP, fs: FileSystem = OS_FILE_SYSTEM
    ) -> None:
        """Open the store; leftover temporary files from a crash are deleted. The directory is
        created by the first :meth:`write`."""
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self._dir = Path(directory)
        self._keep = keep
        self._fs = fs
        # Publishing (rename + prune) is serialised: a background write and an install may race.
        self._publish_lock = threading.Lock()
        leftovers = [n for n in self._names() if n.endswith(_TEMP_SUFFIX)]
        for name in leftovers:
            fs.unlink(self._dir / name, missing_ok=True)
        if leftovers:
            fs.fsync_dir(self._dir)

    def _names(self) -> list[str]:
        if not self._fs.exists(self._dir):
            return []
        return self._fs.list_dir(self._dir)

    @property
    def directory(self) -> Path:
        return self._dir

    def path_for(self, meta: SnapshotMeta) -> Path:
        return self._dir / snapshot_name(meta.index, meta.term)

    def files(self) -> list[Path]:
        """Published snapshot files, oldest (lowest index) first."""
        return [self._dir / n for n in self._names() if _NAME.match(n)]

    def has(self, meta: SnapshotMeta) -> bool:
        """Whether ``meta``'s file is published."""
        return self._fs.exists(self.path_for(meta))

    def write(self, meta: SnapshotMeta, chunks: Iterable[bytes]) -> None:
        """Stream ``chunks`` into a new snapshot for ``meta`` (at :meth:`path_for`); returns
        once it is durable.

        Then deletes all but the newest ``keep`` snapshots. If ``chunks`` raises, nothing is
        published.
        """
        if meta.index < 0 or meta.term < 0:
            raise ValueError(f"snapshot index and term must be >= 0, got {meta}")
        fs = self._fs
        fs.make_dirs_durable(self._dir)
        path = self.path_for(meta)
        temp = path.with_name(path.name + _TEMP_SUFFIX)
        file = fs.open(temp, create=True, truncate=True)
        try:
            out = _Writer(file)
            out.write(MAGIC)
            data_crc = 0
            data_bytes = 0
            for chunk in chunks:
                frame = _CHUNK_LENGTH.pack(len(chunk)) + chunk
                data_crc = crc32c.crc32c(frame, data_crc)
                data_bytes += len(frame)
                out.write(frame)
            footer = _encode_footer(meta, data_bytes, data_crc)
            out.write(footer + _TAIL.pack(len(footer), crc32c.crc32c(footer), END_MAGIC))
            file.fsync()
        except BaseException:
            file.close()
            fs.unlink(temp, missing_ok=True)
            raise
        file.close()
        with self._publish_lock:
            fs.rename(temp, path)
            fs.fsync_dir(self._dir)
            self._prune()

    def _prune(self) -> None:
        doomed = self.files()[: -self._keep]
        for old in doomed:
            self._fs.unlink(old, missing_ok=True)
        if doomed:
            self._fs.fsync_dir(self._dir)

    def read_meta(self, path: Path) -> tuple[SnapshotMeta, int, int]:
        """The metadata in ``path``'s footer, with the data's byte count and CRC32C.

        Raises :class:`SnapshotCorruptionError` if the footer is damaged or disagrees with
        the file name.
        """
        f = self._fs.open_read(path)
        try:
            size = f.size()
            if size < len(MAGIC) + _TAIL.size:
                raise SnapshotCorruptionError(path, f"only {size} bytes long")
            if f.pread(len(MAGIC), 0) != MAGIC:
                raise SnapshotCorruptionError(path, "bad magic at offset 0")
            footer_len, footer_crc, end_magic = _TAIL.unpack(
                f.pread(_TAIL.size, size - _TAIL.size)
            )
            if end_magic != END_MAGIC:
                raise SnapshotCorruptionError(path, "bad end magic")
            footer_at = size - _TAIL.size - footer_len
            if footer_at < len(MAGIC):
                raise SnapshotCorruptionError(path, f"impossible footer length {footer_len}")
            footer = f.pread(footer_len, footer_at)
        finally:
            f.close()
        if crc32c.crc32c(footer) != footer_crc:
            raise SnapshotCorruptionError(path, f"footer CRC mismatch at offset {footer_at}")
        fields = msgpack.unpackb(footer)
        # Retired ids were added as an eighth field; a seven-field footer has none.
        index, term, voters, learners, auto, data_bytes, data_crc = fields[:7]
        retired = fields[7] if len(fields) > 7 else []
        if data_bytes != footer_at - len(MAGIC):
            raise SnapshotCorruptionError(
                path, f"footer says {data_bytes} data bytes, file holds {footer_at - len(MAGIC)}"
            )
        if path.name != snapshot_name(index, term):
            raise SnapshotCorruptionError(path, f"footer says index {index} term {term}")
        conf = ConfState(
            frozenset(voters), frozenset(learners), frozenset(auto), frozenset(retired)
        )
        return SnapshotMeta(index=index, term=term, conf=conf), data_bytes, data_crc

    def verify(self, path: Path) -> SnapshotMeta:
        """Check ``path`` end to end (footer and data checksums) and return its metadata."""
        for _ in self._chunks(path):
            pass
        return self.read_meta(path)[0]

    def latest(self) -> SnapshotMeta | None:
        """The newest snapshot's metadata after verifying its whole content; None if there is
        no snapshot. Raises :class:`SnapshotCorruptionError` if the newest one is bad (see the
        module docstring for why there is no fallback)."""
        files = self.files()
        return self.verify(files[-1]) if files else None

    def chunks(self, meta: SnapshotMeta) -> Iterator[bytes]:
        """Stream the snapshot's chunks as written. The checksum is checked as the stream
        ends: a consumer must treat the data as unusable until the iterator is exhausted
        without :class:`SnapshotCorruptionError` (an engine restore in one transaction
        does exactly that)."""
        path = self.path_for(meta)
        if not self._fs.exists(path):
            raise FileNotFoundError(f"no snapshot file {path}")
        return self._chunks(path)

    read_chunks = chunks

    def data(self, meta: SnapshotMeta, *, verified: bool = True) -> SnapshotFileData:
        """The snapshot's data as a :class:`SnapshotFileData`. By default the file is not
        read through again: :meth:`latest` checks the newest at open and :meth:`write`
        checksums what it writes, so reading a large snapshot back at once (on the host's
        thread) would only repeat that. ``verified=False`` checks the whole file first."""
        path = self.path_for(meta)
        if not verified:
            self.verify(path)
        return SnapshotFileData(path, fs=self._fs)

    def _chunks(self, path: Path) -> Iterator[bytes]:
        _, data_bytes, data_crc = self.read_meta(path)
        crc = 0
        f = self._fs.open_read(path)
        try:
            offset = len(MAGIC)
            remaining = data_bytes
            while remaining:
                if remaining < _CHUNK_LENGTH.size:
                    raise SnapshotCorruptionError(path, f"truncated chunk at offset {offset}")
                head = f.pread(_CHUNK_LENGTH.size, offset)
                (length,) = _CHUNK_LENGTH.unpack(head)
                if length > remaining - _CHUNK_LENGTH.size:
                    raise SnapshotCorruptionError(
                        path, f"chunk length {length} at offset {offset} overruns the data"
                    )
                chunk = f.pread(length, offset + _CHUNK_LENGTH.size)
                crc = crc32c.crc32c(chunk, crc32c.crc32c(head, crc))
                offset += _CHUNK_LENGTH.size + length
                remaining -= _CHUNK_LENGTH.size + length
                if remaining == 0 and crc != data_crc:
                    raise SnapshotCorruptionError(path, "data CRC mismatch")
                yield chunk
        finally:
            f.close()
        if data_bytes == 0 and crc != data_crc:
            raise SnapshotCorruptionError(path, "data CRC mismatch")


class SnapshotFileData:
    """A snapshot's data — its chunks' bytes, concatenated, as a leader sends them — read
    from the file on demand (:class:`kvorum.core.raft.messages.SnapshotData`).

    Opening notes where each chunk's bytes sit in the file (a few numbers per MiB of data);
    a slice then reads just the bytes it covers, so a node holding its newest snapshot to
    send to lagging followers keeps no copy of the data set in memory. The file must
    stay until the holder lets go: the store keeps the newest two snapshots, and the node
    drops a snapshot for a newer one before that one's file can be pruned.
    """

    def __init__(self, path: Path, *, fs: FileSystem = OS_FILE_SYSTEM) -> None:
        self.path = path
        self._fs = fs
        self._starts: list[int] = []
        """Offset in the data of each chunk's first byte."""
        self._file_offsets: list[int] = []
        """Where each chunk's bytes begin in the file."""
        position = len(MAGIC)
        total = 0
        f = fs.open_read(path)
        try:
            data_end = f.size() - _TAIL.size
            footer_len = _TAIL.unpack(f.pread(_TAIL.size, data_end))[0]
            data_end -= footer_len
            while position < data_end:
                (length,) = _CHUNK_LENGTH.unpack(f.pread(_CHUNK_LENGTH.size, position))
                self._starts.append(total)
                self._file_offsets.append(position + _CHUNK_LENGTH.size)
                total += length
                position += _CHUNK_LENGTH.size + length
        finally:
            f.close()
        self._size = total

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, part: slice, /) -> bytes:
        start, stop = plain_slice(part, self._size)
        if start == stop:
            return b""
        pieces: list[bytes] = []
        f = self._fs.open_read(self.path)
        try:
            i = bisect.bisect_right(self._starts, start) - 1
            while start < stop:
                chunk_end = self._starts[i + 1] if i + 1 < len(self._starts) else self._size
                take = min(stop, chunk_end) - start
                at = self._file_offsets[i] + start - self._starts[i]
                piece = f.pread(take, at)
                if len(piece) != take:
                    raise SnapshotCorruptionError(self.path, f"short read at offset {at}")
                pieces.append(piece)
                start += take
                i += 1
        finally:
            f.close()
        return b"".join(pieces)


class SnapshotSpool:
    """Chunks of snapshots being received, written to ``incoming-<index>-<term>.part`` files
    as they arrive, so a follower catching up holds none of the data in memory.

    A chunk is written at its own offset (a chunk sent again lands on the same bytes), and
    what comes back is a :class:`SpooledChunk` reading those bytes from the file. Nothing is
    fsynced: a spool only feeds :meth:`SnapshotStore.write`, which makes the snapshot durable;
    after a crash the leader sends the snapshot again, and the next start clears the spool.
    """

    def __init__(self, directory: Path, *, fs: FileSystem = OS_FILE_SYSTEM) -> None:
        self._dir = Path(directory)
        self._fs = fs
        fs.make_dirs_durable(self._dir)
        self.clear()

    def path_for(self, meta: SnapshotMeta) -> Path:
        return self._dir / f"incoming-{meta.index:020d}-{meta.term:020d}.part"

    def store(self, meta: SnapshotMeta, offset: int, data: bytes) -> SpooledChunk:
        path = self.path_for(meta)
        f = self._fs.open(path, create=True)
        try:
            f.pwrite(data, offset)
        finally:
            f.close()
        return SpooledChunk(path, offset, len(data), fs=self._fs)

    def clear(self, through_index: int | None = None) -> None:
        """Delete spooled snapshots (only those at or below ``through_index`` if given)."""
        for name in self._fs.list_dir(self._dir):
            if not (name.startswith("incoming-") and name.endswith(".part")):
                continue
            if through_index is None or int(name.split("-")[1]) <= through_index:
                self._fs.unlink(self._dir / name, missing_ok=True)


class SpooledChunk:
    """One received chunk's bytes, read back from the spool file on demand."""

    __slots__ = ("_fs", "length", "offset", "path")

    def __init__(
        self, path: Path, offset: int, length: int, *, fs: FileSystem = OS_FILE_SYSTEM
    ) -> None:
        self.path = path
        self.offset = offset
        self.length = length
        self._fs = fs

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, part: slice, /) -> bytes:
        start, stop = plain_slice(part, self.length)
        if start == stop:
            return b""
        f = self._fs.open_read(self.path)
        try:
            data = f.pread(stop - start, self.offset + start)
        finally:
            f.close()
        if len(data) != stop - start:
            raise SnapshotCorruptionError(self.path, f"short read at {self.offset + start}")
        return data
