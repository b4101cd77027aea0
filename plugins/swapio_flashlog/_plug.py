"""Write plugging: swap-outs that arrive while a batch is being programmed go out together.

The block layer's plugging (``blk_start_plug`` / ``blk_finish_plug``) for one flashlog area:
while the log's owner thread programs a batch, new swap-outs wait here, and when it
completes they cross to the thread together and are laid out as one batch
(:meth:`~swapio_flashlog.log.FlashLog.write_many`: one program per write-head block), so
32 single-page requests in flight cost a handful of thread hops and programs, not 32.

A batch is laid out in one scratch buffer from the area's pool (one erase block: the
request's declared need), its first request's.  A request that finds a batch already
waiting joins it without a buffer of its own (:attr:`WriteQueue.waiting`): the batch needs
only the one it has.  Every buffer of a batch is released when the batch completes — never
while the owner thread may still be writing into it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from swapio.area import PageBuffer
from swapio.owner import OwnerThread
from swapio.pool import PoolBuffer

WriteMany = Callable[[int, Sequence[tuple[int, Sequence[PageBuffer]]], memoryview], None]
_Request = tuple[int, Sequence[PageBuffer], PoolBuffer | None, "asyncio.Future[None]"]


class WriteQueue:
    """The plugged swap-outs of one area (one inode of a shared log)."""

    def __init__(self, owner: OwnerThread, write_many: WriteMany, ino: int) -> None:
        self._owner = owner
        self._write_many = write_many
        self._ino = ino
        self._pending: list[_Request] = []
        self._busy = False

    @property
    def waiting(self) -> bool:
        """A batch is queued (behind the one being programmed), with its scratch buffer: a
        request may join it without one (:meth:`write` with ``scratch=None``)."""
        return bool(self._pending)

    def write(
        self, offset: int, pages: Sequence[PageBuffer], scratch: PoolBuffer | None
    ) -> asyncio.Future[None]:
        """Queue ``pages`` at file ``offset``; the future resolves when they are on flash.
        The queue owns ``scratch`` from now on and releases it.  ``scratch`` may be None
        only while :attr:`waiting` (the batch it joins has a buffer)."""
        if scratch is None and not self._pending:
            raise ValueError("a swap-out that starts a batch needs a scratch buffer")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((offset, pages, scratch, future))
        if not self._busy:
            self._kick()
        return future

    def _kick(self) -> None:
        batch, self._pending = self._pending, []
        self._busy = True
        requests = [(offset, pages) for offset, pages, _, _ in batch]
        scratch = batch[0][2]
        assert scratch is not None  # the first request of a batch always brings one
        try:
            job = self._owner.submit(self._write_many, self._ino, requests, scratch.view)
        except BaseException as exc:  # the owner has stopped: nothing was written
            self._busy = False
            _finish(batch, exc)
            return
        job.add_done_callback(lambda done: self._done(batch, done))

    def _done(self, batch: list[_Request], job: asyncio.Future[None]) -> None:
        self._busy = False
        error = asyncio.CancelledError() if job.cancelled() else job.exception()
        _finish(batch, error)
        if self._pending:
            self._kick()


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
