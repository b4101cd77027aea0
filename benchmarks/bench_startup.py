"""CLI cold start: four everyday commands against the interpreter's own import floor.

    python benchmarks/bench_startup.py [--runs 5] [--json] [--module]

Each command runs as a fresh process (the ``swapio`` console script installed beside this
Python, or ``python -m swapio`` with ``--module``), interleaved with the floor
``python -c "import asyncio, click, pluggy"`` so machine noise hits all alike; the median of
``--runs`` is reported, with its ratio to the floor's median.  The median CPU time (user +
system) of each process is reported too: a loaded machine disturbs it far less than the
wall-clock time.  Byte-code caching is left on (``PYTHONDONTWRITEBYTECODE`` is removed from
the children's environment): an installed swapio has its ``.pyc`` files, and the floor's
modules have theirs.  Fixtures (a bitmap from ``swapio bitmap create``, an area from
``swapio create``) live in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _children_cpu() -> float:
    """User + system CPU seconds of the children waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def commands(tmp: Path, module: bool) -> dict[str, list[str]]:
    swapio = (
        [sys.executable, "-m", "swapio"]
        if module
        else [str(Path(sys.executable).with_name("swapio"))]
    )
    return {
        "floor: python -c 'import asyncio, click, pluggy'": [
            sys.executable,
            "-c",
            "import asyncio, click, pluggy",
        ],
        "swapio --help": [*swapio, "--help"],
        "swapio backends": [*swapio, "backends"],
        "swapio bitmap examine F": [*swapio, "bitmap", "examine", str(tmp / "bitmap")],
        "swapio info file://...": [*swapio, "info", f"file://{tmp}/area.swap"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--module",
        action="store_true",
        help="run `python -m swapio` (e.g. an older tree on PYTHONPATH) instead of the script",
    )
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        cmds = commands(tmp, args.module)
        swapio = cmds["swapio --help"][:-1]
        bitmap = str(tmp / "bitmap")
        for setup in (
            [*swapio, "bitmap", "create", bitmap, "--sync-size", "1G", "--chunk-size", "64M"],
            [*swapio, "create", f"file://{tmp}/area.swap", "--pages", "16"],
        ):
            subprocess.run(setup, check=True, env=env, stdout=subprocess.DEVNULL)
        for cmd in cmds.values():  # warm the page cache and write byte code once
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        cpu: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.runs):
            for label, cmd in cmds.items():
                used = _children_cpu()
                start = time.perf_counter()
                subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
                times[label].append(time.perf_counter() - start)
                cpu[label].append(_children_cpu() - used)
    floor_label = next(iter(cmds))
    floor = statistics.median(times[floor_label])
    floor_cpu = statistics.median(cpu[floor_label])
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    result = {
        "runs": args.runs,
        "load_1min": float(load),
        "median_ms": {k: round(statistics.median(v) * 1e3, 1) for k, v in times.items()},
        "ratio_to_floor": {k: round(statistics.median(v) / floor, 2) for k, v in times.items()},
        "median_cpu_ms": {k: round(statistics.median(v) * 1e3, 1) for k, v in cpu.items()},
        "cpu_ratio_to_floor": {
            k: round(statistics.median(v) / floor_cpu, 2) for k, v in cpu.items()
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for label in cmds:
        print(
            f"{label:<50} {result['median_ms'][label]:8.1f} ms  "
            f"{result['ratio_to_floor'][label]:5.2f}x floor   CPU "
            f"{result['median_cpu_ms'][label]:7.1f} ms  {result['cpu_ratio_to_floor'][label]:5.2f}x"
        )
    print(f"load average (1 min): {load}")


if __name__ == "__main__":
    main()
