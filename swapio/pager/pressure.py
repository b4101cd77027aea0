"""The deadlock demonstration: writing out memory needs memory.

Every resident page is dirty and the pool is drained down to *min* (a pool sized by
:meth:`~swapio.pool.PagePool.for_resident`, derived watermarks); the backend needs fresh
buffers to complete each swap-out (it allocates ``reply_pages`` pool pages per request, like
the NFS client's reply buffers).  Evicting a page is the only way to free one, and evicting
needs a buffer first:

* **with the reserve** the swap-out runs in memalloc context, its buffer comes from below
  *min* (``pfmemalloc``), the write completes, the frame is freed — the workload finishes and
  the reserve never goes below zero;
* **without it** (``reserve=False``, i.e. ``reserve_enabled=False``: memalloc work stops at
  *min* like everyone else) the buffer allocation waits for memory that only the stuck
  swap-out could free; a watchdog sees no
  progress for ``stall_timeout`` seconds, reports the stall and tears everything down.

:func:`run_pressure` is both the test's subject and the ``pressure`` benchmark workload.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import swapio
from swapio.area import Capabilities, PageBuffer, SwapArea, SwapInfo
from swapio.pager.pager import DEFAULT_READAHEAD, Pager
from swapio.pager.stats import PagerStats
from swapio.plugins import PluginHost
from swapio.pool import PagePool
from swapio.scheduler import IOScheduler

__all__ = ["PressureResult", "ReplyBufferBackend", "pressure_run", "run_pressure"]

SCHEME = "pressure"


class ReplyBufferBackend:
    """A process-local backend that, like an NFS client, needs pool buffers to finish I/O.

    Every call allocates ``reply_pages`` pages from ``area.pool`` in the caller's context
    (memalloc for reclaim) and yields once before completing, as a network round trip would.
    It declares ``reserve_pages_per_request=reply_pages`` so activation grows the reserve.
    """

    def __init__(self, pages: int, page_size: int, reply_pages: int, memalloc_requests: int):
        self.pages = pages
        self.page_size = page_size
        self.reply_pages = reply_pages
        self.memalloc_requests = memalloc_requests
        self.store: dict[int, bytes] = {}
        self.reply_dips = 0

    @swapio.hookimpl
    def swapio_backend(self) -> swapio.BackendInfo:
        return swapio.BackendInfo(
            name=SCHEME,
            version="0",
            schemes=(SCHEME,),
            summary="deadlock demonstration: needs reply buffers to finish each request",
        )

    @swapio.hookimpl
    async def swapfile(self, area: SwapArea, activate: bool) -> SwapInfo | None:
        if not activate:
            return None
        return SwapInfo(
            self.pages,
            self.page_size,
            Capabilities(
                max_pages_per_request=32,
                queue_depth=8,
                reserve_pages_per_request=self.reply_pages,
                memalloc_requests=self.memalloc_requests,
            ),
        )

    async def _round_trip(self, area: SwapArea) -> None:
        with await area.pool.alloc(self.reply_pages * self.page_size) as reply:
            self.reply_dips += reply.pfmemalloc
            await asyncio.sleep(0)

    @swapio.hookimpl
    async def swap_out(self, area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
        await self._round_trip(area)
        for i, data in enumerate(pages):
            self.store[slot + i] = bytes(data)

    @swapio.hookimpl
    async def swap_in(self, area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
        await self._round_trip(area)
        for i, view in enumerate(pages):
            view[:] = self.store.get(slot + i, bytes(self.page_size))


@dataclass(frozen=True)
class PressureResult:
    """What :func:`run_pressure` / :func:`pressure_run` observed."""

    reserve_enabled: bool
    completed: bool
    stalled: bool
    stall_report: str | None
    writes: int
    writes_done: int
    verified: bool
    elapsed_s: float
    budget_pages: int
    reserve_pages: int
    peak_reserve_used_pages: int
    min_free_pages: int
    reserve_dips: int
    pool_balanced: bool
    pager: PagerStats
    reads_done: int = 0
    samples: tuple[int, ...] = ()

    @property
    def writes_per_s(self) -> float:
        """Completed writes per second."""
        return self.writes_done / self.elapsed_s if self.elapsed_s else 0.0


def _value_page(value: int, page_size: int) -> bytes:
    return value.to_bytes(8, "little") * (page_size // 8)


def _plans(
    span: int,
    resident_pages: int,
    ops: int,
    writers: int,
    read_share: float,
    sequential: bool,
    seed: int,
) -> list[list[tuple[int, bool]]]:
    """Each writer's accesses ``(page, is_write)``: first dirty its share of the resident
    set, then ``ops // writers`` random or sequential accesses over its own pages."""
    rng = random.Random(seed)
    per_writer = max(1, ops // writers)
    plans: list[list[tuple[int, bool]]] = []
    for w in range(writers):
        mine = list(range(w, span, writers))
        plan = [(i, True) for i in mine[: max(1, resident_pages // writers + 1)]]
        if sequential:
            plan += [(mine[n % len(mine)], rng.random() >= read_share) for n in range(per_writer)]
        else:
            plan += [(rng.choice(mine), rng.random() >= read_share) for _ in range(per_writer)]
        plans.append(plan)
    return plans


async def _verify(pager: Pager, model: dict[int, int]) -> bool:
    """Every page written reads back the value last written to it."""
    for index, value in model.items():
        data = await pager.read(index)
        if data[:8] != value.to_bytes(8, "little"):
            return False
    return True


async def pressure_run(
    area: SwapArea,
    *,
    resident_pages: int,
    ops: int = 2048,
    writers: int = 4,
    read_share: float = 0.0,
    sequential: bool = False,
    stall_timeout: float = 1.0,
    seed: int = 0,
    readahead: int = DEFAULT_READAHEAD,
    span: int | None = None,
) -> PressureResult:
    """Drive a pager on ``area`` (activated on a pool from :meth:`PagePool.for_resident`)
    until memory is exhausted, watch for a stall, and verify every page.

    ``writers`` tasks run at once, each owning the pages ``≡ w (mod writers)`` of the area
    (so faults arrive together and drain the pool to *min*, the situation the reserve is
    for): every task first dirties its share of the resident set, then makes ``ops //
    writers`` accesses — uniform random or a sequential scan of its pages — of which
    ``read_share`` are reads checked against the model at once.  A watchdog reports a stall
    when neither accesses nor writebacks progress for ``stall_timeout`` seconds.  Never
    raises for a stall or a mismatch (the result says so); the area stays active.
    ``span`` limits the pages used (default: the whole area); ``samples`` of the result are
    the latencies of every access, in ns.
    """
    pool = area.pool
    start_accounting = pool.accounting()
    dips_before = pool.snapshot().reserve_dips
    sched = IOScheduler(request_timeout=None)
    pager = Pager(area, resident_pages=resident_pages, scheduler=sched, readahead=readahead)
    span = area.pages if span is None else min(span, area.pages)
    plans = _plans(span, resident_pages, ops, writers, read_share, sequential, seed)
    model: dict[int, int] = {}
    counts = {"writes": 0, "reads": 0, "bad": 0}
    samples: list[int] = []
    min_free = pool.free_pages
    total = sum(len(p) for p in plans)
    next_value = iter(range(1, 1 << 62))

    async def writer(plan: list[tuple[int, bool]]) -> None:
        nonlocal min_free
        for index, is_write in plan:
            t0 = time.perf_counter_ns()
            if is_write or index not in model:
                value = next(next_value)
                await pager.write(index, _value_page(value, area.page_size))
                model[index] = value
                counts["writes"] += 1
            else:
                data = await pager.read(index)
                counts["bad"] += data[:8] != model[index].to_bytes(8, "little")
                counts["reads"] += 1
            samples.append(time.perf_counter_ns() - t0)
            min_free = min(min_free, pool.free_pages)

    t0 = time.perf_counter()
    task = asyncio.ensure_future(asyncio.gather(*(writer(p) for p in plans)))
    stall_report: str | None = None
    last_progress = (-1, -1, -1)
    last_change = time.monotonic()
    while not task.done():
        await asyncio.wait([task], timeout=stall_timeout / 5)
        min_free = min(min_free, pool.free_pages)
        progress = (counts["writes"], counts["reads"], pager.stats().writebacks)
        now = time.monotonic()
        if progress != last_progress:
            last_progress, last_change = progress, now
        elif now - last_change >= stall_timeout and not task.done():
            stall_report = _stall_report(pool, pager, sched, area, counts["writes"], stall_timeout)
            task.cancel()
            break
    elapsed = time.perf_counter() - t0
    completed = stall_report is None
    try:
        await task
    except asyncio.CancelledError:
        completed = False
    verified = completed and counts["bad"] == 0 and await _verify(pager, model)
    snap = pool.snapshot()
    pager_stats = pager.stats()
    if stall_report is None:
        # the pager first: it waits for its page I/O, which only an open scheduler completes
        await pager.close()
        await sched.aclose()
    else:
        # stalled page I/O waits on the pool; closing the scheduler settles it (with
        # SchedulerClosedError), after which the pager's close returns at once
        await sched.aclose()
        await pager.close()
    return PressureResult(
        reserve_enabled=pool.reserve_enabled,
        completed=completed,
        stalled=stall_report is not None,
        stall_report=stall_report,
        writes=total,
        writes_done=counts["writes"] + counts["reads"],
        reads_done=counts["reads"],
        samples=tuple(samples),
        verified=verified,
        elapsed_s=elapsed,
        budget_pages=pool.budget_pages,
        reserve_pages=snap.reserve_pages,
        peak_reserve_used_pages=snap.peak_reserve_used_pages,
        min_free_pages=min(min_free, pool.budget_pages - snap.peak_used_pages),
        reserve_dips=snap.reserve_dips - dips_before,
        pool_balanced=pool.accounting() == start_accounting,
        pager=pager_stats,
    )


async def run_pressure(
    *,
    reserve: bool = True,
    resident_pages: int = 64,
    pages: int = 1024,
    writes: int = 2048,
    reply_pages: int = 2,
    memalloc_requests: int = 2,
    stall_timeout: float = 1.0,
    seed: int = 0,
    page_size: int = 4096,
    writers: int = 4,
) -> PressureResult:
    """The demonstration on the model backend; never raises for a stall (the result says).

    The pool is the one a pager gets by default (:meth:`PagePool.for_resident`: the resident
    set plus the derived *min*, the area's reserve need on top), with derived watermarks
    and readahead on — nothing tuned.  Once every frame holds a dirty page only the reserve
    is left, so each swap-out's reply buffer must come from it.
    """
    backend = ReplyBufferBackend(pages, page_size, reply_pages, memalloc_requests)
    pool = PagePool.for_resident(
        resident_pages,
        page_size,
        reserve_enabled=reserve,
        wait_timeout=max(30.0, 10 * stall_timeout),
    )
    host = PluginHost(autoload=False)
    host.register(backend, SCHEME)
    area = await host.activate(f"{SCHEME}://demo", pool=pool)
    try:
        return await pressure_run(
            area,
            resident_pages=resident_pages,
            ops=writes,
            writers=writers,
            stall_timeout=stall_timeout,
            seed=seed,
        )
    finally:
        await area.deactivate()


def _stall_report(
    pool: PagePool,
    pager: Pager,
    sched: IOScheduler,
    area: SwapArea,
    done: int,
    stall_timeout: float,
) -> str:
    snap = pool.snapshot()
    q = sched.stats(area)
    return (
        f"no progress for {stall_timeout:g} s after {done} writes: "
        f"{pager.resident} resident pages, {pager.dirty} dirty; "
        f"{q.inflight} request(s) in flight, {q.pending} queued; "
        f"{snap.waiters} allocation(s) waiting; pool free={snap.free_pages} "
        f"min={snap.min_pages} low={snap.low_pages}; reserve "
        f"{'enabled' if snap.reserve_enabled else 'DISABLED'} "
        f"({snap.reserve_used_pages}/{snap.reserve_pages} used)"
    )
