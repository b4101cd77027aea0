"""Workloads above the device: the pager (``pager-50/75/100``) and the scheduler (``pressure``).

A workload that cannot run on a target (a peer has no swap area) raises :class:`Unavailable`
and the run lists it as skipped with the reason.
"""

from __future__ import annotations

import os
import random
import time

from swapio.bench.results import Result
from swapio.bench.targets import Target
from swapio.bench.workloads import BenchConfig, Workload
from swapio.pager import Pager


class Unavailable(Exception):
    """The workload cannot run here (a layer it needs is not installed)."""


#: Share of pager accesses that write (the rest read).
WRITE_SHARE = 0.25


async def _pager(target: Target, cfg: BenchConfig, resident_pct: int) -> Result:
    """Random page accesses through the pager with ``resident_pct`` % of the set resident.

    The working set is ``min(pages, ops)`` pages; every page is written once first (untimed)
    so later misses are major faults that read the area.  Then ``ops`` accesses at uniform
    random pages, one in four a write, one at a time (an application thread); latency is per
    access, hits included.
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
        for _ in range(cfg.ops):
            index = rng.randrange(span)
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
    return Result(
        target=target.name,
        kind=target.kind,
        workload=f"pager-{resident_pct}",
        page_size=target.page_size,
        pages=len(samples),
        seconds=seconds,
        samples=tuple(samples),
        extra={
            "working_set": span,
            "resident_pages": resident,
            "hit_ratio": round(hits / accesses, 4) if accesses else 0.0,
            "major_faults": after.major_faults - before.major_faults,
            "writebacks": after.writebacks - before.writebacks,
            "evictions": after.evictions - before.evictions,
            "clean_drops": after.clean_drops - before.clean_drops,
            "readahead_hits": after.readahead_hits - before.readahead_hits,
            "reserve_dips": after.reserve_dips - before.reserve_dips,
        },
    )


async def pager_50(target: Target, cfg: BenchConfig) -> Result:
    return await _pager(target, cfg, 50)


async def pager_75(target: Target, cfg: BenchConfig) -> Result:
    return await _pager(target, cfg, 75)


async def pager_100(target: Target, cfg: BenchConfig) -> Result:
    return await _pager(target, cfg, 100)


async def pressure(target: Target, cfg: BenchConfig) -> Result:
    raise Unavailable("the scheduler's pressure workload is not installed yet")


PAGING_WORKLOADS: dict[str, Workload] = {
    "pager-50": pager_50,
    "pager-75": pager_75,
    "pager-100": pager_100,
    "pressure": pressure,
}
