"""Offline resync: copy every chunk whose bit is set from a source leg to target legs.

As md's resync after a crash (``md_bitmap_start_sync`` / ``md_bitmap_end_sync``), only
chunks whose bit is set are copied.  A bit is cleared only after the chunk's copy reached
every (durable) target, and cleared bits are written back at checkpoints, so an interrupted
resync resumes where it stopped.  On success ``events`` is bumped and ``events_cleared``
follows it (``md_bitmap_endwrite`` on a non-degraded array).  ``verify`` compares every
chunk of every target with the source — md's ``check``/``repair`` — and repairs differences
unless ``dry_run``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from swapio.area import SwapArea
from swapio_mdraid._format import SECTOR_SIZE, Bitmap
from swapio_mdraid._store import BitmapStore, check_durable
from swapio_mdraid.errors import ResyncError

#: Batches in flight: while one batch is being written, the next ones are being read.
DEPTH = 3
#: Bytes range-copied per batch: every copy of a batch is queued at once, so the file
#: backend's owner thread takes them in one wake-up and completes them in one hand-off.
BATCH_BYTES = 512 << 10
#: Adjacent dirty chunks are merged into one request of at most this many bytes.
RUN_BYTES = 1 << 20
#: Largest page size of the bulk twins (the file backend's and swapio's page size limit).
TWIN_PAGE_MAX = 1 << 20
#: Start a checkpoint (barrier, then cleared bits written) once this many chunks wait for
#: one, or this many seconds passed; it runs while copies go on.  Each checkpoint costs two
#: ``fdatasync`` calls, so a short resync (10 MiB in ~10 ms) does only the final one; an
#: interrupted resync loses at most half a second of copying.
CHECKPOINT_CHUNKS = 1024
CHECKPOINT_SECONDS = 0.5
#: With ``--max-speed``, a batch holds at most this fraction of a second's worth of bytes.
THROTTLED_BATCH_SECONDS = 0.1

Progress = Callable[[int, int], None]


@dataclass
class ResyncReport:
    """What a resync did (the ``--json`` summary; keys in docs/bitmap-and-mirror.md)."""

    chunks: int
    chunk_size: int
    dirty_before: int
    copied: int = 0
    bytes_copied: int = 0
    verified: int = 0
    mismatched: list[int] = field(default_factory=list)
    mismatched_outside_bitmap: list[int] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0
    events: int = 0
    events_cleared: int = 0
    dirty_after: int = 0
    would_copy: list[int] = field(default_factory=list)
    interrupted: bool = False


def check_legs(
    store: BitmapStore,
    source: SwapArea,
    targets: Sequence[SwapArea],
    names: Sequence[str] | None = None,
) -> int:
    """Refuse mismatched input before anything is written; return the leg size in bytes.

    ``names``: the source and targets as the user typed them (messages use those, not the
    URLs a path was turned into)."""
    typed = dict(zip((id(a) for a in (source, *targets)), names or (), strict=False))

    def name(area: SwapArea) -> str:
        return typed.get(id(area), str(area.location))

    if not targets:
        raise ResyncError("resync needs at least one --target leg")
    urls = [source.location.url, *(t.location.url for t in targets)]
    if len(set(urls)) != len(urls):
        raise ResyncError("a target leg is the source leg or is named twice")
    size = source.pages * source.page_size
    for target in targets:
        other = target.pages * target.page_size
        if other != size:
            raise ResyncError(
                f"legs differ in size: source {name(source)} has {size} bytes, "
                f"target {name(target)} has {other}"
            )
        if target.page_size != source.page_size:
            raise ResyncError(
                f"legs differ in page size: source {name(source)} has "
                f"{source.page_size}-byte pages, target {name(target)} {target.page_size}"
            )
    sync = store.bitmap.superblock.sync_size * SECTOR_SIZE
    if sync != size:
        raise ResyncError(
            f"bitmap sync size {sync} bytes ({sync // SECTOR_SIZE} sectors) does not match "
            f"the legs ({size} bytes)"
        )
    return size


def twin_page_size(area: SwapArea, chunk_size: int) -> int:
    """Page size for a bulk twin of ``area``: one chunk per page where the geometry allows.

    Larger pages mean fewer buffers per request (one ``pwritev`` element per chunk instead
    of one per 4 KiB).  The twin must still cover the leg exactly, so the page size must
    divide the leg's size; otherwise the leg's own page size is kept.
    """
    size = area.pages * area.page_size
    page = min(max(chunk_size, area.page_size), TWIN_PAGE_MAX)
    return page if size % page == 0 else area.page_size


async def _open_twin(area: SwapArea, page_size: int) -> SwapArea | None:
    """A second, non-durable activation of a ``file://`` leg, or None for other backends."""
    loc = area.location
    if loc.scheme != "file" or area.host is None:
        return None
    url = f"file://{quote(loc.path)}?durable=0&page_size={page_size}"
    return await area.host.activate(url)


async def _read_into(area: SwapArea, offset: int, view: memoryview) -> None:
    """Fill ``view`` from byte ``offset`` of ``area`` (both whole pages of ``area``)."""
    size = area.page_size
    await area.swap_in(offset // size, [view[i : i + size] for i in range(0, len(view), size)])


class _Target:
    """A target leg: its durable area, and a non-durable twin for bulk copies if it has one.

    A ``file://`` leg is opened a second time without ``durable`` (and with pages as large
    as a chunk): chunks are copied through the twin (no ``fdatasync`` per chunk) and
    :meth:`barrier` re-writes one copied page through the durable area, whose ``fdatasync``
    flushes every earlier write to the same file.  Bits are cleared only after the barrier,
    so a crash never finds a clear bit over a lost copy.  Other backends have no such twin:
    each copy is durable when it completes.
    """

    def __init__(self, area: SwapArea, twin: SwapArea | None) -> None:
        self.area = area
        self.twin = twin
        self.last: int | None = None  # a copied slot of the durable area, re-written as barrier
        self.written = 0  # bulk copies completed
        self.flushed = 0  # bulk copies known durable

    @classmethod
    async def open(cls, area: SwapArea, batched: bool, page_size: int | None = None) -> _Target:
        if not batched:
            return cls(area, None)
        return cls(area, await _open_twin(area, page_size or area.page_size))

    @property
    def bulk(self) -> SwapArea:
        return self.twin if self.twin is not None else self.area

    def _copied(self, offset: int) -> None:
        if self.twin is not None:
            self.last = offset // self.area.page_size
            self.written += 1

    async def copy_from(self, source: SwapArea, offset: int, length: int) -> None:
        """Copy ``length`` bytes at byte ``offset`` from ``source`` (a leg of the same geometry):
        one range copy (:meth:`SwapArea.copy`) into the bulk area, or the leg's own when the
        page sizes differ."""
        bulk = self.bulk if self.bulk.page_size == source.page_size else self.area
        size = source.page_size
        await source.copy(offset // size, bulk, offset // size, length // size)
        if bulk is self.twin:
            self._copied(offset)

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` (whole pages of the bulk area) at byte ``offset`` of the leg."""
        await self.bulk.write(offset // self.bulk.page_size, data)
        self._copied(offset)

    async def barrier(self) -> None:
        """Every bulk copy completed before this call is durable when it returns.

        Copies go on concurrently: re-writing any page already copied (with the bytes it
        already holds; nothing else writes an offline leg) is enough, since the
        ``fdatasync`` covers the whole file.
        """
        if self.last is None or self.flushed == self.written:
            return
        upto = self.written
        slot = self.last
        await self.area.write(slot, await self.area.read(slot))
        self.flushed = max(self.flushed, upto)

    async def close(self) -> None:
        if self.twin is not None:
            await self.twin.deactivate()


@dataclass(frozen=True)
class _Run:
    """Adjacent dirty chunks ``first .. first + count - 1``, copied as one request."""

    first: int
    count: int
    offset: int  # bytes
    length: int  # bytes

    @property
    def chunks(self) -> range:
        return range(self.first, self.first + self.count)


class _Copier:
    """Moves chunk bytes between legs, whatever their page sizes."""

    def __init__(
        self,
        source: SwapArea,
        targets: Sequence[_Target],
        chunk_size: int,
        bulk_source: SwapArea | None = None,
    ) -> None:
        self.source = source
        self.bulk_source = bulk_source or source
        self.targets = targets
        self.chunk_size = chunk_size
        self.page_size = source.page_size
        self.size = source.pages * source.page_size
        #: Requests are aligned to this: every page size involved divides it.
        self.unit = max(
            self.page_size,
            self.bulk_source.page_size,
            *(t.bulk.page_size for t in targets),
        )

    @classmethod
    async def open(
        cls, source: SwapArea, targets: Sequence[SwapArea], chunk_size: int, bulk: bool
    ) -> _Copier:
        """Open the bulk twins (when ``bulk``) of every leg at once; close them on failure."""

        async def source_twin() -> SwapArea | None:
            return await _open_twin(source, twin_page_size(source, chunk_size)) if bulk else None

        opened = await asyncio.gather(
            source_twin(),
            *(
                _Target.open(t, batched=bulk, page_size=twin_page_size(t, chunk_size))
                for t in targets
            ),
            return_exceptions=True,
        )
        twin, legs = opened[0], opened[1:]
        copier = cls(
            source,
            [leg for leg in legs if isinstance(leg, _Target)],
            chunk_size,
            twin if isinstance(twin, SwapArea) else None,
        )
        for failure in opened:
            if isinstance(failure, BaseException):
                await copier.close()
                raise failure
        return copier

    async def close(self) -> None:
        """Release the twins (idempotent); every bulk write before this is in the file."""
        closing = [leg.close() for leg in self.targets]
        if self.bulk_source is not self.source:
            closing.append(self.bulk_source.deactivate())
        for failure in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(failure, BaseException):
                raise failure

    def span(self, chunk: int, unit: int | None = None) -> tuple[int, int]:
        """Byte range covering the chunk, widened to whole ``unit``s (default: leg pages).

        A chunk smaller than a page copies the whole page.
        """
        unit = unit or self.page_size
        first = chunk * self.chunk_size
        end = min(first + self.chunk_size, self.size)
        start = first - first % unit
        return start, min(-(-end // unit) * unit, self.size)

    def chunk_bytes(self, chunk: int) -> int:
        """Bytes a chunk accounts for in the report (whole leg pages)."""
        start, end = self.span(chunk)
        return end - start

    def slots(self, chunk: int) -> range:
        """Slots of the leg covering the chunk."""
        start, end = self.span(chunk)
        return range(start // self.page_size, end // self.page_size)

    def runs(self, chunks: Sequence[int], limit: int) -> list[_Run]:
        """Sorted ``chunks`` as runs of adjacent (or page-sharing) chunks, each <= ``limit``
        bytes unless a single chunk is larger."""
        out: list[_Run] = []
        first = count = start = end = -1
        for chunk in chunks:
            lo, hi = self.span(chunk, self.unit)
            if count > 0 and chunk == first + count and lo <= end and hi - start <= limit:
                count += 1
                end = max(end, hi)
                continue
            if count > 0:
                out.append(_Run(first, count, start, end - start))
            first, count, start, end = chunk, 1, lo, hi
        if count > 0:
            out.append(_Run(first, count, start, end - start))
        return out

    async def read(self, area: SwapArea, chunk: int) -> bytearray:
        """The chunk's bytes in ``area`` (widened to whole ``unit``s)."""
        start, end = self.span(chunk, self.unit)
        out = bytearray(end - start)
        await _read_into(area, start, memoryview(out))
        return out

    async def copy_runs(self, runs: Sequence[_Run]) -> None:
        """Copy every run to every target at once: one range copy per run and target, all
        queued together (one batch for each target's owner thread)."""
        await asyncio.gather(
            *(
                t.copy_from(self._source_for(t), r.offset, r.length)
                for t in self.targets
                for r in runs
            )
        )

    def _source_for(self, target: _Target) -> SwapArea:
        """The source twin when its pages match the target's bulk area, else the leg."""
        if target.bulk.page_size == self.bulk_source.page_size:
            return self.bulk_source
        return self.source

    async def copy(self, chunk: int, data: bytes | bytearray | None = None) -> int:
        """Copy one chunk (``data``: its bytes as :meth:`read` returned them, if read)."""
        if data is None:
            data = await self.read(self.bulk_source, chunk)
        start, _ = self.span(chunk, self.unit)
        await asyncio.gather(*(t.write(start, data) for t in self.targets))
        return self.chunk_bytes(chunk)

    async def barrier(self) -> None:
        await asyncio.gather(*(t.barrier() for t in self.targets))


class _Throttle:
    """``sync_speed_max``: sleep so that the average rate stays under ``limit`` bytes/s."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.start = time.monotonic()
        self.done = 0

    async def account(self, nbytes: int) -> None:
        """Wait until ``nbytes`` more may start without exceeding the rate, then count them."""
        if self.limit:
            ahead = self.done / self.limit - (time.monotonic() - self.start)
            if ahead > 0:
                await asyncio.sleep(ahead)
        self.done += nbytes


async def resync(
    store: BitmapStore,
    source: SwapArea,
    targets: Sequence[SwapArea],
    *,
    dry_run: bool = False,
    verify: bool = False,
    max_speed: int | None = None,
    progress: Progress | None = None,
    started: Callable[[ResyncReport], None] | None = None,
    names: Sequence[str] | None = None,
) -> ResyncReport:
    """Copy dirty chunks source → targets and clear their bits; see the module docstring.

    ``started`` receives the report as soon as it exists: it is filled in as the resync
    goes, so a caller interrupted meanwhile can still say what was done.
    """
    check_legs(store, source, targets, names)
    if not dry_run:
        for index, target in enumerate(targets, 1):
            check_durable(target, "target leg", names[index] if names else None)
    bitmap = store.bitmap
    sb = bitmap.superblock
    dirty = list(bitmap.dirty_chunks())
    report = ResyncReport(
        chunks=bitmap.chunks, chunk_size=sb.chunksize, dirty_before=len(dirty), dry_run=dry_run
    )
    begin = time.monotonic()
    if started is not None:
        started(report)
    copier: _Copier | None = None
    try:
        copier = await _Copier.open(source, targets, sb.chunksize, bulk=not dry_run)
        if verify:
            await _verify(store, copier, report, dirty, dry_run, progress)
        elif dry_run:
            report.would_copy = dirty
        else:
            await _DirtyCopy(store, copier, report, max_speed, progress).run(dirty)
    finally:
        if copier is not None:
            await copier.close()
        report.events = bitmap.superblock.events
        report.events_cleared = bitmap.superblock.events_cleared
        report.dirty_after = bitmap.count_dirty()
        report.seconds = time.monotonic() - begin
    return report


def _complete(bitmap: Bitmap) -> None:
    """The resync finished: an array state change (``events``), bits cleared while healthy."""
    bitmap.update(events=bitmap.superblock.events + 1)
    bitmap.update(events_cleared=bitmap.superblock.events)


def _batches(runs: Sequence[_Run], limit: int) -> Iterator[list[_Run]]:
    """Consecutive runs grouped into batches of at most ``limit`` bytes (at least one run)."""
    batch: list[_Run] = []
    size = 0
    for run in runs:
        if batch and size + run.length > limit:
            yield batch
            batch, size = [], 0
        batch.append(run)
        size += run.length
    if batch:
        yield batch


class _DirtyCopy:
    """The copy pipeline of a resync: ``DEPTH`` batches in flight, checkpoints alongside.

    Each batch range-copies its runs to every target in one go (no byte passes through
    this process when the legs share a backend with ``swap_copy``).  Completed chunks wait
    in :attr:`completed` for a checkpoint: a barrier on every target, then their bits are
    cleared and the bitmap pages holding them written.  A checkpoint runs in the background
    while the copies go on (one at a time); the last one runs after every copy has finished
    or failed, so the progress made is kept whatever happened.
    """

    def __init__(
        self,
        store: BitmapStore,
        copier: _Copier,
        report: ResyncReport,
        max_speed: int | None,
        progress: Progress | None,
    ) -> None:
        self.store = store
        self.bitmap = store.bitmap
        self.copier = copier
        self.report = report
        self.progress = progress
        self.throttle = _Throttle(max_speed)
        self.batch_limit = BATCH_BYTES
        self.run_limit = RUN_BYTES
        if max_speed:
            self.batch_limit = min(
                BATCH_BYTES, max(copier.unit, int(max_speed * THROTTLED_BATCH_SECONDS))
            )
            self.run_limit = min(RUN_BYTES, self.batch_limit)
        self.completed: list[int] = []  # copied, not yet known durable
        self.unwritten: set[int] = set()  # bitmap pages holding bits cleared in memory only
        self.last_checkpoint = time.monotonic()
        self.barrier_lock = asyncio.Lock()
        self.bitmap_lock = asyncio.Lock()
        self.background: asyncio.Task[None] | None = None
        self.copying = True
        self.failed = False
        self.total = 0

    async def run(self, dirty: list[int]) -> None:
        """Copy ``dirty``; always end with the final checkpoint (then re-raise a failure)."""
        self.total = len(dirty)
        batches = _batches(self.copier.runs(dirty, self.run_limit), self.batch_limit)
        tasks = [asyncio.ensure_future(self._worker(batches)) for _ in range(DEPTH if dirty else 0)]
        try:
            for failure in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(failure, BaseException):
                    raise failure
        finally:
            self.copying = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Keep the progress made, even when a leg failed (the final checkpoint follows
            # any still running).  The twins are no longer needed — barriers go through the
            # durable areas — so they are released meanwhile.
            finishing: list[Awaitable[None]] = [self._checkpoint(final=True), self.copier.close()]
            if self.background is not None:
                finishing.insert(0, self.background)
            for failure in await asyncio.gather(*finishing, return_exceptions=True):
                if isinstance(failure, BaseException):
                    raise failure

    async def _worker(self, batches: Iterator[list[_Run]]) -> None:
        """Copy batches from the shared iterator until it is empty or a worker failed."""
        try:
            for batch in batches:  # one shared iterator: DEPTH batches in flight, no more
                if self.failed:
                    return
                await self.throttle.account(sum(run.length for run in batch))
                await self.copier.copy_runs(batch)
                for run in batch:
                    self._record(run)
                self._maybe_checkpoint()
        except BaseException:
            self.failed = True  # the others finish the batch they copy, then stop
            raise

    def _record(self, run: _Run) -> None:
        for chunk in run.chunks:
            self.completed.append(chunk)  # before progress(): a raising callback keeps it
            self.report.copied += 1
            self.report.bytes_copied += self.copier.chunk_bytes(chunk)
            if self.progress is not None:
                self.progress(self.report.copied, self.total)

    def _maybe_checkpoint(self) -> None:
        if self.background is not None and self.background.done():
            task, self.background = self.background, None
            task.result()  # a failed checkpoint fails the resync
        now = time.monotonic()
        due = (
            len(self.completed) >= CHECKPOINT_CHUNKS
            or now - self.last_checkpoint > CHECKPOINT_SECONDS
        )
        if self.background is None and self.completed and due:
            self.last_checkpoint = now
            self.background = asyncio.ensure_future(self._checkpoint())

    async def _checkpoint(self, final: bool = False) -> None:
        """Make the copies durable, then clear their bits and write those bitmap pages.

        The barrier of the next checkpoint may run while this one's bitmap pages are
        written.  Once every copy has ended, only the final checkpoint writes the bitmap.
        """
        try:
            async with self.barrier_lock:
                done = self.completed[:]
                self.completed.clear()
                if done:
                    await self.copier.barrier()
                    for chunk in done:
                        self.bitmap.clear(chunk)
                    page = self.store.page_size
                    self.unwritten.update(self.bitmap.chunk_byte_offset(c) // page for c in done)
        finally:  # a failed final barrier still writes what earlier checkpoints cleared
            if final:
                await self._write_bitmap(final=True)
        if not final and self.copying:
            await self._write_bitmap(final=False)

    async def _write_bitmap(self, final: bool) -> None:
        """Write the pages with cleared bits, in checkpoint order (each write encodes the
        page as it is then, so a later write never carries older bits)."""
        async with self.bitmap_lock:
            pages = set(self.unwritten)
            self.unwritten.clear()
            if final and self.report.copied and self.bitmap.count_dirty() == 0:
                _complete(self.bitmap)
                pages.add(0)
            await self.store.write_pages(sorted(pages))


async def _verify(
    store: BitmapStore,
    copier: _Copier,
    report: ResyncReport,
    dirty: list[int],
    dry_run: bool,
    progress: Progress | None,
) -> None:
    """md's ``check`` / ``repair``: compare every chunk's own bytes on every target.

    Chunks smaller than a page share a read span; the span is read once from every leg,
    each chunk is judged by its own bytes in it, and a repair copies the span once, after
    all of its chunks were judged — so a difference is charged to the chunk holding it.
    """
    bitmap = store.bitmap
    dirty_set = set(dirty)
    size = copier.chunk_size
    chunk = 0
    while chunk < bitmap.chunks:
        start, end = copier.span(chunk, copier.unit)
        group = range(chunk, min(-(-end // size), bitmap.chunks))
        data = await copier.read(copier.source, chunk)
        others = [await copier.read(target.bulk, chunk) for target in copier.targets]
        differing = []
        for c in group:
            lo = c * size - start
            hi = min(lo + size, end - start)
            if any(other[lo:hi] != data[lo:hi] for other in others):
                differing.append(c)
        report.verified += len(group)
        report.mismatched += differing
        report.mismatched_outside_bitmap += [c for c in differing if c not in dirty_set]
        if differing and not dry_run:
            await copier.copy(chunk, data)
            report.bytes_copied += len(differing) * min(size, end - start)
            report.copied += len(differing)
        if progress is not None:
            progress(group.stop, bitmap.chunks)
        chunk = group.stop
    if dry_run:
        report.would_copy = list(report.mismatched)
    if not dry_run:
        await copier.barrier()
        for chunk in dirty:
            bitmap.clear(chunk)
        if dirty or report.mismatched:
            _complete(bitmap)
        await store.write_pages(range(bitmap.image_pages(store.page_size)))
