"""Storage throughput: WAL group commit by batch size and by groups per batch, LMDB, and many
groups' batches in one LMDB transaction.

Theory of operation: a Raft node pays one ``fdatasync`` per drive round for all its groups,
so what matters is how many entries one sync can carry. For batch sizes 1, 16, 64 and 256
(100-byte entries, one group) this writes batches to a real WAL for a fixed wall-clock budget
and reports entries/s and syncs/s; then the same with one entry for each of 1, 64 and 1,000
groups per batch (what a node hosting many groups writes). The ratio between rows is the
point (absolute numbers depend on the disk, and these machines are shared). LMDB is measured
the same way, with fully synced commits, with ``metasync`` off (the mode the keyspace's
docstring argues is still safe) and with nothing flushed at commit (the node's mode: its WAL
already made the entries durable), for several batch sizes. Files go to a temporary directory
next to the results, on a real disk (``/tmp`` may be tmpfs, where a sync costs nothing).

A node applies a drive round of many groups at once. The last table applies one single-write
batch to each of G groups per round, either each batch in its own write transaction or the
whole round in one (``LmdbKeyspace.transaction``), and reports the ratio, in the node's mode
and with full syncs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from matplotlib.figure import Figure

from benchmarks.run import machine_line
from kvorum.core.raft.messages import Entry, HardState
from kvorum.kv.key_order import FULL_SPAN, HASH_ORDER, KeySpan
from kvorum.storage.lmdb_keyspace import LmdbKeyspace
from kvorum.storage.wal import WAL, GroupWrite

ENTRY_BYTES = 100
WAL_BATCHES = (1, 16, 64, 256)
WAL_GROUPS = (1, 64, 1000)
LMDB_BATCHES = (1, 16, 256)
ROUND_GROUPS = (4, 16, 64)
LMDB_MODES = {  # mode: (fsync_commits, sync)
    "full sync": (True, True),
    "metasync off": (False, True),
    "no sync (node)": (False, False),
}


def _wal_rate(
    directory: Path, batch_size: int, groups: int, budget_s: float
) -> tuple[float, float]:
    """(entries/s, syncs/s) writing batches of ``batch_size`` entries for each of ``groups``
    groups for ``budget_s``."""
    wal = WAL(directory)
    payload = b"x" * ENTRY_BYTES
    index = 0
    syncs = 0
    start = time.perf_counter()
    deadline = start + budget_s
    while time.perf_counter() < deadline:
        batch = [Entry(1, i, payload) for i in range(index + 1, index + 1 + batch_size)]
        hard_state = HardState(term=1, vote=1, commit=index)
        writes = [GroupWrite(g, entries=batch, hard_state=hard_state) for g in range(groups)]
        wal.write_batch(writes)
        index += batch_size
        syncs += 1
    elapsed = time.perf_counter() - start
    wal.close()
    return index * groups / elapsed, syncs / elapsed


def _lmdb_rate(directory: Path, batch_size: int, mode: str, budget_s: float) -> tuple[float, float]:
    """(writes/s, commits/s) of ``apply_batch`` with ``batch_size`` 100-byte values."""
    fsync_commits, sync = LMDB_MODES[mode]
    keyspace = LmdbKeyspace(directory, fsync_commits=fsync_commits, sync=sync)
    engine = keyspace.create_group(0, FULL_SPAN)
    value = b"v" * ENTRY_BYTES
    applied = 0
    writes = 0
    start = time.perf_counter()
    deadline = start + budget_s
    while time.perf_counter() < deadline:
        applied += 1
        batch: list[tuple[bytes, bytes | None]] = [
            (b"key%09d" % (writes + i), value) for i in range(batch_size)
        ]
        engine.apply_batch(batch, applied)
        writes += batch_size
    elapsed = time.perf_counter() - start
    keyspace.close()
    return writes / elapsed, applied / elapsed


def _tag_in(span: KeySpan, group: int) -> bytes:
    """A hash tag whose slot lies in ``span``, so ``{tag}...`` keys belong to that group."""
    for n in range(100_000):
        tag = b"g%d-%d" % (group, n)
        if span.contains(HASH_ORDER.encode(tag)):
            return tag
    raise RuntimeError(f"no tag found for {span}")


def _round_rate(
    directory: Path, groups: int, one_transaction: bool, mode: str, budget_s: float
) -> float:
    """Batches/s applying one single-write batch to each of ``groups`` groups per round."""
    fsync_commits, sync = LMDB_MODES[mode]
    keyspace = LmdbKeyspace(directory, fsync_commits=fsync_commits, sync=sync)
    spans = HASH_ORDER.even_spans(groups)
    views = [keyspace.create_group(g, span) for g, span in enumerate(spans)]
    tags = [_tag_in(span, g) for g, span in enumerate(spans)]
    value = b"v" * ENTRY_BYTES
    index = 0
    start = time.perf_counter()
    deadline = start + budget_s
    while time.perf_counter() < deadline:
        index += 1
        if one_transaction:
            with keyspace.transaction():
                for view, tag in zip(views, tags, strict=True):
                    view.apply_batch([(b"{%s}%d" % (tag, index), value)], index)
        else:
            for view, tag in zip(views, tags, strict=True):
                view.apply_batch([(b"{%s}%d" % (tag, index), value)], index)
    elapsed = time.perf_counter() - start
    keyspace.close()
    return index * groups / elapsed


def _chart(path: Path, wal_rows: list[tuple[int, float, float]]) -> None:
    # A bare Figure renders with the Agg canvas; no pyplot state, no GUI backend.
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    sizes = [str(b) for b, _, _ in wal_rows]
    ax.bar(sizes, [e for _, e, _ in wal_rows], color="#4477aa")
    ax.set_yscale("log")
    ax.set_xlabel("entries per batch (one fdatasync each)")
    ax.set_ylabel("entries / s (log)")
    ax.set_title("WAL group commit: 100-byte entries")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run(results_dir: Path, quick: bool) -> None:
    budget_s = 0.15 if quick else 3.0
    results_dir.mkdir(parents=True, exist_ok=True)
    wal_rows: list[tuple[int, float, float]] = []
    group_rows: list[tuple[int, float, float]] = []
    lmdb_rows: list[tuple[str, int, float, float]] = []
    round_rows: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory(dir=results_dir, prefix=".bench-storage-") as raw:
        scratch = Path(raw)
        for batch_size in WAL_BATCHES:
            entries_per_s, syncs_per_s = _wal_rate(
                scratch / f"wal-{batch_size}", batch_size, 1, budget_s
            )
            wal_rows.append((batch_size, entries_per_s, syncs_per_s))
        for groups in WAL_GROUPS:
            entries_per_s, syncs_per_s = _wal_rate(
                scratch / f"wal-groups-{groups}", 1, groups, budget_s
            )
            group_rows.append((groups, entries_per_s, syncs_per_s))
        for mode in ("full sync", "metasync off", "no sync (node)"):
            for batch_size in LMDB_BATCHES:
                writes_per_s, commits_per_s = _lmdb_rate(
                    scratch / f"lmdb-{mode}-{batch_size}".replace(" ", "-").replace("(", ""),
                    batch_size,
                    mode,
                    budget_s,
                )
                lmdb_rows.append((mode, batch_size, writes_per_s, commits_per_s))
        for mode in ("no sync (node)", "full sync"):
            for groups in ROUND_GROUPS:
                rates = [
                    _round_rate(
                        scratch / f"round-{mode}-{groups}-{one}".replace(" ", "-").replace("(", ""),
                        groups,
                        one,
                        mode,
                        budget_s,
                    )
                    for one in (False, True)
                ]
                round_rows.append((mode, groups, rates[0], rates[1]))
    lines = [
        machine_line(),
        "",
        f"WAL write_batch (format 2), one group, {ENTRY_BYTES}-byte entries, {budget_s:g} s "
        "per row (one fdatasync per batch):",
        "",
        "| entries per batch | entries/s | fdatasyncs/s |",
        "|---:|---:|---:|",
        *(f"| {b} | {e:,.0f} | {s:,.0f} |" for b, e, s in wal_rows),
        "",
        f"WAL write_batch, one {ENTRY_BYTES}-byte entry and a hard state for each group, "
        f"{budget_s:g} s per row:",
        "",
        "| groups per batch | entries/s | fdatasyncs/s |",
        "|---:|---:|---:|",
        *(f"| {g} | {e:,.0f} | {s:,.0f} |" for g, e, s in group_rows),
        "",
        f"LMDB apply_batch (one group owning the whole keyspace), {ENTRY_BYTES}-byte values, "
        f"{budget_s:g} s per row (one write transaction per batch):",
        "",
        "| commit mode | writes per batch | writes/s | commits/s |",
        "|---|---:|---:|---:|",
        *(f"| {m} | {b} | {w:,.0f} | {c:,.0f} |" for m, b, w, c in lmdb_rows),
        "",
        f"A round of G groups, one single-write batch ({ENTRY_BYTES}-byte value) per group, "
        f"{budget_s:g} s per cell: each batch in its own write transaction, or the whole "
        "round in one (`LmdbKeyspace.transaction`):",
        "",
        "| commit mode | groups per round | batches/s, a transaction each | "
        "batches/s, one per round | ratio |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {m} | {g} | {alone:,.0f} | {together:,.0f} | {together / alone:.1f}x |"
            for m, g, alone, together in round_rows
        ),
        "",
    ]
    if quick:
        lines.append("(quick smoke run: these numbers are not results)")
    table = "\n".join(lines)
    print(table)
    (results_dir / "storage.md").write_text(table + "\n")
    _chart(results_dir / "storage.png", wal_rows)
