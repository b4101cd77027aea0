"""Write plugging: swap-outs that arrive while a batch is being programmed go out together.

The block layer's plugging (``blk_start_plug`` / ``blk_finish_plug``) for one flashlog area:
while a batch is programmed, new swap-outs wait here, and when it completes they go out
together as one batch (:meth:`~swapio_flashlog.log.FlashLog.write_many`: one program per
write-head block), so 32 single-page requests in flight cost a handful of programs, not 32.
A batch that may run on the event loop (:mod:`swapio_flashlog._inline`: the owner thread
idle, at most 64 pages) starts once the loop has run every task that is ready, so the
swap-outs those tasks make join it; any other batch goes to the log's owner thread at once.

A batch is laid out in one scratch buffer from the area's pool (one erase block: the
request's declared need), its first request's.  A request that finds a batch already
waiting joins it without a buffer of its own (:attr:`WriteQueue.waiting`): the batch needs
only the one it has.  Every buffer of a batch is released when the batch completes — never
while the owner thread may still be writing into it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial

from swapio.area import PageBuffer
from swapio.owner import OwnerThread
from swapio.pool import PoolBuffer
from swapio_flashlog._inline import InlineRule

WriteMany = Callable[[int, Sequence[tuple[int, Sequence[PageBuffer]]], memoryview], None]
_Request = tuple[int, Sequence[PageBuffer], PoolBuffer | None, "asyncio.Future[None]"]


class WriteQueue:
    """The plugged swap-outs of one area (one inode of a shared log)."""

    def __init__(
        self,
        owner: OwnerThread,
        write_many: WriteMany,
        ino: int,
        inline: InlineRule | None = None,
    ) -> None:
        self._owner = owner
        self._write_many = write_many
        self._ino = ino
        self._inline = inline
        self._pending: list[_Request] = []
        self._busy = False

    @property
    def waiting(self) -> bool:
        """A batch is queued (behind the one being programmed, or until the loop has run
        every task that is ready), with its scratch buffer: a request may join it without
        one (:meth:`write` with ``scratch=None``)."""
        return bool(self._pending)

    def write(
        self, offset: int, pages: Sequence[PageBuffer], scratch: PoolBuffer | None
    ) -> asyncio.Future[None]:
        """Queue ``pages`` at file ``offset``; the future resolves when they are on flash.
        The queue owns ``scratch`` from now on and releases it.  ``scratch`` may be None
        only while :attr:`waiting` (the batch it joins has a buffer)."""
        if scratch is None and not self._pending:
            raise ValueError("a swap-out that starts a batch needs a scratch buffer")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((offset, pages, scratch, future))
        if not self._busy:
            self._busy = True
            if self._inline is not None and self._inline.allows(len(pages)):
                # the batch may run on the loop: let the swap-outs of every task that is
                # ready now join it first (the loop runs them before this callback)
                loop.call_soon(self._dispatch)
            else:
                self._dispatch()
        return future

    def _dispatch(self) -> None:
        """Start the pending batch (``_busy`` is set): on the loop when the inline rule
        allows (:mod:`swapio_flashlog._inline`), else in the owner thread."""
        batch, self._pending = self._pending, []
        if not batch:
            self._busy = False
            return
        requests = [(offset, pages) for offset, pages, _, _ in batch]
        scratch = batch[0][2]
        assert scratch is not None  # the first request of a batch always brings one
        inline = self._inline
        if inline is not None and inline.allows(sum(len(pages) for _, pages in requests)):
            error: BaseException | None = None
            try:
                inline.run(partial(self._write_many, self._ino, requests, scratch.view))
            except BaseException as exc:  # delivered to every request of the batch
                error = exc
            self._busy = False
            _finish(batch, error)
            if error is not None and not isinstance(error, Exception):
                raise error  # KeyboardInterrupt, SystemExit: not the requests' business
            return
        try:
            job = self._owner.submit(self._write_many, self._ino, requests, scratch.view)
        except BaseException as exc:  # the owner has stopped: nothing was written
            self._busy = False
            _finish(batch, exc)
            return
        job.add_done_callback(lambda done: self._done(batch, done))

    def _done(self, batch: list[_Request], job: asyncio.Future[None]) -> None:
        error = asyncio.CancelledError() if job.cancelled() else job.exception()
        _finish(batch, error)
        self._dispatch()  # the batch queued meanwhile, if any


def _finish(batch: list[_Request], error: BaseException | None) -> None:
    for _, _, scratch, future in batch:
        if scratch is not None:
            scratch.release()
        if future.done():  # its caller was cancelled; the write went out all the same
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
