"""The copy pipeline of an offline resync, and its checkpoints (``_DirtyCopy``).

Batches of runs are range-copied to every target, ``DEPTH`` batches in flight; completed
chunks are cleared in the bitmap only after a barrier made their copies durable on every
target (a checkpoint), and the cleared bits are written back while copies go on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from swapio_mdraid._copier import _Copier, _Run
from swapio_mdraid._format import Bitmap
from swapio_mdraid._store import BitmapStore

if TYPE_CHECKING:
    from swapio_mdraid._resync import ResyncReport

#: Batches in flight: while one batch's completion is handed back, the next is copied.
DEPTH = 2
#: Bytes range-copied per batch: every copy of a batch is queued at once, so the file
#: backend's owner thread takes them in one wake-up and completes them in one hand-off.
#: Each batch in flight costs hand-offs between the loop and the owner thread, and under
#: load every hand-off can wait milliseconds for a CPU: 512 KiB batches (the earlier value,
#: one per 8 chunks) made a 10 MiB resync's copies take twice ``copy_file_range``'s time,
#: and two 8 MiB batches were still measurably slower than one (docs/bitmap-and-mirror.md).
#: 32 MiB keeps a resync of up to 32 MiB to one batch; at most 64 MiB is queued when the
#: resync is interrupted (the owner thread finishes what it was given).
BATCH_BYTES = 32 << 20
#: Adjacent dirty chunks are merged into one request of at most this many bytes.
RUN_BYTES = 1 << 20
#: Start a checkpoint (barrier, then cleared bits written) once this many chunks wait for
#: one, or this many seconds passed; it runs while copies go on.  Each checkpoint costs two
#: ``fdatasync`` calls, so a short resync (10 MiB in ~10 ms) does only the final one; an
#: interrupted resync loses at most half a second of copying.
CHECKPOINT_CHUNKS = 1024
CHECKPOINT_SECONDS = 0.5
#: With ``--max-speed``, a batch holds at most this fraction of a second's worth of bytes.
THROTTLED_BATCH_SECONDS = 0.1

Progress = Callable[[int, int], None]


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


def complete(bitmap: Bitmap) -> None:
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
                results = await self.copier.copy_runs(batch)
                failure: BaseException | None = None
                for run, result in zip(batch, results, strict=True):
                    if result is None:
                        self._record(run)  # on every target: its bits may clear
                    elif failure is None:
                        failure = result
                if failure is not None:
                    raise failure
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
                complete(self.bitmap)
                pages.add(0)
            await self.store.write_pages(sorted(pages))
