"""Benchmarks of the flashlog backend (issue 5); figures go to docs/flashlog.md.

    python benchmarks/bench_flashlog.py [--dir /var/tmp] [--quick] [--json]
    python benchmarks/bench_flashlog.py --swap-only [--repeat 5] [--dir /var/tmp]

0. (``--swap-only`` runs just this.)  ``swapio bench``'s ``seq-out`` (64-page calls, one in
   flight) and ``rand-out`` (single pages at random slots, each once, 32 in flight) through
   the flashlog and the file backend, alternating, on fresh 8192-page areas: ratios
   flashlog / file, the median of ``--repeat`` runs (issue 11's acceptance).

1. Write amplification of uniform random 4 KiB overwrites at 50/80/90 % utilisation (greedy
   and the kernel's jffs2_find_gc_block policy), beside the analytic greedy value.
2. Wear: erase count max/mean after writing 20x the device size with an 80/20 skew.
3. Mount of a 64 MiB image with and without erase-block summaries.
4. Sequential swap-out pages/s, flashlog beside the file backend on the same directory.
   (``swapio bench`` calls ``swapio_flashlog.bench.bench_swap_out`` for these dicts.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from swapio_flashlog.bench import (
    bench_mount,
    bench_swap_out,
    bench_wear,
    bench_write_amplification,
)

from swapio import CreateRequest, PluginHost

PAGE = 4096
BATCH = 64
QD = 32


async def _seq_out(area: Any, pages: int, data: list[memoryview]) -> tuple[float, float]:
    """pages/s, and CPU µs per page of the whole process (event loop and owner thread)."""
    start, cpu = time.perf_counter(), time.process_time()
    for slot in range(0, pages, BATCH):
        await area.swap_out(slot, data[: min(BATCH, pages - slot)])
    return pages / (time.perf_counter() - start), (time.process_time() - cpu) / pages * 1e6


async def _rand_out(
    area: Any, pages: int, ops: int, page: memoryview, seed: int
) -> tuple[float, float]:
    slots = iter(random.Random(seed).sample(range(pages), ops))

    async def worker() -> None:
        for slot in slots:  # shared: each slot taken once, never two writes of one slot
            await area.swap_out(slot, [page])

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(QD)))
    return ops / (time.perf_counter() - start), (time.process_time() - cpu) / ops * 1e6


async def _swap_run(url: str, pages: int, ops: int, seed: int) -> tuple[float, ...]:
    """seq-out pages/s, rand-out pages/s, then their CPU µs per page."""
    area = await PluginHost().activate(url, create=CreateRequest(pages))
    block = memoryview(os.urandom(PAGE * BATCH))
    data = [block[i * PAGE : (i + 1) * PAGE] for i in range(BATCH)]
    try:
        seq, seq_cpu = await _seq_out(area, pages, data)  # a fresh area, as in swapio bench
        rand, rand_cpu = await _rand_out(area, pages, ops, data[0], seed)  # overwrites: GC
    finally:
        await area.deactivate()
    return seq, rand, seq_cpu, rand_cpu


def bench_swap(
    directory: Path, *, pages: int = 8192, ops: int = 4096, repeat: int = 5
) -> dict[str, Any]:
    """seq-out and rand-out (QD 32) pages/s and process CPU µs per page, flashlog and file
    alternating; medians."""
    runs: dict[str, list[tuple[float, ...]]] = {"flashlog": [], "file": []}
    for i in range(repeat):
        for target in ("flashlog", "file") if i % 2 == 0 else ("file", "flashlog"):
            path = directory / f"swap-{i}-{target}"
            url = f"flashlog://{path}.img" if target == "flashlog" else f"file://{path}.swap"
            runs[target].append(asyncio.run(_swap_run(url, pages, ops, seed=i)))
            for leftover in directory.glob(f"swap-{i}-{target}*"):
                leftover.unlink()
    med = {
        t: {
            "seq_out": statistics.median(r[0] for r in rs),
            "rand_out_qd32": statistics.median(r[1] for r in rs),
        }
        for t, rs in runs.items()
    }
    cpu = {
        t: {
            "seq_out": statistics.median(r[2] for r in rs),
            "rand_out_qd32": statistics.median(r[3] for r in rs),
        }
        for t, rs in runs.items()
    }
    return {
        "pages": pages,
        "rand_ops": ops,
        "repeat": repeat,
        "load_average": os.getloadavg(),
        "pages_per_s": med,
        "cpu_us_per_page": cpu,
        "runs": runs,
        "ratio": {w: med["flashlog"][w] / med["file"][w] for w in ("seq_out", "rand_out_qd32")},
        # flashlog / file within each pair of back-to-back runs (less exposed to a load
        # that changes during the benchmark), median over the pairs
        "paired_ratio": {
            w: statistics.median(
                f[k] / b[k] for f, b in zip(runs["flashlog"], runs["file"], strict=True)
            )
            for k, w in enumerate(("seq_out", "rand_out_qd32"))
        },
    }


def _print_swap(doc: dict[str, Any]) -> None:
    m, r, c = doc["pages_per_s"], doc["ratio"], doc["cpu_us_per_page"]
    print(
        f"swap-out through swapio ({doc['pages']} pages, median of {doc['repeat']}, "
        f"load {doc['load_average'][0]:.2f})"
    )
    for w, label in (("seq_out", "seq-out (64-page calls)"), ("rand_out_qd32", "rand-out QD32")):
        print(
            f"  {label:<24} flashlog {m['flashlog'][w]:>10,.0f}  file {m['file'][w]:>10,.0f}"
            f"  ratio {r[w]:.3f} (paired {doc['paired_ratio'][w]:.3f});  CPU µs/page "
            f"flashlog {c['flashlog'][w]:.2f} file {c['file'][w]:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where images go (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--swap-only", action="store_true", help="only seq-out/rand-out vs file")
    parser.add_argument("--repeat", type=int, default=5, help="runs of the swap-out comparison")
    args = parser.parse_args()
    if args.swap_only:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            swap = bench_swap(Path(tmp), repeat=args.repeat)
        if args.json:
            print(json.dumps(swap, indent=2))
        else:
            _print_swap(swap)
        return
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
        doc["swap"] = bench_swap(directory, repeat=1 if q else args.repeat)
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
    _print_swap(doc["swap"])
    print("sequential swap-out, 64-page requests")
    for r in doc["swap_out"]:
        print(
            f"  {r['target']:<9} {r['phase']:<11} {r['pages_per_s']:10,.0f} pages/s  "
            f"{r['bw_bytes'] / 2**20:7.1f} MiB/s  p50 {r['lat_ns']['p50'] / 1e6:.2f} ms  "
            f"p99 {r['lat_ns']['p99'] / 1e6:.2f} ms"
        )


if __name__ == "__main__":
    main()
