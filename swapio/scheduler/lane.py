"""One scheduler's state for one area (``blk_mq_hw_ctx`` for swapio): its queue, limits,
statistics, batches in flight and the anticipation hold."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from swapio.area import SwapArea
from swapio.errors import SchedulerClosedError
from swapio.scheduler.memalloc_cap import MemallocCap, memalloc_cap
from swapio.scheduler.queue import AreaQueue
from swapio.scheduler.request import Batch, Priority
from swapio.scheduler.stats import AreaStats

__all__ = ["AreaLane"]


class AreaLane:
    """What an :class:`~swapio.scheduler.IOScheduler` keeps per area.

    The geometry and capabilities are copied once, at the area's first request, so the
    per-request checks read plain attributes.
    """

    __slots__ = (
        "area",
        "background_limit",
        "cap",
        "depth",
        "discard",
        "dispatch_pending",
        "hold_timer",
        "hold_until_ns",
        "idle_waiters",
        "inline",
        "loop",
        "page_size",
        "pages",
        "queue",
        "read_only",
        "stats",
        "tasks",
        "wake",
    )

    def __init__(
        self,
        area: SwapArea,
        loop: asyncio.AbstractEventLoop,
        aging_ns: int,
        background_share: float,
        wake: Callable[[AreaLane], None],
    ) -> None:
        caps = area.capabilities
        self.area = area
        self.loop = loop
        self.page_size = area.page_size
        self.pages = area.pages
        self.read_only = caps.read_only
        self.discard = caps.discard
        self.depth = caps.queue_depth
        self.background_limit = max(1, math.ceil(self.depth * background_share))
        #: the area's memalloc cap, shared with every other scheduler (None: no reserve need)
        self.cap: MemallocCap | None = memalloc_cap(area)
        self.queue = AreaQueue(caps.max_pages_per_request, aging_ns)
        self.stats = AreaStats()
        self.dispatch_pending = False
        self.tasks: dict[asyncio.Task[None], Batch] = {}  # batches dispatched, not finished
        self.idle_waiters: list[asyncio.Future[None]] = []
        self.hold_until_ns = 0  # readahead/background dispatch held until then
        self.hold_timer: asyncio.TimerHandle | None = None
        #: the area's last call completed without suspending (see :mod:`.call`)
        self.inline = False
        self.wake: Callable[[], None] = lambda: wake(self)  # one object: the cap dedups it

    def may_start(self, priority: Priority, memalloc: bool, now_ns: int) -> bool:
        """True when a request of ``priority`` may go to the area at once: nothing as urgent
        is queued, a queue slot of its class is free, anticipation does not hold it, and —
        for memalloc work — the area's memalloc cap has room."""
        urgent = priority <= Priority.DEMAND
        if self.queue.pending and self.queue.pending_at_or_above(priority):
            return False
        if self.stats.inflight >= (self.depth if urgent else self.background_limit):
            return False
        if not urgent and now_ns < self.hold_until_ns:
            return False
        cap = self.cap
        return not (memalloc and cap is not None and cap.inflight >= cap.limit)

    def forget_task(self, task: asyncio.Task[None]) -> None:
        """Done callback of a batch task."""
        self.tasks.pop(task, None)

    def close(self) -> list[tuple[asyncio.Task[None], Batch]]:
        """Scheduler shutdown: fail every queued request, stop the anticipation timer, and
        return the batches in flight (for the scheduler to cancel)."""
        for req in self.queue.drain():
            req.abandon(
                SchedulerClosedError(
                    f"{req.direction.value} of slot {req.slot} on {self.area.location} "
                    "was still queued when the scheduler closed"
                )
            )
        self.stats.dequeued(self.queue.pending)
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None
        self.wake_idle_waiters()
        return list(self.tasks.items())

    def idle(self) -> bool:
        """Nothing queued and nothing in flight."""
        return not self.queue.pending and not self.stats.inflight

    def wake_idle_waiters(self) -> None:
        """Resolve :meth:`IOScheduler.drain` waiters once the lane is idle."""
        if self.idle_waiters and self.idle():
            waiters, self.idle_waiters = self.idle_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
