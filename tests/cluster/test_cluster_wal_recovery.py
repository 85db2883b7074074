"""WAL damage on a real node's disk: a torn tail is repaired on start, mid-log corruption stops
the node with the file and offset.

Theory of operation: one module fixture runs a one-node cluster (it elects itself, so every
write is fsynced into its own WAL), writes a few dozen keys one SET per entry, and kill -9s it.
Each test copies that node's Raft storage — not its key-value engine, so every value must be
rebuilt from the log — damages the copy's last WAL segment in one precise way (found with the
harness's record walker, so the test knows the byte offsets involved), and starts a real node
on it.

A torn tail must be cut off exactly at the first bad byte: the node starts, says it repaired
the tail, serves every key, and appends after the cut — which a second start proves, since
appending *after* leftover garbage would turn that garbage into mid-log corruption. Damage
followed by valid records must instead stop the node (exit code not 0) with a message naming
the segment and the byte offset where the damaged record starts.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from cluster_harness import (
    Cluster,
    entry_set_keys,
    missing_or_wrong,
    single_node,
    wal_records,
    wal_segments,
)

from kvorum.storage.wal import RECORD_HEADER, RecordType, encode_record

KEY_COUNT = 30
REPAIR_MESSAGE = "repaired a torn WAL tail"


@dataclass(frozen=True)
class CrashedNode:
    data_dir: Path
    expected: dict[str, str]


@pytest.fixture(scope="module")
def crashed_node(tmp_path_factory: pytest.TempPathFactory) -> CrashedNode:
    root = tmp_path_factory.mktemp("crashed")
    expected = {f"key{n}": f"value{n}" for n in range(KEY_COUNT)}
    with single_node(root) as cluster:
        with cluster.client(1) as client:
            for key, value in expected.items():
                assert client.set(key, value)
        cluster.kill(1)
    return CrashedNode(cluster.data_dir(1), expected)


def _restore(crashed: CrashedNode, cluster: Cluster) -> Path:
    """Copy the crashed node's Raft storage into ``cluster``'s node 1; return its last WAL
    segment.

    The key-value engine is left behind on purpose: the node must rebuild every value by
    replaying the WAL, so reading the keys back tests the log, not LMDB's copy of them.
    """
    shutil.copytree(crashed.data_dir / "raft", cluster.data_dir(1) / "raft")
    return wal_segments(cluster.data_dir(1))[-1]


@pytest.mark.parametrize("damage", ["last-record-cut-in-half", "half-record-appended",
                                    "zeros-appended"])
def test_a_torn_wal_tail_is_cut_off_on_start(
    crashed_node: CrashedNode, tmp_path: Path, damage: str
) -> None:
    with Cluster(tmp_path, 1) as cluster:
        segment = _restore(crashed_node, cluster)
        original = segment.read_bytes()
        records = wal_records(segment)
        expected = dict(crashed_node.expected)
        records_end = records[-1].end  # zeros follow: the file is filled ahead
        if damage == "last-record-cut-in-half":
            last = records[-1]
            intact_bytes = last.offset
            with open(segment, "r+b") as f:
                f.truncate(last.offset + (last.end - last.offset) // 2)
            for key in entry_set_keys(last):  # its write is allowed to be lost with it
                expected.pop(key)
        elif damage == "half-record-appended":
            intact_bytes = records_end
            frame = encode_record(RecordType.ENTRY, b"\x94\x01\x63\x00\xc4\x20" + b"x" * 32)
            half = frame[: len(frame) // 2]
            segment.write_bytes(original[:records_end] + half + original[records_end + len(half) :])
        else:
            # The file grew but the data never came: zeros, which end a log anyway.
            intact_bytes = records_end
            segment.write_bytes(original + bytes(4096))

        cluster.start(1)
        cluster.wait_ready(1)
        cluster.wait_for_leader([1])
        repairs = 0 if damage == "zeros-appended" else 1
        assert cluster.log_text(1).count(REPAIR_MESSAGE) == repairs
        with cluster.client(1) as client:
            assert missing_or_wrong(client, expected) == {}
            for n in range(10):
                assert client.set(f"after{n}", str(n))
                expected[f"after{n}"] = str(n)
        assert cluster.stop(1) == 0

        repaired = segment.read_bytes()
        assert repaired[:intact_bytes] == original[:intact_bytes]
        # The whole file parses with good checksums: no garbage was left in front of the
        # records written after the repair.
        written_after = [k for r in wal_records(segment) for k in entry_set_keys(r)]
        assert [k for k in written_after if k.startswith("after")] == [
            f"after{n}" for n in range(10)
        ]

        cluster.start(1)
        cluster.wait_ready(1)
        cluster.wait_for_leader([1])
        assert cluster.log_text(1).count(REPAIR_MESSAGE) == repairs
        with cluster.client(1) as client:
            assert missing_or_wrong(client, expected) == {}


@pytest.mark.parametrize("field", ["payload", "checksum", "length"])
def test_mid_log_corruption_stops_the_node_naming_file_and_offset(
    crashed_node: CrashedNode, tmp_path: Path, field: str
) -> None:
    with Cluster(tmp_path, 1) as cluster:
        segment = _restore(crashed_node, cluster)
        records = wal_records(segment)
        victim = next(r for r in records if entry_set_keys(r) == ["key2"])
        position = {
            "payload": victim.offset + RECORD_HEADER.size + (victim.end - victim.offset) // 2,
            "checksum": victim.offset + 6,  # inside the crc32c field
            "length": victim.offset + 1,  # the length's second byte: far past the file's end
        }[field]
        data = bytearray(segment.read_bytes())
        data[position] ^= 0xFF
        segment.write_bytes(bytes(data))

        proc = cluster.start(1)
        exit_code = proc.wait(timeout=30)
        log = cluster.log_text(1)
        assert exit_code != 0, log
        assert f"WAL corrupted in {segment} at byte offset {victim.offset}" in log, log
        # Said in one line an operator can act on, not buried in a traceback.
        assert "Traceback" not in log, log
        # The file was left as it was for an operator to inspect: nothing cut or rewritten.
        assert segment.read_bytes() == bytes(data)
