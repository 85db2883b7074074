"""Small file-system helpers shared by the WAL and the snapshot store.

Theory of operation: POSIX only promises that a file's *contents* survive a crash after
``fsync``/``fdatasync`` on the file; the *name* of a newly created, renamed or deleted file is
directory data and survives only after an ``fsync`` of the directory. Every place in
``kvorum.storage`` that creates, renames or deletes a file therefore ends with
:func:`fsync_dir`. Writes go through :func:`write_all` because ``os.write`` may write less
than it was given.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (created, renamed, deleted names) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray | memoryview, offset: int | None = None) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may stop short): at the file
    position, or at ``offset`` (``os.pwrite``) when it is given."""
    view = memoryview(data)
    while view:
        if offset is None:
            written = os.write(fd, view)
        else:
            written = os.pwrite(fd, view, offset)
            offset += written
        view = view[written:]


def make_dirs_durable(directory: Path) -> None:
    """Create ``directory`` and any missing parents, fsyncing each new name into its parent,
    so that files later made durable inside it cannot vanish with the directory."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        fsync_dir(path.parent)
