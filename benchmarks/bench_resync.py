#!/usr/bin/env python3
"""Resync benchmark of the md bitmap (standalone): in process, and at the command line.

    python benchmarks/bench_resync.py [--dir /var/tmp] [--size 1G] [--repeat 5]
                                      [--chunk-size 64K] [--cli-only] [--json results.json]

In process (``swapio_mdraid.bench.bench_resync``): ``resync()`` of two legs with 1 % of
their chunks dirty against ``os.copy_file_range`` of exactly the dirty chunks plus one
``fdatasync``, the kernel-side floor.  At the command line: ``swapio bitmap resync`` (a new
process, start-up included) against ``cp`` of the whole leg followed by ``sync``; ``sync``
runs (untimed) before each, so neither pays for the other's dirty pages.

Prints one line per figure; the figures and the command are recorded in
docs/bitmap-and-mirror.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from swapio_mdraid.bench import _dirty_source, _fill, _scatter, _write_bitmap, bench_resync
from swapio_mdraid.cli import parse_size


def _timed(argv: list[str]) -> float:
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_cli(root: Path, size: int, chunk: int, repeat: int) -> dict[str, Any]:
    """``swapio bitmap resync`` vs ``cp`` + ``sync`` of the whole leg, ``repeat`` times."""
    a, b, bm, whole = root / "a.img", root / "b.img", root / "bm", root / "cp.img"
    _fill(a, size, 1)
    shutil.copyfile(a, b)
    dirty = _scatter(size // chunk, 0.01, 1)
    resync_runs: list[float] = []
    cp_runs: list[float] = []
    try:
        for rep in range(repeat):
            _dirty_source(a, dirty, chunk, rep + 7)
            _write_bitmap(bm, size, chunk, dirty)
            resync_runs.append(
                _timed(["swapio", "bitmap", "resync", str(bm), "--source", str(a),
                        "--target", str(b)])
            )  # fmt: skip
            whole.unlink(missing_ok=True)
            cp_runs.append(_timed(["sh", "-c", f"cp '{a}' '{whole}' && sync"]))
        if a.read_bytes() != b.read_bytes():
            raise RuntimeError("legs differ after the CLI resync")
    finally:
        for path in (a, b, bm, whole):
            path.unlink(missing_ok=True)
    med = {k: sorted(v)[len(v) // 2] for k, v in (("resync", resync_runs), ("cp", cp_runs))}
    return {
        "size": size,
        "chunk_size": chunk,
        "dirty_chunks": len(dirty),
        "resync_cli": med["resync"],
        "cp_sync": med["cp"],
        "resync_runs": resync_runs,
        "cp_sync_runs": cp_runs,
        "speedup": med["cp"] / med["resync"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--size", default="1G", help="leg size")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chunk-size", default="64K", help="bitmap chunk size")
    parser.add_argument("--cli-only", action="store_true", help="skip the in-process half")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    size = parse_size(args.size, "size")
    chunk = parse_size(args.chunk_size, "chunk size")
    out: dict[str, Any] = {"load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        if not args.cli_only:
            results = bench_resync(scratch, size=size, chunk_size=chunk, repeat=args.repeat)
            by = {r["target"]: r for r in results}
            resync, cfr = by["mirror-resync"], by["copy_file_range"]
            out["in_process"] = results
            print(f"resync() median {resync['seconds'] * 1e3:.1f} ms, runs "
                  + ", ".join(f"{s * 1e3:.1f}" for s in resync["runs"]))  # fmt: skip
            print(f"copy_file_range+fdatasync median {cfr['seconds'] * 1e3:.1f} ms, runs "
                  + ", ".join(f"{s * 1e3:.1f}" for s in cfr["runs"]))  # fmt: skip
            print(f"resync / copy_file_range: {resync['seconds'] / cfr['seconds']:.2f}x; run by "
                  "run: " + ", ".join(f"{r / c:.2f}x" for r, c in
                                      zip(resync["runs"], cfr["runs"], strict=True)))  # fmt: skip
        cli = bench_cli(Path(scratch), size, chunk, args.repeat)
        out["cli"] = cli
        print(f"swapio bitmap resync (CLI) median {cli['resync_cli'] * 1e3:.0f} ms, runs "
              + ", ".join(f"{s * 1e3:.0f}" for s in cli["resync_runs"]))  # fmt: skip
        print(f"cp + sync median {cli['cp_sync'] * 1e3:.0f} ms, runs "
              + ", ".join(f"{s * 1e3:.0f}" for s in cli["cp_sync_runs"]))  # fmt: skip
        print(f"cp + sync / CLI resync: {cli['speedup']:.1f}x")
    out["load_after"] = os.getloadavg()
    print("load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
        *out["load_before"], *out["load_after"]))  # fmt: skip
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
