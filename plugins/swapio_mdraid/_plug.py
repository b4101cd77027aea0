"""Plugging: bitmap pages set by many writes go to disk in one flush (``md_bitmap_unplug``).

md does not write the bitmap once per write.  ``md_bitmap_startwrite`` sets bits in memory
and marks their pages dirty; raid1 collects the writes on a plug list, and
``flush_bio_list`` calls ``md_bitmap_unplug`` once for the whole list before submitting any
of its writes.  Writes that arrive while a bitmap write is in flight join the *next* one.

:class:`FlushPlug` is that rendezvous, as group commit: a writer whose bits are not yet on
disk waits for a flush that starts after it set them; a writer whose bits were already set
by another write waits only for the flush in flight (its bit may be in it); a writer whose
bits are all on disk does not wait at all.  One flush runs at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from swapio_mdraid._intent import IN_FLIGHT, UNFLUSHED


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a failed flush's exception as seen (every waiter may have been cancelled)."""
    if not future.cancelled():
        future.exception()


class FlushPlug:
    """Group commit around ``flush``, the coroutine that writes every dirty bitmap page."""

    def __init__(self, flush: Callable[[], Awaitable[None]]) -> None:
        self._flush = flush
        self._next: asyncio.Future[None] | None = None  # the flush new bits will join
        self._current: asyncio.Future[None] | None = None  # the flush being written
        self._task: asyncio.Task[None] | None = None
        #: Flushes written (for tests and the benchmark: writes per flush).
        self.flushes = 0

    async def wait(self, where: int) -> None:
        """Return once the caller's bits are on disk.

        ``where`` is :meth:`WriteIntent.start_write`'s answer: ``UNFLUSHED`` (1), a page
        holding them has bits no flush has taken yet — join the next flush; ``IN_FLIGHT``
        (2), a page holding them is in the flush being written — wait for it; ``ON_DISK``
        (0), nothing to wait for.
        """
        if where == UNFLUSHED:
            future = self._request()
        elif where == IN_FLIGHT and self._current is not None:
            future = self._current
        else:
            return
        await asyncio.shield(future)

    def kick(self) -> None:
        """Start a flush of what is dirty now, without waiting for it."""
        self._request()

    async def flush(self) -> None:
        """Write every dirty page (and the superblock, if changed) in the next flush."""
        await asyncio.shield(self._request())

    @property
    def busy(self) -> bool:
        return self._task is not None

    def _request(self) -> asyncio.Future[None]:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self._next.add_done_callback(_retrieve)
            if self._task is None:
                # Started, not run: writers arriving before it runs join this flush.
                self._task = asyncio.create_task(self._run(), name="mdraid-bitmap-flush")
        return self._next

    async def _run(self) -> None:
        try:
            while self._next is not None:
                future, self._next = self._next, None
                self._current = future
                try:
                    await self._flush()
                except asyncio.CancelledError:
                    future.cancel()
                    raise
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    self.flushes += 1
                    future.set_result(None)
                finally:
                    self._current = None
        finally:
            self._task = None
            if self._next is not None:  # cancelled with writers queued: they fail, not hang
                self._next.cancel()
                self._next = None
