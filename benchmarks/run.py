#!/usr/bin/env python3
"""Run kvorum's benchmarks and write their results into ``benchmarks/results/``.

Theory of operation: every ``benchmarks/bench_*.py`` module defines
``run(results_dir: pathlib.Path, quick: bool) -> None``, which measures, prints a table and
writes it (as Markdown, plus a PNG chart where a picture reads better) into ``results_dir``.
This runner imports them by name, so ``python3 dev.py bench`` runs all of them and
``python3 dev.py bench ids hashing`` runs two. ``--quick`` shrinks every benchmark to a smoke
run (the test suite uses it to keep benchmarks from rotting); its numbers are not results.

Performance is never asserted in tests: these machines are shared and noisy, so benchmarks
compare ratios measured side by side in one run, and every results file names the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Benchmarks import helpers as `benchmarks.run`, so the repository root must be importable.
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))


def machine_line() -> str:
    """One line naming the machine the numbers came from."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, {time.strftime('%Y-%m-%d')}"
    )


def discover() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def load(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    found = discover()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"which to run (default all): {', '.join(found)}")
    parser.add_argument("--quick", action="store_true", help="smoke-run sizes; not results")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    args = parser.parse_args(argv)
    names = args.names or list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {list(found)}")
    args.out.mkdir(parents=True, exist_ok=True)
    print(machine_line(), flush=True)
    for name in names:
        print(f"== benchmark {name}", flush=True)
        module = load(found[name])
        module.run(args.out, args.quick)  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
