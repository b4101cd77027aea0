#!/usr/bin/env python3
"""Resync and write-path benchmark of the md bitmap (standalone).

    python benchmarks/bench_resync.py [--dir /var/tmp/swapio-bench] [--size 1G] [--repeat 3]
                                      [--json results.json]

Prints one line per result and, with --json, the result dicts (swapio bench's shape).
The figures and the exact command are recorded in docs/bitmap-and-mirror.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from swapio_mdraid.bench import bench_resync, bench_write_path
from swapio_mdraid.cli import parse_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--size", default="1G", help="leg size for the resync benchmark")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--writes", type=int, default=4000)
    parser.add_argument("--chunk-size", default="64K", help="bitmap chunk size for the resync")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        results = bench_resync(
            scratch,
            size=parse_size(args.size, "size"),
            chunk_size=parse_size(args.chunk_size, "chunk size"),
            repeat=args.repeat,
        )
        results += bench_write_path(scratch, writes=args.writes, repeat=args.repeat)
    by = {(r["target"], r["workload"]): r for r in results}
    for r in results:
        lat = r["lat_ns"]
        print(
            f"{r['workload']:14} {r['target']:16} {r['kind']:7} {r['seconds']:9.4f} s "
            f"{r['bw_bytes'] / 2**20:9.1f} MiB/s  p50 {lat['p50'] / 1e3:8.1f} us  "
            f"p99 {lat['p99'] / 1e3:8.1f} us"
        )
    resync = by[("mirror-resync", "resync-1pct")]["seconds"]
    print(f"cp / resync: {by[('cp', 'resync-1pct')]['seconds'] / resync:.1f}x")
    print(f"cp+fdatasync / resync: {by[('cp+fdatasync', 'resync-1pct')]['seconds'] / resync:.1f}x")
    print(
        f"resync / copy_file_range+fdatasync: "
        f"{resync / by[('copy_file_range', 'resync-1pct')]['seconds']:.2f}x"
    )
    paired = zip(
        by[("mirror-resync", "resync-1pct")]["runs"],
        by[("copy_file_range", "resync-1pct")]["runs"],
        strict=True,
    )
    print(
        "resync / copy_file_range+fdatasync, run by run: "
        + ", ".join(f"{r / c:.2f}x" for r, c in paired)
    )
    print(
        f"resync / copy_file_range (no sync): "
        f"{resync / by[('copy_file_range', 'resync-1pct')]['seconds_nosync']:.2f}x"
    )
    for workload in ("write-seq-4k", "write-rand-4k"):
        without = by[("mirror-nobitmap", workload)]["seconds"]
        for r in results:
            if r["workload"] == workload and r["target"].startswith("mirror+bitmap"):
                overhead = 100 * (r["seconds"] / without - 1)
                print(
                    f"{workload}: {r['target']} overhead {overhead:+.1f}% "
                    f"({r['bitmap_page_writes']} bitmap page writes)"
                )
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
