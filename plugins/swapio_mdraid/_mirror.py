"""RAID1 over swap areas, with md's write-intent bitmap in another area.

The I/O shell around :class:`~swapio_mdraid._intent.WriteIntent`, following ``raid1.c``:

* a write counts its chunks (``md_bitmap_startwrite``: bits set in memory), and every bitmap
  page holding its bits is on disk *before* any leg sees the data (``flush_bio_list`` →
  ``md_bitmap_unplug``); writes that arrive while a bitmap write is in flight join the next
  one (plugging, :mod:`~swapio_mdraid._plug`), so one flush serves a batch of writes; then
  the data goes to every healthy leg; then ``md_bitmap_endwrite`` (success only if no leg
  was missing, so a degraded array keeps its bits for the re-add);
* legs are written write-back unless their URL asks for ``durable=1``
  (:mod:`~swapio_mdraid._legs`); before a sweep that may clear bits every leg is flushed,
  so a bit is cleared on disk only over data that is stable on every leg;
* reads go to a healthy leg, balanced by fewest requests in flight, except chunks that
  still need a resync, which are read from the first in-sync leg (the resync source);
* a write goes to every healthy leg at once (:func:`~swapio_mdraid._fanout.at_once`), so
  its latency is the slowest leg's, not the sum — except write-back file legs, which take
  a write as a page-cache copy on the loop and are written in turn; the bitmap page is on
  disk before any leg starts;
* a leg whose I/O fails for any reason that is not the caller's
  (:func:`~swapio_mdraid._fanout.is_leg_failure`) is marked faulty, ``events`` is bumped,
  and the mirror continues degraded with the chunk's bits kept; with no healthy leg left
  the I/O fails;
* a daemon task sweeps every ``daemon_sleep`` seconds, clearing bits lazily;
  deactivation flushes (three sweeps, as ``md_bitmap_flush``) so a clean stop leaves no
  set bit behind except those a degraded mirror must keep;
* :meth:`Mirror.readd` puts a faulty leg back out of sync and :meth:`Mirror.resync` copies
  the chunks that need it (:mod:`~swapio_mdraid._online`).

Other modules keep the parts: :mod:`~swapio_mdraid._chunks` (writes in flight per chunk,
holds), :mod:`~swapio_mdraid._ahead` (bits set ahead of a sequential stream),
:mod:`~swapio_mdraid._fanout` (legs written in turn or at once, whose error it is).

Every bitmap page write holds one lock, so a lazy clear can never overwrite a page that a
concurrent write has just set a bit in.  The legs, the bitmap store and the mirror's own
buffers all allocate from the mirror area's pool, whose reserve the mirror sizes for one
in-flight request across legs and bitmap (:meth:`Mirror.reserve_pages_per_request`).
``fault`` is a test hook: it is awaited at each step of the protocol (``bitmap_flushed``,
``leg_written``, ``write_done``, ``swept``) so that tests can "crash" the mirror exactly
there.  While a hook is installed the legs of a write are written one after another, in
leg order, so that "between the legs" is a deterministic crash point.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from swapio.area import CreateRequest, PageBuffer, SwapArea
from swapio.errors import SwapioError
from swapio.plugins import PluginHost
from swapio_mdraid._ahead import AHEAD_BYTES, AheadWindow
from swapio_mdraid._assemble import assemble
from swapio_mdraid._chunks import ChunkGate
from swapio_mdraid._config import MirrorConfig
from swapio_mdraid._direct import leg_io
from swapio_mdraid._fanout import at_once, in_turn, is_leg_failure
from swapio_mdraid._intent import ON_DISK, OVERFLOW, WriteIntent
from swapio_mdraid._legs import Leg
from swapio_mdraid._online import OnlineResync
from swapio_mdraid._plug import FlushPlug
from swapio_mdraid._store import BitmapStore
from swapio_mdraid.errors import MirrorError, NoHealthyLegError

if TYPE_CHECKING:
    from swapio.pool import PagePool

__all__ = ["AHEAD_BYTES", "Leg", "Mirror", "is_leg_failure"]

FaultHook = Callable[[str, dict[str, int]], Awaitable[None]]


class Mirror:
    """An assembled mirror: legs, the bitmap store and the write-intent state."""

    def __init__(self, config: MirrorConfig, legs: list[Leg], store: BitmapStore) -> None:
        self.config = config
        self.legs = legs
        self.store = store
        first = legs[0].area
        self.page_size = first.page_size
        self.pages = first.pages
        self.chunk_size = store.bitmap.superblock.chunksize
        self.intent = WriteIntent(store.bitmap, store.page_size)
        self._bitmap_lock = asyncio.Lock()
        self._plug = FlushPlug(self._write_dirty)
        self._ahead = AheadWindow(self.chunk_size, store.bitmap.chunks)
        #: Sequential streams: bits are set this many chunks ahead (``WriteIntent.set_ahead``).
        self.ahead_chunks = self._ahead.ahead_chunks
        #: writes in flight per chunk are the intent's counters (``WriteIntent.writing``);
        #: only the no-bitmap baseline enters the gate's own table
        self.gate = ChunkGate(busy=self._writing)
        #: Write-back file legs take a write as a page-cache copy of a few microseconds,
        #: usually run on the loop itself (the file backend's inline path): one after the
        #: other they cost less than a task per leg.  Durable or remote legs wait for a
        #: device or a server: written concurrently, a write takes the slowest leg's time.
        self._sequential_legs = all(
            leg.handle is not None and not leg.area.capabilities.durable for leg in legs
        )
        self._healthy: list[Leg] = []
        self._whole = True  # no leg is faulty
        self._legs_changed()
        self._daemon: asyncio.Task[None] | None = None
        self._resyncer: asyncio.Task[int] | None = None
        self._resync_lock = asyncio.Lock()
        self.online = OnlineResync(self)
        #: What stopped the background resync, if anything did (it never raises).
        self.resync_error: BaseException | None = None
        #: The last error of a daemon sweep (the daemon keeps running).
        self.daemon_error: BaseException | None = None
        self._next_read = 0
        self.fault: FaultHook | None = None
        self.use_bitmap = True  # False only for the benchmark's no-bitmap baseline

    # --- assembly -------------------------------------------------------------------

    @classmethod
    async def assemble(
        cls,
        host: PluginHost,
        config: MirrorConfig,
        create: CreateRequest | None = None,
        pool: PagePool | None = None,
    ) -> Mirror:
        """Activate (or create) the legs and the bitmap, check they match, start the daemon
        (:func:`~swapio_mdraid._assemble.assemble`)."""
        return await assemble(cls, host, config, create, pool)

    async def start(self) -> None:
        """Begin service: ``events`` bumped and written, the daemon, a resync if needed."""
        self.intent.bump_events()  # assembly is an array state change
        await self._flush_bitmap()
        if self.config.daemon:
            self._daemon = asyncio.create_task(self._daemon_loop(), name="mdraid-bitmap-daemon")
        chunks = range(self.intent.bitmap.chunks)
        if self.config.resync and any(self.intent.needs_sync(c) for c in chunks):
            # md resyncs on assembly; here in the background, I/O goes on meanwhile
            self._resyncer = asyncio.create_task(self._background_resync(), name="mdraid-resync")

    async def _background_resync(self) -> int:
        try:
            return await self.resync()
        except SwapioError as exc:
            self.resync_error = exc
            return 0

    async def wait_resync(self) -> int:
        """Wait for the resync started at assembly (0 if none ran); re-raise what stopped it."""
        if self._resyncer is None:
            return 0
        copied = await self._resyncer
        if self.resync_error is not None:
            raise self.resync_error
        return copied

    async def stop(self, *, clean: bool = True) -> None:
        """Stop the daemon, flush the bitmap (if ``clean``) and deactivate every part.

        A background resync still running is cancelled; the chunks it had not finished keep
        their bits, so the next assembly resumes it.
        """
        if self._resyncer is not None:
            self._resyncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resyncer
            self._resyncer = None
        if self._daemon is not None:
            self._daemon.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._daemon
            self._daemon = None
        try:
            if clean:
                if self.intent.has_dirty:  # a flush failed earlier: its bits go first
                    await self._flush_bitmap()
                for _ in range(3):  # md_bitmap_flush: three daemon passes, then the sb
                    await self.sweep()
                async with self._bitmap_lock:
                    await self.store.write_superblock()
        finally:
            for leg in self.legs:
                with contextlib.suppress(SwapioError):
                    await leg.deactivate()
            await self.store.close()

    # --- the daemon -----------------------------------------------------------------

    async def _daemon_loop(self) -> None:
        sleep = self.store.bitmap.superblock.daemon_sleep
        while True:
            await asyncio.sleep(sleep)
            try:
                await self.sweep()
            except SwapioError as exc:
                # a lazy clear that did not reach disk leaves bits set: safe; try again later
                self.daemon_error = exc

    async def sweep(self) -> None:
        """One daemon pass: lazily clear bits and write the pages that changed.

        A bit cleared now belongs to a chunk whose last write ended before the previous
        sweep, so flushing the legs first makes its data stable on every leg before the
        cleared bit can reach disk.  If a leg cannot be flushed, nothing is cleared.
        """
        if not self.intent.idle:
            await self._flush_legs()
        async with self._bitmap_lock:
            pages = self.intent.sweep()
            await self.store.write_pages(pages)
        await self._step("swept", pages=len(pages))

    async def _flush_legs(self) -> None:
        """Make every completed write durable on every healthy write-back leg."""
        legs = [leg for leg in self._healthy if leg.handle is not None]
        if not legs:
            return
        async with self.gate.hold(self.chunks_of(0, 1)):  # Leg.flush re-writes slot 0
            results = await asyncio.gather(*(leg.flush() for leg in legs), return_exceptions=True)
        failed: BaseException | None = None
        for leg, result in zip(legs, results, strict=True):
            if result is None:
                continue
            if not is_leg_failure(result):
                raise result
            failed = result
            with contextlib.suppress(NoHealthyLegError):
                await self.fail_leg(leg, result)
        if failed is not None:
            raise failed  # this sweep clears nothing

    async def _flush_bitmap(self) -> None:
        """Write every dirty bitmap page and a changed superblock (through the plug)."""
        await self._plug.flush()

    async def _write_dirty(self) -> None:
        """The plug's flush: every page with bits set since the last flush, in one go."""
        async with self._bitmap_lock:
            pages = self.intent.flush_before_write()
            ok = False
            try:
                await self.store.write_pages(pages)
                ok = True
            finally:
                self.intent.flush_done(pages, ok)

    async def _step(self, name: str, **info: int) -> None:
        if self.fault is not None:
            await self.fault(name, info)

    # --- memory -----------------------------------------------------------------------

    def _parts(self) -> list[SwapArea]:
        areas = [self.store.area]
        for leg in self.legs:
            areas.append(leg.area)
            if leg.handle is not None:
                areas.append(leg.handle)
        return areas

    def reserve_pages_per_request(self) -> int:
        """Pool pages one in-flight mirror request may need, across the legs and the bitmap.

        The mirror's own buffers (the bitmap pages one request's flush encodes, and a zero
        page for a discard on a leg without discard) plus one request of every leg and of
        the bitmap area — all from the mirror's pool.
        """
        chunks = self.chunks_of(0, min(self.pages, self._max_pages())).stop
        own = self.store.pages_per_request(chunks) + 1
        return own + sum(a.capabilities.reserve_pages_per_request for a in self._parts())

    def memalloc_requests(self) -> int:
        """Mirror requests the reserve is sized for: as many as every part allows."""
        return max(1, min(a.capabilities.memalloc_requests for a in self._parts()))

    def _max_pages(self) -> int:
        return min(leg.area.capabilities.max_pages_per_request for leg in self.legs)

    # --- geometry -------------------------------------------------------------------

    def chunks_of(self, slot: int, count: int) -> range:
        first = slot * self.page_size
        last = (slot + count) * self.page_size - 1
        return range(first // self.chunk_size, last // self.chunk_size + 1)

    def healthy(self) -> list[Leg]:
        """The legs not marked faulty (a copy: callers may keep it)."""
        return list(self._healthy)

    @property
    def degraded(self) -> bool:
        return not self._whole

    def _legs_changed(self) -> None:
        """A leg failed or came back: recompute what the data path reads on every request."""
        self._healthy = [leg for leg in self.legs if not leg.faulty]
        self._whole = len(self._healthy) == len(self.legs)
        self.intent.degraded = not self._whole

    # --- faults ---------------------------------------------------------------------

    async def fail_leg(self, leg: Leg, reason: object) -> None:
        """Mark ``leg`` faulty (``md_error``): the array is degraded, events move on."""
        if leg.faulty:
            return
        leg.faulty = True
        self._legs_changed()
        self.intent.bump_events()
        await self._flush_bitmap()
        if not self._healthy:
            raise NoHealthyLegError(
                f"mirror {self.config.name!r}: last healthy leg {leg.name} failed: {reason}"
            )

    # --- data path ------------------------------------------------------------------

    async def swap_out(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        await self.write(slot, len(pages), pages)

    async def discard(self, slot: int, count: int) -> None:
        """Discard on every leg (zeros where a leg has no discard): a write, for the bitmap."""
        await self.write(slot, count, None)

    async def write(self, slot: int, count: int, pages: Sequence[PageBuffer] | None) -> None:
        """One write (``pages``; None: a discard) through the write-intent protocol.

        The common case — chunks free, bits already on disk, write-back legs — runs without
        a lock, a task, a future or a wait: the bookkeeping is the chunk table, the counters
        (``start_write`` says where the bits are) and the stream window, each one call.
        """
        size = self.chunk_size
        chunks = range(
            slot * self.page_size // size, ((slot + count) * self.page_size - 1) // size + 1
        )
        intent = self.intent
        gate = self.gate
        # bits set in memory, their pages marked dirty; where the bits are now
        where = OVERFLOW if gate.held or not self.use_bitmap else intent.try_start_write(chunks)
        if where == OVERFLOW:
            where = await self._start_waiting(chunks)
        # no await since the checks: counted, a holder now sees this write
        success = False
        try:
            if self.use_bitmap and (ahead := self._ahead.advance(slot, count, chunks.stop)):
                self._set_ahead(ahead)
            if where or self.fault is not None:
                await self._bits_on_disk(where, chunks.start)
            if pages is not None and self._sequential_legs and self.fault is None:
                # write-back file legs, one after the other (see _sequential_legs),
                # inline: no list, closure or coroutine frame unless a leg fails
                failures: list[tuple[Leg, BaseException]] | None = None
                offset = slot * self.page_size
                for leg in self._healthy:
                    # as SwapArea.call_validated would (_direct.py): state checked,
                    # counted in flight, the leg's hook — after the file backend's own
                    # inline step, when it is a file leg served by those very hooks
                    area = leg.area
                    try:
                        hooks = area.begin_request()
                        try:
                            if hooks is not leg.inline_ops or not leg.inline(offset, pages):  # type: ignore[misc]
                                await hooks.swap_out(area, slot, pages)
                        finally:
                            area.end_request()
                    except SwapioError as exc:  # a crash (anything else) stops here
                        failures = [*(failures or ()), (leg, exc)]
                success = (
                    self._whole
                    if failures is None and self._healthy
                    else await self._settle(failures or ())
                )
            else:
                success = await self._write_legs(slot, count, pages)
        finally:
            # md_bitmap_endwrite; a write that failed before any leg saw it (its flush
            # failed: the bits are not known to be on disk) or reached only some keeps
            # its bits (NEEDED)
            if self.use_bitmap:
                intent.end_write(chunks, success)
                if gate.waiting:
                    gate.wake()  # a holder or an overflowed writer may go on
            else:
                gate.leave(chunks)
        if self.fault is not None:
            await self._step("write_done", slot=slot)

    def _writing(self, chunk: int) -> bool:
        return self.use_bitmap and self.intent.writing(chunk)

    async def _start_waiting(self, chunks: range) -> int:
        """The slow start of a write: some chunk is held (resync copy, leg flush) or at
        ``COUNTER_MAX``, or the bitmap is off.  Waits, then counts the write (no await
        between the last check and the count, nor after it); returns where its bits are."""
        while True:
            if self.gate.held or self.use_bitmap:
                await self._enter_chunks(chunks)  # returns when can_start holds, nothing held
            if not self.use_bitmap:  # the baseline: counted in the gate's own table
                self.gate.enter(chunks)
                return ON_DISK
            where = self.intent.try_start_write(chunks)
            if where != OVERFLOW:
                return where

    async def _enter_chunks(self, chunks: range) -> None:
        """Wait until no resync copies these chunks and no counter is at its maximum."""
        intent, gate = self.intent, self.gate
        await gate.wait_until(lambda: intent.can_start(chunks) and not gate.is_held(chunks))

    async def _bits_on_disk(self, where: int, first: int) -> None:
        """Wait for the flush that carries these chunks' bits (plugging, ``_plug.py``);
        then the ``bitmap_flushed`` step of a test's fault hook.  A failed flush raises
        here: no leg has seen the data (the flush re-dirtied its pages, so the next flush
        writes them again)."""
        if where:
            await self._plug.wait(where)
        if self.fault is not None and self.use_bitmap:
            await self._step("bitmap_flushed", chunk=first)

    def _set_ahead(self, chunks: range) -> None:
        """A sequential stream gets its next bits set (and flushed) before it gets there."""
        self.intent.set_ahead(chunks)
        if self.intent.has_dirty:
            self._plug.kick()

    async def _write_legs(self, slot: int, count: int, pages: Sequence[PageBuffer] | None) -> bool:
        """Write to every healthy leg; True when every leg of the array took the data.

        The legs are written concurrently (one after the other while a fault hook is
        installed); each leg's failure is collected, then :meth:`_settle` decides.
        """
        targets = list(self._healthy)
        if not targets:
            raise NoHealthyLegError(f"mirror {self.config.name!r} has no healthy leg")

        async def write(leg: Leg) -> None:
            await self._write_leg(leg, slot, count, pages)

        spread = in_turn if self.fault is not None or self._sequential_legs else at_once
        results = await spread(write, targets)
        failures = [(leg, r) for leg, r in zip(targets, results, strict=True) if r is not None]
        if not failures:
            return self._whole
        return await self._settle(failures)

    async def _settle(self, failures: Sequence[tuple[Leg, BaseException]]) -> bool:
        """Fail the legs whose error is theirs (the last one raising
        :class:`NoHealthyLegError`); a caller's error (bad slot, bad page size) is re-raised
        as is, without failing any leg.  True when every leg of the array took the data.
        No failure and no healthy leg (nothing was written): :class:`NoHealthyLegError`."""
        if not failures and not self._healthy:
            raise NoHealthyLegError(f"mirror {self.config.name!r} has no healthy leg")
        caller_error: BaseException | None = None
        for leg, result in failures:
            if is_leg_failure(result):
                await self.fail_leg(leg, result)
            elif caller_error is None:
                caller_error = result
        if caller_error is not None:
            raise caller_error
        return self._whole

    async def _write_leg(
        self, leg: Leg, slot: int, count: int, pages: Sequence[PageBuffer] | None
    ) -> None:
        if pages is not None:
            await leg_io(leg.area, True, slot, pages)
        elif leg.area.capabilities.discard:
            await leg.area.discard(slot, count)
        else:
            with await leg.area.pool.alloc(self.page_size) as zero:  # fresh: all zeros
                await leg.area.swap_out(slot, [zero.view] * count)
        if self.fault is not None:
            await self._step("leg_written", leg=leg.index, slot=slot)

    async def swap_in(self, slot: int, pages: Sequence[memoryview]) -> None:
        chunks = self.chunks_of(slot, len(pages))
        unsynced = any(self.intent.needs_sync(c) for c in chunks)
        while True:
            leg = self._pick_reader(unsynced)
            leg.inflight += 1
            leg.reads += 1
            try:
                await leg_io(leg.area, False, slot, pages)
                return
            except SwapioError as exc:
                if not is_leg_failure(exc):
                    raise
                await self.fail_leg(leg, exc)
            finally:
                leg.inflight -= 1

    def _pick_reader(self, unsynced: bool) -> Leg:
        healthy = self._healthy
        if not healthy:
            raise NoHealthyLegError(f"mirror {self.config.name!r} has no healthy leg")
        if unsynced:
            return self.source()  # legs may differ here: read the resync source
        self._next_read += 1
        start = self._next_read % len(healthy)
        rotated = healthy[start:] + healthy[:start]
        return min(rotated, key=lambda leg: leg.inflight)

    def source(self) -> Leg:
        """The first healthy leg that was never re-added without a resync."""
        for leg in self.legs:
            if not leg.faulty and leg.in_sync:
                return leg
        raise NoHealthyLegError(f"mirror {self.config.name!r} has no healthy in-sync leg")

    # --- re-add and online resync -----------------------------------------------------

    async def readd(self, index: int) -> None:
        """Put a faulty leg back (``mdadm --re-add``); it is out of sync until :meth:`resync`.

        Chunks written while it was missing kept their bits (``NEEDED``); reads of them go
        to an in-sync leg until the resync has copied them.
        """
        leg = self.legs[index]
        if not leg.faulty:
            raise MirrorError(f"mirror {self.config.name!r}: leg {leg.name} is not faulty")
        leg.faulty = False
        leg.in_sync = False
        self._legs_changed()
        self.intent.bump_events()
        await self._flush_bitmap()

    async def resync(self) -> int:
        """Copy every chunk that needs it from the first in-sync leg to the other healthy legs
        (:class:`~swapio_mdraid._online.OnlineResync`); the number of chunks copied."""
        async with self._resync_lock:  # one resync at a time
            return await self.online.run()
