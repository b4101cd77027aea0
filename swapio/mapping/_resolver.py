"""The handler's fault resolver: pages in from the pager, dirty tracking, eviction.

Runs in the handler process, on its event loop, over the program's region:

* **Missing fault** on page *i*: the page's bytes come from the pager (its swap cache,
  readahead and the area) — or are known zeros when the pager holds no data for it — and are
  installed with ``UFFDIO_COPY`` (``UFFDIO_ZEROPAGE`` for a never-written page hit by a
  write).  A fault right after the previous window is *sequential*: the window grows
  (16, 32, 64 pages) and is installed with one ``UFFDIO_COPY``.
* **Dirty tracking** (write-protect mode): pages are installed write-protected
  (``UFFDIO_COPY_MODE_WP``); the first write faults (``UFFD_PAGEFAULT_FLAG_WP``), the page is
  marked dirty and un-protected (``UFFDIO_WRITEPROTECT`` mode 0, which wakes the writer).  A
  page installed for a write fault is installed writable and dirty at once.  Without
  write-protect support every installed page counts as dirty.
* **Eviction** keeps at most ``budget`` pages installed in the program: before installing,
  the oldest pages (FIFO: the handler cannot see the program's accessed bits) are dropped in
  batches.  Dirty ones are write-protected, read back from the memfd and handed to
  :meth:`Pager.write` (which writes them to the area through its own reclaim); then the batch
  is punched out of the memfd, which unmaps it from the program.  Eviction and sync run in
  memalloc context: they are the reclaim of the program's memory.
"""

from __future__ import annotations

import collections
import ctypes
import os
from dataclasses import asdict, dataclass

from swapio.mapping import _abi, _region, _uffd
from swapio.mapping._abi import CopyMode, Pagefault, WriteprotectMode
from swapio.memalloc import memalloc
from swapio.pager import Pager

#: Largest sequential window (pages) installed by one fault.
MAX_WINDOW = 64
#: First sequential window.
FIRST_WINDOW = 16


@dataclass
class ResolverStats:
    """Counters of one resolver."""

    missing_faults: int = 0
    wp_faults: int = 0
    pages_installed: int = 0
    zero_installs: int = 0
    evictions: int = 0
    dirty_evictions: int = 0
    synced_pages: int = 0
    max_installed: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict (for the control channel)."""
        return asdict(self)


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """``(first, count)`` of each run of consecutive indices (input sorted)."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


class Resolver:
    """Serves the program's faults on ``[base, base + pages * page_size)``."""

    def __init__(
        self,
        *,
        uffd: int,
        memfd: int,
        base: int,
        pages: int,
        page_size: int,
        budget: int,
        batch: int,
        pager: Pager,
        write_protect: bool,
    ) -> None:
        self.uffd = uffd
        self.memfd = memfd
        self.base = base
        self.pages = pages
        self.page_size = page_size
        self.budget = budget
        self.batch = max(1, min(batch, budget))
        self.pager = pager
        self.write_protect = write_protect
        self.stats = ResolverStats()
        # installed pages in install order -> dirty
        self._installed: collections.OrderedDict[int, bool] = collections.OrderedDict()
        self._stage = ctypes.create_string_buffer(MAX_WINDOW * page_size)
        self._stage_view = memoryview(self._stage).cast("B")
        self._stage_addr = ctypes.addressof(self._stage)
        self._zeros = ctypes.create_string_buffer(page_size)
        self._next_seq = -1
        self._window = 1

    @property
    def installed(self) -> int:
        """Pages installed in the program now."""
        return len(self._installed)

    # ------------------------------------------------------------------ faults
    async def handle(self, fault: Pagefault) -> None:
        """Resolve one fault (the faulting thread is woken before this returns)."""
        index = (fault.address - self.base) // self.page_size
        addr = self.base + index * self.page_size
        if not 0 <= index < self.pages:
            return  # not ours (cannot happen for a region registered alone)
        if fault.write_protect:
            self.stats.wp_faults += 1
            if index in self._installed:
                self._installed[index] = True
            # un-protect (and wake); on a page evicted meanwhile this only wakes the
            # writer, whose retry is a missing fault served from the pager
            _uffd.writeprotect(self.uffd, addr, self.page_size, WriteprotectMode.NONE)
            return
        self.stats.missing_faults += 1
        if index in self._installed:
            _uffd.wake(self.uffd, addr, self.page_size)  # two threads faulted the same page
            return
        window = self._window_for(index)
        await self._make_room(len(window))
        await self._install(window, write=fault.write)

    def _window_for(self, index: int) -> list[int]:
        """The pages to install for a fault on ``index``: itself, plus the rest of a
        sequential window (pages not installed yet, up to the first installed one)."""
        if index == self._next_seq:
            self._window = min(max(self._window * 2, FIRST_WINDOW), MAX_WINDOW)
        else:
            self._window = 1
        limit = min(self._window, max(1, self.budget // 2), self.pages - index)
        window = [index]
        j = index + 1
        while len(window) < limit and j not in self._installed:
            window.append(j)
            j += 1
        self._next_seq = j
        return window

    async def _install(self, window: list[int], *, write: bool) -> None:
        first = window[0]
        ps = self.page_size
        dst = self.base + first * ps
        if len(window) == 1 and not self.pager.has_data(first):
            self.stats.zero_installs += 1
            if write:  # never written and being written: a writable zero page, dirty
                _uffd.zeropage(self.uffd, dst, ps, _abi.ZeropageMode.NONE)
                self._add(first, dirty=True)
                return
            mode = CopyMode.WP if self.write_protect else CopyMode.NONE
            _uffd.copy(self.uffd, dst, ctypes.addressof(self._zeros), ps, mode)
            self._add(first, dirty=not self.write_protect)
            return
        view = self._stage_view
        for k, index in enumerate(window):
            if self.pager.has_data(index):
                view[k * ps : (k + 1) * ps] = await self.pager.read(index)
                self.pager.drop_clean(index)  # the program holds it now
            else:
                view[k * ps : (k + 1) * ps] = bytes(ps)
                self.stats.zero_installs += 1
        if write and self.write_protect:
            # the faulting page goes in writable (it is about to be written), the rest
            # write-protected; wake once, with the faulting page
            if len(window) > 1:
                _uffd.copy(
                    self.uffd,
                    dst + ps,
                    self._stage_addr + ps,
                    (len(window) - 1) * ps,
                    CopyMode.WP | CopyMode.DONTWAKE,
                )
            _uffd.copy(self.uffd, dst, self._stage_addr, ps, CopyMode.NONE)
            self._add(first, dirty=True)
            for index in window[1:]:
                self._add(index, dirty=False)
            return
        mode = CopyMode.WP if self.write_protect else CopyMode.NONE
        _uffd.copy(self.uffd, dst, self._stage_addr, len(window) * ps, mode)
        for index in window:
            self._add(index, dirty=not self.write_protect)

    def _add(self, index: int, *, dirty: bool) -> None:
        self._installed[index] = dirty
        self.stats.pages_installed += 1
        n = len(self._installed)
        self.stats.max_installed = max(self.stats.max_installed, n)

    # ------------------------------------------------------------------ eviction
    async def _make_room(self, wanted: int) -> None:
        """Evict (FIFO, in batches) until ``wanted`` more pages fit the budget."""
        excess = len(self._installed) + wanted - self.budget
        if excess <= 0:
            return
        count = min(max(excess, self.batch), len(self._installed))
        victims = [self._installed.popitem(last=False) for _ in range(count)]
        dirty = sorted(i for i, d in victims if d)
        if dirty:
            with memalloc():  # this is reclaim: it frees the program's memory
                await self._write_back(dirty)
            self.stats.dirty_evictions += len(dirty)
        for first, n in _runs(sorted(i for i, _ in victims)):
            _region.punch_hole(self.memfd, first * self.page_size, n * self.page_size)
        self.stats.evictions += count

    async def _write_back(self, indices: list[int]) -> None:
        """Hand the current bytes of ``indices`` (sorted) to the pager.

        Each run is write-protected first, so a write that races with the copy faults and
        marks the page dirty again instead of being lost.
        """
        ps = self.page_size
        for first, n in _runs(indices):
            if self.write_protect:
                _uffd.writeprotect(self.uffd, self.base + first * ps, n * ps, WriteprotectMode.WP)
            data = os.pread(self.memfd, n * ps, first * ps)
            for k in range(n):
                await self.pager.write(first + k, data[k * ps : (k + 1) * ps])

    # ------------------------------------------------------------------ sync
    async def sync(self) -> int:
        """Write every dirty installed page to the area (durably, on a durable area);
        returns how many pages were written.  The pages stay installed, clean and
        write-protected."""
        dirty = sorted(i for i, d in self._installed.items() if d)
        # memalloc: the pager's frames may all hold dirty pages, so the backend's own
        # buffers for these writes can only come from the reserve (a flashlog area waited
        # for ever on an ordinary allocation without it)
        with memalloc():
            if dirty:
                await self._write_back(dirty)
                if self.write_protect:
                    for i in dirty:
                        self._installed[i] = False
            await self.pager.sync()
        self.stats.synced_pages += len(dirty)
        return len(dirty)

    def region_rss(self, pid: int) -> int:
        """The program's resident bytes in the region (``/proc/PID/smaps``)."""
        return _region.region_rss(pid, self.base)
