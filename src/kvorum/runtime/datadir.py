"""A node's data folder: held by one process at a time, and judged on start-up.

Theory of operation: two processes on one folder would interleave WAL appends, so a node holds
an exclusive ``flock`` on ``LOCK`` for as long as it runs (:class:`DataDirLock`); a second one
is refused with :class:`DataDirInUseError`.

:class:`EngineGuard` decides whether the state machine's store can be trusted after a restart.
A node runs LMDB without flushing at commit: the WAL already made every entry durable before
it was applied, so fsyncing LMDB too would double the disk work on the hot path. A process
crash loses nothing (the page cache outlives the process); an operating-system crash can leave
LMDB's file corrupt. So the guard records, while the node runs, the kernel's boot id and "not
shut down cleanly". At the next start, an unclean record from another boot (or an unknown one)
means the machine went down under us: the store is discarded and rebuilt from the snapshots
and the WAL, which hold everything.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


class DataDirInUseError(RuntimeError):
    """Another process holds this node's data folder."""


class DataDirLock:
    """An exclusive lock on a data folder, held until :meth:`release`."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = open(data_dir / "LOCK", "a+b")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise DataDirInUseError(f"{data_dir} is in use by another kvorum node") from None

    def release(self) -> None:
        self._file.close()


class EngineGuard:
    """Decides whether the state machine's store survived the last stop (module docstring)."""

    BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

    def __init__(self, data_dir: Path, store_dir: Path) -> None:
        self._file = data_dir / "engine-state.json"
        boot = self._boot_id()
        try:
            previous = json.loads(self._file.read_text())
        except (OSError, ValueError):
            previous = None
        if (
            previous is not None
            and not previous.get("clean")
            and (boot is None or previous.get("boot_id") != boot)
        ):
            log.warning(
                "%s: unclean shutdown across a reboot; rebuilding the state machine from the "
                "snapshots and the WAL",
                data_dir,
            )
            shutil.rmtree(store_dir, ignore_errors=True)
        self._boot = boot
        self._write(clean=False)

    def closed_cleanly(self) -> None:
        self._write(clean=True)

    def _write(self, clean: bool) -> None:
        tmp = self._file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"boot_id": self._boot, "clean": clean}, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self._file)

    @classmethod
    def _boot_id(cls) -> str | None:
        try:
            return cls.BOOT_ID.read_text().strip() or None
        except OSError:
            return None
