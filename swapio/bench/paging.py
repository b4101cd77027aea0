"""Workloads above the device: the pager (``pager-50/75/100``, ``pager-seq``) and ``pressure``.

A workload that cannot run on a target (a peer has no swap area) raises :class:`Unavailable`
and the run lists it as skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time

from swapio.bench.results import Kind, Result
from swapio.bench.targets import Target
from swapio.bench.workloads import BenchConfig, Workload
from swapio.errors import SwapioError
from swapio.pager import Pager
from swapio.pager.pressure import pressure_run, run_pressure
from swapio.pool import PagePool


class Unavailable(Exception):
    """The workload cannot run here (a layer it needs is not installed)."""


#: Share of pager accesses that write (the rest read).
WRITE_SHARE = 0.25


async def _pager(
    target: Target, cfg: BenchConfig, resident_pct: int, *, sequential: bool = False
) -> Result:
    """Page accesses through the pager with ``resident_pct`` % of the set resident.

    The working set is ``min(pages, ops)`` pages; every page is written once first (untimed)
    so later misses are major faults that read the area.  Then ``ops`` accesses, one in four
    a write, one at a time (an application thread): at uniform random pages, or
    (``sequential``) a scan of the working set from page 0, wrapping around.  Latency is per
    access, hits included.  The pager runs as a user gets it: the area's bounded pool, derived
    watermarks, readahead on (default window); ``extra`` reports the hit ratio, readahead
    pages read per major fault and the share of them used.
    """
    area = target.area
    if area is None:
        raise Unavailable("pager workloads need a swap area (peers have none)")
    span = min(cfg.pages, cfg.ops, area.pages)
    resident = max(1, span * resident_pct // 100)
    rng = random.Random(cfg.seed + resident_pct)
    data = os.urandom(cfg.page_size)
    async with Pager(area, resident_pages=resident, pages=span) as pager:
        for index in range(span):
            await pager.write(index, data)
        before = pager.stats()
        samples: list[int] = []
        start = time.perf_counter()
        deadline = start + cfg.seconds
        for n in range(cfg.ops):
            index = n % span if sequential else rng.randrange(span)
            t0 = time.perf_counter_ns()
            if rng.random() < WRITE_SHARE:
                await pager.write(index, data[:64])
            else:
                await pager.read(index)
            samples.append(time.perf_counter_ns() - t0)
            if time.perf_counter() > deadline:
                break
        seconds = time.perf_counter() - start
        after = pager.stats()
    accesses = after.accesses - before.accesses
    hits = after.hits - before.hits
    majors = after.major_faults - before.major_faults
    ra_issued = after.readahead_issued - before.readahead_issued
    ra_hits = after.readahead_hits - before.readahead_hits
    return Result(
        target=target.name,
        kind=target.kind,
        workload=f"pager-{'seq' if sequential else resident_pct}",
        page_size=target.page_size,
        pages=len(samples),
        seconds=seconds,
        samples=tuple(samples),
        extra={
            "working_set": span,
            "resident_pages": resident,
            "hit_ratio": round(hits / accesses, 4) if accesses else 0.0,
            "major_faults": majors,
            "writebacks": after.writebacks - before.writebacks,
            "evictions": after.evictions - before.evictions,
            "clean_drops": after.clean_drops - before.clean_drops,
            "readahead_hits": ra_hits,
            "readahead_per_fault": round(ra_issued / majors, 3) if majors else 0.0,
            "readahead_used": round(ra_hits / ra_issued, 3) if ra_issued else 0.0,
            "reserve_dips": after.reserve_dips - before.reserve_dips,
        },
    )


async def pager_50(target: Target, cfg: BenchConfig) -> Result:
    return await _pager(target, cfg, 50)


async def pager_75(target: Target, cfg: BenchConfig) -> Result:
    return await _pager(target, cfg, 75)


async def pager_100(target: Target, cfg: BenchConfig) -> Result:
    return await _pager(target, cfg, 100)


#: Pressure workload geometry: resident frames, writer tasks, stall watchdog.
PRESSURE_RESIDENT = 64
PRESSURE_WRITERS = 4
#: Seconds the cleanup after a stall may take before the bench moves on.
CLEANUP_SECONDS = 5.0
STALL_SECONDS = 5.0


async def pressure(target: Target, cfg: BenchConfig) -> Result:
    """The deadlock workload on this backend: every frame dirty, only the reserve left.

    The backend's area is activated again (the bench closed it first) on the pool a pager
    gets by default, :meth:`PagePool.for_resident` (the resident set plus the derived *min*,
    the area's declared reserve need on top; derived watermarks, nothing tuned).  Writer
    tasks dirty pages until only the reserve is left, so each eviction must swap out in
    memalloc context before a frame is free; backends that allocate transient buffers
    (http, NFS, redis) draw them from the reserve here.  A watchdog ends the run if nothing
    progresses for a few seconds and reports the stall; every page is verified afterwards.
    """
    if target.reopen is None:
        raise Unavailable("pressure needs a swap area (peers have none)")
    pool = PagePool.for_resident(PRESSURE_RESIDENT, target.page_size)
    area = await target.reopen(pool)
    try:
        span = min(cfg.pages, 1024, area.pages)
        result = await pressure_run(
            area,
            resident_pages=PRESSURE_RESIDENT,
            ops=min(cfg.ops, 2 * span),
            writers=PRESSURE_WRITERS,
            stall_timeout=STALL_SECONDS,
            seed=cfg.seed + 99,
            span=span,
        )
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLEANUP_SECONDS):
                await area.deactivate()
    return Result(
        target=target.name,
        kind=target.kind,
        workload="pressure",
        page_size=target.page_size,
        pages=result.writes_done,
        seconds=result.elapsed_s,
        samples=result.samples,
        extra={
            "completed": result.completed and result.verified,
            "budget_pages": result.budget_pages,
            "resident_pages": PRESSURE_RESIDENT,
            "reserve_pages": result.reserve_pages,
            "area_reserve_pages": target.reserve_need,
            "peak_reserve_used_pages": result.peak_reserve_used_pages,
            "reserve_dips": result.reserve_dips,
            "min_free_pages": result.min_free_pages,
            "writebacks": result.pager.writebacks,
            "throttle_waits": result.pager.throttle_waits,
        },
    )


async def pressure_model(cfg: BenchConfig) -> Result:
    """The scheduler's own deadlock demonstration (:func:`swapio.pager.pressure.run_pressure`).

    Run twice on its model backend (which, like an NFS client, needs reply buffers to finish
    every request): with the reserve it must complete; without it the watchdog must report
    the stall.  The result is the run with the reserve; the other run's outcome is attached.
    """
    # A generous watchdog for the run that must complete: a loaded machine is not a stall.
    with_reserve = await run_pressure(reserve=True, seed=cfg.seed, stall_timeout=STALL_SECONDS)
    without = None
    demo_error: dict[str, str] = {}
    if cfg.reserve_demo:
        try:
            without = await run_pressure(reserve=False, seed=cfg.seed, stall_timeout=1.0)
        except SwapioError as exc:  # the demonstration's teardown failed: say so, keep the rest
            demo_error = {"without_reserve_error": f"{type(exc).__name__}: {exc}"}
    return Result(
        target="reply-model",
        kind=Kind.BACKEND,
        workload="pressure",
        page_size=cfg.page_size,
        pages=with_reserve.writes_done,
        seconds=with_reserve.elapsed_s,
        extra={
            "completed": with_reserve.completed and with_reserve.verified,
            "budget_pages": with_reserve.budget_pages,
            "reserve_pages": with_reserve.reserve_pages,
            "peak_reserve_used_pages": with_reserve.peak_reserve_used_pages,
            "reserve_dips": with_reserve.reserve_dips,
            "min_free_pages": with_reserve.min_free_pages,
        }
        | (
            {
                "without_reserve_stalled": without.stalled,
                "without_reserve_writes_done": without.writes_done,
                "without_reserve_report": without.stall_report,
            }
            if without is not None
            else demo_error
        ),
    )


async def pager_seq(target: Target, cfg: BenchConfig) -> Result:
    """A sequential scan at half residency: where readahead pays off."""
    return await _pager(target, cfg, 50, sequential=True)


PAGING_WORKLOADS: dict[str, Workload] = {
    "pager-50": pager_50,
    "pager-seq": pager_seq,
    "pager-75": pager_75,
    "pager-100": pager_100,
    "pressure": pressure,
}
