"""kill -9 a real writer mid-stream: every sync it acknowledged must be there after recovery,
for every group of the shared log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kvorum.storage.node_log import DurableNodeLog

GROUPS = 3
# The child stages batches of 1..40 entries (a few KiB each, so segments roll over) in one
# group at a time, several groups per sync, and prints "ack <group> <last index>" for every
# group it staged only after sync() returned, i.e. after the fdatasync.
WRITER = textwrap.dedent(
    """
    import random, sys
    from pathlib import Path
    from kvorum.core.raft.messages import Entry, HardState
    from kvorum.storage.node_log import DurableNodeLog

    GROUPS = 3
    log = DurableNodeLog(Path(sys.argv[1]), segment_bytes=256 * 1024, block_bytes=16 * 1024)
    for g in range(GROUPS):
        if g not in log.group_ids():
            log.create_group(g)
    rng = random.Random(int(sys.argv[2]))
    index = {g: log.group(g).last_index for g in range(GROUPS)}
    while True:
        staged = rng.sample(range(GROUPS), rng.randint(1, GROUPS))
        for g in staged:
            count = rng.randint(1, 40)
            batch = [
                Entry(term=1, index=i, data=(b"%d:" % i) * rng.randint(1, 400))
                for i in range(index[g] + 1, index[g] + 1 + count)
            ]
            log.group(g).stage(HardState(term=1, vote=1, commit=index[g]), batch)
            index[g] += count
        log.sync()
        for g in staged:
            print("ack", g, index[g], flush=True)
    """
)


def expected_data(index: int, data: bytes) -> bool:
    unit = b"%d:" % index
    return len(data) > 0 and len(data) % len(unit) == 0 and data == unit * (len(data) // len(unit))


@pytest.mark.parametrize("seed", [1, 2])
def test_every_acknowledged_entry_survives_kill_9(tmp_path: Path, seed: int) -> None:
    acked = dict.fromkeys(range(GROUPS), 0)
    for round_number in range(2):  # crash, recover, write more, crash again
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(seed * 10 + round_number)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        target = sum(acked.values()) + 1500 + 700 * seed
        for line in child.stdout:
            _, group, index = line.split()
            acked[int(group)] = max(acked[int(group)], int(index))
            if sum(acked.values()) >= target:
                break
        os.kill(child.pid, signal.SIGKILL)
        rest, errors = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, errors
        for line in rest.splitlines():  # acks printed before the kill landed
            _, group, index = line.split()
            acked[int(group)] = max(acked[int(group)], int(index))
        log = DurableNodeLog(tmp_path, segment_bytes=256 * 1024, block_bytes=16 * 1024)
        for g in range(GROUPS):
            group_log = log.group(g)
            assert group_log.last_index >= acked[g]
            entries = group_log.entries(1, group_log.last_index + 1)
            assert [e.index for e in entries] == list(range(1, group_log.last_index + 1))
            assert all(expected_data(e.index, e.data) for e in entries)
        assert len(list((tmp_path / "wal").glob("*.wal"))) > 1
        log.close()
