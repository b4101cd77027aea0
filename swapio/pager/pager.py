"""The user-space pager: more addressable pages than resident frames, backed by a swap area.

Page *i* of the pager lives in slot *i* of the area when it is not resident.  Frames are
page-sized buffers from the area's :class:`~swapio.pool.PagePool`, so the pager's resident
set, the backends' transient buffers and the reserve share one budget — which is what makes
the memalloc reserve meaningful.

* **Faults**: a page never written to the area is zero-filled without I/O (minor fault);
  otherwise it is swapped in at DEMAND priority (major fault), together with a **readahead**
  of the not-resident neighbours in its aligned cluster (``swap_cluster_readahead``, window
  ``2**page_cluster``), which the scheduler merges into the same request.
* **Eviction**: CLOCK (:mod:`swapio.pager.clock`) picks victims in clusters of
  ``reclaim_batch`` (``SWAP_CLUSTER_MAX``).  A clean page whose area copy is valid is
  dropped without I/O (the **swap cache**); a dirty page is written out at RECLAIM priority,
  in memalloc context, so the backend may use the reserve.  A failed write leaves the page
  dirty and resident (``sio_write_complete`` re-dirties the page), so no data is lost.
* **Direct reclaim** happens in the faulting task, throttled by
  :meth:`~swapio.pool.PagePool.throttle_direct_reclaim`; a **kswapd** task, woken by the pool
  when free pages fall below *low*, reclaims in memalloc context until they are above
  *high*, so other users of the pool (a backend's reply buffers) are not starved.
* **Dirty limit**: a writer that would exceed the pool's dirty limit first writes back a
  cluster of its own dirty pages (``balance_dirty_pages``), then waits on the pool.
* Pages being written back stay readable; writers wait for the write to finish (stable
  pages).  The pager never has two requests for one page in flight.

The pager is not thread-safe; use it from one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

from swapio.area import PageBuffer, SwapArea
from swapio.errors import (
    AllocationTimeout,
    BackendIOError,
    SlotRangeError,
    SwapTimeoutError,
    UsageError,
)
from swapio.memalloc import memalloc
from swapio.pager.clock import Clock
from swapio.pager.stats import PagerCounters, PagerStats
from swapio.pool import PagePool, PoolBuffer
from swapio.scheduler import Direction, IORequest, IOScheduler, LatencyHistogram, Priority

__all__ = ["DEFAULT_READAHEAD", "DEFAULT_RECLAIM_BATCH", "Pager"]

#: Pages per readahead cluster: ``1 << page_cluster`` with Linux's default page_cluster = 3.
DEFAULT_READAHEAD = 8
#: Victims chosen per reclaim pass (``SWAP_CLUSTER_MAX``).
DEFAULT_RECLAIM_BATCH = 32
#: Seconds :meth:`Pager.close` waits for in-flight page I/O.
DEFAULT_CLOSE_TIMEOUT = 30.0


class _Page:
    """One addressable page: where its data is and what is happening to it."""

    __slots__ = (
        "buf",
        "clock_pos",
        "dirty",
        "index",
        "io",
        "on_area",
        "readahead",
        "referenced",
        "stored",
        "view",
        "writeback",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.buf: PoolBuffer | None = None
        self.view: memoryview | None = None
        self.referenced = False
        self.dirty = False
        self.on_area = False  # the area's slot holds this page's current contents
        self.stored = False  # the area's slot has been written at least once
        self.io: asyncio.Future[None] | None = None  # swap-in or writeback in flight
        self.writeback = False
        self.readahead = False  # brought in by readahead and not yet touched
        self.clock_pos = -1


def _evictable(page: _Page) -> bool:
    return page.io is None and page.view is not None


class Pager:
    """Addressable pages over a swap area with a bounded resident set.

    :param area: the active swap area holding non-resident pages (slot *i* = page *i*).
    :param resident_pages: the resident budget, in pages (>= 1).
    :param scheduler: the I/O scheduler to use (default: a private one).
    :param pages: addressable pages (default and maximum: ``area.pages``).
    :param readahead: readahead cluster in pages (a power of two; 0 or 1 disables).
    :param reclaim_batch: victims per reclaim pass.
    :param timeout: seconds any wait for memory may last (default: the pool's).
    """

    def __init__(
        self,
        area: SwapArea,
        *,
        resident_pages: int,
        scheduler: IOScheduler | None = None,
        pages: int | None = None,
        readahead: int = DEFAULT_READAHEAD,
        reclaim_batch: int = DEFAULT_RECLAIM_BATCH,
        timeout: float | None = None,
    ) -> None:
        if isinstance(resident_pages, bool) or not isinstance(resident_pages, int):
            raise UsageError(f"resident_pages must be an int, got {resident_pages!r}")
        if resident_pages < 1:
            raise UsageError(f"resident_pages must be >= 1, got {resident_pages}")
        npages = area.pages if pages is None else pages
        if not 1 <= npages <= area.pages:
            raise UsageError(
                f"pages must be between 1 and the area's {area.pages} slots, got {npages}"
            )
        if readahead < 0 or (readahead > 1 and readahead & (readahead - 1)):
            raise UsageError(f"readahead must be 0 or a power of two, got {readahead}")
        if reclaim_batch < 1:
            raise UsageError(f"reclaim_batch must be >= 1, got {reclaim_batch}")
        self.area = area
        self.pool: PagePool = area.pool
        self.page_size = area.page_size
        self.pages = npages
        self.resident_budget = resident_pages
        self.readahead = readahead if readahead > 1 else 0
        self.reclaim_batch = reclaim_batch
        self.timeout = timeout
        self._own_scheduler = scheduler is None
        self._sched = scheduler if scheduler is not None else IOScheduler()
        self._table: list[_Page | None] = [None] * npages
        self._clock: Clock[_Page] = Clock(resident_pages)
        self._dirty = 0
        self._c = PagerCounters()
        self._pool_start = self.pool.snapshot()
        self._io_waiters: list[asyncio.Future[None]] = []
        self._kswapd_task: asyncio.Task[None] | None = None
        self._kswapd_wake: asyncio.Event | None = None
        self._remove_kswapd: Callable[[], None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ access
    async def read(self, index: int) -> bytes:
        """A copy of page ``index``."""
        self._c.accesses += 1
        if 0 <= index < self.pages:
            page = self._table[index]
            if page is not None and page.view is not None and page.io is None:
                page.referenced = True
                self._c.hits += 1
                if page.readahead:
                    page.readahead = False
                    self._c.readahead_hits += 1
                return bytes(page.view)
        page = await self._resident(index, for_write=False)
        assert page.view is not None
        return bytes(page.view)

    async def write(self, index: int, data: PageBuffer, offset: int = 0) -> None:
        """Copy ``data`` into page ``index`` at ``offset`` (the range must fit the page)."""
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        if offset < 0 or offset + size > self.page_size:
            raise UsageError(
                f"write of {size} bytes at offset {offset} does not fit a "
                f"{self.page_size}-byte page"
            )
        self._c.accesses += 1
        page = self._table[index] if 0 <= index < self.pages else None
        if page is not None and page.view is not None and page.io is None and page.dirty:
            self._c.hits += 1
        else:
            first = True
            while True:
                page = await self._resident(index, for_write=True, count=first)
                first = False
                if page.dirty:
                    break
                if self.pool.dirty_exceeded():
                    await self._balance_dirty()
                    continue  # the page may have moved while we waited
                page.dirty = True
                page.on_area = False
                self._dirty += 1
                self.pool.account_dirty(1)
                break
        assert page.view is not None
        page.referenced = True
        page.view[offset : offset + size] = data

    async def _resident(self, index: int, *, for_write: bool, count: bool = True) -> _Page:
        """Make page ``index`` resident (faulting it in) and return it, with no I/O pending
        (or only a writeback, when reading)."""
        if not 0 <= index < self.pages:
            raise SlotRangeError(f"page {index} out of range: the pager has {self.pages} pages")
        self._check_open()
        while True:
            page = self._table[index]
            if page is None:
                page = self._table[index] = _Page(index)
            if page.io is not None:
                if page.writeback and not for_write:
                    break  # a page under writeback stays readable
                await asyncio.shield(page.io)
                continue
            if page.view is not None:
                if count:
                    self._c.hits += 1
                break
            if await self._fault(page):
                break
        page.referenced = True
        if page.readahead:
            page.readahead = False
            self._c.readahead_hits += 1
        return page

    # ------------------------------------------------------------------ faults
    async def _fault(self, page: _Page) -> bool:
        """Bring ``page`` in; False when another task did so while we waited for a frame."""
        start = time.perf_counter_ns()
        buf = await self._get_frame()
        if page.view is not None or page.io is not None:
            buf.release()
            return False
        self._install(page, buf)
        if not page.stored:
            self._c.minor_faults += 1
            self._c.fault_latency.record(time.perf_counter_ns() - start)
            return True
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        page.io = done
        assert page.view is not None
        try:
            if self._readahead_around(page.index):
                # submitted in the same tick as the readahead: merged into one area call
                req = self._sched.submit(
                    self.area, Direction.SWAP_IN, page.index, [page.view], priority=Priority.DEMAND
                )
                await self._sched.wait(req)
            else:  # nothing to merge with: issue directly when the queue allows
                await self._sched.swap_in(self.area, page.index, [page.view])
        except BaseException:
            self._c.fault_errors += 1
            page.io = None
            self._uninstall(page)
            done.set_result(None)
            self._io_changed()
            raise
        page.io = None
        page.on_area = True
        done.set_result(None)
        self._io_changed()
        self._c.major_faults += 1
        self._c.fault_latency.record(time.perf_counter_ns() - start)
        return True

    def _readahead_around(self, index: int) -> int:
        """Queue reads of the cluster's not-resident, stored neighbours, using only frames
        that are free now and only while the pool is above *high* (readahead never evicts,
        and never takes the memory a read in flight may need to complete).  Returns how
        many reads were queued."""
        window = self.readahead
        issued = 0
        if not window:
            return issued
        start = index & ~(window - 1)
        table = self._table
        for j in range(start, min(start + window, self.pages)):
            if j == index:
                continue
            page = table[j]
            if page is None or not page.stored or page.view is not None or page.io is not None:
                continue
            if self._clock.full or self.pool.below_high() or self.pool.waiters:
                # readahead frames pin memory until their reads complete, and a read may
                # itself need buffers: only speculate while the pool is above *high*
                return issued
            buf = self.pool.try_alloc(self.page_size)
            if buf is None:
                return issued
            self._install(page, buf)
            page.referenced = False
            page.readahead = True
            page.io = asyncio.get_running_loop().create_future()
            assert page.view is not None
            req = self._sched.submit(
                self.area, Direction.SWAP_IN, j, [page.view], priority=Priority.READAHEAD
            )
            req.future.add_done_callback(lambda fut, page=page: self._readahead_done(page, fut))
            self._c.readahead_issued += 1
            issued += 1
        return issued

    def _readahead_done(self, page: _Page, fut: asyncio.Future[None]) -> None:
        done = page.io
        page.io = None
        failed = fut.cancelled() or fut.exception() is not None
        if failed:
            page.readahead = False
            self._uninstall(page)
        else:
            page.on_area = True
        if done is not None and not done.done():
            done.set_result(None)
        self._io_changed()

    def _install(self, page: _Page, buf: PoolBuffer) -> None:
        page.buf = buf
        page.view = buf.view
        page.referenced = True
        self._clock.insert(page)

    def _uninstall(self, page: _Page) -> None:
        """Drop a page's frame (its data must be on the area, or be discarded on purpose)."""
        if page.dirty:
            page.dirty = False
            self._dirty -= 1
            self.pool.account_dirty(-1)
        self._clock.remove(page)
        buf = page.buf
        page.buf = None
        page.view = None
        page.readahead = False
        if buf is not None:
            buf.release()

    # ------------------------------------------------------------------ frames
    async def _get_frame(self) -> PoolBuffer:
        """A frame for a faulting page: free room first, else reclaim, else wait."""
        self._ensure_kswapd()
        pool = self.pool
        loop = asyncio.get_running_loop()
        limit = self.pool.wait_timeout if self.timeout is None else self.timeout
        deadline = loop.time() + limit
        while True:
            if not self._clock.full:
                buf = pool.try_alloc(self.page_size)
                if buf is not None:
                    return buf
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AllocationTimeout(
                    f"pager fault waited {limit:g}s for a frame: {len(self._clock)}/"
                    f"{self.resident_budget} resident, {self._dirty} dirty, pool {pool!r}"
                )
            await pool.throttle_direct_reclaim(timeout=remaining)
            self._c.direct_reclaims += 1
            freed = await self._reclaim(self.reclaim_batch)
            if freed:
                continue
            self._c.frame_waits += 1
            if not self._clock.full:
                # our own set has room but the pool is short: someone else must give back
                buf = await pool.alloc(self.page_size, timeout=remaining)
                if not self._clock.full:
                    return buf
                buf.release()  # other faults filled our set while we waited
                continue
            await self._wait_io_change(remaining)

    async def _reclaim(self, n: int) -> int:
        """Evict up to ``n`` pages; return how many frames were freed."""
        victims = self._clock.select(n, _evictable)
        if not victims:
            return 0
        freed = 0
        dirty: list[_Page] = []
        for page in victims:
            if page.dirty:
                dirty.append(page)
                continue
            # swap cache: a clean page either has a valid copy on the area or was never
            # stored (all zeros, which a never-written slot also reads as): drop, no I/O
            self._uninstall(page)
            self._c.evictions += 1
            self._c.clean_drops += 1
            freed += 1
        if dirty:
            freed += await self._write_out(dirty, Priority.RECLAIM, evict=True)
        return freed

    async def _write_out(self, pages: list[_Page], priority: Priority, *, evict: bool) -> int:
        """Write ``pages`` to the area; evict the ones not touched meanwhile when ``evict``.

        Returns the number of frames freed.  Raises the first error if nothing was written.
        """
        loop = asyncio.get_running_loop()
        reqs: list[IORequest] = []
        started = time.perf_counter_ns()
        for page in pages:
            page.io = loop.create_future()
            page.writeback = True
            page.referenced = False
            assert page.view is not None
            try:
                req = self._sched.submit(
                    self.area,
                    Direction.SWAP_OUT,
                    page.index,
                    [page.view],
                    priority=priority,
                    memalloc=priority is Priority.RECLAIM or None,
                )
            except BaseException:
                self._end_writeback(page, None)
                if reqs:  # let what was submitted settle; its callbacks finish the pages
                    await asyncio.wait([r.future for r in reqs])
                raise
            req.future.add_done_callback(
                lambda fut, page=page: self._end_writeback(page, fut)  # type: ignore[misc]
            )
            reqs.append(req)
        await asyncio.wait([r.future for r in reqs])
        self._c.writeback_latency.record(time.perf_counter_ns() - started)
        freed = 0
        first_error: BaseException | None = None
        for page, req in zip(pages, reqs, strict=True):
            fut = req.future
            if fut.cancelled():
                continue
            exc = fut.exception()
            if exc is not None:
                first_error = first_error or exc
                continue
            evictable = page.view is not None and page.io is None and not page.dirty
            if evict and evictable and not page.referenced:
                self._uninstall(page)
                self._c.evictions += 1
                freed += 1
        if first_error is not None and not freed and evict:
            raise first_error
        return freed

    def _end_writeback(self, page: _Page, fut: asyncio.Future[None] | None) -> None:
        ok = fut is not None and not fut.cancelled() and fut.exception() is None
        if ok:
            page.dirty = False
            page.on_area = True
            page.stored = True
            self._dirty -= 1
            self.pool.account_dirty(-1)
            self._c.writebacks += 1
        else:
            self._c.writeback_errors += fut is not None
        page.writeback = False
        done = page.io
        page.io = None
        if done is not None and not done.done():
            done.set_result(None)
        self._io_changed()

    def _io_changed(self) -> None:
        if self._io_waiters:
            waiters, self._io_waiters = self._io_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def _wait_io_change(self, timeout: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._io_waiters.append(fut)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await fut

    # ------------------------------------------------------------------ dirty limits
    async def _balance_dirty(self) -> None:
        self._c.dirty_throttles += 1
        victims = [
            p for p in self._clock.entries() if p.dirty and p.io is None and p.view is not None
        ][: self.reclaim_batch]
        if victims:
            await self._write_out(victims, Priority.BACKGROUND, evict=False)
        await self.pool.balance_dirty_pages(timeout=self.timeout)

    async def sync(self) -> None:
        """Write every dirty resident page to the area (they stay resident, now clean)."""
        self._check_open()
        while True:
            dirty = [p for p in self._clock.entries() if p.dirty and p.io is None]
            if not dirty:
                busy = [p.io for p in self._clock.entries() if p.dirty and p.io is not None]
                if not busy:
                    return
                await asyncio.wait(busy)
                continue
            await self._write_out(dirty, Priority.BACKGROUND, evict=False)
            if self._closed:  # close() discarded the frames meanwhile: nothing is synced
                raise UsageError("the pager was closed during sync; dirty pages were discarded")
            failed = [p for p in dirty if p.dirty]
            if failed:
                raise self._sync_error(failed)

    def _sync_error(self, failed: list[_Page]) -> BaseException:
        return BackendIOError(
            f"sync: {len(failed)} page(s) could not be written to {self.area.location} "
            f"(first: page {failed[0].index}); they remain dirty"
        )

    # ------------------------------------------------------------------ kswapd
    def _ensure_kswapd(self) -> None:
        if self._kswapd_task is not None or self._closed or self.pool.is_unbounded:
            return
        wake = self._kswapd_wake = asyncio.Event()
        self._remove_kswapd = self.pool.add_kswapd(wake.set)
        with memalloc():
            self._kswapd_task = asyncio.get_running_loop().create_task(self._kswapd(wake))

    async def _kswapd(self, wake: asyncio.Event) -> None:
        """Background reclaim in memalloc context until the pool is above *high*."""
        while True:
            await wake.wait()
            wake.clear()
            while self.pool.reclaim_wanted() and len(self._clock):
                self._c.kswapd_runs += 1
                try:
                    freed = await self._reclaim(self.reclaim_batch)
                except Exception:  # counted as writeback_errors; the faulting path reports
                    freed = 0
                if not freed:
                    break

    # ------------------------------------------------------------------ lifecycle
    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the pager is closed")

    async def close(self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Stop kswapd, wait for in-flight I/O, drop every frame (contents are discarded:
        call :meth:`sync` first to keep them on the area).

        The wait for in-flight I/O lasts at most ``timeout`` seconds (None: no limit).  A
        closed scheduler has settled every request, so the wait then ends at once.  Frames
        whose I/O is still running after ``timeout`` are released when that I/O settles (the
        backend may still be writing into them), and :class:`SwapTimeoutError` says so.
        """
        if self._closed:
            return
        self._closed = True
        if self._remove_kswapd is not None:
            self._remove_kswapd()
        if self._kswapd_task is not None:
            self._kswapd_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._kswapd_task
        busy = [p.io for p in self._clock.entries() if p.io is not None]
        if busy:
            await asyncio.wait(busy, timeout=timeout)
        late: list[_Page] = []
        for page in self._clock.entries():
            if page.io is None:
                self._uninstall(page)
            else:
                late.append(page)
        for page in late:
            assert page.io is not None
            page.io.add_done_callback(functools.partial(self._release_late, page))
        if self._own_scheduler:
            await self._sched.aclose()  # settles whatever is still queued or in flight
        if late and any(p.view is not None for p in late):
            raise SwapTimeoutError(
                f"pager closed with {len(late)} page I/O(s) still in flight after {timeout:g} s;"
                " their frames are released when the I/O settles"
            )

    def _release_late(self, page: _Page, _io: asyncio.Future[None]) -> None:
        """Release a frame whose I/O outlived :meth:`close`."""
        if page.view is not None and page.io is None:
            self._uninstall(page)

    async def __aenter__(self) -> Pager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ inspection
    @property
    def resident(self) -> int:
        """Pages with a frame (including ones being read in)."""
        return len(self._clock)

    @property
    def dirty(self) -> int:
        """Resident pages newer than their area copy."""
        return self._dirty

    @property
    def scheduler(self) -> IOScheduler:
        """The scheduler this pager submits to."""
        return self._sched

    def is_resident(self, index: int) -> bool:
        """True when page ``index`` has a frame."""
        page = self._table[index]
        return page is not None and page.view is not None

    def stats(self) -> PagerStats:
        """Counters, occupancy and latency summaries."""
        c = self._c
        pool = self.pool.snapshot()
        start = self._pool_start
        return PagerStats(
            pages=self.pages,
            resident_budget=self.resident_budget,
            resident=len(self._clock),
            dirty=self._dirty,
            accesses=c.accesses,
            hits=c.hits,
            major_faults=c.major_faults,
            minor_faults=c.minor_faults,
            fault_errors=c.fault_errors,
            readahead_issued=c.readahead_issued,
            readahead_hits=c.readahead_hits,
            evictions=c.evictions,
            clean_drops=c.clean_drops,
            writebacks=c.writebacks,
            writeback_errors=c.writeback_errors,
            direct_reclaims=c.direct_reclaims,
            kswapd_runs=c.kswapd_runs,
            frame_waits=c.frame_waits,
            dirty_throttles=c.dirty_throttles,
            reserve_dips=pool.reserve_dips - start.reserve_dips,
            throttle_waits=(pool.waits - start.waits) + c.frame_waits,
            fault_latency=c.fault_latency.summary(),
            writeback_latency=c.writeback_latency.summary(),
        )

    def reset_latency(self) -> None:
        """Start the fault and writeback latency histograms afresh (e.g. after a warm-up)."""
        self._c.fault_latency = LatencyHistogram()
        self._c.writeback_latency = LatencyHistogram()

    def histograms(self) -> dict[str, Any]:
        """The live latency histograms (``fault``, ``writeback``)."""
        return {"fault": self._c.fault_latency, "writeback": self._c.writeback_latency}
