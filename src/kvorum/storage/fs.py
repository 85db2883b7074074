"""The file-system operations storage performs, as a small interface a simulator can fault.

Theory of operation: the WAL, the snapshot store and the snapshot spool touch files only
through a :class:`FileSystem` handed to them (default :class:`OsFileSystem`, the real one), so
the same code runs over :class:`kvorum.sim.disk.SimFileSystem`, which loses, tears and
refuses writes the way a disk does on a power cut. The interface is what POSIX durability
needs and no more: positional reads and writes on an open :class:`File`, ``fdatasync`` and
``fsync`` of a file's contents, and — because a file's *name* is directory data that
survives a crash only after the directory itself is fsynced — create, rename and unlink
paired with :meth:`FileSystem.fsync_dir`. Every write writes all its bytes or raises
(``os.pwrite`` may stop short; :class:`OsFile` loops); after a raise a prefix of them may
have been written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


class File(Protocol):
    """An open file: positional I/O and syncing. Not shared between threads."""

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        """Write every byte of ``data`` at ``offset`` (raises OSError, ENOSPC included)."""

    def pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes from ``offset`` (fewer only at the end of the file)."""

    def size(self) -> int: ...

    def fdatasync(self) -> None:
        """Make the written data (and the file's size) durable."""

    def fsync(self) -> None:
        """Make the data and all of the file's metadata durable."""

    def close(self) -> None: ...


class FileSystem(Protocol):
    """Files and directories by path (see the module docstring)."""

    def open(self, path: Path, *, create: bool = False, truncate: bool = False) -> File:
        """Open ``path`` for reading and writing; FileNotFoundError unless it exists or
        ``create``. A created name is durable only after :meth:`fsync_dir` of its parent."""

    def open_read(self, path: Path) -> File:
        """Open ``path`` for reading only."""

    def read_file(self, path: Path) -> bytes:
        """The whole content of ``path``."""

    def file_size(self, path: Path) -> int: ...

    def exists(self, path: Path) -> bool: ...

    def rename(self, source: Path, target: Path) -> None:
        """Atomically replace ``target`` by ``source`` (durable after :meth:`fsync_dir`)."""

    def unlink(self, path: Path, *, missing_ok: bool = False) -> None: ...

    def list_dir(self, path: Path) -> list[str]:
        """The names in directory ``path``, sorted; FileNotFoundError if it is missing."""

    def make_dirs_durable(self, path: Path) -> None:
        """Create ``path`` and missing parents, fsyncing each new name into its parent, so
        files later made durable inside cannot vanish with the directory."""

    def free_bytes(self, path: Path) -> int:
        """Bytes still free to an unprivileged writer on the file system holding ``path``."""
        ...

    def fsync_dir(self, path: Path) -> None:
        """Make the directory's entries (created, renamed, deleted names) durable."""


class OsFile:
    """A real file descriptor."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            offset += written
            view = view[written:]

    def pread(self, size: int, offset: int) -> bytes:
        parts: list[bytes] = []
        while size > 0:
            part = os.pread(self._fd, size, offset)
            if not part:
                break
            parts.append(part)
            size -= len(part)
            offset += len(part)
        return b"".join(parts)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def fdatasync(self) -> None:
        os.fdatasync(self._fd)

    def fsync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsFileSystem:
    """The real file system (plain ``os`` calls)."""

    def open(self, path: Path, *, create: bool = False, truncate: bool = False) -> OsFile:
        flags = os.O_RDWR | (os.O_CREAT if create else 0) | (os.O_TRUNC if truncate else 0)
        return OsFile(os.open(path, flags, 0o644))

    def open_read(self, path: Path) -> OsFile:
        return OsFile(os.open(path, os.O_RDONLY))

    def read_file(self, path: Path) -> bytes:
        return Path(path).read_bytes()

    def file_size(self, path: Path) -> int:
        return os.stat(path).st_size

    def exists(self, path: Path) -> bool:
        return os.path.exists(path)

    def rename(self, source: Path, target: Path) -> None:
        os.rename(source, target)

    def unlink(self, path: Path, *, missing_ok: bool = False) -> None:
        Path(path).unlink(missing_ok=missing_ok)

    def list_dir(self, path: Path) -> list[str]:
        return sorted(os.listdir(path))

    def make_dirs_durable(self, path: Path) -> None:
        missing: list[Path] = []
        current = Path(path)
        while not current.exists():
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):
            directory.mkdir(exist_ok=True)
            self.fsync_dir(directory.parent)

    def free_bytes(self, path: Path) -> int:
        flag = os.environ.get(DISK_FULL_FLAG_ENV)
        if flag and os.path.exists(flag):
            return 0  # TEST ONLY: the switch says the disk is full
        stat = os.statvfs(path)
        return stat.f_bavail * stat.f_frsize

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


OS_FILE_SYSTEM = OsFileSystem()

DISK_FULL_FLAG_ENV = "KVORUM_TEST_DISK_FULL_FLAG"
"""TEST ONLY: names a file; while it exists, :meth:`OsFileSystem.free_bytes` reports a full
disk, so a real-process test can run a node out of space and give the space back."""
"""The default file system of every storage class."""
