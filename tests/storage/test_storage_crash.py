"""kill -9 a real writer mid-stream: every save it acknowledged must be there after recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kvorum.storage import open_store

# The child saves batches of 1..40 entries (a few KiB each, so segments roll over) and prints
# "ack <last index>" only after save() returned, i.e. after the fdatasync.
WRITER = textwrap.dedent(
    """
    import random, sys
    from pathlib import Path
    from kvorum.core.raft.messages import Entry, HardState
    from kvorum.storage import open_store

    store = open_store(Path(sys.argv[1]), segment_bytes=256 * 1024, block_bytes=16 * 1024)
    rng = random.Random(int(sys.argv[2]))
    index = store.last_index
    while True:
        count = rng.randint(1, 40)
        batch = [
            Entry(term=1, index=i, data=(b"%d:" % i) * rng.randint(1, 400))
            for i in range(index + 1, index + 1 + count)
        ]
        store.save(HardState(term=1, vote=1, commit=index), batch)
        index += count
        print("ack", index, flush=True)
    """
)


def expected_data(index: int, data: bytes) -> bool:
    unit = b"%d:" % index
    return len(data) > 0 and len(data) % len(unit) == 0 and data == unit * (len(data) // len(unit))


@pytest.mark.parametrize("seed", [1, 2])
def test_every_acknowledged_entry_survives_kill_9(tmp_path: Path, seed: int) -> None:
    acked = 0
    for round_number in range(2):  # crash, recover, write more, crash again
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(seed * 10 + round_number)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        target = acked + 1500 + 700 * seed
        for line in child.stdout:
            acked = max(acked, int(line.split()[1]))
            if acked >= target:
                break
        os.kill(child.pid, signal.SIGKILL)
        rest, errors = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, errors
        for line in rest.splitlines():  # acks printed before the kill landed
            acked = max(acked, int(line.split()[1]))
        store = open_store(tmp_path, segment_bytes=256 * 1024, block_bytes=16 * 1024)
        assert store.last_index >= acked
        entries = store.entries(1, store.last_index + 1)
        assert [e.index for e in entries] == list(range(1, store.last_index + 1))
        assert all(expected_data(e.index, e.data) for e in entries)
        assert len(list((tmp_path / "wal").glob("*.wal"))) > 1
        store.close()
