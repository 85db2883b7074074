"""A simulated disk with a page cache: what a power cut does to unsynced writes.

Theory of operation: :class:`SimFileSystem` keeps every file twice, as reads see it (the page
cache) and as the platter holds it (*durable*), plus the writes made since the last sync, in
order. ``fdatasync``/``fsync`` copy the cache to the platter. :meth:`SimFileSystem.crash` is
the power cut: each unsynced write, independently, reaches the platter whole, is lost, or is
*torn* — split at 512-byte sector boundaries (of the file's offsets), any subset of its sectors
lands, so a later part may be there while an earlier part is not (what Jepsen's LazyFS found
in real file systems). A lost or torn write that grew the file may still leave the file
grown, filled with zeros (the size reached the journal, the data did not). Then the cache is
dropped and reads see the platter. Everything is drawn from the ``random.Random`` passed in,
so a seed replays a run exactly.

Names live in directories, and a directory's changes (create, rename, unlink, mkdir) are
durable only once the directory is fsynced; at a crash a directory keeps a random prefix of
its unsynced changes (a journaling file system commits them in order), which may be none.

Faults, each switchable at any time: ``lying_fsync_rate`` (the chance an fsync returns
without syncing: the data meets its fate at the next crash), ``fsync_failure_rate`` (the
chance an fsync raises EIO; as in Linux, the unsynced writes meet their fate at once and the
cache keeps showing them, so a retried fsync "succeeds" on data that is gone),
``failing_fsyncs`` (the next n fsyncs fail that way, whatever the rate), ``capacity_bytes`` (a
write that would grow the files' total size past it writes what fits and raises ENOSPC), and
``crash_after_ops`` (raise :class:`SimulatedPowerCut` at the n-th mutating operation from now,
to crash in the middle of a multi-step update; the power then stays off — every later
mutating operation raises too, so no cleanup code runs on a dead machine — until
:meth:`SimFileSystem.crash`).
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SECTOR_BYTES = 512

KeepSector = Callable[[int, int, int], bool]
"""``keep(write_offset, write_length, sector_offset)``: whether that sector of an unsynced
write reaches the platter at a crash (a test's own choice instead of a random one)."""


class SimulatedPowerCut(Exception):
    """Raised by the operation ``crash_after_ops`` pointed at; call :meth:`crash` next."""


@dataclass(slots=True, eq=False)
class _Inode:
    data: bytearray = field(default_factory=bytearray)
    """What reads see."""
    durable: bytearray = field(default_factory=bytearray)
    """What a crash leaves."""
    pending: list[tuple[int, bytes | None]] = field(default_factory=list)
    """Writes since the last sync, in order: ``(offset, bytes)``, or ``(size, None)`` for a
    truncation."""
    links: int = 0


@dataclass(slots=True, eq=False)
class _Dir:
    entries: dict[str, _Inode | _Dir] = field(default_factory=dict)
    durable: dict[str, _Inode | _Dir] = field(default_factory=dict)
    pending: list[list[tuple[str, _Inode | _Dir | None]]] = field(default_factory=list)
    """Unsynced changes, each a list of (name, node or None to delete) applied together."""


def _apply(target: bytearray, offset: int, data: bytes) -> None:
    end = offset + len(data)
    if len(target) < end:
        target.extend(bytes(end - len(target)))
    target[offset:end] = data


class SimFile:
    """An open file of a :class:`SimFileSystem`."""

    __slots__ = ("_fs", "_generation", "_inode", "_writable")

    def __init__(self, fs: SimFileSystem, inode: _Inode, writable: bool) -> None:
        self._fs = fs
        self._inode = inode
        self._writable = writable
        self._generation = fs.generation

    def _check(self) -> _Inode:
        if self._generation != self._fs.generation:
            raise OSError(errno.EBADF, "file handle from before a simulated crash")
        return self._inode

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        inode = self._check()
        if not self._writable:
            raise OSError(errno.EBADF, "file opened read-only")
        self._fs._tick()
        self._fs._write(inode, offset, bytes(data))

    def pread(self, size: int, offset: int) -> bytes:
        return bytes(self._check().data[offset : offset + size])

    def size(self) -> int:
        return len(self._check().data)

    def fdatasync(self) -> None:
        self._fs._sync(self._check())

    def fsync(self) -> None:
        self._fs._sync(self._check())

    def close(self) -> None:
        pass


class SimFileSystem:
    """Files in memory that fail like a disk (see the module docstring)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lying_fsync_rate = 0.0
        self.fsync_failure_rate = 0.0
        self.failing_fsyncs = 0
        self.capacity_bytes: int | None = None
        self.crash_after_ops: int | None = None
        self.power_off = False
        """Set when ``crash_after_ops`` fired: the machine is dead until :meth:`crash`."""
        self.generation = 0
        """Bumped by every crash: handles opened before it stop working."""
        self.crashes = 0
        self._root = _Dir()
        self._inodes: list[_Inode] = []

    # --- faults ----------------------------------------------------------------------------

    def _tick(self) -> None:
        if self.power_off:
            raise SimulatedPowerCut("simulated power cut: the power is off")
        if self.crash_after_ops is not None:
            self.crash_after_ops -= 1
            if self.crash_after_ops <= 0:
                self.crash_after_ops = None
                self.power_off = True
                raise SimulatedPowerCut("simulated power cut")

    def _fsync_fails(self) -> bool:
        if self.failing_fsyncs > 0:
            self.failing_fsyncs -= 1
            return True
        return bool(self.fsync_failure_rate) and self.rng.random() < self.fsync_failure_rate

    def free_bytes(self, path: Path) -> int:
        """What is left under ``capacity_bytes`` (a very large number without a capacity)."""
        if self.capacity_bytes is None:
            return 1 << 62
        return max(0, self.capacity_bytes - self.used_bytes())

    def used_bytes(self) -> int:
        """The total size of every file that has a name (what ``capacity_bytes`` limits)."""
        return sum(len(i.data) for i in self._inodes if i.links > 0)

    def _write(self, inode: _Inode, offset: int, data: bytes) -> None:
        if self.capacity_bytes is not None:
            growth = max(0, offset + len(data) - len(inode.data))
            room = self.capacity_bytes - self.used_bytes()
            if growth > room:
                fits = max(0, len(inode.data) + room - offset)
                if fits:
                    inode.pending.append((offset, data[:fits]))
                    _apply(inode.data, offset, data[:fits])
                raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        inode.pending.append((offset, data))
        _apply(inode.data, offset, data)

    def _sync(self, inode: _Inode) -> None:
        self._tick()
        if self._fsync_fails():
            self._settle(inode, None)
            raise OSError(errno.EIO, "Input/output error (simulated fsync failure)")
        if self.lying_fsync_rate and self.rng.random() < self.lying_fsync_rate:
            return
        inode.durable = bytearray(inode.data)
        inode.pending.clear()

    def _settle(self, inode: _Inode, keep: KeepSector | None) -> None:
        """Decide the fate of every unsynced write of ``inode`` onto its platter copy."""
        rng = self.rng
        for offset, data in inode.pending:
            if data is None:
                if keep is not None or rng.random() < 0.5:
                    del inode.durable[offset:]
                continue
            end = offset + len(data)
            if keep is None:
                fate = rng.randrange(3)  # 0: whole, 1: lost, 2: torn
                if fate == 0:
                    _apply(inode.durable, offset, data)
                    continue
            else:
                fate = 2
            sector = offset - offset % SECTOR_BYTES
            while sector < end:
                start = max(sector, offset)
                stop = min(sector + SECTOR_BYTES, end)
                survives = keep(offset, len(data), sector) if keep else rng.random() < 0.5
                if survives and fate == 2:
                    _apply(inode.durable, start, data[start - offset : stop - offset])
                sector += SECTOR_BYTES
            if keep is None and len(inode.durable) < end and rng.random() < 0.5:
                inode.durable.extend(bytes(end - len(inode.durable)))
        inode.pending.clear()

    def crash(self, keep: KeepSector | None = None) -> None:
        """A power cut: unsynced writes meet their fate (``keep`` decides sector by sector
        instead of chance when given), unsynced directory changes keep a random prefix, the
        cache is dropped and open handles die."""
        self.crashes += 1
        self.generation += 1
        self.crash_after_ops = None
        self.power_off = False
        for inode in self._inodes:
            self._settle(inode, keep)
            inode.data = bytearray(inode.durable)
            inode.links = 0
        seen: set[int] = set()
        self._crash_dir(self._root, seen)
        self._inodes = [i for i in self._inodes if i.links > 0]

    def _crash_dir(self, directory: _Dir, seen: set[int]) -> None:
        if id(directory) in seen:
            return
        seen.add(id(directory))
        survivors = self.rng.randint(0, len(directory.pending)) if directory.pending else 0
        entries = dict(directory.durable)
        for change in directory.pending[:survivors]:
            for name, node in change:
                if node is None:
                    entries.pop(name, None)
                else:
                    entries[name] = node
        directory.entries = entries
        directory.durable = dict(entries)
        directory.pending = []
        for node in entries.values():
            if isinstance(node, _Dir):
                self._crash_dir(node, seen)
            else:
                node.links += 1

    # --- paths -----------------------------------------------------------------------------

    @staticmethod
    def _parts(path: Path) -> tuple[str, ...]:
        # Splitting the string is several times cheaper than parsing a PurePosixPath, and
        # every file operation resolves its path (a leader streaming a snapshot opens the
        # file once per chunk). Paths here are absolute and normalised by the callers.
        return tuple(p for p in str(path).split("/") if p and p != ".")

    def _node(self, path: Path) -> _Inode | _Dir | None:
        node: _Inode | _Dir | None = self._root
        for part in self._parts(path):
            if not isinstance(node, _Dir):
                return None
            node = node.entries.get(part)
        return node

    def _dir(self, path: Path) -> _Dir:
        node = self._node(path)
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory (simulated)", str(path))
        if not isinstance(node, _Dir):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory (simulated)", str(path))
        return node

    def _file(self, path: Path) -> _Inode:
        node = self._node(path)
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "no such file (simulated)", str(path))
        if isinstance(node, _Dir):
            raise IsADirectoryError(errno.EISDIR, "is a directory (simulated)", str(path))
        return node

    def _change(self, directory: _Dir, change: list[tuple[str, _Inode | _Dir | None]]) -> None:
        for name, node in change:
            old = directory.entries.pop(name, None)
            if isinstance(old, _Inode):
                old.links -= 1
            if node is not None:
                directory.entries[name] = node
                if isinstance(node, _Inode):
                    node.links += 1
        directory.pending.append(change)

    # --- the FileSystem interface ------------------------------------------------------------

    def open(self, path: Path, *, create: bool = False, truncate: bool = False) -> SimFile:
        node = self._node(path)
        if node is None:
            if not create:
                raise FileNotFoundError(errno.ENOENT, "no such file (simulated)", str(path))
            self._tick()
            parent = self._dir(Path(path).parent)
            node = _Inode()
            self._inodes.append(node)
            self._change(parent, [(Path(path).name, node)])
        inode = self._file(path)
        if truncate and inode.data:
            self._tick()
            inode.pending.append((0, None))
            inode.data = bytearray()
        return SimFile(self, inode, writable=True)

    def open_read(self, path: Path) -> SimFile:
        return SimFile(self, self._file(path), writable=False)

    def read_file(self, path: Path) -> bytes:
        return bytes(self._file(path).data)

    def file_size(self, path: Path) -> int:
        return len(self._file(path).data)

    def exists(self, path: Path) -> bool:
        return self._node(path) is not None

    def rename(self, source: Path, target: Path) -> None:
        node = self._file(source)
        self._tick()
        source_dir = self._dir(Path(source).parent)
        target_dir = self._dir(Path(target).parent)
        if source_dir is target_dir:
            self._change(source_dir, [(Path(source).name, None), (Path(target).name, node)])
        else:
            self._change(target_dir, [(Path(target).name, node)])
            self._change(source_dir, [(Path(source).name, None)])

    def unlink(self, path: Path, *, missing_ok: bool = False) -> None:
        node = self._node(path)
        if node is None and missing_ok:
            return
        self._file(path)
        self._tick()
        self._change(self._dir(Path(path).parent), [(Path(path).name, None)])

    def list_dir(self, path: Path) -> list[str]:
        return sorted(self._dir(path).entries)

    def make_dirs_durable(self, path: Path) -> None:
        parts = self._parts(path)
        directory = self._root
        for depth, part in enumerate(parts):
            node = directory.entries.get(part)
            if node is None:
                self._tick()
                node = _Dir()
                self._change(directory, [(part, node)])
                self.fsync_dir(Path("/", *parts[:depth]))
            if not isinstance(node, _Dir):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory (simulated)", part)
            directory = node

    def fsync_dir(self, path: Path) -> None:
        directory = self._dir(path)
        self._tick()
        if self._fsync_fails():
            raise OSError(errno.EIO, "Input/output error (simulated directory fsync failure)")
        if self.lying_fsync_rate and self.rng.random() < self.lying_fsync_rate:
            return
        directory.durable = dict(directory.entries)
        directory.pending = []

    # --- for tests ---------------------------------------------------------------------------

    def durable_bytes(self, path: Path) -> bytes:
        """What ``path`` would hold after a crash that lost every unsynced write."""
        return bytes(self._file(path).durable)

    def unsynced_writes(self, path: Path) -> int:
        return len(self._file(path).pending)
