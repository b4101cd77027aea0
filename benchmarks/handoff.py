"""Hand-off variants for one blocking call crossing from the event loop to a thread and back.

Used by ``bench_file.py --handoff`` to compare what the file backend could use at one call
in flight.  Each variant has ``submit(fn, *args) -> Future`` and ``close()``; each runs calls
in submission order in one thread.  Only :class:`swapio.owner.OwnerThread` is used by swapio;
the others are here to be measured against it.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


def _run(job: Job) -> tuple[asyncio.Future[Any], Any, BaseException | None]:
    future, fn, args = job
    try:
        return future, fn(*args), None
    except BaseException as exc:
        return future, None, exc


class SimpleQueueOwner:
    """``queue.SimpleQueue`` (C) to the thread, ``call_soon_threadsafe`` back."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._q: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        self._q.put((future, fn, args))
        return future

    def _main(self) -> None:
        while (job := self._q.get()) is not None:
            self._loop.call_soon_threadsafe(_settle, *_run(job))

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()


class LockOwner:
    """A ``threading.Lock`` used as a wake-up semaphore (no Condition), deque of jobs."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._jobs: list[Job] = []
        self._mutex = threading.Lock()
        self._wake = threading.Lock()
        self._wake.acquire()
        self._sleeping = True
        self._stop = False
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        with self._mutex:
            self._jobs.append((future, fn, args))
            wake, self._sleeping = self._sleeping, False
        if wake:
            self._wake.release()
        return future

    def _main(self) -> None:
        while True:
            self._wake.acquire()
            while True:
                with self._mutex:
                    jobs, self._jobs = self._jobs, []
                    if not jobs:
                        self._sleeping = True
                        break
                results = [_run(job) for job in jobs]
                self._loop.call_soon_threadsafe(lambda r=results: [_settle(*x) for x in r])
            if self._stop:
                return

    def close(self) -> None:
        self._stop = True
        with self._mutex:
            wake, self._sleeping = self._sleeping, False
        if wake:
            self._wake.release()
        self._thread.join()


class EventfdOwner:
    """``queue.SimpleQueue`` to the thread, an ``eventfd`` watched by the loop back."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._q: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[Any, Any, Any]] = queue.SimpleQueue()
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        loop.add_reader(self._efd, self._drain)
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        self._q.put((future, fn, args))
        return future

    def _drain(self) -> None:
        try:
            os.eventfd_read(self._efd)
        except BlockingIOError:
            return
        while True:
            try:
                _settle(*self._done.get_nowait())
            except queue.Empty:
                return

    def _main(self) -> None:
        while (job := self._q.get()) is not None:
            self._done.put(_run(job))
            os.eventfd_write(self._efd, 1)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()
        self._loop.remove_reader(self._efd)
        os.close(self._efd)


class ExecutorOwner:
    """``loop.run_in_executor`` on a one-thread ``ThreadPoolExecutor`` (concurrent futures)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._loop = loop
        self._pool = ThreadPoolExecutor(1)

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return self._loop.run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown()
