"""The handler's fault loop: reads the userfaultfd, resolves faults one at a time, eagerly.

The event loop calls :meth:`FaultServer.readable` when the userfaultfd has messages; it
reads up to :data:`MSGS_PER_READ` of them with one ``read`` and resolves them in order.

**Eagerly.** Most faults need no wait (a zero page, a page the pager holds, a read the
memory backend or the page cache completes at once); waking a task for each would cost an
event-loop turn, a future and a lock — more than a third of such a fault.  So the callback
runs each fault's coroutine itself, up to its first suspension, *as the fault task* (the
task is entered for the step, as Python 3.12's eager tasks do, so code that needs
``asyncio.current_task()`` — the scheduler's deadline watchdog, ``asyncio.timeout`` — finds
it), in the fault task's context.  A fault that does suspend is handed to the fault task,
which continues it exactly where it stopped and then resolves whatever queued meanwhile.

**One at a time.** The server is *busy* while a suspended fault or a control request
(sync, stats, close: :meth:`FaultServer.exclusive`) holds it; faults read meanwhile queue,
and requests wait in turn.  A fault that cannot be resolved is fatal: :meth:`FaultServer.run`
raises its exception.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import os
import types
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from contextlib import asynccontextmanager
from typing import Any

from swapio.mapping import _abi
from swapio.mapping._resolver import Resolver

#: ``uffd_msg`` records read per ``read(2)``.
MSGS_PER_READ = 64

_enter_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] | None = getattr(
    asyncio.tasks, "_enter_task", None
)
_leave_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] | None = getattr(
    asyncio.tasks, "_leave_task", None
)

_Coro = Coroutine[Any, Any, None]


@types.coroutine
def _resume(coro: _Coro, yielded: Any) -> Generator[Any, Any, None]:
    """Continue ``coro``, suspended on ``yielded``: ``yield from`` over a started coroutine
    (what the task sends or throws in goes to ``coro``)."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # cancellation, or an exception thrown into the task
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return


_FREE, _TASK, _REQUEST, _DEAD = "free", "task", "request", "dead"


class FaultServer:
    """Serves ``resolver``'s userfaultfd on the running loop (see the module docstring)."""

    def __init__(self, resolver: Resolver, *, eager: bool = True) -> None:
        self.resolver = resolver
        self.loop = asyncio.get_running_loop()
        self.eager = eager and _enter_task is not None and _leave_task is not None
        self._backlog: collections.deque[tuple[int, int]] = collections.deque()
        # who holds the server: nobody, the fault task, a control request, or nobody ever
        # again (a fault failed)
        self._holder = _FREE
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._context = contextvars.copy_context()
        self._wakeup: asyncio.Future[None] = self.loop.create_future()
        self._suspended: tuple[_Coro, Any] | None = None
        self._failure: BaseException | None = None
        self._buf = bytearray(_abi.MSG_SIZE * MSGS_PER_READ)
        self._view = memoryview(self._buf)

    def start(self) -> asyncio.Task[None]:
        """Create the fault task and start reading the userfaultfd."""
        self._task = self.loop.create_task(self.run(), context=self._context)
        self.loop.add_reader(self.resolver.uffd, self.readable)
        return self._task

    # ------------------------------------------------------------------ callbacks
    def readable(self) -> None:
        """The userfaultfd has messages: queue them; resolve them now if the server is free."""
        try:
            n = os.readv(self.resolver.uffd, [self._buf])
        except BlockingIOError:
            return
        except OSError as exc:
            self.loop.remove_reader(self.resolver.uffd)
            self._fail(exc)
            return
        self._backlog.extend(_abi.iter_pagefaults(self._view[:n]))
        if self._holder is not _FREE:
            return  # the holder resolves them when done
        if self.eager:
            self._serve_eagerly()
        else:
            self._hand_to_task()

    def _serve_eagerly(self) -> None:
        task = self._task
        assert task is not None
        assert _enter_task is not None
        assert _leave_task is not None
        handle = self.resolver.handle
        backlog = self._backlog
        loop = self.loop
        while backlog:
            coro = handle(*backlog.popleft())
            _enter_task(loop, task)
            try:
                yielded = self._context.run(coro.send, None)
            except StopIteration:
                continue
            except BaseException as exc:  # the fault cannot be served: fatal
                self._fail(exc)
                return
            finally:
                _leave_task(loop, task)
            self._suspended = (coro, yielded)  # the fault task continues it
            self._hand_to_task()
            return

    def _hand_to_task(self) -> None:
        self._holder = _TASK
        if not self._wakeup.done():
            self._wakeup.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._holder = _DEAD  # serve nothing more
        if not self._wakeup.done():
            self._wakeup.set_result(None)

    # ------------------------------------------------------------------ the fault task
    async def run(self) -> None:
        """The fault task: continues suspended faults and resolves what queued behind them;
        raises what a fault raised."""
        handle = self.resolver.handle
        backlog = self._backlog
        try:
            while True:
                await self._wakeup
                self._wakeup = self.loop.create_future()
                if self._failure is not None:
                    raise self._failure
                if self._holder is not _TASK:
                    continue
                if self._suspended is not None:
                    coro, yielded = self._suspended
                    self._suspended = None
                    await _resume(coro, yielded)
                while backlog and not self._waiters:
                    await handle(*backlog.popleft())
                self._release()
        finally:
            self.loop.remove_reader(self.resolver.uffd)

    def _release(self) -> None:
        """The holder is done: the first waiting request gets the server, else the fault task
        if faults queued meanwhile (a task is running: nothing is resolved eagerly here)."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                self._holder = _REQUEST
                fut.set_result(None)
                return
        if self._backlog:
            self._hand_to_task()
        else:
            self._holder = _FREE

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the server: no fault is resolved meanwhile (they queue)."""
        if self._holder is _FREE and not self._waiters:
            self._holder = _REQUEST
        else:
            fut = self.loop.create_future()
            self._waiters.append(fut)
            await fut
        try:
            yield
        finally:
            if self._holder is _REQUEST:
                self._release()
