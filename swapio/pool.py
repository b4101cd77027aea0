"""The page pool: a budget, min/low/high watermarks and an emergency reserve below *min*.

This is the user-space twin of the zone free lists and watermarks of ``mm/page_alloc.c``
together with the reserve machinery of the swap-over-NFS series:

* **Watermarks** (``__setup_per_zone_wmarks``): below *low* the reclaimer ("kswapd") is woken;
  ordinary allocations that would leave the pool below *low* wait until reclaim brings it back
  above *low*.  Pages below *min* are the **reserve**, reachable only from memalloc context.
* **Reserve sizing** (``sk_adjust_memalloc`` / the ``mem_reserve`` tree of the original series):
  the reserve is ``min_pages`` (the ``min_free_kbytes`` floor) plus whatever active areas
  declared through :meth:`PagePool.adjust_reserve`.  Growing the reserve raises *min*, *low* and
  *high* together, as ``var_free_kbytes`` did.
* **Allocation** follows ``kmalloc_reserve()`` in ``net/core/skbuff.c``: try without the
  reserve; if that fails and the caller is in memalloc context (:func:`swapio.memalloc.in_memalloc`)
  try again with it, and report through :attr:`PoolBuffer.pfmemalloc` whether the reserve was
  used (``page->pfmemalloc``).  Everyone else waits, asynchronously and with a timeout.
* **Direct-reclaim throttling** (``allow_direct_reclaim()`` in ``mm/vmscan.c``): a reclaimer
  that is not itself memalloc work waits while ``free <= min / 2`` (half the reserve used).
* **Dirty limits** (``balance_dirty_pages``): dirty pages are capped at ``dirty_ratio`` percent
  of the dirtyable pages (budget minus the reserve) and background writeback should start at
  ``dirty_background_ratio`` percent, so that clean pages always remain to reclaim.

Default watermarks, for a budget of ``B`` pages of ``P`` bytes (all overridable):

* ``min_free_kbytes = clamp(isqrt(B*P/1024 * 16), 128, 262144)`` exactly as Linux derives it
  from low memory; ``min_pages = min(min_free_kbytes*1024 // P, B // 8)`` — the ``B // 8``
  cap is swapio's own, so that tiny test pools keep most of their budget usable.
* ``gap = max(min_pages // 4, B * watermark_scale_factor // 10000, 1)`` with
  ``watermark_scale_factor = 10``; ``low = min + gap``, ``high = min + 2*gap``.
* ``dirty_ratio = 20``, ``dirty_background_ratio = 10`` (the Linux sysctl defaults).

**Bounded by default.**  :meth:`PagePool.default` (what a :class:`~swapio.plugins.PluginHost`
hands every area it activates without an explicit pool) has a budget of an eighth of physical
memory, clamped to 64 MiB .. 1 GiB, with the derived watermarks above, so the reserve and the
watermark waits are live in normal use.  :meth:`PagePool.for_resident` sizes a pool for a
pager: the resident set plus *min*, with area reserves added on top of the budget (the pager
keeps its frames; the reserve is extra), so a pager whose frames are all in use leaves exactly
the reserve — the situation the swap-over-NFS reserve exists for.

**Allocation floors** (``__zone_watermark_ok`` with the ``ALLOC_WMARK_*`` flags): an ordinary
allocation may leave the pool at *low* (the fast path); a page-fault frame may go down to *min*
(``__alloc_pages_slowpath`` retries with ``ALLOC_WMARK_MIN`` after waking kswapd); memalloc work
may go below *min* into the reserve (``ALLOC_NO_WATERMARKS``), marked ``pfmemalloc``.  With the
reserve disabled memalloc work stops at *min*, like everyone else in the slow path.

The pool is single-threaded: every method must be called from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from swapio.errors import AllocationTimeout, MemoryPressureError, PoolUsageError, UsageError
from swapio.memalloc import in_memalloc

__all__ = [
    "DEFAULT_WAIT_TIMEOUT",
    "PagePool",
    "PoolAccounting",
    "PoolBuffer",
    "PoolSnapshot",
    "derive_watermarks",
]

#: Seconds an allocation, a throttled reclaimer or a dirty-throttled writer waits by default.
DEFAULT_WAIT_TIMEOUT = 30.0

_MIN_FREE_KBYTES_FLOOR = 128
_MIN_FREE_KBYTES_CEIL = 262144
_WATERMARK_SCALE_FACTOR = 10
_WATERMARK_SCALE_DIVISOR = 10000
_MIN_PAGES_BUDGET_DIVISOR = 8
_DEFAULT_DIRTY_RATIO = 20
_DEFAULT_DIRTY_BACKGROUND_RATIO = 10
#: The default pool's budget: this share of physical memory, clamped to the bounds below.
_DEFAULT_BUDGET_DIVISOR = 8
_DEFAULT_BUDGET_FLOOR = 64 << 20
_DEFAULT_BUDGET_CEIL = 1 << 30
#: Released ``zero=False`` buffers kept for reuse: per size, and in bytes overall.
_SPARES_PER_SIZE = 4
_SPARE_BYTES = 16 << 20
_SPARE_BUDGET_DIVISOR = 8


def derive_watermarks(budget_pages: int, page_size: int) -> tuple[int, int, int]:
    """Return default ``(min, low, high)`` in pages, derived as ``__setup_per_zone_wmarks``.

    See the module docstring for the formula and swapio's one deviation (the ``B // 8`` cap).
    """
    budget_kb = budget_pages * page_size // 1024
    min_free_kbytes = min(
        max(math.isqrt(budget_kb * 16), _MIN_FREE_KBYTES_FLOOR), _MIN_FREE_KBYTES_CEIL
    )
    min_pages = min(min_free_kbytes * 1024 // page_size, budget_pages // _MIN_PAGES_BUDGET_DIVISOR)
    gap = max(min_pages // 4, budget_pages * _WATERMARK_SCALE_FACTOR // _WATERMARK_SCALE_DIVISOR, 1)
    return min_pages, min_pages + gap, min_pages + 2 * gap


class PoolBuffer:
    """A transient buffer lent by a :class:`PagePool` (``kmalloc_reserve``'s result).

    ``view`` is a writable memoryview of exactly the requested size; ``pfmemalloc`` is True
    when the allocation dipped into the reserve.  Such a buffer may only be kept by memalloc
    work (the ``SOCK_MEMALLOC`` rule, ``sk_filter``).  Release it exactly once, or use it as a
    context manager.
    """

    __slots__ = ("_pool", "_released", "_spare", "pages", "pfmemalloc", "view")

    def __init__(
        self,
        pool: PagePool,
        view: memoryview,
        pages: int,
        pfmemalloc: bool,
        spare: bytearray | None = None,
    ) -> None:
        self._pool = pool
        self._released = False
        self.view = view
        self.pages = pages
        self.pfmemalloc = pfmemalloc
        #: The memory to recycle on release (``zero=False`` allocations only).
        self._spare = spare

    @property
    def released(self) -> bool:
        """True once :meth:`release` has run."""
        return self._released

    def may_keep(self) -> bool:
        """The ``SOCK_MEMALLOC`` rule (``sk_filter``): a reserve-backed buffer may only be
        kept by memalloc work; other callers must drop it (release, then retry or wait)."""
        return not self.pfmemalloc or in_memalloc()

    @property
    def nbytes(self) -> int:
        """Size of :attr:`view` in bytes (the size that was requested)."""
        return self.view.nbytes

    def release(self) -> None:
        """Give the pages back to the pool.  Releasing twice raises :class:`PoolUsageError`."""
        if self._released:
            raise PoolUsageError(
                f"pool buffer of {self.pages} page(s) released twice; expected exactly one release"
            )
        self._released = True
        self._pool._give_back(self.pages, self.pfmemalloc)
        if self._spare is not None:
            self._pool._keep_spare(self.pages, self._spare)

    def __enter__(self) -> PoolBuffer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._released:
            self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return (
            f"PoolBuffer(nbytes={self.nbytes}, pages={self.pages}, "
            f"pfmemalloc={self.pfmemalloc}, {state})"
        )


@dataclass(frozen=True, slots=True)
class PoolAccounting:
    """The pool's balance: what must return to its starting value after any fault."""

    used_pages: int
    pfmemalloc_pages: int
    buffers_outstanding: int
    reserve_pages: int
    dirty_pages: int
    waiters: int


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """Everything inspectable about a pool at one instant (``/proc/zoneinfo`` for swapio)."""

    unbounded: bool
    budget_pages: int | None
    page_size: int
    free_pages: int | None
    used_pages: int
    min_pages: int
    low_pages: int
    high_pages: int
    reserve_pages: int
    area_reserve_pages: int
    reserve_used_pages: int
    reserve_enabled: bool
    pfmemalloc_pages: int
    buffers_outstanding: int
    dirty_pages: int
    dirty_limit_pages: int
    dirty_background_pages: int
    waiters: int
    allocations: int
    reserve_dips: int
    waits: int
    wait_timeouts: int
    kswapd_wakeups: int
    direct_reclaim_throttles: int
    dirty_throttles: int
    peak_used_pages: int
    peak_reserve_used_pages: int

    @property
    def accounting(self) -> PoolAccounting:
        """The balance part of the snapshot (no monotonic counters)."""
        return PoolAccounting(
            used_pages=self.used_pages,
            pfmemalloc_pages=self.pfmemalloc_pages,
            buffers_outstanding=self.buffers_outstanding,
            reserve_pages=self.reserve_pages,
            dirty_pages=self.dirty_pages,
            waiters=self.waiters,
        )


@dataclass(slots=True)
class _Waiter:
    pages: int
    nbytes: int
    memalloc: bool
    future: asyncio.Future[PoolBuffer]
    zero: bool = True


class PagePool:
    """A page budget with watermarks, a memalloc reserve and ``kmalloc_reserve`` allocation.

    :param budget_pages: pages the pool may lend in total (> 0).
    :param page_size: bytes per page (> 0); allocations are rounded up to whole pages.
    :param min_pages: base of the reserve (``min_free_kbytes``); default derived (module doc).
    :param low_pages: *low* watermark with no area reserve; default ``min + gap``.
    :param high_pages: *high* watermark with no area reserve; default ``min + 2*gap``.
    :param reserve_enabled: False forbids memalloc work from dipping below *min* — only for
        demonstrating the deadlock the reserve prevents.
    :param dirty_ratio: dirty cap, percent of ``budget - min`` (``vm.dirty_ratio``).
    :param dirty_background_ratio: background writeback threshold (``vm.dirty_background_ratio``).
    :param wait_timeout: default timeout of every wait, seconds; ``math.inf`` waits forever.
    :param reserve_on_top: True grows the budget by whatever areas add to the reserve (and
        shrinks it when they remove it), so the pages above the reserve stay the same; used
        by :meth:`for_resident`.
    """

    def __init__(
        self,
        budget_pages: int,
        page_size: int = 4096,
        *,
        min_pages: int | None = None,
        low_pages: int | None = None,
        high_pages: int | None = None,
        reserve_enabled: bool = True,
        dirty_ratio: int = _DEFAULT_DIRTY_RATIO,
        dirty_background_ratio: int = _DEFAULT_DIRTY_BACKGROUND_RATIO,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        reserve_on_top: bool = False,
        _unbounded: bool = False,
    ) -> None:
        _check_positive("page_size", page_size)
        if not _unbounded:
            _check_positive("budget_pages", budget_pages)
        if not 0 <= dirty_background_ratio <= dirty_ratio <= 100:
            raise UsageError(
                "dirty ratios must satisfy 0 <= dirty_background_ratio <= dirty_ratio <= 100; "
                f"got dirty_background_ratio={dirty_background_ratio}, dirty_ratio={dirty_ratio}"
            )
        if not wait_timeout > 0:
            raise UsageError(f"wait_timeout must be > 0 seconds, got {wait_timeout!r}")
        self._unbounded = _unbounded
        self.page_size = page_size
        self.budget_pages = budget_pages
        self.reserve_enabled = reserve_enabled
        self.wait_timeout = wait_timeout
        self.reserve_on_top = reserve_on_top
        if _unbounded:
            base_min = base_low = base_high = 0
            for name, value in (("min", min_pages), ("low", low_pages), ("high", high_pages)):
                if value is not None:
                    raise UsageError(
                        f"an unbounded pool has no watermarks; got {name}_pages={value}"
                    )
        else:
            d_min, d_low, d_high = derive_watermarks(budget_pages, page_size)
            base_min = d_min if min_pages is None else min_pages
            gap_low, gap_high = d_low - d_min, d_high - d_min
            base_low = base_min + gap_low if low_pages is None else low_pages
            base_high = base_low + (gap_high - gap_low) if high_pages is None else high_pages
            if not 0 <= base_min <= base_low <= base_high <= budget_pages:
                raise UsageError(
                    "watermarks must satisfy 0 <= min <= low <= high <= budget; got "
                    f"min={base_min}, low={base_low}, high={base_high}, budget={budget_pages}"
                )
            if base_low >= budget_pages:
                raise UsageError(
                    f"low watermark {base_low} leaves nothing of the {budget_pages}-page budget "
                    "for ordinary allocations; expected low < budget"
                )
        self._base_min = base_min
        self._gap_low = base_low - base_min
        self._gap_high = base_high - base_min
        self._dirty_ratio = dirty_ratio
        self._dirty_background_ratio = dirty_background_ratio
        self._area_reserve = 0
        self._min = self._low = 0
        self._set_watermarks()
        self._used = 0
        self._pfmemalloc_pages = 0
        self._buffers = 0
        self._dirty = 0
        self._waiters: deque[_Waiter] = deque()
        self._state_waiters: list[asyncio.Future[None]] = []
        self._kswapd: list[Callable[[], None]] = []
        #: Memory of released ``zero=False`` buffers, by pages, for the next such allocation
        #: (the allocator's free lists: not counted as used).
        self._spares: dict[int, list[bytearray]] = {}
        self._spare_bytes = 0
        # counters
        self._allocations = 0
        self._reserve_dips = 0
        self._waits = 0
        self._wait_timeouts = 0
        self._kswapd_wakeups = 0
        self._direct_throttles = 0
        self._dirty_throttles = 0
        self._peak_used = 0
        self._peak_reserve_used = 0

    @classmethod
    def of_bytes(cls, budget_bytes: int, page_size: int = 4096, **kwargs: Any) -> PagePool:
        """A pool whose budget is given in bytes (rounded down to whole pages)."""
        if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int):
            raise UsageError(f"budget_bytes must be an int, got {budget_bytes!r}")
        _check_positive("page_size", page_size)
        if budget_bytes < page_size:
            raise UsageError(
                f"a budget of {budget_bytes} bytes holds no {page_size}-byte page; "
                "expected at least one page"
            )
        return cls(budget_bytes // page_size, page_size, **kwargs)

    @classmethod
    def unbounded(cls, page_size: int = 4096) -> PagePool:
        """A pool that only keeps accounts and never waits (explicit opt-out of the budget:
        no watermarks, no reserve; never what swapio picks by itself)."""
        return cls(0, page_size, _unbounded=True)

    @classmethod
    def default(cls, page_size: int = 4096, **kwargs: Any) -> PagePool:
        """The pool an area gets when the caller passes none: bounded, derived watermarks.

        The budget is an eighth of physical memory clamped to 64 MiB .. 1 GiB (a share of
        RAM the way ``min_free_kbytes`` is derived from it); see the module docstring.
        """
        try:
            phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):  # pragma: no cover - every Linux has both
            phys = _DEFAULT_BUDGET_CEIL * _DEFAULT_BUDGET_DIVISOR
        budget = min(
            max(phys // _DEFAULT_BUDGET_DIVISOR, _DEFAULT_BUDGET_FLOOR), _DEFAULT_BUDGET_CEIL
        )
        return cls.of_bytes(budget, page_size, **kwargs)

    @classmethod
    def for_resident(cls, resident_pages: int, page_size: int = 4096, **kwargs: Any) -> PagePool:
        """A pool for a pager of ``resident_pages`` frames: budget = frames + derived *min*.

        Watermarks are derived from that budget (module docstring); areas activated on it add
        their reserve need on top (``reserve_on_top``).  Once every frame is in use only the
        reserve is left, so writing a page out must come from the reserve — exactly the case
        the memalloc reserve exists for.
        """
        _check_positive("resident_pages", resident_pages)
        budget = resident_pages + 1
        while True:  # min grows with the budget; a few rounds reach the fixed point
            min_pages = derive_watermarks(budget, page_size)[0]
            need = resident_pages + max(min_pages, 1)
            if need <= budget:
                break
            budget = need
        return cls(budget, page_size, reserve_on_top=True, **kwargs)

    # ----------------------------------------------------------------- geometry
    @property
    def is_unbounded(self) -> bool:
        """True for :meth:`unbounded` pools."""
        return self._unbounded

    @property
    def reserve_pages(self) -> int:
        """Pages below *min*: the base reserve plus the sum of active areas' needs."""
        return self._min

    @property
    def area_reserve_pages(self) -> int:
        """The part of the reserve declared by active areas through :meth:`adjust_reserve`."""
        return self._area_reserve

    @property
    def min_pages(self) -> int:
        """The *min* watermark (equal to :attr:`reserve_pages`)."""
        return self._min

    @property
    def low_pages(self) -> int:
        """The *low* watermark: below it kswapd is woken and ordinary allocations wait."""
        return self._low

    @property
    def high_pages(self) -> int:
        """The *high* watermark: background reclaim runs until free pages reach it."""
        return self._min + self._gap_high

    @property
    def used_pages(self) -> int:
        """Pages currently lent out."""
        return self._used

    @property
    def free_pages(self) -> int:
        """Pages not lent out (for an unbounded pool: a very large number)."""
        if self._unbounded:
            return 1 << 62
        return self.budget_pages - self._used

    @property
    def reserve_used_pages(self) -> int:
        """How far below *min* the pool currently is (0 when at or above *min*)."""
        if self._unbounded:
            return 0
        return max(0, self.min_pages - self.free_pages)

    @property
    def dirty_pages(self) -> int:
        """Dirty pages accounted through :meth:`account_dirty`."""
        return self._dirty

    @property
    def dirty_limit_pages(self) -> int:
        """``dirty_ratio`` percent of the dirtyable pages (``budget - min``)."""
        if self._unbounded:
            return 1 << 62
        return max(1, (self.budget_pages - self.min_pages) * self._dirty_ratio // 100)

    @property
    def dirty_background_pages(self) -> int:
        """``dirty_background_ratio`` percent of the dirtyable pages."""
        if self._unbounded:
            return 1 << 62
        return (self.budget_pages - self.min_pages) * self._dirty_background_ratio // 100

    def pages_for(self, nbytes: int) -> int:
        """Whole pages needed for ``nbytes`` bytes."""
        return -(-nbytes // self.page_size)

    # ----------------------------------------------------------------- reserve
    def adjust_reserve(self, delta_pages: int) -> None:
        """Grow (``delta > 0``) or shrink the area part of the reserve (``sk_adjust_memalloc``).

        Raises :class:`MemoryPressureError` when the budget cannot hold the new reserve (with
        the ordinary-allocation gap above it), and :class:`UsageError` when shrinking below
        zero.  *min*, *low* and *high* move with the reserve.
        """
        new_area = self._area_reserve + delta_pages
        if new_area < 0:
            raise UsageError(
                f"reserve adjustment {delta_pages:+d} would leave the area reserve at {new_area} "
                f"pages; only {self._area_reserve} page(s) were reserved"
            )
        if self.reserve_on_top and not self._unbounded:
            self.budget_pages += delta_pages
        elif not self._unbounded:
            new_min = self._base_min + new_area
            if new_min + self._gap_low >= self.budget_pages:
                raise MemoryPressureError(
                    f"pool budget of {self.budget_pages} pages cannot hold a reserve of "
                    f"{new_min} pages (base {self._base_min} + areas {new_area}) plus the "
                    f"{self._gap_low}-page gap to the low watermark; raise the budget"
                )
        self._area_reserve = new_area
        self._set_watermarks()
        self._wake()

    def _set_watermarks(self) -> None:
        """Cache *min* and *low* (read on every allocation) after the reserve changed."""
        self._min = self._base_min + self._area_reserve
        self._low = self._min + self._gap_low

    # ----------------------------------------------------------------- allocation
    def try_alloc(
        self, nbytes: int, *, to_min: bool = False, zero: bool = True
    ) -> PoolBuffer | None:
        """Allocate without waiting (``kmalloc_reserve`` with ``GFP_NOWAIT``); None on failure.

        ``to_min`` lets an ordinary allocation go down to *min* instead of *low* (the slow
        path's ``ALLOC_WMARK_MIN``, used for page-fault frames); it wakes kswapd when it
        takes pages below *low*.  ``zero`` as in :meth:`alloc`.
        """
        # one page (a pager frame): valid for every pool, whose budget is at least a page
        pages = (
            1 if nbytes == self.page_size and type(nbytes) is int else self._check_request(nbytes)
        )
        memalloc = in_memalloc()
        buf = self._grant(pages, nbytes, memalloc, zero)
        slow_path = buf is None and to_min and not memalloc and not self._unbounded
        if slow_path and self.free_pages - pages >= self.min_pages:
            buf = self._lend(pages, nbytes, False, zero)
        return buf

    async def alloc(
        self, nbytes: int, *, timeout: float | None = None, zero: bool = True
    ) -> PoolBuffer:
        """Allocate ``nbytes`` with ``kmalloc_reserve`` semantics, waiting if needed.

        Ordinary callers get a buffer only while the pool stays at or above *low*; otherwise
        kswapd is woken and the caller waits.  Memalloc callers may go down to *min* without
        a mark and below *min* (into the reserve) with ``pfmemalloc=True``.  ``timeout`` (in
        seconds; None means the pool's ``wait_timeout``) bounds the wait and raises
        :class:`AllocationTimeout`.  Cancellation while waiting leaks nothing.

        ``zero=False`` is ``kmalloc`` where the default is ``kzalloc``: the buffer's contents
        are undefined (it may be the memory of an earlier ``zero=False`` buffer, not zeroed
        again), for callers that overwrite all of it; its memory is kept for reuse when it
        is released, so nothing may keep a view of it after :meth:`PoolBuffer.release`.
        """
        pages = self._check_request(nbytes)
        memalloc = in_memalloc()
        buf = self._grant(pages, nbytes, memalloc, zero)
        if buf is not None:
            return buf
        loop = asyncio.get_running_loop()
        waiter = _Waiter(pages, nbytes, memalloc, loop.create_future(), zero)
        self._waiters.append(waiter)
        self._waits += 1
        self._wake_kswapd()
        limit = self.wait_timeout if timeout is None else timeout
        delivered = False
        try:
            if math.isinf(limit):
                buf = await waiter.future
            else:
                async with asyncio.timeout(limit):
                    buf = await waiter.future
            delivered = True
            return buf
        except TimeoutError:
            self._wait_timeouts += 1
            raise AllocationTimeout(self._timeout_message(pages, memalloc, limit)) from None
        finally:
            if not delivered:
                self._abandon(waiter)

    def _abandon(self, waiter: _Waiter) -> None:
        """Drop a waiter that gave up; a buffer granted in the race goes straight back."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        fut = waiter.future
        if not fut.done():
            fut.cancel()
        elif not fut.cancelled() and fut.exception() is None:
            fut.result().release()

    def _timeout_message(self, pages: int, memalloc: bool, limit: float) -> str:
        kind = "memalloc" if memalloc else "ordinary"
        return (
            f"{kind} allocation of {pages} page(s) waited {limit:g}s without the pool recovering: "
            f"free={self.free_pages}, min={self.min_pages}, low={self.low_pages}, "
            f"reserve used={self.reserve_used_pages}/{self.reserve_pages}, "
            f"reserve {'enabled' if self.reserve_enabled else 'DISABLED'}"
        )

    def _check_request(self, nbytes: int) -> int:
        if isinstance(nbytes, bool) or not isinstance(nbytes, int):
            raise UsageError(f"allocation size must be an int number of bytes, got {nbytes!r}")
        if nbytes <= 0:
            raise UsageError(f"allocation size must be > 0 bytes, got {nbytes}")
        pages = self.pages_for(nbytes)
        if not self._unbounded and pages > self.budget_pages:
            raise MemoryPressureError(
                f"allocation of {pages} page(s) can never fit a pool budget of "
                f"{self.budget_pages} pages"
            )
        return pages

    def _grant(
        self, pages: int, nbytes: int, memalloc: bool, zero: bool = True
    ) -> PoolBuffer | None:
        if self._unbounded:
            return self._lend(pages, nbytes, False, zero)
        after = self.budget_pages - self._used - pages
        if not memalloc:
            if after >= self._low:
                return self._lend(pages, nbytes, False, zero)
            return None
        # kmalloc_reserve: first without the reserve (__GFP_NOMEMALLOC), then with it
        if after >= self._min:
            return self._lend(pages, nbytes, False, zero)
        if self.reserve_enabled and after >= 0:
            return self._lend(pages, nbytes, True, zero)
        return None

    def _lend(self, pages: int, nbytes: int, pfmemalloc: bool, zero: bool = True) -> PoolBuffer:
        self._used += pages
        self._buffers += 1
        self._allocations += 1
        if pfmemalloc:
            self._pfmemalloc_pages += pages
            self._reserve_dips += 1
        used = self._used
        self._peak_used = max(self._peak_used, used)
        if not self._unbounded:
            free = self.budget_pages - used
            if free < self._min and self._min - free > self._peak_reserve_used:
                self._peak_reserve_used = self._min - free
            if free < self._low:
                self._wake_kswapd()
        if zero:
            return PoolBuffer(self, memoryview(bytearray(nbytes)), pages, pfmemalloc)
        spares = self._spares.get(pages)
        if spares:
            memory = spares.pop()
            self._spare_bytes -= len(memory)
        else:
            memory = bytearray(pages * self.page_size)
        return PoolBuffer(self, memoryview(memory)[:nbytes], pages, pfmemalloc, memory)

    def _keep_spare(self, pages: int, memory: bytearray) -> None:
        """Keep a released ``zero=False`` buffer's memory: a few per size, and at most 16 MiB
        or an eighth of a bounded pool's budget, whichever is less (the spares are memory the
        budget does not count, as the kernel's per-CPU free lists are not "used")."""
        limit = _SPARE_BYTES
        if not self._unbounded:
            limit = min(limit, self.budget_pages * self.page_size // _SPARE_BUDGET_DIVISOR)
        spares = self._spares.setdefault(pages, [])
        if len(spares) < _SPARES_PER_SIZE and self._spare_bytes + len(memory) <= limit:
            spares.append(memory)
            self._spare_bytes += len(memory)

    def _give_back(self, pages: int, pfmemalloc: bool) -> None:
        self._used -= pages
        self._buffers -= 1
        if pfmemalloc:
            self._pfmemalloc_pages -= pages
        self._wake()

    def _wake(self) -> None:
        """Grant waiting allocations that now fit; memalloc waiters first."""
        if self._waiters:
            for memalloc_pass in (True, False):
                for waiter in list(self._waiters):
                    if waiter.memalloc != memalloc_pass or waiter.future.done():
                        continue
                    buf = self._grant(waiter.pages, waiter.nbytes, waiter.memalloc, waiter.zero)
                    if buf is None:
                        continue
                    self._waiters.remove(waiter)
                    waiter.future.set_result(buf)
        if self._state_waiters:
            waiters, self._state_waiters = self._state_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    # ----------------------------------------------------------------- kswapd
    def add_kswapd(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Register a callback woken (synchronously) whenever free pages fall below *low*.

        The callback must only schedule work (set an event), never block.  Returns a function
        that unregisters it.
        """
        self._kswapd.append(wake)

        def remove() -> None:
            if wake in self._kswapd:
                self._kswapd.remove(wake)

        return remove

    def _wake_kswapd(self) -> None:
        if self._kswapd:
            self._kswapd_wakeups += 1
            for wake in list(self._kswapd):
                wake()

    def below_low(self) -> bool:
        """True when free pages are below *low* (reclaim should run)."""
        return not self._unbounded and self.free_pages < self.low_pages

    def below_high(self) -> bool:
        """True while background reclaim should continue (free pages below *high*)."""
        return not self._unbounded and self.free_pages < self.high_pages

    def reclaim_wanted(self) -> bool:
        """True while kswapd should keep going: free pages below *high*, or an allocation
        is waiting (``balance_pgdat`` reclaims for the waiting allocation's order too)."""
        return not self._unbounded and (self.free_pages < self.high_pages or bool(self._waiters))

    # ----------------------------------------------------------------- throttling
    def allow_direct_reclaim(self) -> bool:
        """``allow_direct_reclaim()``: False when more than half the reserve is in use."""
        if self._unbounded or self.min_pages == 0:
            return True
        return self.free_pages > self.min_pages // 2

    async def throttle_direct_reclaim(self, *, timeout: float | None = None) -> None:
        """Wait while :meth:`allow_direct_reclaim` is False (memalloc work is never throttled).

        Raises :class:`AllocationTimeout` when the pool does not recover in time.
        """
        if in_memalloc() or self.allow_direct_reclaim():
            return
        self._direct_throttles += 1
        self._wake_kswapd()
        await self._wait_until(
            self.allow_direct_reclaim,
            timeout,
            lambda limit: (
                f"direct reclaimer throttled {limit:g}s: free={self.free_pages} stayed at or "
                f"below half the reserve ({self.min_pages // 2} of {self.min_pages} pages)"
            ),
        )

    # ----------------------------------------------------------------- dirty limits
    def account_dirty(self, delta_pages: int) -> None:
        """Add ``delta_pages`` (may be negative) to the dirty count."""
        new = self._dirty + delta_pages
        if new < 0:
            raise PoolUsageError(
                f"dirty accounting would go negative: {self._dirty} {delta_pages:+d}"
            )
        self._dirty = new
        if delta_pages < 0:
            self._wake()

    def dirty_exceeded(self) -> bool:
        """True when dirty pages are at or above the dirty limit."""
        return self._dirty >= self.dirty_limit_pages

    def over_background_dirty(self) -> bool:
        """True when background writeback should run (dirty above the background threshold)."""
        return self._dirty > self.dirty_background_pages

    async def balance_dirty_pages(self, *, timeout: float | None = None) -> None:
        """Wait until dirty pages are below the limit (``balance_dirty_pages``).

        Memalloc work is never throttled.  Raises :class:`AllocationTimeout` on timeout.
        """
        if in_memalloc() or not self.dirty_exceeded():
            return
        self._dirty_throttles += 1
        self._wake_kswapd()
        await self._wait_until(
            lambda: not self.dirty_exceeded(),
            timeout,
            lambda limit: (
                f"dirtying writer throttled {limit:g}s: {self._dirty} dirty pages stayed at or "
                f"above the limit of {self.dirty_limit_pages}"
            ),
        )

    async def wait_for_change(self, *, timeout: float | None = None) -> None:
        """Wait until pages are returned, the reserve changes or dirty pages are cleaned."""
        limit = self.wait_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(None if math.isinf(limit) else limit):
                await self._state_changed()
        except TimeoutError:
            self._wait_timeouts += 1
            raise AllocationTimeout(
                f"pool state did not change within {limit:g}s (free={self.free_pages})"
            ) from None

    async def _wait_until(
        self,
        ready: Callable[[], bool],
        timeout: float | None,
        message: Callable[[float], str],
    ) -> None:
        limit = self.wait_timeout if timeout is None else timeout
        self._waits += 1
        try:
            async with asyncio.timeout(None if math.isinf(limit) else limit):
                while not ready():
                    await self._state_changed()
        except TimeoutError:
            self._wait_timeouts += 1
            raise AllocationTimeout(message(limit)) from None

    async def _state_changed(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._state_waiters.append(fut)
        try:
            await fut
        finally:
            if fut in self._state_waiters:
                self._state_waiters.remove(fut)

    # ----------------------------------------------------------------- inspection
    @property
    def waiters(self) -> int:
        """Allocations currently waiting."""
        return len(self._waiters)

    def accounting(self) -> PoolAccounting:
        """The pool's balance (see :class:`PoolAccounting`)."""
        return self.snapshot().accounting

    @property
    def spare_bytes(self) -> int:
        """Memory of released ``zero=False`` buffers kept for the next such allocation."""
        return self._spare_bytes

    def snapshot(self) -> PoolSnapshot:
        """A frozen view of the pool's state and counters."""
        return PoolSnapshot(
            unbounded=self._unbounded,
            budget_pages=None if self._unbounded else self.budget_pages,
            page_size=self.page_size,
            free_pages=None if self._unbounded else self.free_pages,
            used_pages=self._used,
            min_pages=self.min_pages,
            low_pages=self.low_pages,
            high_pages=self.high_pages,
            reserve_pages=self.reserve_pages,
            area_reserve_pages=self._area_reserve,
            reserve_used_pages=self.reserve_used_pages,
            reserve_enabled=self.reserve_enabled,
            pfmemalloc_pages=self._pfmemalloc_pages,
            buffers_outstanding=self._buffers,
            dirty_pages=self._dirty,
            dirty_limit_pages=0 if self._unbounded else self.dirty_limit_pages,
            dirty_background_pages=0 if self._unbounded else self.dirty_background_pages,
            waiters=len(self._waiters),
            allocations=self._allocations,
            reserve_dips=self._reserve_dips,
            waits=self._waits,
            wait_timeouts=self._wait_timeouts,
            kswapd_wakeups=self._kswapd_wakeups,
            direct_reclaim_throttles=self._direct_throttles,
            dirty_throttles=self._dirty_throttles,
            peak_used_pages=self._peak_used,
            peak_reserve_used_pages=self._peak_reserve_used,
        )

    @property
    def stats(self) -> PoolSnapshot:
        """Alias of :meth:`snapshot`."""
        return self.snapshot()

    def __repr__(self) -> str:
        if self._unbounded:
            return f"PagePool.unbounded(page_size={self.page_size}, used={self._used})"
        return (
            f"PagePool(budget={self.budget_pages}, free={self.free_pages}, min={self.min_pages}, "
            f"low={self.low_pages}, high={self.high_pages}, reserve_used={self.reserve_used_pages})"
        )


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise UsageError(f"{name} must be > 0, got {value}")
