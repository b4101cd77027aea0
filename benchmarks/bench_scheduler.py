"""Benchmark of the reserve-aware scheduler and the pager (issue: scheduler and pager).

    python benchmarks/bench_scheduler.py [--quick] [--repeat 3] [--dir /var/tmp] [--json]
        [--section swap_out --section priority ...] [--clock cpu]
        [--baseline-scheduler old_scheduler.py]

Sections (each measured in the same run against its own baseline):

* ``swap_out``: sequential 4 KiB swap-out on the memory backend, through the scheduler and
  by calling the area directly with the same request sizes; plus bursts of requests that
  the scheduler merges (plugging) into ``max_pages_per_request`` calls.
* ``priority``: demand swap-in latency (1 page, one at a time) on an idle area and while a
  background swap-out stream keeps the queue saturated; once with demand at DEMAND priority
  and once, as a control, at BACKGROUND priority (priorities off).
* ``pager``: random access through the pager on the file backend with 50/75/100 % of the
  working set resident (one access in four a write); at 100 % the per-access cost is
  compared with copying the page out of a plain ``bytearray``.
* ``pressure``: the deadlock demonstration with and without the reserve.

Runs alternate between a target and its baseline; the best of ``--repeat`` runs is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from swapio import CreateRequest, PluginHost
from swapio.area import SwapArea
from swapio.pager import Pager
from swapio.pager.pressure import run_pressure
from swapio.pool import PagePool
from swapio.scheduler import Direction, IOScheduler, Priority
from swapio.scheduler.scheduler import DEFAULT_BACKGROUND_SHARE

PAGE = 4096
ROUNDS = 4  # alternating rounds of idle / saturated / no-priority demand reads
ROUND_SECONDS = 0.3


def pct(samples: list[int], q: float) -> int:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def best_of(repeat: int, fn: Callable[[], Awaitable[float]]) -> float:
    return min([await fn() for _ in range(repeat)])


# --------------------------------------------------------------------------- swap-out
def load_baseline(path: str) -> Any:
    """The ``IOScheduler`` class of another ``scheduler.py`` (e.g. ``git show
    OLD:swapio/scheduler/scheduler.py > /tmp/old.py``), loaded over the current package, to
    time it interleaved with the current one in one process: both see the same machine
    noise.  Works while the old module's use of the sibling modules (request, queue, stats)
    is still compatible."""
    spec = importlib.util.spec_from_file_location("swapio_baseline_scheduler", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"error: cannot load a scheduler module from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.IOScheduler


async def bench_swap_out(
    pages: int,
    repeat: int,
    clock: Callable[[], float] = time.perf_counter,
    baseline: Any = None,
) -> dict[str, Any]:
    """``clock``: wall time by default; ``time.process_time`` (``--clock cpu``) measures this
    process's CPU only (the memory backend does no I/O).  ``baseline``: another scheduler
    class timed in the same loops (``--baseline-scheduler``)."""
    host = PluginHost()
    area = await host.activate("memory://bench-sched", create=CreateRequest(pages=pages))
    block = os.urandom(PAGE * 128)
    data = [block[i * PAGE : (i + 1) * PAGE] for i in range(128)]
    scheds: dict[str, Any] = {"scheduler": IOScheduler()}
    if baseline is not None:
        scheds["baseline"] = baseline()
    rows = []
    try:
        for size in (1, 8, 32, 64, 128):
            chunk = data[:size]

            async def direct(size: int = size, chunk: list[bytes] = chunk) -> float:
                t = clock()
                for slot in range(0, pages - size + 1, size):
                    await area.swap_out(slot, chunk)
                return clock() - t

            async def scheduled(sched: Any, size: int = size, chunk: list[bytes] = chunk) -> float:
                t = clock()
                for slot in range(0, pages - size + 1, size):
                    await sched.swap_out(area, slot, chunk)
                return clock() - t

            d_best = float("inf")
            best = dict.fromkeys(scheds, float("inf"))
            for _ in range(repeat):  # alternate so noise hits all alike
                d_best = min(d_best, await direct())
                for name, sched in scheds.items():
                    best[name] = min(best[name], await scheduled(sched))
            n = pages - pages % size
            row: dict[str, Any] = {"request_pages": size, "direct_pages_per_s": round(n / d_best)}
            for name, seconds in best.items():
                prefix = "" if name == "scheduler" else "baseline_"
                row[f"{prefix}scheduler_pages_per_s"] = round(n / seconds)
                row[f"{prefix}overhead_pct"] = round(100 * (seconds - d_best) / d_best, 1)
            rows.append(row)
        merged = []
        for size in (1, 8, 32):
            chunk = data[:size]

            async def burst(sched: Any, size: int = size, chunk: list[bytes] = chunk) -> float:
                t = clock()
                window = 1024 // size  # requests submitted per tick (one plug)
                slot = 0
                while slot < pages:
                    reqs = []
                    for _ in range(window):
                        if slot + size > pages:
                            break
                        reqs.append(sched.submit(area, Direction.SWAP_OUT, slot, chunk))
                        slot += size
                    for req in reqs:
                        await req
                    if not reqs:
                        break
                return clock() - t

            current = scheds["scheduler"]
            before = current.stats(area)
            best = dict.fromkeys(scheds, float("inf"))
            for _ in range(repeat):
                for name, sched in scheds.items():
                    best[name] = min(best[name], await burst(sched))
            after = current.stats(area)
            calls = after.batches - before.batches
            row = {
                "request_pages": size,
                "pages_per_s": round(pages / best["scheduler"]),
                "mean_pages_per_area_call": round((after.pages_out - before.pages_out) / calls, 1)
                if calls
                else 0,
            }
            if "baseline" in best:
                row["baseline_pages_per_s"] = round(pages / best["baseline"])
            merged.append(row)
    finally:
        for sched in scheds.values():
            await sched.aclose()
        await area.deactivate()
    return {"pages": pages, "sequential": rows, "merged_bursts": merged}


# --------------------------------------------------------------------------- priority
async def _demand_latency(
    area: SwapArea,
    sched: IOScheduler,
    samples: int,
    *,
    background: bool,
    demand_priority: Priority,
    min_seconds: float = 1.0,
) -> tuple[list[int], float]:
    """Demand read latencies, and background pages/s written while they ran."""
    stop = asyncio.Event()
    block = [os.urandom(PAGE)] * 32
    span = area.pages // 2

    async def stream() -> None:
        slot = 0
        outstanding: list[Any] = []
        while not stop.is_set():
            while len(outstanding) < 4 * area.capabilities.queue_depth:
                outstanding.append(
                    sched.submit(
                        area,
                        Direction.SWAP_OUT,
                        span + slot,
                        block,
                        priority=Priority.BACKGROUND,
                    )
                )
                slot = (slot + 64) % (span - 64)  # never adjacent: no merging, full queue
            await asyncio.wait([r.future for r in outstanding[:1]])
            outstanding = [r for r in outstanding if not r.done()]
        for r in outstanding:
            await r

    task = asyncio.create_task(stream()) if background else None
    if task is not None:
        for _ in range(50):
            await asyncio.sleep(0)
    view = memoryview(bytearray(PAGE))
    rng = random.Random(1)
    out: list[int] = []
    written = sched.stats(area).pages_out
    t0 = time.perf_counter()
    # run for at least a second so that aging (background work held by anticipation is
    # promoted after two aging intervals) shows up in both latency and background rate
    while len(out) < samples or time.perf_counter() - t0 < min_seconds:
        slot = rng.randrange(span)
        t = time.perf_counter_ns()
        await sched.swap_in(area, slot, [view], priority=demand_priority)
        out.append(time.perf_counter_ns() - t)
        await asyncio.sleep(0)  # let the rest of the program (the stream) run between reads
    rate = (sched.stats(area).pages_out - written) / (time.perf_counter() - t0)
    stop.set()
    if task is not None:
        await task
    return out, rate


async def bench_priority(samples: int, directory: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    host = PluginHost()
    file_url = f"file://{directory}/bench-prio.swap"
    configs = [
        ("memory", "memory://bench-prio", DEFAULT_BACKGROUND_SHARE),
        ("file", file_url, DEFAULT_BACKGROUND_SHARE),
        ("file, background_share=1/16", file_url, 1 / 16),
    ]
    for name, url, share in configs:
        area = await host.activate(url, create=CreateRequest(pages=16384))
        sched = IOScheduler(background_share=share)
        try:
            await area.write(0, os.urandom(PAGE * 256))
            # alternate short rounds of the three modes so machine noise hits them alike
            idle: list[int] = []
            busy: list[int] = []
            flat: list[int] = []
            busy_rates: list[float] = []
            flat_rates: list[float] = []
            for _ in range(ROUNDS):
                part, _rate = await _demand_latency(
                    area, sched, samples // ROUNDS, background=False,
                    demand_priority=Priority.DEMAND, min_seconds=ROUND_SECONDS,
                )  # fmt: skip
                idle += part
                part, rate = await _demand_latency(
                    area, sched, samples // ROUNDS, background=True,
                    demand_priority=Priority.DEMAND, min_seconds=ROUND_SECONDS,
                )  # fmt: skip
                busy += part
                busy_rates.append(rate)
                part, rate = await _demand_latency(
                    area, sched, samples // ROUNDS, background=True,
                    demand_priority=Priority.BACKGROUND, min_seconds=ROUND_SECONDS,
                )  # fmt: skip
                flat += part
                flat_rates.append(rate)
            busy_rate = sum(busy_rates) / len(busy_rates)
            flat_rate = sum(flat_rates) / len(flat_rates)
        finally:
            await sched.aclose()
            await area.deactivate()
            if url.startswith("memory:"):
                from swapio_memory.plugin import forget

                forget("bench-prio")
            else:
                Path(f"{directory}/bench-prio.swap").unlink(missing_ok=True)
        results[name] = {
            "background_share": round(share, 4),
            "idle_p50_us": round(pct(idle, 0.5) / 1000, 1),
            "idle_p99_us": round(pct(idle, 0.99) / 1000, 1),
            "saturated_p50_us": round(pct(busy, 0.5) / 1000, 1),
            "saturated_p99_us": round(pct(busy, 0.99) / 1000, 1),
            "saturated_p99_over_idle": round(pct(busy, 0.99) / pct(idle, 0.99), 2),
            "no_priority_p99_us": round(pct(flat, 0.99) / 1000, 1),
            "no_priority_p99_over_idle": round(pct(flat, 0.99) / pct(idle, 0.99), 2),
            "background_pages_per_s_during_reads": round(busy_rate),
            "no_priority_background_pages_per_s": round(flat_rate),
        }
    return results


# --------------------------------------------------------------------------- pager
async def bench_pager(working_set: int, accesses: int, directory: Path) -> dict[str, Any]:
    host = PluginHost()
    path = directory / "bench-pager.swap"
    rows = []
    data = os.urandom(PAGE)
    small = data[:64]
    try:
        for resident_pct in (50, 75, 100):
            path.unlink(missing_ok=True)
            pool = PagePool(working_set * 2 + 1024)
            area = await host.activate(
                f"file://{path}", create=CreateRequest(pages=working_set), pool=pool
            )
            resident = max(1, working_set * resident_pct // 100)
            try:
                async with Pager(area, resident_pages=resident, readahead=0) as pager:
                    for i in range(working_set):
                        await pager.write(i, data)
                    await pager.sync()
                    pager.reset_latency()
                    before = pager.stats()
                    rng = random.Random(resident_pct)
                    lat: list[int] = []
                    t0 = time.perf_counter()
                    for _ in range(accesses):
                        i = rng.randrange(working_set)
                        t = time.perf_counter_ns()
                        if rng.random() < 0.25:
                            await pager.write(i, small)
                        else:
                            await pager.read(i)
                        lat.append(time.perf_counter_ns() - t)
                    seconds = time.perf_counter() - t0
                    after = pager.stats()
                    fault_hist = pager.histograms()["fault"]
            finally:
                await area.deactivate()
            faults = after.major_faults - before.major_faults
            rows.append(
                {
                    "resident_pct": resident_pct,
                    "working_set_pages": working_set,
                    "accesses": accesses,
                    "accesses_per_s": round(accesses / seconds),
                    "hit_ratio": round(
                        (after.hits - before.hits) / (after.accesses - before.accesses), 3
                    ),
                    "major_faults": faults,
                    "faults_per_s": round(faults / seconds),
                    "fault_p50_us": round(fault_hist.percentile(0.5) / 1000, 1),
                    "fault_p99_us": round(fault_hist.percentile(0.99) / 1000, 1),
                    "access_p50_us": round(pct(lat, 0.5) / 1000, 2),
                    "access_p99_us": round(pct(lat, 0.99) / 1000, 2),
                    "writebacks": after.writebacks - before.writebacks,
                    "clean_drops": after.clean_drops - before.clean_drops,
                }
            )
    finally:
        path.unlink(missing_ok=True)
    return {"rows": rows, "hit_overhead": await bench_hit_overhead(accesses, directory)}


async def bench_hit_overhead(accesses: int, directory: Path) -> dict[str, Any]:
    """Per-access cost of a resident read through the pager vs a plain bytearray copy."""
    working_set = 1024
    host = PluginHost()
    path = directory / "bench-hits.swap"
    path.unlink(missing_ok=True)
    area = await host.activate(f"file://{path}", create=CreateRequest(pages=working_set))
    plain = bytearray(os.urandom(PAGE * working_set))
    view = memoryview(plain)
    rng = random.Random(3)
    order = [rng.randrange(working_set) for _ in range(accesses)]
    try:
        async with Pager(area, resident_pages=working_set) as pager:
            for i in range(working_set):
                await pager.write(i, plain[i * PAGE : (i + 1) * PAGE])

            async def through_pager() -> float:
                t = time.perf_counter()
                for i in order:
                    await pager.read(i)
                return time.perf_counter() - t

            async def baseline() -> float:
                async def read(i: int) -> bytes:  # same coroutine shape as pager.read
                    return bytes(view[i * PAGE : (i + 1) * PAGE])

                t = time.perf_counter()
                for i in order:
                    await read(i)
                return time.perf_counter() - t

            def plain_copy() -> float:
                t = time.perf_counter()
                for i in order:
                    bytes(view[i * PAGE : (i + 1) * PAGE])
                return time.perf_counter() - t

            p_best, b_best, c_best = float("inf"), float("inf"), float("inf")
            for _ in range(3):
                p_best = min(p_best, await through_pager())
                b_best = min(b_best, await baseline())
                c_best = min(c_best, plain_copy())
    finally:
        await area.deactivate()
        path.unlink(missing_ok=True)
    return {
        "accesses": accesses,
        "pager_ns_per_access": round(1e9 * p_best / accesses),
        "bytearray_ns_per_access": round(1e9 * b_best / accesses),
        "added_ns_per_access": round(1e9 * (p_best - b_best) / accesses),
        "plain_copy_ns_per_access": round(1e9 * c_best / accesses),
        "added_vs_plain_copy_ns": round(1e9 * (p_best - c_best) / accesses),
    }


# --------------------------------------------------------------------------- pressure
async def bench_pressure(writes: int) -> dict[str, Any]:
    out = {}
    for reserve in (True, False):
        r = await run_pressure(reserve=reserve, writes=writes, stall_timeout=1.0)
        out["with_reserve" if reserve else "without_reserve"] = {
            "completed": r.completed,
            "verified": r.verified,
            "stalled": r.stalled,
            "stall_report": r.stall_report,
            "writes_done": r.writes_done,
            "writes": r.writes,
            "writes_per_s": round(r.writes_per_s),
            "reserve_pages": r.reserve_pages,
            "peak_reserve_used_pages": r.peak_reserve_used_pages,
            "min_free_pages": r.min_free_pages,
            "reserve_dips": r.reserve_dips,
            "pool_balanced": r.pool_balanced,
        }
    return out


# --------------------------------------------------------------------------- main
def render(result: dict[str, Any]) -> str:
    lines = [f"machine: {result['machine']}, load average {result['load_average']}"]
    if "swap_out" in result:
        lines += _render_swap_out(result["swap_out"])
    if "priority" in result:
        lines += _render_priority(result["priority"])
    if "pager" in result:
        lines += _render_pager(result["pager"])
    if "pressure" in result:
        lines += _render_pressure(result["pressure"])
    lines.append(f"load average after: {result['load_average_after']}")
    return "\n".join(lines)


def _render_swap_out(so: dict[str, Any]) -> list[str]:
    lines = []
    lines.append(
        f"\nsequential swap-out, memory backend, {so['pages']} pages ({so['clock']} clock)"
    )
    lines.append("  req pages   direct p/s   scheduler p/s   overhead")
    for r in so["sequential"]:
        line = (
            f"  {r['request_pages']:9d} {r['direct_pages_per_s']:12,d} "
            f"{r['scheduler_pages_per_s']:15,d} {r['overhead_pct']:9.1f}%"
        )
        if "baseline_scheduler_pages_per_s" in r:
            line += (
                f"   baseline {r['baseline_scheduler_pages_per_s']:,d} p/s "
                f"{r['baseline_overhead_pct']:.1f}%"
            )
        lines.append(line)
    lines.append("  merged bursts (1024 pages submitted per tick):")
    for r in so["merged_bursts"]:
        line = (
            f"  {r['request_pages']:9d}-page requests: {r['pages_per_s']:,d} pages/s, "
            f"{r['mean_pages_per_area_call']} pages per area call"
        )
        if "baseline_pages_per_s" in r:
            line += f" (baseline {r['baseline_pages_per_s']:,d} pages/s)"
        lines.append(line)
    return lines


def _render_priority(priority: dict[str, Any]) -> list[str]:
    lines = ["\ndemand swap-in latency (us), idle vs saturated by background swap-out"]
    for name, r in priority.items():
        lines.append(
            f"  {name:28s} idle p99 {r['idle_p99_us']:8.1f}  saturated p99 "
            f"{r['saturated_p99_us']:8.1f} ({r['saturated_p99_over_idle']}x)  "
            f"no-priority p99 {r['no_priority_p99_us']:8.1f} "
            f"({r['no_priority_p99_over_idle']}x)"
        )
        lines.append(
            f"  {'':28s} background written meanwhile: "
            f"{r['background_pages_per_s_during_reads']:,d} pages/s (no priority: "
            f"{r['no_priority_background_pages_per_s']:,d})"
        )
    return lines


def _render_pager(pager: dict[str, Any]) -> list[str]:
    lines = ["\npager on the file backend, random access, 25% writes"]
    for r in pager["rows"]:
        lines.append(
            f"  {r['resident_pct']:3d}% resident: {r['accesses_per_s']:,d} acc/s, hit "
            f"{r['hit_ratio']}, {r['faults_per_s']:,d} faults/s, fault p50 "
            f"{r['fault_p50_us']} us p99 {r['fault_p99_us']} us"
        )
    h = pager["hit_overhead"]
    lines.append(
        f"  hits: pager {h['pager_ns_per_access']} ns vs bytearray "
        f"{h['bytearray_ns_per_access']} ns (async copy), "
        f"{h['plain_copy_ns_per_access']} ns (plain copy): +{h['added_ns_per_access']} ns / "
        f"+{h['added_vs_plain_copy_ns']} ns per access"
    )
    return lines


def _render_pressure(pressure: dict[str, Any]) -> list[str]:
    lines = ["\ndeadlock demonstration"]
    for name, r in pressure.items():
        lines.append(
            f"  {name}: completed={r['completed']} stalled={r['stalled']} "
            f"writes {r['writes_done']}/{r['writes']} reserve used peak "
            f"{r['peak_reserve_used_pages']}/{r['reserve_pages']} dips {r['reserve_dips']}"
        )
        if r["stall_report"]:
            lines.append(f"    watchdog: {r['stall_report']}")
    return lines


SECTIONS = ("swap_out", "priority", "pager", "pressure")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    directory = Path(args.dir or tempfile.gettempdir())
    wanted = set(args.section or SECTIONS)
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_scheduler.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}",
        "load_average": os.getloadavg(),
    }
    if "swap_out" in wanted:
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        baseline = load_baseline(args.baseline_scheduler) if args.baseline_scheduler else None
        result["swap_out"] = await bench_swap_out(
            16384 if quick else 131072, args.repeat, clock, baseline
        )
        result["swap_out"]["clock"] = args.clock
    if "priority" in wanted:
        result["priority"] = await bench_priority(300 if quick else 3000, directory)
    if "pager" in wanted:
        result["pager"] = await bench_pager(
            2048 if quick else 8192, 5000 if quick else 50000, directory
        )
    if "pressure" in wanted:
        result["pressure"] = await bench_pressure(500 if quick else 4000)
    result["load_average_after"] = os.getloadavg()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", help="directory for file-backed areas (default: tmp)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what the swap_out section times: wall time, or this process's CPU time",
    )
    parser.add_argument(
        "--baseline-scheduler",
        metavar="FILE",
        help="swap_out section: also time the IOScheduler of this scheduler.py, interleaved",
    )
    parser.add_argument(
        "--section", action="append", choices=SECTIONS, help="run only this section (repeatable)"
    )
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2) if args.json else render(result))


if __name__ == "__main__":
    main()
