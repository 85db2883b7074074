"""Test-only switches that break the WAL on purpose, to prove that tests and checkers bite.

Theory of operation: never set in production. :data:`UNSAFE_DISABLE_TORN_TAIL_REPAIR` makes
recovery treat every bad batch as corruption (the behaviour of the issue's bug), so a test
can show that a torn write then stops a node. ``KVORUM_TEST_TEAR_WRITES=<n>`` in the
environment (read when a WAL opens) makes the process tear its n-th batch write the way a
power cut can: every 512-byte sector of the batch is written *except the first*, and then
the process kills itself with SIGKILL — so a real-process test can restart a node on a real
file system holding exactly the issue's torn batch.
"""

from __future__ import annotations

import os
import signal

from kvorum.storage.fs import File

UNSAFE_DISABLE_TORN_TAIL_REPAIR = False
"""TEST ONLY: refuse to open on a torn tail instead of cutting it."""

TEAR_WRITES_ENV = "KVORUM_TEST_TEAR_WRITES"
SECTOR_BYTES = 512


def tear_at_batch() -> int | None:
    """The batch write (1-based, counted from the WAL's opening) to tear, if the TEST ONLY
    environment switch asks for one."""
    value = os.environ.get(TEAR_WRITES_ENV)
    return int(value) if value else None


def tear_and_die(file: File, frame: bytes, offset: int) -> None:
    """TEST ONLY: write every sector of ``frame`` but its first (sectors of the file's
    offsets), last one first, then SIGKILL this process."""
    first_sector_end = offset - offset % SECTOR_BYTES + SECTOR_BYTES
    position = offset + len(frame)
    while position > first_sector_end:
        start = max(first_sector_end, position - position % SECTOR_BYTES)
        if start == position:
            start = position - SECTOR_BYTES
        file.pwrite(frame[start - offset : position - offset], start)
        position = start
    os.kill(os.getpid(), signal.SIGKILL)
