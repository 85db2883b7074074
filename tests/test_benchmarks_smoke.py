"""Every benchmark still runs: each one is smoke-run with ``--quick`` into a temporary folder.

Numbers from a quick run are not results and nothing here asserts on speed; this only keeps
benchmarks from rotting between the runs that produce ``benchmarks/results``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted(p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("name", BENCHES)
def test_benchmark_runs_quick(name: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            name,
            "--quick",
            "--out",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any(tmp_path.iterdir()), "a benchmark must write its results"
