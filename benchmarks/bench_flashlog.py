"""Benchmarks of the flashlog backend (issue 5); figures go to docs/flashlog.md.

    python benchmarks/bench_flashlog.py [--dir /var/tmp] [--quick] [--json]

1. Write amplification of uniform random 4 KiB overwrites at 50/80/90 % utilisation (greedy
   and the kernel's jffs2_find_gc_block policy), beside the analytic greedy value.
2. Wear: erase count max/mean after writing 20x the device size with an 80/20 skew.
3. Mount of a 64 MiB image with and without erase-block summaries.
4. Sequential swap-out pages/s, flashlog beside the file backend on the same directory.
   (``swapio bench`` calls ``swapio_flashlog.bench.bench_swap_out`` for these dicts.)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from swapio_flashlog.bench import (
    bench_mount,
    bench_swap_out,
    bench_wear,
    bench_write_amplification,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where images go (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        q = args.quick
        doc: dict[str, Any] = {"python": sys.version.split()[0], "machine": platform.machine()}
        doc["write_amplification"] = [
            bench_write_amplification(directory, u, blocks=64 if q else 256, policy=policy)
            for u in (0.5, 0.8, 0.9)
            for policy in ("greedy", "jffs2")
        ]
        doc["wear"] = bench_wear(
            directory, blocks=32 if q else 64, device_writes=5.0 if q else 20.0
        )
        doc["mount"] = bench_mount(directory, size=(16 if q else 64) << 20, repeat=3 if q else 7)
        doc["swap_out"] = bench_swap_out(directory, pages=2048 if q else 8192, repeat=1 if q else 3)
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print("write amplification (uniform random 4 KiB overwrites)")
    print("  util  policy  WA nodes  WA bytes  analytic greedy (large-block limit)")
    for r in doc["write_amplification"]:
        print(
            f"  {r['utilisation']:.2f}  {r['policy']:<6}  {r['wa_nodes']:8.3f}  "
            f"{r['wa_bytes']:8.3f}  {r['wa_greedy_analytic']:8.3f}"
        )
    w = doc["wear"]
    print(
        f"wear after {w['device_sizes_written']:.1f} device sizes, 80/20 skew: erase count "
        f"min {w['erase_min']} mean {w['erase_mean']:.2f} max {w['erase_max']} "
        f"max/mean {w['max_over_mean']:.3f}"
    )
    m = doc["mount"]
    print(
        f"mount {m['image_bytes'] >> 20} MiB ({m['pages']} pages): summaries "
        f"{m['mount_s_summary'] * 1e3:.1f} ms, full scan {m['mount_s_full_scan'] * 1e3:.1f} ms "
        f"(x{m['speedup']:.1f}); with index build {m['mount_index_s_summary'] * 1e3:.1f} vs "
        f"{m['mount_index_s_full_scan'] * 1e3:.1f} ms (x{m['speedup_with_index']:.1f}); "
        f"bytes read {m['bytes_read_summary']} vs {m['bytes_read_full_scan']}"
    )
    print(
        f"  CPU time (median of runs): summaries {m['cpu_s_summary'] * 1e3:.1f} ms, full scan "
        f"{m['cpu_s_full_scan'] * 1e3:.1f} ms (x{m['cpu_speedup']:.1f}); with index build "
        f"x{m['cpu_speedup_with_index']:.1f}"
    )
    print("sequential swap-out, 64-page requests")
    for r in doc["swap_out"]:
        print(
            f"  {r['target']:<9} {r['phase']:<11} {r['pages_per_s']:10,.0f} pages/s  "
            f"{r['bw_bytes'] / 2**20:7.1f} MiB/s  p50 {r['lat_ns']['p50'] / 1e6:.2f} ms  "
            f"p99 {r['lat_ns']['p99'] / 1e6:.2f} ms"
        )


if __name__ == "__main__":
    main()
