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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from swapio.area import SwapArea
from swapio_mdraid._format import SECTOR_SIZE, Bitmap
from swapio_mdraid._store import BitmapStore, check_durable
from swapio_mdraid.errors import ResyncError

#: Chunks copied concurrently.
WINDOW = 16
#: Write cleared bits back at least this often (chunks and seconds).
CHECKPOINT_CHUNKS = 64
CHECKPOINT_SECONDS = 0.5

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


def check_legs(store: BitmapStore, source: SwapArea, targets: Sequence[SwapArea]) -> int:
    """Refuse mismatched input before anything is written; return the leg size in bytes."""
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
                f"legs differ in size: source {source.location} has {size} bytes, "
                f"target {target.location} has {other}"
            )
        if target.page_size != source.page_size:
            raise ResyncError(
                f"legs differ in page size: source {source.location} has "
                f"{source.page_size}-byte pages, target {target.location} {target.page_size}"
            )
    sync = store.bitmap.superblock.sync_size * SECTOR_SIZE
    if sync != size:
        raise ResyncError(
            f"bitmap sync size {sync} bytes ({sync // SECTOR_SIZE} sectors) does not match "
            f"the legs ({size} bytes)"
        )
    return size


class _Target:
    """A target leg: its durable area, and a non-durable twin for bulk copies if it has one.

    A ``file://`` leg is opened a second time without ``durable``: chunks are copied through
    the twin (no ``fdatasync`` per chunk) and :meth:`barrier` re-writes one page through the
    durable area, whose ``fdatasync`` flushes every earlier write to the same file.  Bits are
    cleared only after the barrier, so a crash never finds a clear bit over a lost copy.
    Other backends have no such twin: each copy is durable when it completes.
    """

    def __init__(self, area: SwapArea, twin: SwapArea | None) -> None:
        self.area = area
        self.twin = twin
        self.last: tuple[int, bytes] | None = None  # a copied page, to re-write as barrier
        self.written = 0  # bulk writes completed
        self.flushed = 0  # bulk writes known durable

    @classmethod
    async def open(cls, area: SwapArea, batched: bool) -> _Target:
        loc = area.location
        if not batched or loc.scheme != "file" or area.host is None:
            return cls(area, None)
        url = f"file://{quote(loc.path)}?durable=0&page_size={area.page_size}"
        return cls(area, await area.host.activate(url))

    @property
    def bulk(self) -> SwapArea:
        return self.twin if self.twin is not None else self.area

    async def write(self, slot: int, data: bytes | bytearray) -> None:
        await self.bulk.write(slot, data)
        if self.twin is not None:
            self.last = (slot, bytes(data[: self.area.page_size]))
            self.written += 1

    async def barrier(self) -> None:
        """Every bulk write completed before this call is durable when it returns.

        Copies go on concurrently: re-writing any page already copied (with the bytes it
        already holds) is enough, since the ``fdatasync`` covers the whole file.
        """
        if self.last is None or self.flushed == self.written:
            return
        upto = self.written
        await self.area.write(*self.last)
        self.flushed = max(self.flushed, upto)

    async def close(self) -> None:
        if self.twin is not None:
            await self.twin.deactivate()


class _Copier:
    """Moves chunk bytes between legs, whatever their page sizes."""

    def __init__(self, source: SwapArea, targets: Sequence[_Target], chunk_size: int) -> None:
        self.source = source
        self.targets = targets
        self.chunk_size = chunk_size
        self.page_size = source.page_size
        self.size = source.pages * source.page_size

    def slots(self, chunk: int) -> range:
        """Slots covering the chunk (a chunk smaller than a page copies the whole page)."""
        first = chunk * self.chunk_size
        end = min(first + self.chunk_size, self.size)
        return range(first // self.page_size, -(-end // self.page_size))

    async def read(self, area: SwapArea, chunk: int) -> bytearray:
        slots = self.slots(chunk)
        return await area.read(slots.start, len(slots))

    async def copy(self, chunk: int, data: bytes | bytearray | None = None) -> int:
        if data is None:
            data = await self.read(self.source, chunk)
        start = self.slots(chunk).start
        await asyncio.gather(*(t.write(start, data) for t in self.targets))
        return len(data)

    async def barrier(self) -> None:
        await asyncio.gather(*(t.barrier() for t in self.targets))


class _Throttle:
    """``sync_speed_max``: sleep so that the average rate stays under ``limit`` bytes/s."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.start = time.monotonic()
        self.done = 0

    async def account(self, nbytes: int) -> None:
        self.done += nbytes
        if self.limit:
            ahead = self.done / self.limit - (time.monotonic() - self.start)
            if ahead > 0:
                await asyncio.sleep(ahead)


async def resync(
    store: BitmapStore,
    source: SwapArea,
    targets: Sequence[SwapArea],
    *,
    dry_run: bool = False,
    verify: bool = False,
    max_speed: int | None = None,
    progress: Progress | None = None,
) -> ResyncReport:
    """Copy dirty chunks source → targets and clear their bits; see the module docstring."""
    check_legs(store, source, targets)
    if not dry_run:
        for target in targets:
            check_durable(target, "target leg")
    bitmap = store.bitmap
    sb = bitmap.superblock
    dirty = list(bitmap.dirty_chunks())
    report = ResyncReport(
        chunks=bitmap.chunks, chunk_size=sb.chunksize, dirty_before=len(dirty), dry_run=dry_run
    )
    started = time.monotonic()
    legs: list[_Target] = []
    try:
        for target in targets:
            legs.append(await _Target.open(target, batched=not dry_run))
        copier = _Copier(source, legs, sb.chunksize)
        if verify:
            await _verify(store, copier, report, dirty, dry_run, progress)
        elif dry_run:
            report.would_copy = dirty
        else:
            await _copy_dirty(store, copier, dirty, report, max_speed, progress)
    finally:
        for leg in legs:
            await leg.close()
    report.events = bitmap.superblock.events
    report.events_cleared = bitmap.superblock.events_cleared
    report.dirty_after = bitmap.count_dirty()
    report.seconds = time.monotonic() - started
    return report


def _complete(bitmap: Bitmap) -> None:
    """The resync finished: an array state change (``events``), bits cleared while healthy."""
    bitmap.update(events=bitmap.superblock.events + 1)
    bitmap.update(events_cleared=bitmap.superblock.events)


async def _copy_dirty(
    store: BitmapStore,
    copier: _Copier,
    dirty: list[int],
    report: ResyncReport,
    max_speed: int | None,
    progress: Progress | None,
) -> None:
    bitmap = store.bitmap
    throttle = _Throttle(max_speed)
    completed: list[int] = []
    last_checkpoint = time.monotonic()
    checkpoint_lock = asyncio.Lock()

    async def checkpoint(final: bool = False) -> None:
        """Make the copies durable, then clear their bits and write those bitmap pages."""
        async with checkpoint_lock:
            done = completed[:]
            completed.clear()
            if not done:
                return
            await copier.barrier()
            for chunk in done:
                bitmap.clear(chunk)
            pages = {bitmap.chunk_byte_offset(c) // store.page_size for c in done}
            if final and bitmap.count_dirty() == 0:
                _complete(bitmap)
                pages.add(0)
            await store.write_pages(sorted(pages))

    async def one(chunk: int) -> None:
        nonlocal last_checkpoint
        nbytes = await copier.copy(chunk)
        completed.append(chunk)
        report.copied += 1
        report.bytes_copied += nbytes
        if progress is not None:
            progress(report.copied, len(dirty))
        now = time.monotonic()
        if report.copied % CHECKPOINT_CHUNKS == 0 or now - last_checkpoint > CHECKPOINT_SECONDS:
            last_checkpoint = now
            await checkpoint()
        await throttle.account(nbytes)

    pending = iter(dirty)

    async def worker() -> None:
        for chunk in pending:  # one shared iterator: WINDOW copies in flight, no more tasks
            await one(chunk)

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(WINDOW, len(dirty)))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await checkpoint(final=True)  # keep the progress made, even when a leg failed


async def _verify(
    store: BitmapStore,
    copier: _Copier,
    report: ResyncReport,
    dirty: list[int],
    dry_run: bool,
    progress: Progress | None,
) -> None:
    bitmap = store.bitmap
    dirty_set = set(dirty)
    for chunk in range(bitmap.chunks):
        data = await copier.read(copier.source, chunk)
        differs = False
        for target in copier.targets:
            if await copier.read(target.bulk, chunk) != data:
                differs = True
        report.verified += 1
        if differs:
            report.mismatched.append(chunk)
            if chunk not in dirty_set:
                report.mismatched_outside_bitmap.append(chunk)
            if not dry_run:
                report.bytes_copied += await copier.copy(chunk, data)
                report.copied += 1
        if progress is not None:
            progress(chunk + 1, bitmap.chunks)
    if not dry_run:
        await copier.barrier()
        for chunk in dirty:
            bitmap.clear(chunk)
        if dirty or report.mismatched:
            _complete(bitmap)
        await store.write_pages(range(bitmap.image_pages(store.page_size)))
