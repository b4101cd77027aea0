"""The handler's fault resolver: pages in, dirty tracking, sequential windows, eviction.

Runs in the handler process, on its event loop, over the program's region (one fault at a
time: :mod:`swapio.mapping._faults` serialises them and runs each eagerly, so a fault that
needs no I/O wait never costs an event-loop turn).

* **Where a page's bytes come from.** The pager is the swap cache of the byte API and of the
  mapping: a page it holds (a dirty page the program evicted and the pager has not written
  out yet, a page it read) is read through :meth:`Pager.read` — it is the newest copy — and
  dropped from the pager (the program holds it now).  A page the pager does not hold is on
  the area (its slot is current: the pager writes a slot only for a page it holds), and is
  read straight into the staging buffer with one request of the pager's scheduler per run of
  such pages — what the pager's own fault would do, without taking a frame of the pool for
  a copy the program is about to hold.  A page nobody ever wrote is zeros, without I/O.
* **Missing fault**, random: the page alone, installed with ``UFFDIO_COPY`` (write-protected
  for a read; writable and dirty for a write — ``UFFDIO_ZEROPAGE`` for a never-written one).
* **Sequential windows** (the pager's readahead rule, done on the region): a fault right
  after the previous window installs a window of 16, then 32, … up to 256 pages (a quarter
  of the budget at most) with one read request per run of at most 64 pages and *one*
  ``UFFDIO_COPY``; then, once the program is awake, the next
  window is read and installed ahead of it (*async readahead*) — all of it but its first
  page, whose bytes are kept: the program's fault on that *marker* page is served from
  memory at once and starts the next window, so the handler reads one window ahead while
  the program works through the current one (Linux's ``PG_readahead`` marker, done with a
  hole because the handler cannot see the program's accesses).  A window faulted by a write
  goes in writable and dirty (a sequential writer: one write-protect fault per page would
  cost more than writing back a page that stays clean).
* **Dirty tracking** (write-protect mode): a read installs pages write-protected
  (``UFFDIO_COPY_MODE_WP``); the first write faults (``UFFD_PAGEFAULT_FLAG_WP``), the page is
  marked dirty and un-protected (``UFFDIO_WRITEPROTECT`` mode 0, which wakes the writer).
  Without write-protect support every installed page counts as dirty.
* **Eviction** keeps at most ``budget`` pages installed: the oldest pages (FIFO: the handler
  cannot see the program's accessed bits) go in batches of at least ``batch``, *after* the
  faulting thread was woken — room for the next fault is made ahead of it, while the program
  runs.  The FIFO, the victims and the dirty pages among them are runs ``(first, count)``.
  Dirty victims are write-protected and read back from the memfd, a run at a time, and
  written straight to the area by one request of the pager's scheduler per run when the
  area's calls complete inline and the pager holds none of the run — else handed to
  :meth:`Pager.write`, whose reclaim writes them later (a slow area does not stall the
  faults) and serves them meanwhile; then the victims are punched out of the memfd (one
  ``process_madvise(MADV_REMOVE)`` for the batch, or one ``fallocate`` per run on kernels
  before 6.13: :class:`swapio.mapping._region.HolePuncher`) by a reaper thread while the loop
  serves the next fault, which unmaps them from the program; evicted pages count as
  installed until their punch is done, and a fault on one waits for it.  Making room ahead
  of the next fault never waits for a punch in flight; a fault that needs the room does.
  Eviction and sync run in memalloc context: they are the reclaim of the program's memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import mmap
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from swapio.mapping import _region, _uffd
from swapio.mapping._abi import CopyMode, PagefaultFlag, WriteprotectMode, ZeropageMode
from swapio.memalloc import memalloc
from swapio.pager import Pager
from swapio.scheduler import Priority

#: Largest sequential window (pages) installed by one fault or one readahead.
MAX_WINDOW = 256
#: Most pages one request to the area carries, read or write (a file area does up to
#: 256 KiB on the event loop; larger requests go through its owner thread).
MAX_REQUEST = 64
#: First sequential window.
FIRST_WINDOW = 16

_WP = int(PagefaultFlag.WP)
_WRITE = int(PagefaultFlag.WRITE)
# per-page state in the region: not installed, installed clean (write-protected), dirty,
# evicted but still mapped until the reaper thread's hole punch is done
_ABSENT, _CLEAN, _DIRTY, _PUNCHING = 0, 1, 2, 3
_DIRTY_RUN = re.compile(re.escape(bytes([_DIRTY])) + b"+")
_PUNCH_BYTES = bytes([_PUNCHING])
_CLEAN_BYTES = bytes([_CLEAN])


@dataclass
class ResolverStats:
    """Counters of one resolver."""

    missing_faults: int = 0
    wp_faults: int = 0
    pages_installed: int = 0
    zero_installs: int = 0
    area_reads: int = 0
    pager_hits: int = 0
    readahead_pages: int = 0
    marker_hits: int = 0
    evictions: int = 0
    dirty_evictions: int = 0
    direct_writes: int = 0
    punches: int = 0
    synced_pages: int = 0
    max_installed: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict (for the control channel)."""
        return asdict(self)


#: The reaper thread's name in ``/proc/PID/task/TID/comm`` (``top -H``, ``ps -L``).
REAPER_NAME = b"swapio-punch"
_PR_SET_NAME = 15  # prctl(2)


def _reaper_init(cpus: set[int]) -> None:
    """Start of the reaper thread: it may run on any of ``cpus`` (the handler's CPUs before
    its loop thread was pinned next to the program), so punching overlaps with the program
    and the loop; named for ``top -H``."""
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, cpus)
    _region.libc.prctl(_PR_SET_NAME, REAPER_NAME, 0, 0, 0)


def _dirty_runs(state: bytearray, first: int, end: int) -> list[tuple[int, int]]:
    """``(first, count)`` of each run of dirty pages in ``state[first:end]``."""
    if state.find(_DIRTY, first, end) < 0:  # memchr: a clean range costs no regex scan
        return []
    return [(m.start(), m.end() - m.start()) for m in _DIRTY_RUN.finditer(state, first, end)]


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
        stored: bool = False,
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
        # the largest window: two of them (the one faulted and the one read ahead) fit in
        # the budget with room for a batch
        self.max_window = max(1, min(MAX_WINDOW, budget // 4))
        self._state = bytearray(pages)  # _ABSENT / _CLEAN / _DIRTY per page
        # 1: the page has data (the resolver wrote it, to the area or through the pager, its
        # only writer); every page has on an area opened with its data (``stored``)
        self._all_stored = stored
        self._stored = bytearray(pages)
        # runs (first, count) installed together, oldest first; pages in it: _queued
        self._fifo: collections.deque[tuple[int, int]] = collections.deque()
        self._queued = 0
        self._installed = 0
        self._stage = mmap.mmap(-1, MAX_WINDOW * page_size)  # page-aligned staging buffer
        self._stage_view = memoryview(self._stage)
        self._stage_pages = [
            self._stage_view[k * page_size : (k + 1) * page_size] for k in range(MAX_WINDOW)
        ]
        self._sched = pager.scheduler
        self._area = pager.area
        anchor = ctypes.c_char.from_buffer(self._stage)
        self._stage_addr = ctypes.addressof(anchor)
        del anchor
        self._zeros = memoryview(bytes(MAX_WINDOW * page_size))
        self._held = bytearray(page_size)  # the marker page's bytes
        self._held_addr = ctypes.addressof(ctypes.c_char.from_buffer(self._held))
        self._marker = -1  # first page of the window read ahead, not installed
        self._next_seq = -1  # the page after the last window: a fault there is sequential
        self._window = 1
        self._writing = False  # the last fault of the stream was a write
        # one thread punches the evicted pages out while the loop serves faults: a hole punch
        # unmaps pages from the program (TLB shootdown) and frees them — ~1 us a page, ~7 us
        # a call — which need not delay the next fault; at most one batch is in flight, punched
        # with one system call where the kernel allows (_region.HolePuncher)
        self._puncher = _region.HolePuncher(memfd, pages * page_size)
        self._reaper = ThreadPoolExecutor(
            1,
            thread_name_prefix="swapio-mapping-punch",
            initializer=_reaper_init,
            initargs=(os.sched_getaffinity(0),),
        )
        self._punching: asyncio.Future[None] | None = None
        self._punch_runs: list[tuple[int, int]] = []  # the batch being punched
        self._punch_count = 0
        self._installed_mode = CopyMode.WP if write_protect else CopyMode.NONE
        self._clean = _CLEAN if write_protect else _DIRTY

    @property
    def punch_calls(self) -> int:
        """System calls the reaper made to punch evicted pages out (all batches so far)."""
        return self._puncher.calls

    @property
    def batched_punch(self) -> bool:
        """True while batches are punched with one ``process_madvise`` call each."""
        return self._puncher.batched

    @property
    def installed(self) -> int:
        """Pages installed in the program now."""
        return self._installed

    # ------------------------------------------------------------------ faults
    async def handle(self, address: int, flags: int) -> None:
        """Resolve one fault (``uffd_msg.arg.pagefault``); the faulting thread is woken
        before the work done ahead of the next fault (eviction, readahead)."""
        ps = self.page_size
        index = (address - self.base) // ps
        if not 0 <= index < self.pages:
            return  # not ours (cannot happen for a region registered alone)
        addr = self.base + index * ps
        state = self._state
        if state[index] == _PUNCHING:
            # evicted, still mapped: a write to it must not land before the punch (it would
            # be lost); its retry after the punch is a missing fault like any other
            await self._punched()
        if flags & _WP:
            self.stats.wp_faults += 1
            if state[index]:
                state[index] = _DIRTY
            # un-protect (and wake); on a page evicted meanwhile this only wakes the
            # writer, whose retry is a missing fault
            _uffd.writeprotect(self.uffd, addr, ps, WriteprotectMode.NONE)
            return
        self.stats.missing_faults += 1
        if state[index]:
            _uffd.wake(self.uffd, addr, ps)  # installed meanwhile (readahead, another thread)
            return
        self._writing = write = bool(flags & _WRITE)
        if index == self._marker:
            await self._make_room(1)
            self._install_marker(write)
            self._window = min(self._window * 2, self.max_window)
            await self._read_ahead()
        else:
            sequential = index == self._next_seq
            self._marker = -1
            if sequential:
                self._window = min(max(self._window * 2, FIRST_WINDOW), self.max_window)
            else:
                self._window = 1
            window = self._span(index, self._window)
            await self._make_room(window)
            zeros = await self._fill(index, window)
            self._copy(index, window, dirty=write, zeros=zeros == window)
            self._next_seq = index + window
            if sequential:
                await self._read_ahead()
        # room for the next faults, made now that the program runs again: a batch is punched
        # out by the reaper thread while a batch of room is still free, so the faults that
        # use that room do not wait for the punch
        reserve = min(self.batch + self._window + 1, max(1, self.budget // 4))
        if self._installed + reserve > self.budget:
            await self._make_room(reserve, wait=False)

    def _span(self, index: int, limit: int) -> int:
        """How many pages from ``index`` (at most ``limit``, stopping at the region's end or
        the first installed page) one window covers."""
        if limit == 1:
            return 1
        end = min(index + limit, self.pages)
        for state in (_CLEAN, _DIRTY, _PUNCHING):
            found = self._state.find(state, index, end)
            if found >= 0:
                end = found
        return max(end - index, 1)

    async def _fill(self, first: int, count: int) -> int:
        """Stage pages ``first .. first + count - 1``: from the pager where it holds them,
        zeros where nothing was ever written, else from the area, one request per run.
        Returns how many were zeros."""
        pager = self.pager
        ps = self.page_size
        view = self._stage_view
        stored = self._stored
        everything = self._all_stored
        held = pager.resident > 0  # the pager holds pages at all (else none of these)
        stop = first + count
        zeros = 0
        i = first
        while i < stop:
            k = i - first
            if held and pager.is_resident(i):
                view[k * ps : (k + 1) * ps] = await pager.read(i)
                pager.drop_clean(i)  # the program holds it now
                self.stats.pager_hits += 1
                i += 1
            elif everything or stored[i]:  # a run read from the area
                end = stop if everything else stored.find(0, i, stop)
                end = stop if end < 0 else end
                if held:
                    for j in range(i + 1, end):
                        if pager.is_resident(j):
                            end = j
                            break
                await self._read_area(i, k, end - i)
                i = end
            else:  # never written (the pager only holds pages the resolver stored)
                end = stored.find(1, i, stop)
                end = stop if end < 0 else end
                view[k * ps : (end - first) * ps] = self._zeros[: (end - i) * ps]
                zeros += end - i
                i = end
        self.stats.zero_installs += zeros
        return zeros

    async def _read_area(self, index: int, offset: int, count: int) -> None:
        """Read ``count`` slots from ``index`` into the stage at page ``offset``: one request
        of the pager's scheduler (demand priority, like the pager's own readahead)."""
        for k in range(0, count, MAX_REQUEST):
            views = self._stage_pages[offset + k : offset + min(count, k + MAX_REQUEST)]
            await self._sched.swap_in(self._area, index + k, views, priority=Priority.DEMAND)
            self.stats.area_reads += 1

    def _copy(self, first: int, count: int, *, dirty: bool, zeros: bool = False) -> None:
        """Install the staged window at ``first`` (waking whoever waits on it): clean and
        write-protected, or (``dirty``: being written) writable and dirty at once."""
        ps = self.page_size
        dst = self.base + first * ps
        if not dirty:
            _uffd.copy(self.uffd, dst, self._stage_addr, count * ps, self._installed_mode)
            self._add(first, count, self._clean)
        elif zeros:  # never written and being written: no copy at all
            _uffd.zeropage(self.uffd, dst, count * ps, ZeropageMode.NONE)
            self._add(first, count, _DIRTY)
        else:
            _uffd.copy(self.uffd, dst, self._stage_addr, count * ps, CopyMode.NONE)
            self._add(first, count, _DIRTY)

    def _install_marker(self, write: bool) -> None:
        """Serve the fault on the marker page from the bytes kept by the readahead."""
        index = self._marker
        self._marker = -1
        ps = self.page_size
        mode = CopyMode.NONE if write else self._installed_mode
        _uffd.copy(self.uffd, self.base + index * ps, self._held_addr, ps, mode)
        self._add(index, 1, _DIRTY if write else self._clean)
        self.stats.marker_hits += 1

    async def _read_ahead(self) -> None:
        """Read the window after the last one and install all of it but its first page (the
        marker, whose bytes are kept for its fault)."""
        first = self._next_seq
        if first >= self.pages or self._state[first]:
            return
        count = self._span(first, self._window)
        if count < 2:
            return
        await self._make_room(count)
        await self._fill(first, count)
        ps = self.page_size
        self._held[:] = self._stage_view[:ps]
        # waking (the program may already wait on a page of this window); a sequential
        # writer's window goes in writable and dirty
        dirty = self._writing or not self.write_protect
        mode = CopyMode.NONE if dirty else CopyMode.WP
        dst = self.base + (first + 1) * ps
        _uffd.copy(self.uffd, dst, self._stage_addr + ps, (count - 1) * ps, mode)
        self._add(first + 1, count - 1, _DIRTY if dirty else _CLEAN)
        self._marker = first
        self._next_seq = first + count
        self.stats.readahead_pages += count

    def _add(self, first: int, count: int, state: int) -> None:
        self._state[first : first + count] = bytes([state]) * count
        self._fifo.append((first, count))
        self._queued += count
        self._installed += count
        self.stats.pages_installed += count
        self.stats.max_installed = max(self.stats.max_installed, self._installed)

    # ------------------------------------------------------------------ eviction
    async def _make_room(self, wanted: int, *, wait: bool = True) -> None:
        """Evict (FIFO, in batches) until ``wanted`` more pages fit the budget; with ``wait``
        (room needed now) until they are punched out too.  Pages being punched still count
        as installed: the program's resident set never exceeds the budget."""
        if self._installed + wanted <= self.budget:
            return
        punching = self._punching
        if not wait and punching is not None and not punching.done():
            # room is being made already (the batch in flight still counts as installed):
            # waiting for it here, ahead of the next fault, stalled every batch's first
            # fault for the whole punch; a fault that needs the room now waits instead
            return
        await self._punched()  # at most one batch in flight
        excess = self._installed + wanted - self.budget
        if excess <= 0:
            return
        count = min(max(excess, self.batch), self._queued)
        victims = self._pop_victims(count)
        state = self._state
        dirty: list[tuple[int, int]] = []
        for first, n in victims:
            dirty += _dirty_runs(state, first, first + n)
        if dirty:
            with memalloc():  # this is reclaim: it frees the program's memory
                await self._write_back(dirty)
            self.stats.dirty_evictions += sum(n for _, n in dirty)
        ps = self.page_size
        holes = []
        for first, n in victims:
            state[first : first + n] = _PUNCH_BYTES * n
            holes.append((first * ps, n * ps))
        self.stats.punches += len(holes)
        self.stats.evictions += count
        self._punch_runs = victims
        self._punch_count = count
        if not self.write_protect:
            # nothing would stop a write landing between the read-back and the punch
            self._puncher.punch(holes)
            self._settle_punch()
            return
        loop = asyncio.get_running_loop()
        self._punching = loop.run_in_executor(self._reaper, self._puncher.punch, holes)
        if wait:
            await self._punched()

    def _pop_victims(self, count: int) -> list[tuple[int, int]]:
        """The ``count`` oldest installed pages, as runs in address order (adjacent runs
        joined: one hole each).  A hole never spans a page that is not a victim, even one
        not installed: the punch may still be running when the next fault installs it."""
        fifo = self._fifo
        taken: list[tuple[int, int]] = []
        need = count
        while need:
            first, n = fifo.popleft()
            if n > need:
                fifo.appendleft((first + need, n - need))
                n = need
            taken.append((first, n))
            need -= n
        self._queued -= count
        taken.sort()
        runs = [taken[0]]
        for first, n in taken[1:]:
            last, m = runs[-1]
            if last + m == first:
                runs[-1] = (last, m + n)
            else:
                runs.append((first, n))
        return runs

    async def _punched(self) -> None:
        """Wait for the batch being punched out, then count it gone (raises its error)."""
        fut = self._punching
        if fut is None:
            return
        try:
            await fut
        finally:
            if self._punching is fut:
                self._punching = None
                self._settle_punch()

    def _settle_punch(self) -> None:
        state = self._state
        for first, n in self._punch_runs:
            state[first : first + n] = bytes(n)
        self._installed -= self._punch_count
        self._punch_runs = []
        self._punch_count = 0

    async def _write_back(self, runs: list[tuple[int, int]]) -> None:
        """Write the current bytes of the pages of ``runs`` (address order) to the area.

        Each run is write-protected first, so a write that races with the copy faults and
        marks the page dirty again instead of being lost.
        """
        ps = self.page_size
        pager = self.pager
        for first, n in runs:
            if self.write_protect:
                _uffd.writeprotect(self.uffd, self.base + first * ps, n * ps, WriteprotectMode.WP)
            data = memoryview(os.pread(self.memfd, n * ps, first * ps))
            pages = [data[k * ps : (k + 1) * ps] for k in range(n)]
            if self._sched.inline(self._area) and not (
                pager.resident and any(pager.is_resident(first + k) for k in range(n))
            ):
                try:
                    for k in range(0, n, MAX_REQUEST):
                        await self._sched.swap_out(
                            self._area, first + k, pages[k : k + MAX_REQUEST]
                        )
                except Exception:  # the pager's write-back retries it and reports it
                    pass
                else:
                    self._stored[first : first + n] = b"\x01" * n
                    self.stats.direct_writes += 1
                    continue
            for k in range(n):
                await pager.write(first + k, pages[k])
            self._stored[first : first + n] = b"\x01" * n

    # ------------------------------------------------------------------ sync
    async def sync(self) -> int:
        """Write every dirty installed page to the area (durably, on a durable area);
        returns how many pages were written.  The pages stay installed, clean and
        write-protected."""
        await self._punched()
        state = self._state
        dirty = _dirty_runs(state, 0, self.pages) if self._installed else []
        # memalloc: the pager's frames may all hold dirty pages, so the backend's own
        # buffers for these writes can only come from the reserve (a flashlog area waited
        # for ever on an ordinary allocation without it)
        with memalloc():
            if dirty:
                await self._write_back(dirty)
                if self.write_protect:
                    for first, n in dirty:
                        state[first : first + n] = _CLEAN_BYTES * n
            await self.pager.sync()
        written = sum(n for _, n in dirty)
        self.stats.synced_pages += written
        return written

    async def close(self) -> None:
        """Finish the punch in flight and stop the reaper thread."""
        try:
            await self._punched()
        finally:
            self._reaper.shutdown(wait=True)
            self._puncher.close()

    def region_rss(self, pid: int) -> int:
        """The program's resident bytes in the region (``/proc/PID/smaps``)."""
        return _region.region_rss(pid, self.base)
