"""Deadlines of area calls, enforced by one shared watchdog timer.

A timer (or ``asyncio.timeout``) per call would cost more than the memory backend's page
copy, so every call in flight is registered here and one timer, re-armed while calls are
watched, cancels the tasks whose deadline passed.  The caller turns that cancellation into
:class:`~swapio.errors.SwapTimeoutError` (:meth:`Watchdog.timed_out`) and lets any other
cancellation through.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

__all__ = ["Watchdog", "Watched"]


class Watched:
    """One area call in flight, watched for its deadline."""

    __slots__ = ("cancelling", "deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.cancelling = task.cancelling()  # cancellations requested before ours
        self.expired = False


class Watchdog:
    """Cancels watched calls that run past ``timeout`` seconds."""

    __slots__ = ("_calls", "_timer", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._calls: set[Watched] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, loop: asyncio.AbstractEventLoop) -> Watched:
        """Start watching the current task's call."""
        task = asyncio.current_task(loop)
        assert task is not None
        call = Watched(task, time.monotonic() + self.timeout)
        self._calls.add(call)
        if self._timer is None:
            self._arm()
        return call

    def unwatch(self, call: Watched) -> None:
        """The call ended (in any way)."""
        self._calls.discard(call)

    def timed_out(self, call: Watched) -> bool:
        """After a CancelledError in ``call``: True if the watchdog caused it (and nobody
        else asked to cancel the task meanwhile); the cancellation is then withdrawn."""
        return call.expired and call.task.uncancel() <= call.cancelling

    def close(self) -> None:
        """Stop the timer once nothing is watched any more."""
        if self._timer is not None and not self._calls:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        interval = min(max(self.timeout / 4, 0.001), 1.0)
        self._timer = asyncio.get_running_loop().call_later(interval, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = time.monotonic()
        for call in list(self._calls):
            if not call.expired and now >= call.deadline:
                call.expired = True
                call.task.cancel()
        if self._calls:
            self._arm()
