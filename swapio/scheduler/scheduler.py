"""The reserve-aware I/O scheduler: per-area queues between the pager and the areas.

Each part, with the Linux piece it mirrors (details and figures: ``docs/scheduler.md``):

* **One path** (``blk_mq_submit_bio``): every request — :meth:`IOScheduler.submit` or
  ``swap_out`` / ``swap_in`` / ``discard`` — is admitted by :meth:`IOScheduler._admit`:
  validated once (:mod:`.admission`), classed, and a demand request starts the anticipation
  hold.  It then joins its area's queue as an :class:`.IORequest` or, when the lane may start
  it at once (``blk_mq_try_issue_directly``, :meth:`.AreaLane.may_start`), goes to the area
  in the caller's task with no request object at all (the caller awaits the call itself).
  Either way :func:`.call_area` makes the one area call (eagerly: a call that completes
  without suspending never meets the watchdog) and ``_after`` does the lane's bookkeeping;
  queued requests are settled through :meth:`.IORequest.settle`.  :meth:`~IOScheduler.submit`
  always queues.
* **Plugging and merging** (``blk_start_plug`` / ``blk_attempt_plug_merge``): requests
  queued in one event-loop tick go out at its end, adjacent ones merged up to
  ``max_pages_per_request`` (:mod:`.queue`).
* **Priority classes with aging**, readahead/background limited to ``background_share`` of
  the queue depth, and **anticipation** (BFQ ``slice_idle``): no new readahead/background
  batch for ``anticipation`` s after a demand request, unless aging promoted it.
* **Bounded depth** (``nr_requests``): ``queue_depth`` batches in flight per area; the
  **memalloc cap** — ``memalloc_requests`` memalloc requests in flight — is per *area*,
  across every scheduler (:mod:`.memalloc_cap`): the reserve was sized for that many.
* **Memalloc context**: reclaim swap-outs run with :func:`swapio.memalloc.memalloc` set
  (``PF_MEMALLOC`` follows the work into the tasks it spawns).
* **Errors, timeouts** (:mod:`.deadline`) **and cancellation**: an error reaches every
  waiter of a merged batch; a cancelled waiter's queued request is removed, an in-flight
  one is left to settle before the waiter re-raises; a directly issued call is cancelled
  with its caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from swapio.area import AreaState, PageBuffer, SwapArea
from swapio.errors import AreaInactiveError, SchedulerClosedError, UsageError
from swapio.memalloc import in_memalloc
from swapio.memalloc import memalloc as memalloc_context
from swapio.scheduler.admission import check_request
from swapio.scheduler.call import call_area
from swapio.scheduler.deadline import Watchdog
from swapio.scheduler.histogram import LatencyHistogram
from swapio.scheduler.lane import AreaLane
from swapio.scheduler.request import Batch, Direction, IORequest, Priority, RequestState
from swapio.scheduler.stats import AreaStats, AreaStatsSnapshot

__all__ = [
    "DEFAULT_AGING_INTERVAL",
    "DEFAULT_ANTICIPATION",
    "DEFAULT_BACKGROUND_SHARE",
    "DEFAULT_REQUEST_TIMEOUT",
    "IOScheduler",
]

DEFAULT_AGING_INTERVAL = 0.05
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_BACKGROUND_SHARE = 0.25
DEFAULT_ANTICIPATION = 0.002

_DEFAULT_PRIORITY = {
    Direction.SWAP_OUT: Priority.RECLAIM,
    Direction.SWAP_IN: Priority.DEMAND,
    Direction.DISCARD: Priority.BACKGROUND,
}


class IOScheduler:
    """Per-area priority queues with merging, bounded depth, memalloc and timeouts.

    :param aging_interval: seconds a queued request waits to be promoted one class.
    :param request_timeout: seconds an area call may take before every waiter gets
        :class:`SwapTimeoutError` (None: no limit).
    :param background_share: fraction of an area's queue depth that readahead and background
        batches may occupy.
    :param anticipation: seconds after a demand request during which no new readahead or
        background batch is dispatched to that area (anticipatory scheduling, BFQ's
        ``slice_idle``); aged requests still go.  0 disables it.
    """

    def __init__(
        self,
        *,
        aging_interval: float = DEFAULT_AGING_INTERVAL,
        request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
        background_share: float = DEFAULT_BACKGROUND_SHARE,
        anticipation: float = DEFAULT_ANTICIPATION,
    ) -> None:
        if not aging_interval > 0:
            raise UsageError(f"aging_interval must be > 0 seconds, got {aging_interval!r}")
        if request_timeout is not None and not request_timeout > 0:
            raise UsageError(
                f"request_timeout must be > 0 seconds or None, got {request_timeout!r}"
            )
        if not 0 < background_share <= 1:
            raise UsageError(f"background_share must be in (0, 1], got {background_share!r}")
        if not anticipation >= 0:
            raise UsageError(f"anticipation must be >= 0 seconds, got {anticipation!r}")
        self.aging_interval = aging_interval
        self.request_timeout = request_timeout
        self.background_share = background_share
        self.anticipation = anticipation
        self._anticipation_ns = int(anticipation * 1e9)
        self._aging_ns = int(aging_interval * 1e9)
        self._lanes: dict[SwapArea, AreaLane] = {}
        self._seq = 0
        self._closed = False
        self._watchdog = Watchdog(request_timeout) if request_timeout is not None else None

    # ------------------------------------------------------------------ admission
    def _admit(
        self,
        area: SwapArea,
        direction: Direction,
        slot: int,
        buffers: Sequence[Any],
        count: int | None,
        priority: Priority | None,
        memalloc: bool | None,
    ) -> tuple[AreaLane, int, Priority, bool, int]:
        """Validate a request once and class it: its lane, slot count, priority, memalloc
        flag and submission time (every request passes here, queued or direct)."""
        if self._closed:
            raise SchedulerClosedError("the I/O scheduler is closed; no new requests")
        if area.state is not AreaState.ACTIVE:
            raise AreaInactiveError(f"area {area.location} is {area.state.value}; no new I/O")
        lane = self._lanes.get(area)
        if lane is None:
            lane = self._lanes[area] = AreaLane(
                area, asyncio.get_running_loop(), self._aging_ns, self.background_share, self._kick
            )
        n = check_request(lane, direction, slot, buffers, count)
        if priority is None:
            priority = _DEFAULT_PRIORITY[direction]
        elif type(priority) is not Priority:
            priority = Priority(priority)
        if memalloc is None:
            memalloc = (
                direction is Direction.SWAP_OUT and priority is Priority.RECLAIM
            ) or in_memalloc()
        now = time.perf_counter_ns()
        if priority is Priority.DEMAND and self._anticipation_ns:
            lane.hold_until_ns = now + self._anticipation_ns
        return lane, n, priority, memalloc, now

    def _request(
        self,
        admitted: tuple[AreaLane, int, Priority, bool, int],
        direction: Direction,
        slot: int,
        buffers: Sequence[Any],
    ) -> IORequest:
        """The queued form of an admitted request."""
        lane, n, priority, memalloc, now = admitted
        self._seq += 1
        return IORequest(
            lane, direction, slot, n, buffers, priority, memalloc, lane.loop, self._seq, now
        )

    def submit(
        self,
        area: SwapArea,
        direction: Direction,
        slot: int,
        buffers: Sequence[Any] = (),
        *,
        count: int | None = None,
        priority: Priority | None = None,
        memalloc: bool | None = None,
    ) -> IORequest:
        """Queue a request without waiting; await the returned request (or use :meth:`wait`).

        ``buffers`` holds one page per slot (``SWAP_OUT``: bytes-like of ``page_size``;
        ``SWAP_IN``: writable views of ``page_size``); ``DISCARD`` takes ``count`` instead.
        ``priority`` defaults to RECLAIM for swap-out, DEMAND for swap-in and BACKGROUND for
        discard.  ``memalloc`` defaults to True for RECLAIM swap-outs and to the caller's
        memalloc context otherwise.  Requests submitted in one event-loop tick are merged
        where adjacent (plugging).
        """
        admitted = self._admit(area, direction, slot, buffers, count, priority, memalloc)
        req = self._request(admitted, direction, slot, buffers)
        self._enqueue(req)
        return req

    def _enqueue(self, req: IORequest) -> None:
        lane: AreaLane = req.owner
        queue = lane.queue
        queue.push(req)
        lane.stats.queued(queue.pending)
        if not lane.dispatch_pending:
            lane.dispatch_pending = True
            lane.loop.call_soon(self._dispatch, lane)

    async def wait(self, req: IORequest) -> None:
        """Await ``req``; if cancelled, dequeue it or let its in-flight batch settle first."""
        try:
            await req
        except asyncio.CancelledError:
            lane: AreaLane = req.owner
            if req.state is RequestState.PENDING:
                lane.queue.remove(req)
                lane.stats.dequeued(lane.queue.pending, cancelled=True)
                lane.wake_idle_waiters()
            elif req.state is RequestState.INFLIGHT and req.batch is not None:
                await req.batch.settled()
            raise

    async def _issue(
        self,
        area: SwapArea,
        direction: Direction,
        slot: int,
        buffers: Sequence[Any],
        count: int | None,
        priority: Priority,
        memalloc: bool | None,
    ) -> None:
        """Admit a request; start it in the caller's task if its lane may start it at once
        (cancelling the caller then cancels the backend call), else queue it and wait."""
        admitted = self._admit(area, direction, slot, buffers, count, priority, memalloc)
        lane, n, priority, memalloc, now = admitted
        if not lane.may_start(priority, memalloc, now):
            req = self._request(admitted, direction, slot, buffers)
            self._enqueue(req)
            await self.wait(req)
            return
        stats = lane.stats
        stats.started_direct(memalloc)
        if memalloc and lane.cap is not None:
            lane.cap.acquire()
        error: BaseException | None = None
        try:
            if memalloc == in_memalloc():
                await call_area(lane, self._watchdog, direction, slot, buffers, n)
            else:
                with memalloc_context(memalloc):
                    await call_area(lane, self._watchdog, direction, slot, buffers, n)
        except BaseException as exc:
            error = exc
            raise
        finally:
            done = time.perf_counter_ns()
            stats.finished_direct(direction, priority, n, memalloc, error, done - now)
            self._after(lane, memalloc, priority is Priority.DEMAND, done)

    async def swap_out(
        self,
        area: SwapArea,
        slot: int,
        pages: Sequence[PageBuffer],
        *,
        priority: Priority = Priority.RECLAIM,
        memalloc: bool | None = None,
    ) -> None:
        """Write ``pages`` to consecutive slots from ``slot``."""
        await self._issue(area, Direction.SWAP_OUT, slot, pages, None, priority, memalloc)

    async def swap_in(
        self,
        area: SwapArea,
        slot: int,
        views: Sequence[memoryview],
        *,
        priority: Priority = Priority.DEMAND,
    ) -> None:
        """Fill ``views`` from consecutive slots from ``slot``."""
        await self._issue(area, Direction.SWAP_IN, slot, views, None, priority, None)

    async def discard(
        self,
        area: SwapArea,
        slot: int,
        count: int = 1,
        *,
        priority: Priority = Priority.BACKGROUND,
    ) -> None:
        """Discard ``count`` slots from ``slot``."""
        await self._issue(area, Direction.DISCARD, slot, (), count, priority, None)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, lane: AreaLane) -> None:
        """Start queued batches while the lane's limits allow (end of the plug)."""
        lane.dispatch_pending = False
        queue = lane.queue
        if not queue.pending:
            return
        stats = lane.stats
        cap = lane.cap
        loop = lane.loop
        now = time.perf_counter_ns()
        held = now < lane.hold_until_ns
        while queue.pending and stats.inflight < lane.depth:
            lowest = (
                Priority.DEMAND
                if held or stats.inflight >= lane.background_limit
                else Priority.BACKGROUND
            )
            head = queue.pick(
                now,
                memalloc_allowed=cap is None or cap.inflight < cap.limit,
                lowest_class=lowest,
            )
            if head is None:
                break
            batch = Batch(queue.take_merged(head), now)
            stats.started(batch)
            if batch.memalloc and cap is not None:
                cap.acquire()
            # the task inherits the memalloc flag of the batch, not of whoever kicked us
            with memalloc_context(batch.memalloc):
                task = loop.create_task(self._run(lane, batch))
            lane.tasks[task] = batch
            task.add_done_callback(lane.forget_task)
        stats.dequeued(queue.pending)
        if not queue.pending:
            return
        if cap is not None and cap.inflight >= cap.limit:
            cap.wait(lane.wake)  # another scheduler may hold the area's memalloc slots
        if held and lane.hold_timer is None:
            lane.hold_timer = loop.call_later(
                (lane.hold_until_ns - now) / 1e9, self._hold_expired, lane
            )

    def _hold_expired(self, lane: AreaLane) -> None:
        lane.hold_timer = None
        if self._closed:
            return
        remaining = lane.hold_until_ns - time.perf_counter_ns()
        if remaining > 0:  # extended by later demand requests: wait for the new end
            lane.hold_timer = lane.loop.call_later(remaining / 1e9, self._hold_expired, lane)
            return
        self._kick(lane)

    def _kick(self, lane: AreaLane) -> None:
        if lane.queue.pending and not lane.dispatch_pending and not self._closed:
            lane.dispatch_pending = True
            lane.loop.call_soon(self._dispatch, lane)

    # ------------------------------------------------------------------ call, complete
    async def _run(self, lane: AreaLane, batch: Batch) -> None:
        """The task of a dispatched batch: only :meth:`aclose` cancels it."""
        error: BaseException | None = None
        cancelled = False
        direction = batch.direction
        buffers = () if direction is Direction.DISCARD else batch.page_buffers()
        try:
            await call_area(lane, self._watchdog, direction, batch.slot, buffers, batch.count)
        except asyncio.CancelledError:
            cancelled = True
            error = SchedulerClosedError(
                f"{batch.describe()} on {lane.area.location} was cancelled by scheduler shutdown"
            )
        except Exception as exc:
            error = exc
        self._complete(lane, batch, error)
        if cancelled:
            raise asyncio.CancelledError

    def _complete(self, lane: AreaLane, batch: Batch, error: BaseException | None) -> None:
        now = time.perf_counter_ns()
        for req in batch.requests:
            req.settle(error)
        lane.stats.finished(batch, error, now)
        batch.finish()
        self._after(lane, batch.memalloc, batch.demand, now)

    def _after(self, lane: AreaLane, memalloc: bool, demand: bool, now: int) -> None:
        """A call ended: free its memalloc slot, extend anticipation after demand work, and
        dispatch what waited."""
        if memalloc and lane.cap is not None:
            lane.cap.release()
        if demand and self._anticipation_ns:
            lane.hold_until_ns = now + self._anticipation_ns
        if lane.queue.pending:
            self._kick(lane)
        if lane.idle_waiters:
            lane.wake_idle_waiters()

    # ------------------------------------------------------------------ lifecycle
    async def drain(self, area: SwapArea | None = None) -> None:
        """Wait until ``area`` (or every area) has nothing queued and nothing in flight."""
        lanes = list(self._lanes.values()) if area is None else [self._lanes.get(area)]
        for lane in lanes:
            if lane is None:
                continue
            while not lane.idle():
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                lane.idle_waiters.append(fut)
                await fut

    def forget(self, area: SwapArea) -> None:
        """Drop the scheduler's state for an idle area (after deactivation)."""
        lane = self._lanes.get(area)
        if lane is None:
            return
        if not lane.idle():
            raise UsageError(f"area {area.location} still has queued or in-flight requests")
        del self._lanes[area]

    async def aclose(self) -> None:
        """Refuse new requests; fail queued ones and cancel in-flight batches with
        :class:`SchedulerClosedError`.  On return every request this scheduler queued is
        settled, even a batch whose task never ran (cancelling it skips its body).  Calls
        issued directly belong to their caller's task and are not cancelled."""
        self._closed = True
        tasks = [
            (lane, task, batch) for lane in self._lanes.values() for task, batch in lane.close()
        ]
        for _, task, _ in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*(task for _, task, _ in tasks), return_exceptions=True)
        for lane, _, batch in tasks:
            if not batch.finished:  # cancelled before its first step: _run never ran
                where = f"{batch.describe()} on {lane.area.location}"
                error = SchedulerClosedError(f"{where} was cancelled by shutdown before it ran")
                self._complete(lane, batch, error)
        if self._watchdog is not None:
            self._watchdog.close()

    async def __aenter__(self) -> IOScheduler:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ inspection
    def inline(self, area: SwapArea) -> bool:
        """True when the area's last call completed without suspending (:mod:`.call`): a
        caller with several requests loses no overlap by issuing them one by one."""
        lane = self._lanes.get(area)
        return lane is not None and lane.inline

    @property
    def closed(self) -> bool:
        """True after :meth:`aclose`."""
        return self._closed

    def stats(self, area: SwapArea) -> AreaStatsSnapshot:
        """Counters and latency summaries for ``area``."""
        lane = self._lanes.get(area)
        return (AreaStats() if lane is None else lane.stats).snapshot()

    def latency(self, area: SwapArea, priority: Priority) -> LatencyHistogram | None:
        """The live latency histogram of ``priority`` requests on ``area`` (or None)."""
        lane = self._lanes.get(area)
        return None if lane is None else lane.stats.latency[priority]
