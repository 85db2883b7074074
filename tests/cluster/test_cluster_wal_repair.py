"""Damage to synced WAL data on a real node: repaired from its peers, or a clear refusal.

Theory of operation: a 3-node cluster takes a few dozen writes (one SET per entry); one
follower is stopped, and a byte is flipped in the body of one of its synced batches that
later valid batches follow (bit rot: the header, and so what the batch held, still reads).
Restarted, the follower must start — quarantining the batch, cutting its log back before the
first lost entry, fenced from elections — fetch the lost entries from the leader, and say so
("repaired entries a-b of group 0 from node L", and in ``KVORUM STATUS``). The proof that
the entries came back from a peer is in its WAL: batches written after the restart hold the
very entries the damaged batch held. The cluster's data must be intact on every node, and a
second restart must not find the damage again.

A one-node cluster has nobody to repair from: the node must stop with today's message, naming
the segment and the byte offset of the damaged batch, on every start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cluster_harness import (
    Cluster,
    WalBatch,
    entry_set_keys,
    missing_or_wrong,
    single_node,
    wait_until,
    wal_batches,
    wal_segments,
)

from kvorum.storage.wal.frame import (
    BatchHeader,
    RecordType,
    iter_records,
    parse_batch,
    record_entry,
)

KEY_COUNT = 40


def _flip(segment: Path, offset: int) -> None:
    data = bytearray(segment.read_bytes())
    data[offset] ^= 0xFF
    segment.write_bytes(bytes(data))


def _pick_victim(batches: list[WalBatch]) -> WalBatch:
    """A batch in the middle that wrote a SET, with several batches after it."""
    candidates = [b for i, b in enumerate(batches) if entry_set_keys(b) and len(batches) - i > 5]
    assert candidates, [entry_set_keys(b) for b in batches]
    return candidates[len(candidates) // 2]


def _batches_after(segment: Path, offset: int) -> list[tuple[int, list[Any]]]:
    """(sequence number, entries) of every whole batch from ``offset`` to the zeros."""
    data = segment.read_bytes()
    out = []
    pos = offset
    while pos < len(data) and data.count(0, pos) != len(data) - pos:
        header = parse_batch(data, pos)
        assert isinstance(header, BatchHeader), (pos, header)
        end = pos + header.frame_length
        records = iter_records(data, pos + header.header_length, end)
        out.append(
            (header.seq, [record_entry(r) for r in records if r.record_type is RecordType.ENTRY])
        )
        pos = end
    return out


def test_a_follower_repairs_a_damaged_synced_batch_from_its_peers(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader()
        expected = {f"key{n}": f"value{n}" for n in range(KEY_COUNT)}
        with cluster.client(leader) as client:
            for key, value in expected.items():
                assert client.set(key, value)
        follower = next(i for i in cluster.members if i != leader)
        cluster.wait_applied(follower, cluster.wait_ready(leader)["commit"])
        assert cluster.stop(follower) == 0

        (segment,) = wal_segments(cluster.data_dir(follower))
        batches = wal_batches(segment)
        victim = _pick_victim(batches)
        newest_seq_before = batches[-1].seq
        _flip(segment, victim.end - 20)  # in the body: the header still says what it held

        cluster.start(follower)
        cluster.wait_ready(follower)

        def repaired() -> dict[str, Any] | None:
            st = cluster.status(follower)
            repair = None if st is None else st["repair"]
            return repair if repair is not None and repair["completed"] else None

        repair = wait_until(repaired, 30.0, f"node {follower} to finish its repair")
        first_lost = min(e.index for e in victim.entries)
        assert repair["lost_from"] <= first_lost <= repair["acknowledged_index"]
        assert repair["repaired_from"] == leader
        assert f"byte offset {victim.offset}" in repair["damage"]
        text = (
            f"repaired entries {repair['lost_from']}-{repair['acknowledged_index']} of group 0 "
            f"from node {leader}"
        )
        assert repair["text"] == text
        log = cluster.log_text(follower)
        assert f"WAL corrupted in {segment} at byte offset {victim.offset}" in log, log
        assert "quarantined" in log and text in log, log
        assert cluster.status(follower)["groups"]["repairing"] == []  # type: ignore[index]

        for node_id in cluster.members:
            with cluster.client(node_id) as client:
                assert missing_or_wrong(client, expected) == {}, node_id

        assert cluster.stop(follower) == 0
        # The damaged batch is still on disk (for an operator), skipped; the entries it held
        # were written again, from the leader, in batches after the restart.
        assert segment.read_bytes()[victim.offset : victim.end] != b""
        written_after = [
            e for seq, entries in _batches_after(segment, victim.end) for e in entries
            if seq > newest_seq_before
        ]
        for lost in victim.entries:
            assert lost in written_after, (lost, written_after)

        cluster.start(follower)
        status = cluster.wait_ready(follower)
        assert status["repair"] is None  # nothing lost this time: the damage is not replayed
        assert cluster.log_text(follower).count("quarantined") == 1
        assert cluster.wait_for_leader() == leader
        with cluster.client(follower) as client:
            assert missing_or_wrong(client, expected) == {}


def test_a_single_node_cannot_repair_and_refuses_to_start_naming_the_damage(
    tmp_path: Path,
) -> None:
    with single_node(tmp_path / "one") as cluster:
        with cluster.client(1) as client:
            for n in range(KEY_COUNT):
                assert client.set(f"key{n}", f"value{n}")
        cluster.kill(1)
        (segment,) = wal_segments(cluster.data_dir(1))
        victim = _pick_victim(wal_batches(segment))
        _flip(segment, victim.end - 20)
        damaged = segment.read_bytes()
        refusal = f"refusing to start: WAL corrupted in {segment} at byte offset {victim.offset}"
        for attempt in (1, 2):  # the refusal does not go away by itself
            proc = cluster.start(1)
            assert proc.wait(timeout=30) != 0
            log = cluster.log_text(1)
            assert log.count(refusal) == attempt, log
            assert "has no other voter to fetch them from" in log, log
            assert "Traceback" not in log, log
        assert segment.read_bytes() == damaged  # left as it was for an operator
