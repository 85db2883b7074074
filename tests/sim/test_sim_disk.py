"""The simulated disk: page cache, power cuts that lose and tear writes, and its faults."""

from __future__ import annotations

import errno
import random
from pathlib import Path

import pytest

from kvorum.sim.disk import SECTOR_BYTES, SimFileSystem, SimulatedPowerCut

D = Path("/d")


def fresh(seed: int = 1) -> SimFileSystem:
    fs = SimFileSystem(random.Random(seed))
    fs.make_dirs_durable(D)
    return fs


def durable_file(fs: SimFileSystem, name: str, data: bytes) -> None:
    f = fs.open(D / name, create=True)
    f.pwrite(data, 0)
    f.fdatasync()
    fs.fsync_dir(D)


def test_unsynced_writes_are_visible_until_a_crash() -> None:
    fs = fresh()
    durable_file(fs, "a", b"synced")
    f = fs.open(D / "a")
    f.pwrite(b"SYNCED and more", 0)
    assert fs.read_file(D / "a") == b"SYNCED and more"
    assert fs.durable_bytes(D / "a") == b"synced"
    fs.crash(keep=lambda offset, length, sector: False)
    assert fs.read_file(D / "a") == b"synced"
    with pytest.raises(OSError) as caught:
        f.pwrite(b"x", 0)  # the handle died with the power
    assert caught.value.errno == errno.EBADF


def test_synced_data_survives_every_crash() -> None:
    for seed in range(50):
        fs = fresh(seed)
        durable_file(fs, "a", bytes(range(256)) * 8)
        fs.crash()
        assert fs.read_file(D / "a") == bytes(range(256)) * 8


def test_a_torn_write_keeps_any_subset_of_its_sectors() -> None:
    data = b"".join(bytes([n + 1]) * SECTOR_BYTES for n in range(8))
    seen: set[tuple[bool, ...]] = set()
    for seed in range(300):
        fs = fresh(seed)
        durable_file(fs, "a", b"")
        fs.open(D / "a").pwrite(data, 0)
        fs.crash()
        after = fs.read_file(D / "a")
        pattern = []
        for n in range(8):
            sector = after[n * SECTOR_BYTES : (n + 1) * SECTOR_BYTES]
            # each sector is all there or all missing (zeros, or past the end): never half
            assert sector in (bytes([n + 1]) * SECTOR_BYTES, bytes(len(sector)), b"")
            pattern.append(sector == bytes([n + 1]) * SECTOR_BYTES)
        seen.add(tuple(pattern))
    assert (True,) * 8 in seen and (False,) * 8 in seen
    # a later sector can land while an earlier one does not (the LazyFS finding)
    assert any(not p[0] and any(p[1:]) for p in seen)
    assert len(seen) > 20


def test_sectors_follow_file_offsets_not_write_boundaries() -> None:
    fs = fresh()
    durable_file(fs, "a", bytes(2048))
    fs.open(D / "a").pwrite(b"x" * 600, 300)  # covers sectors 0 (212 bytes) and 1 (388)
    kept: list[int] = []

    def keep(offset: int, length: int, sector: int) -> bool:
        kept.append(sector)
        return sector == SECTOR_BYTES

    fs.crash(keep)
    assert kept == [0, SECTOR_BYTES]
    after = fs.read_file(D / "a")
    assert after[300:512] == bytes(212) and after[512:900] == b"x" * 388


def test_names_need_a_directory_fsync() -> None:
    lost = 0
    for seed in range(40):
        fs = fresh(seed)
        f = fs.open(D / "new", create=True)
        f.pwrite(b"data", 0)
        f.fdatasync()  # the data is durable, the name is not
        fs.crash()
        lost += not fs.exists(D / "new")
    assert 0 < lost < 40
    fs = fresh()
    durable_file(fs, "kept", b"data")
    fs.crash()
    assert fs.read_file(D / "kept") == b"data"


def test_rename_and_unlink_are_durable_after_the_directory_fsync() -> None:
    fs = fresh()
    durable_file(fs, "old", b"one")
    durable_file(fs, "tmp", b"two")
    fs.rename(D / "tmp", D / "old")
    fs.unlink(D / "gone", missing_ok=True)
    fs.fsync_dir(D)
    fs.crash()
    assert fs.list_dir(D) == ["old"] and fs.read_file(D / "old") == b"two"
    outcomes = set()
    for seed in range(40):
        fs = fresh(seed)
        durable_file(fs, "a", b"A")
        durable_file(fs, "b", b"B")
        fs.rename(D / "b", D / "a")  # atomic: either both names change or neither
        fs.crash()
        outcomes.add((*fs.list_dir(D), fs.read_file(D / "a")))
    assert outcomes == {("a", "b", b"A"), ("a", b"B")}


def test_lying_fsync_loses_data_it_acknowledged() -> None:
    lost = 0
    for seed in range(30):
        fs = fresh(seed)
        durable_file(fs, "a", b"before")
        fs.lying_fsync_rate = 1.0
        f = fs.open(D / "a")
        f.pwrite(b"AFTER!", 0)
        f.fdatasync()  # returns, yet nothing reached the platter
        fs.crash()
        lost += fs.read_file(D / "a") != b"AFTER!"
    assert lost > 0


def test_failed_fsync_raises_eio_and_its_data_may_be_gone() -> None:
    fs = fresh(3)
    durable_file(fs, "a", b"")
    fs.fsync_failure_rate = 1.0
    f = fs.open(D / "a")
    f.pwrite(b"z" * 4096, 0)
    with pytest.raises(OSError) as caught:
        f.fdatasync()
    assert caught.value.errno == errno.EIO
    assert fs.read_file(D / "a") == b"z" * 4096  # the cache still shows it
    fs.fsync_failure_rate = 0.0
    f.fdatasync()  # "succeeds": nothing is left to write
    assert fs.unsynced_writes(D / "a") == 0


def test_a_full_disk_refuses_growth_but_not_overwrites() -> None:
    fs = fresh()
    fs.capacity_bytes = 1000
    durable_file(fs, "a", bytes(800))
    f = fs.open(D / "a")
    f.pwrite(b"y" * 800, 0)  # overwriting allocated bytes needs no room
    with pytest.raises(OSError) as caught:
        f.pwrite(b"w" * 300, 800)
    assert caught.value.errno == errno.ENOSPC
    assert fs.file_size(D / "a") == 1000  # what fitted was written
    fs.unlink(D / "a")
    g = fs.open(D / "b", create=True)
    g.pwrite(b"q" * 1000, 0)  # freed by the unlink


def test_crash_after_ops_cuts_the_power_mid_update() -> None:
    fs = fresh()
    durable_file(fs, "a", b"one")
    fs.crash_after_ops = 2
    f = fs.open(D / "a")
    f.pwrite(b"two", 0)
    with pytest.raises(SimulatedPowerCut):
        f.fdatasync()
    fs.crash(keep=lambda offset, length, sector: False)
    assert fs.read_file(D / "a") == b"one"


def test_the_same_seed_gives_the_same_disk() -> None:
    def run(seed: int) -> list[bytes]:
        fs = fresh(seed)
        for n in range(5):
            durable_file(fs, f"f{n}", b"")
            fs.open(D / f"f{n}").pwrite(bytes([n + 1]) * 3000, 100)
        fs.crash()
        return [fs.read_file(D / name) for name in fs.list_dir(D)]

    assert run(7) == run(7)
    assert any(run(7) != run(s) for s in range(8, 12))
