"""Micro-benchmark of the file backend (issue: foundation).

Sequential 4 KiB swap-out in requests of 64 pages through the file backend, measured in the
same run against (a) a raw ``os.pwritev`` loop on the same file — the in-process limit — and
(b) naive per-page ``aiofiles`` writes (seek + write per page, one thread hop each).

    python benchmarks/bench_file.py [--mib 256] [--repeat 3] [--dir /var/tmp] [--json]
    python benchmarks/bench_file.py --handoff [--mib 64] [--repeat 5]   # hand-off variants

Runs alternate between targets so machine noise hits all of them alike; the best of
``--repeat`` runs is reported, with ratios against the raw loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiofiles

from swapio import CreateRequest, PluginHost

PAGE = 4096
BATCH = 64
#: inline writes the file backend found throttled (>5 ms), per queue depth, over all runs
STALLS: dict[int, int] = {}
WORST: dict[int, float] = {}


def _pages(n: int) -> list[bytes]:
    block = os.urandom(PAGE * BATCH)
    return [block[i * PAGE : (i + 1) * PAGE] for i in range(BATCH)] * (n // BATCH)


async def swapio_file(path: Path, pages: int, data: list[bytes], qd: int = 1) -> float:
    """Sequential swap-out keeping ``qd`` requests of 64 pages in flight."""
    area = await PluginHost().activate(f"file://{path}")
    requests = iter(range(0, pages, BATCH))

    async def stream() -> None:
        for slot in requests:  # shared iterator: the qd streams take slots in order
            await area.swap_out(slot, data[slot : slot + BATCH])

    start = time.perf_counter()
    await asyncio.gather(*(stream() for _ in range(qd)))
    elapsed = time.perf_counter() - start
    inline = area.private.inline
    STALLS[qd] = STALLS.get(qd, 0) + inline.stalls
    WORST[qd] = max(WORST.get(qd, 0.0), inline.worst_stall_s)
    await area.deactivate()
    return elapsed


def raw_pwritev(path: Path, pages: int, data: list[bytes]) -> float:
    fd = os.open(path, os.O_RDWR)
    start = time.perf_counter()
    for slot in range(0, pages, BATCH):
        os.pwritev(fd, data[slot : slot + BATCH], slot * PAGE)
    elapsed = time.perf_counter() - start
    os.close(fd)
    return elapsed


async def naive_aiofiles(path: Path, pages: int, data: list[bytes]) -> float:
    async with aiofiles.open(path, "r+b", buffering=0) as f:
        start = time.perf_counter()
        for slot in range(pages):
            await f.seek(slot * PAGE)
            await f.write(data[slot])
        return time.perf_counter() - start


async def handoff_variants(path: Path, pages: int, data: list[bytes], rounds: int) -> None:
    """``--handoff``: one 64-page ``pwritev`` per call, one call in flight, through each way
    of crossing to a thread and back; best of ``rounds`` alternating rounds, µs per call."""
    from handoff import EventfdOwner, ExecutorOwner, LockOwner, SimpleQueueOwner

    from swapio.owner import OwnerThread

    loop = asyncio.get_running_loop()
    makers: dict[str, Any] = {
        "swapio.owner (Condition + call_soon_threadsafe)": lambda: OwnerThread("b", loop),
        "SimpleQueue + call_soon_threadsafe": lambda: SimpleQueueOwner(loop),
        "Lock wake-up + call_soon_threadsafe": lambda: LockOwner(loop),
        "SimpleQueue + eventfd/add_reader": lambda: EventfdOwner(loop),
        "run_in_executor (1 thread)": lambda: ExecutorOwner(loop),
    }
    fd = os.open(path, os.O_RDWR)
    calls = pages // BATCH
    best: dict[str, float] = {}

    def note(name: str, elapsed: float) -> None:
        best[name] = min(best.get(name, elapsed), elapsed / calls)

    for _ in range(rounds):
        start = time.perf_counter()
        for slot in range(0, pages, BATCH):
            os.pwritev(fd, data[slot : slot + BATCH], slot * PAGE)
        note("inline on the event loop (raw pwritev)", time.perf_counter() - start)
        for name, make in makers.items():
            owner = make()
            start = time.perf_counter()
            for slot in range(0, pages, BATCH):
                await owner.submit(os.pwritev, fd, data[slot : slot + BATCH], slot * PAGE)
            note(name, time.perf_counter() - start)
            if isinstance(owner, OwnerThread):
                await owner.stop()
            else:
                owner.close()
    os.close(fd)
    raw = best["inline on the event loop (raw pwritev)"]
    for name, per_call in best.items():
        print(f"{name:<50} {per_call * 1e6:8.1f} µs/call  {raw / per_call:5.2f}x raw")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--aiofiles-mib", type=int, default=32, help="aiofiles is slow: smaller")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--handoff", action="store_true", help="compare ways of crossing to a thread instead"
    )
    args = parser.parse_args()
    pages = args.mib * 256
    small = args.aiofiles_mib * 256
    data = _pages(pages)
    if args.handoff:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            path = Path(tmp) / "bench.swap"
            area = await PluginHost().activate(f"file://{path}", create=CreateRequest(pages))
            await area.deactivate()
            await handoff_variants(path, pages, data, args.repeat)
        return
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bench.swap"
        area = await PluginHost().activate(f"file://{path}", create=CreateRequest(pages))
        await area.deactivate()
        for _ in range(args.repeat):
            runs = {
                "swapio-file-qd1": (await swapio_file(path, pages, data)) / pages,
                "swapio-file-qd8": (await swapio_file(path, pages, data, 8)) / pages,
                "raw-pwritev": raw_pwritev(path, pages, data) / pages,
                "aiofiles-per-page": (await naive_aiofiles(path, small, data)) / small,
            }
            for name, per_page in runs.items():
                best[name] = min(best.get(name, per_page), per_page)
    rates = {name: 1 / per_page for name, per_page in best.items()}
    result = {
        "workload": "seq-out",
        "page_size": PAGE,
        "request_pages": BATCH,
        "pages_per_s": {k: round(v) for k, v in rates.items()},
        "ratio_vs_raw_pwritev": {
            q: round(rates[f"swapio-file-{q}"] / rates["raw-pwritev"], 3) for q in ("qd1", "qd8")
        },
        "inline_write_stalls": {f"qd{qd}": n for qd, n in STALLS.items()},
        "worst_stall_ms": {f"qd{qd}": round(s * 1e3, 1) for qd, s in WORST.items()},
        "speedup_vs_aiofiles": {
            q: round(rates[f"swapio-file-{q}"] / rates["aiofiles-per-page"], 1)
            for q in ("qd1", "qd8")
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, rate in rates.items():
        print(f"{name:<20} {rate:>12,.0f} pages/s  {rate * PAGE / 2**20:>8.1f} MiB/s")
    print(f"swapio-file / raw pwritev : {result['ratio_vs_raw_pwritev']}")
    print(f"swapio-file / aiofiles    : {result['speedup_vs_aiofiles']}")
    print(f"inline writes throttled   : {result['inline_write_stalls']}")
    print(f"longest of them (ms)      : {result['worst_stall_ms']}")


if __name__ == "__main__":
    asyncio.run(main())
