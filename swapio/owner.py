"""One owner thread per blocking resource: asyncio code hands it work, in batches.

A blocking resource (a file descriptor, a flash image, a database handle) belongs to exactly
one thread for its whole life, as in aiosqlite: every call on it runs in that thread, in the
order it was submitted, so the resource needs no lock and no call ever overlaps another.  The
event loop side never blocks.

The hand-off is batched.  :meth:`OwnerThread.submit` appends a call to the thread's queue and
returns an :class:`asyncio.Future`; the thread takes *every* call queued so far, runs them in
order, and posts all their results back to the loop with a single
``loop.call_soon_threadsafe``.  With *n* requests in flight one wake-up of each side serves
all *n*; with one in flight the cost is one wake-up each way.  Work must therefore be handed
over once per request, never once per page (see :mod:`swapio.hookspecs`).

Typical use in a backend::

    owner = OwnerThread(f"swapio-file:{path}")         # in swapfile(activate=True)
    await owner.submit(store.pwritev, offset, pages)   # in swap_out: one hand-off
    await owner.stop(store.close)                      # in swapfile(activate=False)

Cancelling the awaiting coroutine does not withdraw a call the thread has already taken:
blocking calls cannot be interrupted, and a swap-out must not be half-forgotten.  The result
of such a call is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["OwnerStoppedError", "OwnerThread"]

T = TypeVar("T")
_Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]
_Result = tuple["asyncio.Future[Any]", Any, BaseException | None]


class OwnerStoppedError(RuntimeError):
    """A call was submitted to an owner thread after :meth:`OwnerThread.stop` began.

    A programming error of the caller (the area is deactivating), not a user error.
    """


def _complete(results: list[_Result]) -> None:
    """Resolve a batch's futures; runs on the event loop."""
    for future, value, error in results:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class OwnerThread:
    """A thread that owns one blocking resource and runs calls on it in submission order.

    :param name: the thread's name (shown by ``threading.enumerate()``, ``py-spy``, ``top -H``);
        name it after the resource, e.g. ``"swapio-file:/var/tmp/swap"``.
    :param loop: the event loop that awaits the results; the running loop by default.

    The thread starts at once and ends in :meth:`stop`.  It is a daemon thread so that an
    interpreter exiting with an area still active does not hang; areas deactivate (and thus
    stop their owner) before the loop closes.
    """

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.name = name
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._cv = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._stopping = False
        self._pending = 0  # calls submitted and not yet settled; touched on the loop only
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        """True when no call is queued, running, or waiting for its result to be posted.

        A backend may then use the resource from the loop itself for a call it knows cannot
        block (e.g. a ``preadv`` with ``RWF_NOWAIT``) without racing the owner thread.
        """
        return self._pending == 0

    @property
    def alive(self) -> bool:
        """True until :meth:`stop` has ended the thread."""
        return self._thread.is_alive()

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` to run in the owner thread; await the returned future.

        The future resolves on the loop with ``fn``'s return value, or raises what ``fn``
        raised.  Must be called from the loop's thread.  Raises :class:`OwnerStoppedError`
        once :meth:`stop` has begun.
        """
        future: asyncio.Future[T] = self._loop.create_future()
        with self._cv:
            if self._stopping:
                raise OwnerStoppedError(f"owner thread {self.name!r} is stopped")
            self._queue.append((future, fn, args))
            if len(self._queue) == 1:  # the thread may be asleep: it sleeps only when empty
                self._cv.notify()
        self._pending += 1
        return future

    async def stop(self, final: Callable[[], Any] | None = None) -> None:
        """Run every call already queued, then ``final()`` (e.g. closing the resource), then
        end the thread.  Idempotent.  An exception from ``final`` is raised here, after the
        thread has ended."""
        error: BaseException | None = None
        if final is not None and not self._stopping:
            try:
                await self.submit(final)
            except BaseException as exc:  # the thread must end even if the close failed
                error = exc
        with self._cv:
            self._stopping = True
            self._cv.notify()
        # The thread's last act is to post _exited; after that it only returns, so the join
        # below is immediate (no executor thread is started just to wait for it).
        await asyncio.shield(self._exited)
        self._thread.join()
        if error is not None:
            raise error

    def _take(self) -> list[_Job] | None:
        """Wait for work; return everything queued, or ``None`` when stopped and drained."""
        with self._cv:
            while not self._queue and not self._stopping:
                self._cv.wait()
            if not self._queue:
                return None
            batch = list(self._queue)
            self._queue.clear()
            return batch

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for us
                self._loop.call_soon_threadsafe(self._mark_exited)

    def _mark_exited(self) -> None:
        if not self._exited.done():
            self._exited.set_result(None)

    def _serve(self) -> None:
        while (batch := self._take()) is not None:
            results: list[_Result] = []
            for future, fn, args in batch:
                try:
                    results.append((future, fn(*args), None))
                except BaseException as exc:  # delivered to the awaiting coroutine
                    results.append((future, None, exc))
            try:
                self._loop.call_soon_threadsafe(self._settle, results)
            except RuntimeError:
                return  # the loop is closed: nobody is waiting any more

    def _settle(self, results: list[_Result]) -> None:
        """Runs on the loop: the batch is done."""
        self._pending -= len(results)
        _complete(results)

    def __repr__(self) -> str:
        state = "running" if self.alive else "stopped"
        return f"<OwnerThread {self.name!r} {state}>"
