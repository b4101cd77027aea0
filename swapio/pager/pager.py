"""The user-space pager: more addressable pages than resident frames, backed by a swap area.

Page *i* of the pager lives in slot *i* of the area when it is not resident.  Frames are
page-sized buffers from the area's :class:`~swapio.pool.PagePool`, so the pager's resident
set, the backends' transient buffers and the reserve share one budget — which is what makes
the memalloc reserve meaningful.

* **Faults**: a page never written to the area is zero-filled without I/O (minor fault);
  otherwise it is swapped in at DEMAND priority (major fault), in one request together with
  its **readahead**: the window of :class:`~swapio.pager.readahead.Readahead`
  (``__swapin_nr_pages``: grows on readahead hits and adjacent faults, collapses on random
  faults and under memory pressure), aligned like ``swap_cluster_readahead``.  Readahead
  takes frames only for that request, only from free frame slots and only above the pool's
  *low* watermark (with room left for the reply), so it never evicts and a demand read never
  waits for memory because of it.
* **Frames**: a fault frame may take the pool down to *min* (``ALLOC_WMARK_MIN`` of the slow
  path).  When none is free the faulting task reclaims directly (throttled by
  :meth:`~swapio.pool.PagePool.throttle_direct_reclaim`) and the first frame evicted — by
  it, by kswapd or by a finishing writeback — is handed straight to it.
* **Eviction**: CLOCK (:mod:`swapio.pager.clock`) picks victims in clusters of
  ``reclaim_batch`` (``SWAP_CLUSTER_MAX``).  A clean page whose area copy is valid is
  dropped without I/O (the **swap cache**); dirty pages are written out at RECLAIM priority,
  in memalloc context (so the backend may use the reserve), as contiguous runs of one
  request each, and evicted when the write completes unless touched meanwhile.  A failed
  write leaves the page dirty and resident (``sio_write_complete`` re-dirties the page), so
  no data is lost.
* **kswapd**: a background task in memalloc context, for every pool, woken when the pool
  falls below *low*, when the pager's free frame slots fall below its low mark (derived from
  the resident budget like the pool's watermarks), when a fault waits, and by every page I/O
  completion while reclaim is wanted (no lost wake-ups); it reclaims until the pool is above
  *high* and the pager has its high mark of free slots.
* **Dirty limit** (opt-in, ``throttle_dirty=True``): a writer that would exceed the pool's
  dirty limit first writes back a cluster of its own dirty pages (``balance_dirty_pages``),
  then waits on the pool.  Off by default: pager pages are anonymous memory, which Linux
  does not dirty-throttle.
* Pages being written back stay readable; writers wait for the write to finish (stable
  pages).  The pager never has two requests for one page in flight.

The pager is not thread-safe; use it from one event loop.
"""

from __future__ import annotations

import asyncio
import collections
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
from swapio.pager.readahead import Readahead
from swapio.pager.stats import PagerCounters, PagerStats
from swapio.pool import PagePool, PoolBuffer, derive_watermarks
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


def _index(page: _Page) -> int:
    return page.index


def _evictable(page: _Page) -> bool:
    return page.io is None and page.view is not None


def _clean_evictable(page: _Page) -> bool:
    return page.io is None and page.view is not None and not page.dirty


def _no_error() -> BaseException | None:
    return None


def _all_failed(reqs: list[IORequest]) -> BaseException | None:
    """The first error when every request in ``reqs`` has settled and none succeeded."""
    error: BaseException | None = None
    for req in reqs:
        fut = req.future
        if not fut.done():
            return None
        if fut.cancelled():
            continue
        exc = fut.exception()
        if exc is None:
            return None
        error = error or exc
    return error


class Pager:
    """Addressable pages over a swap area with a bounded resident set.

    :param area: the active swap area holding non-resident pages (slot *i* = page *i*).
    :param resident_pages: the resident budget, in pages (>= 1).
    :param scheduler: the I/O scheduler to use (default: a private one).
    :param pages: addressable pages (default and maximum: ``area.pages``).
    :param readahead: readahead cluster in pages (a power of two; 0 or 1 disables).
    :param reclaim_batch: victims per reclaim pass.
    :param timeout: seconds any wait for memory may last (default: the pool's).
    :param throttle_dirty: apply the pool's dirty limit to writers (``balance_dirty_pages``,
        as for a shared file mapping).  Off by default: the pager's pages are anonymous
        memory, which Linux never dirty-throttles — every swap-backed page may be dirty,
        which is exactly why writing one out must be able to use the reserve.
    :param stored: the area's slots already hold the pages (an area reopened with its data,
        e.g. by :mod:`swapio.mapping`): a page faults in from its slot instead of being
        zero-filled, and readahead may read any slot.  Default False: the pager assumes it
        wrote every slot it reads (a fresh area).
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
        throttle_dirty: bool = False,
        stored: bool = False,
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
        self.throttle_dirty = throttle_dirty
        self._assume_stored = stored
        self._own_scheduler = scheduler is None
        self._sched = scheduler if scheduler is not None else IOScheduler()
        self._table: list[_Page | None] = [None] * npages
        self._clock: Clock[_Page] = Clock(resident_pages)
        self._dirty = 0
        self._c = PagerCounters()
        self._pool_start = self.pool.snapshot()
        self._ra = Readahead(self.readahead)
        self._zero_page = bytes(self.page_size)
        # the pager's own free-slot marks, derived from its budget as the pool's watermarks
        w_min, w_low, _ = derive_watermarks(resident_pages, self.page_size)
        self._frames_low = min(max(w_low - w_min, 1), reclaim_batch)
        self._frames_high = min(2 * self._frames_low, resident_pages)
        self._slice = max(1, reclaim_batch // 8)  # victims a fault reclaims below the low mark
        self._slice_ok = True  # cleared while every write of a slice failed
        self._frame_waiters: collections.deque[asyncio.Future[PoolBuffer | None]] = (
            collections.deque()
        )
        self._handed = 0  # frames handed to waiting faults, not installed yet
        self._evicting = 0  # pages under writeback that are evicted when it completes
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
                    self._ra.hit()
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
            # A write of the whole page needs none of the old contents: the fault installs a
            # frame without reading the area (nothing awaits between the frame's install and
            # the copy below unless dirty throttling is on, so no reader sees the frame).
            whole = size == self.page_size and not self.throttle_dirty
            while True:
                page = await self._resident(index, for_write=True, count=first, whole=whole)
                first = False
                if page.dirty:
                    break
                if self.throttle_dirty and self.pool.dirty_exceeded():
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

    async def _resident(
        self, index: int, *, for_write: bool, count: bool = True, whole: bool = False
    ) -> _Page:
        """Make page ``index`` resident (faulting it in) and return it, with no I/O pending
        (or only a writeback, when reading)."""
        if not 0 <= index < self.pages:
            raise SlotRangeError(f"page {index} out of range: the pager has {self.pages} pages")
        self._check_open()
        while True:
            page = self._table[index]
            if page is None:
                page = self._new_page(index)
            if page.io is not None:
                if page.writeback and not for_write:
                    if count:
                        self._c.hits += 1
                    break  # a page under writeback stays readable (and resident: a hit)
                await asyncio.shield(page.io)
                continue
            if page.view is not None:
                if count:
                    self._c.hits += 1
                break
            if await self._fault(page, whole):
                break
        page.referenced = True
        if page.readahead:
            page.readahead = False
            self._c.readahead_hits += 1
            self._ra.hit()
        return page

    # ------------------------------------------------------------------ faults
    async def _fault(self, page: _Page, whole: bool = False) -> bool:
        """Bring ``page`` in; False when another task did so while we waited for a frame.

        ``whole``: the caller overwrites the whole page before anything can await, so the
        frame is installed without reading the area (a minor fault).
        """
        start = time.perf_counter_ns()
        if self._slice_ok and self._kswapd_wanted() and self._inline():
            await self._reclaim_slice()
        buf = self._free_frame()
        if buf is None:
            buf = await self._get_frame()
        if page.view is not None or page.io is not None:
            self._give_frame(buf)
            return False
        self._install(page, buf)
        if whole or not page.stored:
            if not whole:
                buf.view[:] = self._zero_page  # the frame may be a recycled one
            self._c.minor_faults += 1
            self._c.fault_latency.record(time.perf_counter_ns() - start)
            return True
        run = self._readahead_run(page)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        views: list[memoryview] = []
        for p in run:
            p.io = done
            assert p.view is not None
            views.append(p.view)
        try:
            await self._sched.swap_in(self.area, run[0].index, views)
        except BaseException:
            self._c.fault_errors += 1
            for p in run:
                p.io = None
                self._uninstall(p)
            done.set_result(None)
            self._io_changed()
            raise
        for p in run:
            p.io = None
            p.on_area = True
        done.set_result(None)
        self._io_changed()
        self._c.major_faults += 1
        self._c.fault_latency.record(time.perf_counter_ns() - start)
        return True

    def _readahead_run(self, page: _Page) -> list[_Page]:
        """The demand page plus the readahead pages read with it, as one contiguous run.

        The window comes from :class:`Readahead` (``__swapin_nr_pages``), aligned as in
        ``swap_cluster_readahead``.  A readahead page joins only if it is stored and not
        resident, a frame slot is free (readahead never evicts), and the pool stays above
        *low* with room for the run's reply buffer too, so the demand read never waits for
        memory because of its readahead.  Under pressure the window collapses first.  Pages
        are taken outward from the demand page and each side stops at the first page that
        cannot join, so the run is contiguous by construction.
        """
        index = page.index
        window = self._ra_window(index)
        if window <= 1:
            return [page]
        budget = self._ra_budget(page, window)
        if budget <= 0:
            return [page]
        lo_bound = index & ~(window - 1)
        after = self._ra_take(range(index + 1, min(lo_bound + window, self.pages)), budget)
        before = self._ra_take(range(index - 1, lo_bound - 1, -1), budget - len(after))
        self._c.readahead_issued += len(after) + len(before)
        return [*reversed(before), page, *after]

    def _ra_window(self, index: int) -> int:
        """This fault's readahead window (1: none); collapsed while memory is short."""
        if not self.readahead:
            return 1
        if self._under_pressure():
            self._ra.collapse()
            return 1
        return self._ra.window(index)

    def _ra_budget(self, page: _Page, window: int) -> int:
        """How many readahead pages may join: free frame slots (after dropping clean,
        unreferenced pages — no I/O, never a writeback) and pool room above *low*."""
        if self._free_slots() < window - 1:
            for victim in self._clock.select(window - 1 - self._free_slots(), _clean_evictable):
                if victim is not page:
                    self._c.clean_drops += 1
                    self._evict(victim)
        budget = self._free_slots()
        pool = self.pool
        if not pool.is_unbounded:
            # each readahead page needs a frame now and (for a network backend) reply room
            budget = min(budget, (pool.free_pages - pool.low_pages) // 2 - 1)
        return budget

    def _ra_take(self, indices: range, budget: int) -> list[_Page]:
        """Install frames for readahead candidates in ``indices`` order, up to ``budget``,
        stopping at the first one that cannot join (keeps the run contiguous)."""
        taken: list[_Page] = []
        for j in indices:
            if len(taken) >= budget:
                break
            candidate = self._ra_candidate(j)
            if candidate is None:
                break
            buf = self.pool.try_alloc(self.page_size)  # ordinary: stops above *low*
            if buf is None:
                break
            self._install(candidate, buf)
            candidate.referenced = False
            candidate.readahead = True
            taken.append(candidate)
        return taken

    def _ra_candidate(self, index: int) -> _Page | None:
        page = self._table[index]
        if page is None:
            if not self._assume_stored:
                return None  # never written: nothing stored to read ahead
            page = self._new_page(index)
        if not page.stored or page.view is not None or page.io is not None:
            return None
        return page

    def _new_page(self, index: int) -> _Page:
        page = self._table[index] = _Page(index)
        page.stored = self._assume_stored
        return page

    def _under_pressure(self) -> bool:
        """Memory is short: someone waits for a frame or the pool is below *low*."""
        return bool(self._frame_waiters) or self.pool.below_low() or self.pool.waiters > 0

    def _install(self, page: _Page, buf: PoolBuffer) -> None:
        page.buf = buf
        page.view = buf.view
        page.referenced = True
        self._clock.insert(page)
        if self._free_slots() < self._frames_low:
            self._wake_kswapd()

    def _detach(self, page: _Page) -> PoolBuffer | None:
        """Take a page's frame away (its data must be on the area, or be discarded on purpose)."""
        if page.dirty:
            page.dirty = False
            self._dirty -= 1
            self.pool.account_dirty(-1)
        self._clock.remove(page)
        buf = page.buf
        page.buf = None
        page.view = None
        page.readahead = False
        return buf

    def _uninstall(self, page: _Page) -> None:
        """Drop a page's frame back to the pool."""
        buf = self._detach(page)
        if buf is not None:
            buf.release()

    def _evict(self, page: _Page) -> None:
        """Evict a clean page: its frame goes straight to a fault waiting for one, if any."""
        buf = self._detach(page)
        self._c.evictions += 1
        if buf is not None:
            self._give_frame(buf)

    def _give_frame(self, buf: PoolBuffer) -> None:
        """Hand a frame (and its frame slot) to the first waiting fault, else free it."""
        while self._frame_waiters:
            fut = self._frame_waiters.popleft()
            if not fut.done():
                fut.set_result(buf)
                self._handed += 1  # its slot stays taken until the fault installs it
                return
        buf.release()

    def _free_slots(self) -> int:
        """Frame slots neither resident nor promised to a waiting fault."""
        return len(self._clock.vacant) - self._handed

    # ------------------------------------------------------------------ frames
    def _free_frame(self) -> PoolBuffer | None:
        """A frame from a free slot without waiting (the fault's fast path), or None."""
        if self._kswapd_task is None:
            self._ensure_kswapd()
        if self._frame_waiters or len(self._clock.vacant) <= self._handed:
            return None
        return self.pool.try_alloc(self.page_size, to_min=True)

    async def _get_frame(self) -> PoolBuffer:
        """A frame for a faulting page: a free one, else one handed over by reclaim.

        Fault frames may take the pool down to *min* (the slow path's ``ALLOC_WMARK_MIN``);
        below that, or when the resident set is full, the faulting task reclaims directly
        (throttled as ``allow_direct_reclaim``) and the first frame evicted — by it, by
        kswapd, or by a finishing writeback — is handed to it without passing the pool.
        """
        self._ensure_kswapd()
        pool = self.pool
        loop = asyncio.get_running_loop()
        limit = pool.wait_timeout if self.timeout is None else self.timeout
        deadline = loop.time() + limit
        while True:
            self._check_open()
            if self._free_slots() > 0:
                buf = pool.try_alloc(self.page_size, to_min=True)
                if buf is not None:
                    return buf
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AllocationTimeout(
                    f"pager fault waited {limit:g}s for a frame: {len(self._clock)}/"
                    f"{self.resident_budget} resident, {self._dirty} dirty, pool {pool!r}"
                )
            await pool.throttle_direct_reclaim(timeout=remaining)
            fut: asyncio.Future[PoolBuffer | None] = loop.create_future()
            self._frame_waiters.append(fut)
            self._c.direct_reclaims += 1
            try:
                all_failed = await self._direct_reclaim()
            except BaseException:
                self._abandon_wait(fut)
                raise
            self._wake_kswapd()
            if not fut.done():
                self._c.frame_waits += 1
                if self._free_slots() > 0:
                    # our set has room but the pool is short: others must give pages back
                    self._pool_watch(fut)
                try:
                    async with asyncio.timeout(deadline - loop.time()):
                        await asyncio.shield(fut)
                except TimeoutError:
                    pass
                except BaseException:
                    self._abandon_wait(fut)
                    raise
            got = self._drop_waiter(fut)
            if got is not None:
                self._handed -= 1
                return got
            error = all_failed()
            if error is not None:
                # our victims could not be written: they stay dirty; the caller learns why
                raise error

    def _kswapd_wanted(self) -> bool:
        """What wakes kswapd: free frame slots below the pager's low mark, or the pool
        below *low*."""
        return self._free_slots() < self._frames_low or self.pool.below_low()

    def _inline(self) -> bool:
        return self._sched.inline(self.area)

    async def _reclaim_slice(self) -> None:
        """A fault that would wake kswapd (:meth:`_kswapd_wanted`), on an area whose calls
        complete inline, reclaims a small slice itself.  kswapd runs only when the accessing task
        yields, which an access stream served inline never does, so without this the free
        slots run out and one fault in ``reclaim_batch`` reclaims (and writes) a whole batch:
        a latency spike.  A slice — the slots missing to the low mark plus
        ``reclaim_batch // 8`` victims — per such fault keeps the slots at the mark with the
        same writes spread over the faults in proportion to the frames each one took.  A slice whose
        writes all failed stops slicing until a writeback succeeds (kswapd and faults waiting
        for a frame take over and report the error)."""
        self._c.direct_reclaims += 1
        # back to the low mark (readahead may have taken several slots), plus one slice
        _, dirty = self._reclaim(max(0, self._frames_low - self._free_slots()) + self._slice)
        if dirty and await self._write_inline(dirty) is not None:
            self._slice_ok = False

    async def _direct_reclaim(self) -> Callable[[], BaseException | None]:
        """Reclaim one batch in the faulting task (``try_to_free_pages``): its dirty victims
        are written inline when the area's calls complete inline, else queued.  Returns what
        tells, once the fault's wait ended, the error if every write of the batch failed."""
        _, dirty = self._reclaim(self.reclaim_batch)
        if not dirty:
            return _no_error
        if self._inline():
            error = await self._write_inline(dirty)
            return lambda: error
        return functools.partial(
            _all_failed, self._start_writeback(dirty, Priority.RECLAIM, evict=True)
        )

    def _abandon_wait(self, fut: asyncio.Future[PoolBuffer | None]) -> None:
        """A fault gave up waiting (cancelled): a frame handed to it goes back."""
        got = self._drop_waiter(fut)
        if got is not None:
            self._handed -= 1
            got.release()

    def _drop_waiter(self, fut: asyncio.Future[PoolBuffer | None]) -> PoolBuffer | None:
        """Withdraw a frame waiter; returns the frame it was handed, if any."""
        with contextlib.suppress(ValueError):
            self._frame_waiters.remove(fut)
        if fut.done():
            return fut.result()
        fut.set_result(None)
        return None

    def _pool_watch(self, fut: asyncio.Future[PoolBuffer | None]) -> None:
        """Wake ``fut`` (with no frame) when the pool's state changes, to retry allocating."""

        async def watch() -> None:
            with contextlib.suppress(Exception):
                await self.pool.wait_for_change()
            if not fut.done():
                fut.set_result(None)

        task = asyncio.get_running_loop().create_task(watch())
        fut.add_done_callback(lambda _f: task.cancel())

    def _deficit(self) -> int:
        """Pages reclaim still has to free to reach the high marks (the pager's free frame
        slots and the pool's *high*), counting pages already on their way out."""
        want = self._frames_high - self._free_slots()
        pool = self.pool
        if not pool.is_unbounded:
            want = max(want, pool.high_pages - pool.free_pages, pool.waiters)
        return want + len(self._frame_waiters) - self._evicting

    def _reclaim(self, n: int) -> tuple[int, list[_Page]]:
        """Evict up to ``n`` pages — no more than the deficit, at least one — clean ones at
        once, dirty ones after their writeback (``shrink_node`` toward the watermark, in
        batches of at most ``SWAP_CLUSTER_MAX``).

        Returns how many were evicted now and the dirty victims, counted as on their way out:
        the caller writes them back (:meth:`_start_writeback` or :meth:`_write_inline`), and
        that write's completion evicts them.
        """
        victims = self._clock.select(max(1, min(n, self._deficit())), _evictable)
        dirty: list[_Page] = []
        evicted = 0
        for page in victims:
            if page.dirty:
                dirty.append(page)
                continue
            # swap cache: a clean page either has a valid copy on the area or was never
            # stored (all zeros, which a never-written slot also reads as): drop, no I/O
            self._c.clean_drops += 1
            self._evict(page)
            evicted += 1
        self._evicting += len(dirty)
        return evicted, dirty

    def _start_writeback(
        self, pages: list[_Page], priority: Priority, *, evict: bool
    ) -> list[IORequest]:
        """Write ``pages`` out as contiguous runs, one request per run.

        Reclaim writeback (RECLAIM priority) runs in memalloc context so the backend may use
        the reserve.  When a run completes its pages are clean; with ``evict`` the ones not
        touched meanwhile are evicted (their frames handed to waiting faults first).
        """
        runs = self._runs(pages)
        reqs: list[IORequest] = []
        for i, run in enumerate(runs):
            try:
                reqs.append(self._submit_run(run, priority, evict))
            except BaseException:  # e.g. the scheduler closed: the rest were never submitted
                for rest in runs[i + 1 :]:
                    self._end_writeback(rest, evict, False, None)
                raise
        return reqs

    def _runs(self, pages: list[_Page]) -> list[list[_Page]]:
        """``pages`` as contiguous runs in slot order, each marked under writeback (one
        future per run: writers wait for it, the pages stay readable)."""
        loop = asyncio.get_running_loop()
        pages.sort(key=_index)
        runs: list[list[_Page]] = []
        run: list[_Page] = []
        done: asyncio.Future[None] = loop.create_future()
        for page in pages:
            if run and page.index != run[-1].index + 1:
                runs.append(run)
                run = []
                done = loop.create_future()
            page.io = done
            page.writeback = True
            page.referenced = False
            run.append(page)
        if run:
            runs.append(run)
        return runs

    async def _write_inline(self, pages: list[_Page]) -> BaseException | None:
        """Reclaim writeback when the area's calls complete without suspending
        (:meth:`IOScheduler.inline`): one direct RECLAIM swap-out per run in the reclaiming
        task (kswapd, or a fault reclaiming directly) — no request object, task or completion
        callback per run; with no suspension there is no overlap to lose.  Each run is
        evicted as its write completes.  Returns the first error when every run failed."""
        runs = self._runs(pages)
        sched = self._sched
        area = self.area
        error: BaseException | None = None
        written = False
        for i, run in enumerate(runs):
            started = time.perf_counter_ns()
            try:
                await sched.swap_out(
                    area, run[0].index, [p.view for p in run if p.view is not None]
                )
            except Exception as exc:  # the pages stay dirty and resident
                self._end_writeback(run, True, False, started)
                error = error or exc
            except BaseException:  # cancelled: this run and the rest stay dirty
                for rest in runs[i:]:
                    self._end_writeback(rest, True, False, None)
                raise
            else:
                self._end_writeback(run, True, True, started)
                written = True
        return None if written else error

    def _submit_run(self, run: list[_Page], priority: Priority, evict: bool) -> IORequest:
        try:
            req = self._sched.submit(
                self.area,
                Direction.SWAP_OUT,
                run[0].index,
                [p.view for p in run if p.view is not None],
                priority=priority,
                # reclaim, and any write-out while memory is short (writing a dirty page
                # out is what makes it reclaimable), may use the reserve
                memalloc=priority is Priority.RECLAIM or self._under_pressure() or None,
            )
        except BaseException:
            self._end_writeback(run, evict, False, None)
            raise
        req.future.add_done_callback(
            functools.partial(self._writeback_done, run, evict, time.perf_counter_ns())
        )
        return req

    def _writeback_done(
        self, run: list[_Page], evict: bool, started: int, fut: asyncio.Future[None]
    ) -> None:
        ok = not fut.cancelled() and fut.exception() is None
        self._end_writeback(run, evict, ok, started)

    def _end_writeback(self, run: list[_Page], evict: bool, ok: bool, started: int | None) -> None:
        """A run's write ended (``started`` None: it was never submitted)."""
        if started is not None:
            self._c.writeback_latency.record(time.perf_counter_ns() - started)
        done = run[0].io
        if evict:
            self._evicting -= len(run)
        for page in run:
            page.writeback = False
            page.io = None
            if ok:
                self._slice_ok = True
                page.dirty = False
                page.on_area = True
                page.stored = True
                self._dirty -= 1
                self.pool.account_dirty(-1)
                self._c.writebacks += 1
                if evict and not page.referenced and page.view is not None:
                    self._evict(page)
            else:
                self._c.writeback_errors += started is not None
        if done is not None and not done.done():
            done.set_result(None)
        self._io_changed(progress=ok)

    def _io_changed(self, progress: bool = True) -> None:
        """Page I/O finished: faults waiting for a frame retry; kswapd re-checks when the
        I/O freed or cleaned something (a failed write is no reason to retry at once)."""
        if self._frame_waiters:
            for fut in list(self._frame_waiters):
                if not fut.done():
                    fut.set_result(None)
            self._frame_waiters.clear()
        wake = self._kswapd_wake
        if progress and wake is not None and not wake.is_set() and self._reclaim_wanted():
            wake.set()

    # ------------------------------------------------------------------ dirty limits
    async def _balance_dirty(self) -> None:
        self._c.dirty_throttles += 1
        victims = [
            p for p in self._clock.entries() if p.dirty and p.io is None and p.view is not None
        ][: self.reclaim_batch]
        if victims:
            await self._wait_requests(
                self._start_writeback(victims, Priority.BACKGROUND, evict=False)
            )
        await self.pool.balance_dirty_pages(timeout=self.timeout)

    @staticmethod
    async def _wait_requests(reqs: list[IORequest]) -> None:
        if reqs:
            await asyncio.wait([r.future for r in reqs])

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
            await self._wait_requests(
                self._start_writeback(dirty, Priority.BACKGROUND, evict=False)
            )
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
    def _reclaim_wanted(self) -> bool:
        """Background reclaim should run: the pool wants pages, a fault waits for a frame,
        or fewer than the pager's high mark of frame slots are free."""
        if not len(self._clock):
            return False
        return (
            bool(self._frame_waiters)
            or self.pool.reclaim_wanted()
            or self._free_slots() < self._frames_high
        )

    def _wake_kswapd(self) -> None:
        wake = self._kswapd_wake
        if wake is not None and not wake.is_set():
            wake.set()

    def _ensure_kswapd(self) -> None:
        if self._kswapd_task is not None or self._closed:
            return
        wake = self._kswapd_wake = asyncio.Event()
        self._remove_kswapd = self.pool.add_kswapd(wake.set)
        with memalloc():
            self._kswapd_task = asyncio.get_running_loop().create_task(self._kswapd(wake))

    async def _kswapd(self, wake: asyncio.Event) -> None:
        """Background reclaim in memalloc context (``kswapd``/``balance_pgdat``).

        Woken when the pool falls below *low*, when the pager's free frame slots fall below
        its low mark, when a fault waits for a frame, and by every page I/O completion while
        reclaim is wanted — so a pass that found every page busy never waits for a wake-up
        that cannot come.  It reclaims a batch at a time, waiting for the batch's writeback,
        until the pool is above *high* and the pager has its high mark of free slots.
        """
        while True:
            await wake.wait()
            wake.clear()
            while self._reclaim_wanted():
                self._c.kswapd_runs += 1
                cleaned = self._c.writebacks
                evicted, dirty = self._reclaim(self.reclaim_batch)
                if dirty:
                    try:
                        if self._inline():
                            await self._write_inline(dirty)
                        else:
                            await self._wait_requests(
                                self._start_writeback(dirty, Priority.RECLAIM, evict=True)
                            )
                    except Exception:  # e.g. the scheduler closed: faults reclaim and report
                        break
                    if not evicted and self._c.writebacks == cleaned:
                        # every write failed: back off until a fault or the pool asks again
                        # (faults reclaim directly and report the error); no busy retry loop
                        break
                elif evicted:
                    await asyncio.sleep(0)  # stay cooperative between clean-only passes
                else:
                    break  # every page busy: the next page I/O completion sets ``wake``

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
        for fut in self._frame_waiters:
            if not fut.done():
                fut.set_result(None)
        self._frame_waiters.clear()
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

    def drop_clean(self, index: int) -> bool:
        """Evict page ``index`` now, without I/O, if it is resident, clean and idle (its area
        copy is valid, or it was never stored and reads as zeros).  For a caller that keeps
        its own copy of the page — :mod:`swapio.mapping` once it installed the page in the
        program — so the pager's frames go to pages nobody else holds and readahead keeps
        its room.  Returns True when the page was dropped."""
        page = self._table[index] if 0 <= index < self.pages else None
        if page is None or page.view is None or page.io is not None or page.dirty:
            return False
        self._c.clean_drops += 1
        self._evict(page)
        return True

    def has_data(self, index: int) -> bool:
        """False when page ``index`` is certainly all zeros: never written through this pager
        and (unless opened with ``stored=True``) never stored on the area."""
        page = self._table[index]
        if page is None:
            return self._assume_stored
        return page.stored or page.view is not None

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
