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
* a write goes to every healthy leg at once (``asyncio.gather``), so its latency is the
  slowest leg's, not the sum; the bitmap page is still on disk before any leg starts;
* a leg whose I/O fails for any reason that is not the caller's (a backend error, a
  timeout, a protocol violation, an area gone inactive: see :func:`is_leg_failure`) is
  marked faulty, ``events`` is bumped, and the mirror continues degraded with the chunk's
  bits kept; with no healthy leg left the I/O fails;
* a daemon task sweeps every ``daemon_sleep`` seconds, clearing bits lazily;
  deactivation flushes (three sweeps, as ``md_bitmap_flush``) so a clean stop leaves no
  set bit behind except those a degraded mirror must keep;
* :meth:`Mirror.readd` puts a faulty leg back out of sync and :meth:`Mirror.resync` copies
  the chunks that need it (``md_bitmap_start_sync`` / ``md_bitmap_end_sync``), holding off
  writes to the chunk being copied.

Every bitmap page write holds one lock, so a lazy clear can never overwrite a page that a
concurrent write has just set a bit in.  The legs, the bitmap store and the mirror's own
buffers all allocate from the mirror area's pool, whose reserve the mirror sizes for one
in-flight request across legs and bitmap (:meth:`Mirror.reserve_pages_per_request`).
``fault`` is a test hook: it is awaited at each
step of the protocol (``bitmap_flushed``, ``leg_written``, ``write_done``, ``swept``) so that
tests can "crash" the mirror exactly there.  While a hook is installed the legs of a write
are written one after another, in leg order, so that "between the legs" is a deterministic
crash point; without one they are written concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from swapio.area import CreateRequest, PageBuffer, SwapArea
from swapio.errors import (
    MemoryPressureError,
    PageSizeError,
    SlotRangeError,
    SwapioError,
    UsageError,
)
from swapio.plugins import PluginHost
from swapio_mdraid._config import MirrorConfig
from swapio_mdraid._format import SECTOR_SIZE, Bitmap
from swapio_mdraid._intent import WriteIntent
from swapio_mdraid._legs import Leg, open_leg
from swapio_mdraid._plug import FlushPlug
from swapio_mdraid._store import BitmapStore, precheck, precheck_new, remove_created
from swapio_mdraid.errors import MirrorError, NoHealthyLegError

if TYPE_CHECKING:
    from swapio.pool import PagePool

__all__ = ["Leg", "Mirror", "is_leg_failure"]

FaultHook = Callable[[str, dict[str, int]], Awaitable[None]]

#: How far ahead of a sequential stream bits are set: a stream of one request at a time
#: then pays one bitmap flush per half of this, in the background, instead of one per
#: request that enters a new chunk.  At most this much more is copied by a resync after a
#: crash, per stream.
AHEAD_BYTES = 4 << 20


def is_leg_failure(exc: BaseException) -> bool:
    """Does ``exc``, raised by a leg's I/O, mean the leg failed (rather than the request)?

    Every :class:`SwapioError` does — :class:`BackendIOError`, :class:`SwapTimeoutError`,
    :class:`ProtocolError`, :class:`AreaInactiveError`, ... — except the caller's own
    mistakes (:class:`UsageError`, :class:`SlotRangeError`, :class:`PageSizeError`), which
    every leg would raise alike and which say nothing about the leg's health, and memory
    pressure (:class:`MemoryPressureError`: the pool could not lend a buffer; the request
    fails, the leg is fine).
    """
    return isinstance(exc, SwapioError) and not isinstance(
        exc, (UsageError, SlotRangeError, PageSizeError, MemoryPressureError)
    )


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
        self.intent.degraded = any(leg.faulty for leg in legs)
        self._bitmap_lock = asyncio.Lock()
        self._plug = FlushPlug(self._write_dirty)
        #: Sequential streams: bits are set this many chunks ahead (``WriteIntent.set_ahead``).
        self.ahead_chunks = max(1, AHEAD_BYTES // self.chunk_size)
        self._next_slot: int | None = None  # where the last write ended
        self._ahead_end = 0  # bits set ahead up to this chunk
        self._chunks = asyncio.Condition()  # guards _writing / _held and counter overflow
        self._writing: dict[int, int] = {}
        self._held: dict[int, int] = {}  # chunks writes must keep off (resync, leg flush)
        self._chunk_waiters = 0
        #: Write-back file legs take a write as a page-cache copy of a few microseconds,
        #: usually run on the loop itself (the file backend's inline path): one after the
        #: other they cost less than a task per leg.  Durable or remote legs wait for a
        #: device or a server: written concurrently, a write takes the slowest leg's time.
        self._sequential_legs = all(
            leg.handle is not None and not leg.area.capabilities.durable for leg in legs
        )
        self._daemon: asyncio.Task[None] | None = None
        self._resyncer: asyncio.Task[int] | None = None
        self._resync_lock = asyncio.Lock()
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
        """Activate (or create) the legs and the bitmap, check they match, start the daemon.

        Every part is activated on ``pool`` (the mirror area's pool; None: the host's).
        """
        legs: list[Leg] = []
        store: BitmapStore | None = None
        created: list[str] = []  # stores this call created, removed again if it fails
        if create is not None:
            # everything that can be refused is refused before anything is created
            precheck(config.bitmap)
            for index, text in enumerate(config.legs):
                precheck_new(text, f"mirror {config.name!r}: leg {index}")
            precheck_new(config.bitmap, f"mirror {config.name!r}: bitmap")
            size = create.pages * create.page_size
            Bitmap.create(sync_size_bytes=size, chunk_size=config.chunk_size, all_dirty=False)
        try:
            for index, text in enumerate(config.legs):
                leg = await open_leg(
                    host, index, text, create=create, pool=pool, page_size=config.page_size
                )
                if create is not None:
                    created.append(text)
                legs.append(leg)
            _check_legs(config, legs)
            size = legs[0].area.pages * legs[0].area.page_size
            if create is not None:
                bitmap = Bitmap.create(
                    sync_size_bytes=size, chunk_size=config.chunk_size, all_dirty=False
                )
                store = await BitmapStore.create(host, config.bitmap, bitmap, pool=pool)
                created.append(config.bitmap)
            else:
                store = await BitmapStore.open(host, config.bitmap, pool=pool)
            sync = store.bitmap.superblock.sync_size
            if sync * SECTOR_SIZE != size:
                raise MirrorError(
                    f"mirror {config.name!r}: bitmap sync size {sync} sectors "
                    f"({sync * SECTOR_SIZE} bytes) does not match the legs ({size} bytes)"
                )
            mirror = cls(config, legs, store)
            await mirror._start()
            return mirror
        except BaseException:
            for leg in legs:
                with contextlib.suppress(SwapioError):
                    await leg.deactivate()
            if store is not None:
                with contextlib.suppress(SwapioError):
                    await store.close()
            for text in created:
                remove_created(text)
            raise

    async def _start(self) -> None:
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
        legs = [leg for leg in self.healthy() if leg.handle is not None]
        if not legs:
            return
        async with self._hold(*self.chunks_of(0, 1)):  # Leg.flush re-writes slot 0
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

    @contextlib.asynccontextmanager
    async def _hold(self, *chunks: int) -> AsyncIterator[None]:
        """Keep writes off ``chunks`` (after those in flight finished) for the body.

        Holders exclude each other too: a leg flush re-writes slot 0 with the bytes it read,
        so it must not overlap the online resync's copy of chunk 0 (or another flush).
        """

        def no_writes() -> bool:
            return not any(c in self._writing or c in self._held for c in chunks)

        if not no_writes():
            await self._wait_chunks(no_writes)
        for chunk in chunks:
            self._held[chunk] = self._held.get(chunk, 0) + 1
        try:
            yield
        finally:
            for chunk in chunks:
                left = self._held[chunk] - 1
                if left:
                    self._held[chunk] = left
                else:
                    del self._held[chunk]
            if self._chunk_waiters:
                async with self._chunks:
                    self._chunks.notify_all()

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
        return [leg for leg in self.legs if not leg.faulty]

    @property
    def degraded(self) -> bool:
        return any(leg.faulty for leg in self.legs)

    # --- faults ---------------------------------------------------------------------

    async def fail_leg(self, leg: Leg, reason: object) -> None:
        """Mark ``leg`` faulty (``md_error``): the array is degraded, events move on."""
        if leg.faulty:
            return
        leg.faulty = True
        self.intent.degraded = True
        self.intent.bump_events()
        await self._flush_bitmap()
        if not self.healthy():
            raise NoHealthyLegError(
                f"mirror {self.config.name!r}: last healthy leg {leg.name} failed: {reason}"
            )

    # --- data path ------------------------------------------------------------------

    async def swap_out(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        await self._write(slot, len(pages), pages)

    async def discard(self, slot: int, count: int) -> None:
        """Discard on every leg (zeros where a leg has no discard): a write, for the bitmap."""
        await self._write(slot, count, None)

    async def _write(self, slot: int, count: int, pages: Sequence[PageBuffer] | None) -> None:
        """One write through the protocol.  The common case — chunks free, bits already on
        disk, write-back legs — runs without a lock, a task or a wait (the hot path)."""
        chunks = self.chunks_of(slot, count)
        intent = self.intent
        # the chunk table is only touched from the loop: no lock unless someone must wait
        if self._held or not intent.can_start(chunks):
            await self._enter_chunks(chunks)
        writing = self._writing
        for chunk in chunks:
            writing[chunk] = writing.get(chunk, 0) + 1
        try:
            if self.use_bitmap:
                intent.start_write(chunks)  # bits set in memory, their pages marked dirty
                dirty, in_flight = intent.unflushed(chunks)
                self._set_ahead(slot, count, chunks)
                if dirty or in_flight:
                    await self._bits_on_disk(chunks, dirty, in_flight)
                if self.fault is not None:
                    await self._step("bitmap_flushed", chunk=chunks.start)
            success = False
            try:
                success = await self._write_legs(slot, count, pages)
            finally:
                if self.use_bitmap:
                    intent.end_write(chunks, success)
        finally:
            for chunk in chunks:
                left = writing[chunk] - 1
                if left:
                    writing[chunk] = left
                else:
                    del writing[chunk]
            if self._chunk_waiters:
                async with self._chunks:
                    self._chunks.notify_all()
        if self.fault is not None:
            await self._step("write_done", slot=slot)

    async def _enter_chunks(self, chunks: range) -> None:
        """Wait until no resync copies these chunks and no counter is at its maximum."""

        def free() -> bool:
            return self.intent.can_start(chunks) and not any(c in self._held for c in chunks)

        if not free():
            await self._wait_chunks(free)

    async def _wait_chunks(self, ready: Callable[[], bool]) -> None:
        """Wait on the chunk condition until ``ready()`` (counted, so leavers know to wake)."""
        self._chunk_waiters += 1
        try:
            async with self._chunks:
                await self._chunks.wait_for(ready)
        finally:
            self._chunk_waiters -= 1

    async def _bits_on_disk(self, chunks: range, dirty: bool, in_flight: bool) -> None:
        """Wait for the flush that carries these chunks' bits (plugging, ``_plug.py``)."""
        try:
            await self._plug.wait(dirty, in_flight)
        except BaseException:
            # no leg has seen the data; the bits are not known to be on disk (the failed
            # flush re-dirtied its pages: the next flush writes them again)
            self.intent.end_write(chunks, success=False)
            raise

    def _set_ahead(self, slot: int, count: int, chunks: range) -> None:
        """A sequential stream gets its next bits set (and flushed) before it gets there."""
        sequential = slot == self._next_slot
        self._next_slot = slot + count
        if not sequential:
            self._ahead_end = chunks.stop
            return
        if chunks.stop < self._ahead_end - self.ahead_chunks // 2:
            return
        end = min(chunks.stop + self.ahead_chunks, self.intent.bitmap.chunks)
        self.intent.set_ahead(range(max(chunks.stop, self._ahead_end), end))
        self._ahead_end = end
        if self.intent.has_dirty:
            self._plug.kick()

    async def _write_legs(self, slot: int, count: int, pages: Sequence[PageBuffer] | None) -> bool:
        """Write to every healthy leg; True when every leg of the array took the data.

        The legs are written concurrently (write-back file legs one after the other, see
        ``_sequential_legs``); each leg's failure is collected, then the failed legs are
        marked faulty (the last one raising :class:`NoHealthyLegError`).  A caller's error
        (bad slot, bad page size) is re-raised as is, without failing any leg.
        """
        targets = self.healthy()
        if not targets:
            raise NoHealthyLegError(f"mirror {self.config.name!r} has no healthy leg")
        results: list[BaseException | None]
        if self.fault is not None or self._sequential_legs:  # tests' crash points; see below
            results = []
            for leg in targets:
                try:
                    await self._write_leg(leg, slot, count, pages)
                except SwapioError as exc:  # a crash (anything else) stops here
                    results.append(exc)
                else:
                    results.append(None)
        else:
            results = await self._write_concurrently(targets, slot, count, pages)
        if not any(results):
            return not self.degraded
        caller_error: BaseException | None = None
        for leg, result in zip(targets, results, strict=True):
            if result is None:
                continue
            if is_leg_failure(result):
                await self.fail_leg(leg, result)
            elif caller_error is None:
                caller_error = result
        if caller_error is not None:
            raise caller_error
        return not self.degraded

    async def _write_concurrently(
        self, targets: list[Leg], slot: int, count: int, pages: Sequence[PageBuffer] | None
    ) -> list[BaseException | None]:
        """Every leg's write at once; the first leg's in this task (one task fewer)."""
        others = [
            asyncio.ensure_future(self._write_leg(leg, slot, count, pages)) for leg in targets[1:]
        ]
        results: list[BaseException | None] = []
        try:
            await self._write_leg(targets[0], slot, count, pages)
            results.append(None)
        except Exception as exc:  # collected, as gather(return_exceptions=True) would
            results.append(exc)
        finally:
            # the other legs' writes finish whatever happened here (cancellation included)
            for task in others:
                try:
                    await task
                except Exception as exc:  # collected, as gather(return_exceptions=True) would
                    results.append(exc)
                else:
                    results.append(None)
        return results

    async def _write_leg(
        self, leg: Leg, slot: int, count: int, pages: Sequence[PageBuffer] | None
    ) -> None:
        if pages is not None:
            # slots and buffers were checked by the mirror's area, whose geometry the legs
            # share and whose max_pages_per_request is the legs' smallest
            await leg.area.call_validated("swap_out", slot, pages, count)
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
                await leg.area.call_validated("swap_in", slot, pages, len(pages))
                return
            except SwapioError as exc:
                if not is_leg_failure(exc):
                    raise
                await self.fail_leg(leg, exc)
            finally:
                leg.inflight -= 1

    def _pick_reader(self, unsynced: bool) -> Leg:
        healthy = self.healthy()
        if not healthy:
            raise NoHealthyLegError(f"mirror {self.config.name!r} has no healthy leg")
        if unsynced:
            return self._source()  # legs may differ here: read the resync source
        self._next_read += 1
        start = self._next_read % len(healthy)
        rotated = healthy[start:] + healthy[:start]
        return min(rotated, key=lambda leg: leg.inflight)

    def _source(self) -> Leg:
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
        self.intent.degraded = self.degraded
        self.intent.bump_events()
        await self._flush_bitmap()

    async def resync(self) -> int:
        """Copy every chunk that needs it from the first in-sync leg to the other healthy legs.

        ``md_bitmap_start_sync`` / ``md_bitmap_end_sync`` per chunk; a chunk being copied
        holds off writes to it, and waits for writes already in flight.  Bits are then
        cleared by the daemon's two sweeps.  Returns the number of chunks copied.
        """
        async with self._resync_lock:  # one resync at a time
            return await self._resync()

    async def _resync(self) -> int:
        source = self._source()
        targets = [leg for leg in self.healthy() if leg is not source]
        copied = 0
        for chunk in range(self.intent.bitmap.chunks):
            if not self.intent.needs_sync(chunk):
                continue
            first, count = self._chunk_slots(chunk)
            # every chunk sharing the copied pages is held (chunks smaller than a page)
            async with self._hold(*self.chunks_of(first, count)):
                aborted = True
                try:
                    if self.intent.start_sync(chunk):
                        # a target that failed mid-copy keeps the chunk NEEDED
                        aborted = not await self._copy_chunk(first, count, source, targets)
                        copied += 1
                    else:
                        aborted = False
                finally:
                    self.intent.end_sync(chunk, aborted)
        for leg in targets:
            if not leg.faulty:
                leg.in_sync = True
        return copied

    def _chunk_slots(self, chunk: int) -> tuple[int, int]:
        """``(first slot, slot count)`` of the pages holding ``chunk``."""
        first = chunk * self.chunk_size // self.page_size
        end = min((chunk + 1) * self.chunk_size, self.pages * self.page_size)
        return first, -(-end // self.page_size) - first

    async def _copy_chunk(self, first: int, count: int, source: Leg, targets: list[Leg]) -> bool:
        """Copy slots to every target: one range copy each (:meth:`SwapArea.copy`)."""
        complete = True
        for leg in targets:
            if leg.faulty:
                complete = False
                continue
            try:
                await source.area.copy(first, leg.area, first, count)
            except SwapioError as exc:
                if not is_leg_failure(exc):
                    raise
                # a copy fails for the source's reasons too: the source is read alone
                # (its error propagates, as a failed read always did) before the target
                # is blamed
                await source.area.read(first, 1)
                await self.fail_leg(leg, exc)
                complete = False
        return complete


def _check_legs(config: MirrorConfig, legs: list[Leg]) -> None:
    first = legs[0].area
    for leg in legs[1:]:
        if (leg.area.pages, leg.area.page_size) != (first.pages, first.page_size):
            raise MirrorError(
                f"mirror {config.name!r}: legs differ in size: {legs[0].name} has "
                f"{first.pages} pages of {first.page_size} bytes, {leg.name} has "
                f"{leg.area.pages} of {leg.area.page_size}"
            )
