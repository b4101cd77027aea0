"""One owner thread per open store: requests cross to it in batches.

Following aiosqlite's model, a blocking resource (here a file descriptor) belongs to one
thread.  The event loop appends requests to the thread's queue; the thread takes *every*
request queued so far, runs them in order, and posts all their completions back with a
single ``call_soon_threadsafe`` — so with several requests in flight, one wake-up of each
side serves the whole batch instead of one thread hop per request (and never one per page).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _complete(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class OwnerThread:
    """A thread that owns a blocking resource and runs calls on it in submission order."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._cv = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` for the owner thread; the future resolves on the loop."""
        future: asyncio.Future[T] = self._loop.create_future()
        with self._cv:
            if self._stopping:
                raise RuntimeError("owner thread is stopped")
            self._queue.append((future, fn, args))
            if len(self._queue) == 1:
                self._cv.notify()
        return future

    async def stop(self, final: Callable[[], None] | None = None) -> None:
        """Run ``final`` after every queued call, then end the thread."""
        if final is not None:
            await self.submit(final)
        with self._cv:
            self._stopping = True
            self._cv.notify()
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stopping:
                    self._cv.wait()
                if not self._queue:
                    return
                batch = list(self._queue)
                self._queue.clear()
            results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
            for future, fn, args in batch:
                try:
                    results.append((future, fn(*args), None))
                except BaseException as exc:  # delivered to the awaiting coroutine
                    results.append((future, None, exc))
            try:
                self._loop.call_soon_threadsafe(_complete, results)
            except RuntimeError:
                return  # the loop is closed: nobody is waiting any more
