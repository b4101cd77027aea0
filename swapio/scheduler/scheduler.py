"""The reserve-aware I/O scheduler: per-area queues between the pager and the areas.

What it does, with the Linux piece each part mirrors:

* **Plugging and merging** (``blk_start_plug`` / ``blk_attempt_plug_merge``): requests
  submitted in one event-loop tick are held until the end of the tick, so a caller that
  submits many single-page swap-outs gets them merged into area calls of up to
  ``max_pages_per_request`` pages.  While an area is busy, its queue keeps merging.
* **Priority classes with aging**: :class:`~swapio.scheduler.request.Priority`; a queued
  request is promoted one class per ``aging_interval`` seconds, so background work never
  starves.  Readahead and background work may fill at most ``background_share`` (default a
  quarter) of the queue depth, so a demand read never waits behind a full queue of them —
  neither in the scheduler nor in the backend's own FIFO.
* **Bounded queue depth** (``nr_requests``): at most ``capabilities.queue_depth`` batches in
  flight per area, and at most ``capabilities.memalloc_requests`` of them in memalloc context
  when the area declared a reserve need — the reserve was sized for exactly that many.
* **Memalloc context**: a reclaim swap-out (or any request submitted from memalloc context)
  runs in a task whose context has :func:`swapio.memalloc.memalloc` set, so the backend's
  allocations may dip into the reserve (``PF_MEMALLOC`` follows the work).
* **Errors and timeouts**: an error reaches every waiter of a merged batch; a backend that
  does not answer within ``request_timeout`` is cancelled and every waiter gets
  :class:`~swapio.errors.SwapTimeoutError`.  A failed swap-out is the caller's to re-dirty
  (the pager does, like ``sio_write_complete``).
* **Direct issue** (``blk_mq_try_issue_directly``): when nothing of the same or a more
  urgent class is queued and a queue slot is free, :meth:`IOScheduler.swap_out` /
  :meth:`~IOScheduler.swap_in` call the area in the caller's task — no queueing, no extra
  event-loop iterations, which is what keeps a demand read fast while a background stream
  fills the queue.
* **Cancellation**: cancelling a waiter whose request is still queued removes it; a queued
  request already handed to the area cannot be recalled, so the cancelled waiter first waits
  for it to settle (bounded by ``request_timeout``) and only then re-raises — the caller's
  buffers are never written after it regained them.  A directly issued call is cancelled
  with its caller (backends must stop using buffers when cancelled, as on a timeout).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

from swapio.area import AreaState, PageBuffer, SwapArea
from swapio.errors import (
    AreaInactiveError,
    PageSizeError,
    SchedulerClosedError,
    SlotRangeError,
    SwapTimeoutError,
    UsageError,
)
from swapio.memalloc import in_memalloc
from swapio.memalloc import memalloc as memalloc_context
from swapio.scheduler.histogram import LatencyHistogram
from swapio.scheduler.queue import AreaQueue
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


class _AreaSlot:
    """The scheduler's state for one area."""

    __slots__ = (
        "area",
        "background_limit",
        "depth",
        "dispatch_pending",
        "hold_timer",
        "hold_until_ns",
        "idle_waiters",
        "loop",
        "memalloc_limit",
        "page_size",
        "pages",
        "queue",
        "stats",
        "tasks",
    )

    def __init__(self, area: SwapArea, aging_ns: int, background_share: float) -> None:
        caps = area.capabilities
        self.area = area
        self.page_size = area.page_size
        self.pages = area.pages
        self.depth = caps.queue_depth
        self.background_limit = max(1, math.ceil(self.depth * background_share))
        self.memalloc_limit = (
            max(1, caps.memalloc_requests) if caps.reserve_pages_per_request > 0 else self.depth
        )
        self.queue = AreaQueue(caps.max_pages_per_request, aging_ns)
        self.stats = AreaStats()
        self.dispatch_pending = False
        self.tasks: dict[asyncio.Task[None], Batch] = {}  # batches dispatched, not finished
        self.idle_waiters: list[asyncio.Future[None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.hold_until_ns = 0  # background dispatch held until then (anticipation)
        self.hold_timer: asyncio.TimerHandle | None = None

    def forget_task(self, task: asyncio.Task[None]) -> None:
        """Done callback of a batch task."""
        self.tasks.pop(task, None)


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
        self.aging_interval = aging_interval
        self.request_timeout = request_timeout
        if not anticipation >= 0:
            raise UsageError(f"anticipation must be >= 0 seconds, got {anticipation!r}")
        self.background_share = background_share
        self.anticipation = anticipation
        self._anticipation_ns = int(anticipation * 1e9)
        self._aging_ns = int(aging_interval * 1e9)
        self._areas: dict[SwapArea, _AreaSlot] = {}
        self._seq = 0
        self._closed = False
        self._calls: set[_Call] = set()
        self._watchdog: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ submission
    def _prepare(
        self,
        area: SwapArea,
        direction: Direction,
        slot: int,
        buffers: Sequence[Any],
        count: int | None,
        priority: Priority | None,
        memalloc: bool | None,
        validate: bool = True,
    ) -> tuple[_AreaSlot, int, Priority, bool]:
        if self._closed:
            raise SchedulerClosedError("the I/O scheduler is closed; no new requests")
        if area.state is not AreaState.ACTIVE:
            raise AreaInactiveError(f"area {area.location} is {area.state.value}; no new I/O")
        st = self._areas.get(area)
        if st is None:
            st = self._areas[area] = _AreaSlot(area, self._aging_ns, self.background_share)
        if direction is Direction.DISCARD:
            n = 1 if count is None else count
        else:
            n = len(buffers)
            if count is not None and count != n:
                raise UsageError(f"count={count} does not match {n} buffer(s)")
            if validate:
                _check_buffers(area, direction, buffers, st.page_size)
        if n <= 0:
            raise UsageError("a request needs at least one page")
        if slot < 0 or slot + n > st.pages:
            raise SlotRangeError(
                f"slots {slot}..{slot + n - 1} out of range for {area.location} ({st.pages} slots)"
            )
        if priority is None:
            priority = _DEFAULT_PRIORITY[direction]
        elif not isinstance(priority, Priority):
            priority = Priority(priority)
        if memalloc is None:
            memalloc = (
                direction is Direction.SWAP_OUT and priority is Priority.RECLAIM
            ) or in_memalloc()
        return st, n, priority, memalloc

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
        st = self._areas.get(area)
        if (
            st is None
            or st.loop is None
            or count is not None
            or direction is not Direction.SWAP_OUT
            or self._closed
            or area.state is not AreaState.ACTIVE
        ):
            st, n, priority, memalloc = self._prepare(
                area, direction, slot, buffers, count, priority, memalloc
            )
            return self._enqueue(st, direction, slot, n, buffers, priority, memalloc)
        # the hot path of a reclaim or writeback stream: swap-outs to a known area
        n = len(buffers)
        size = st.page_size
        for buf in buffers:
            if type(buf) is not bytes or len(buf) != size:
                _check_buffers(area, direction, buffers, size)
                break
        if n <= 0 or slot < 0 or slot + n > st.pages:
            self._prepare(area, direction, slot, buffers, count, priority, memalloc)  # raises
        if priority is None:
            priority = Priority.RECLAIM
        elif type(priority) is not Priority:
            priority = Priority(priority)
        if memalloc is None:
            memalloc = priority is Priority.RECLAIM or in_memalloc()
        self._seq += 1
        req = IORequest(
            st, direction, slot, n, buffers, priority, memalloc, st.loop, self._seq,
            time.perf_counter_ns(),
        )  # fmt: skip
        queue = st.queue
        queue.push(req)
        stats = st.stats
        stats.submitted += 1
        pending = stats.pending = queue.pending
        stats.peak_pending = max(stats.peak_pending, pending)
        if not st.dispatch_pending:
            st.dispatch_pending = True
            st.loop.call_soon(self._dispatch, st)
        return req

    def _enqueue(
        self,
        st: _AreaSlot,
        direction: Direction,
        slot: int,
        n: int,
        buffers: Sequence[Any],
        priority: Priority,
        memalloc: bool,
    ) -> IORequest:
        loop = st.loop
        if loop is None:
            loop = st.loop = asyncio.get_running_loop()
        self._seq += 1
        req = IORequest(
            st,
            direction,
            slot,
            n,
            buffers,
            priority,
            memalloc,
            loop,
            self._seq,
            time.perf_counter_ns(),
        )
        queue = st.queue
        queue.push(req)
        if priority is Priority.DEMAND:
            self._anticipate(st)
        stats = st.stats
        stats.submitted += 1
        pending = queue.pending
        stats.pending = pending
        stats.peak_pending = max(stats.peak_pending, pending)
        if not st.dispatch_pending:
            st.dispatch_pending = True
            loop.call_soon(self._dispatch, st)
        return req

    async def wait(self, req: IORequest) -> None:
        """Await ``req``; if cancelled, dequeue it or let its in-flight batch settle first."""
        try:
            await req
        except asyncio.CancelledError:
            st: _AreaSlot = req.owner
            if req.state is RequestState.PENDING:
                st.queue.remove(req)
                st.stats.cancelled += 1
                st.stats.pending = st.queue.pending
                self._maybe_idle(st)
            elif req.state is RequestState.INFLIGHT and req.batch is not None:
                await self._settle(req.batch)
            raise

    async def _issue(
        self,
        area: SwapArea,
        direction: Direction,
        slot: int,
        buffers: Sequence[Any],
        count: int | None,
        priority: Priority | None,
        memalloc: bool | None,
    ) -> None:
        """Issue directly in the caller's task when no request of this class or a more
        urgent one is queued and a queue slot is free (``blk_mq_try_issue_directly``);
        otherwise queue and wait.

        A directly issued call runs in the caller's task, so cancelling the caller cancels
        the backend call itself (backends must not touch the buffers after their call was
        cancelled); a queued request that is already in flight is left to settle instead.
        """
        # buffers are checked by the area itself on the direct path, and here only before a
        # request joins the queue (where a bad buffer would fail a whole merged batch)
        st, n, prio, flag = self._prepare(
            area, direction, slot, buffers, count, priority, memalloc, validate=False
        )
        stats = st.stats
        urgent = prio <= Priority.DEMAND
        if prio is Priority.DEMAND:
            self._anticipate(st)
        if (
            st.queue.pending_at_or_above(prio)
            or stats.inflight >= (st.depth if urgent else st.background_limit)
            or (not urgent and time.perf_counter_ns() < st.hold_until_ns)
            or (flag and stats.inflight_memalloc >= st.memalloc_limit)
        ):
            if direction is not Direction.DISCARD:
                _check_buffers(area, direction, buffers, st.page_size)
            await self.wait(self._enqueue(st, direction, slot, n, buffers, prio, flag))
            return
        start = time.perf_counter_ns()
        stats.submitted += 1
        stats.batches += 1
        stats.inflight += 1
        stats.peak_inflight = max(stats.peak_inflight, stats.inflight)
        if flag:
            stats.inflight_memalloc += 1
        error: BaseException | None = None
        try:
            if flag == in_memalloc():
                await self._call(st, direction, slot, buffers, n)
            else:
                with memalloc_context(flag):
                    await self._call(st, direction, slot, buffers, n)
        except BaseException as exc:
            error = exc
            raise
        finally:
            stats.inflight -= 1
            if flag:
                stats.inflight_memalloc -= 1
            stats.latency[prio].record(time.perf_counter_ns() - start)
            if prio is Priority.DEMAND:
                self._anticipate(st)
            if error is None:
                stats.pages[direction] += n
            else:
                stats.errors += 1
            if st.queue.pending:
                self._kick(st)
            if st.idle_waiters:
                self._maybe_idle(st)

    async def _call(
        self, st: _AreaSlot, direction: Direction, slot: int, buffers: Sequence[Any], n: int
    ) -> None:
        """One bounded call of the area; a backend that overruns becomes SwapTimeoutError.

        The deadline is enforced by one shared watchdog timer rather than a timer per call
        (``asyncio.timeout`` per page would cost more than the memory backend's copy).
        """
        area = st.area
        timeout = self.request_timeout
        if timeout is None:
            await _dispatch_call(area, direction, slot, buffers, n)
            return
        task = asyncio.current_task()
        assert task is not None
        call = _Call(task, time.monotonic() + timeout, task.cancelling())
        self._calls.add(call)
        if self._watchdog is None:
            self._arm_watchdog()
        try:
            if direction is Direction.SWAP_OUT:  # inlined _dispatch_call: one frame less
                await area.swap_out(slot, buffers)
            elif direction is Direction.SWAP_IN:
                await area.swap_in(slot, buffers)
            else:
                await area.discard(slot, n)
        except asyncio.CancelledError:
            if call.expired and task.uncancel() <= call.cancelling:
                st.stats.timeouts += 1
                raise SwapTimeoutError(
                    f"{direction.value} of slots {slot}..{slot + n - 1} on {area.location} "
                    f"did not complete within {timeout:g} s"
                ) from None
            raise
        finally:
            self._calls.discard(call)

    def _arm_watchdog(self) -> None:
        assert self.request_timeout is not None
        interval = min(max(self.request_timeout / 4, 0.001), 1.0)
        self._watchdog = asyncio.get_running_loop().call_later(interval, self._watch)

    def _watch(self) -> None:
        self._watchdog = None
        now = time.monotonic()
        for call in list(self._calls):
            if not call.expired and now >= call.deadline:
                call.expired = True
                call.task.cancel()
        if self._calls:
            self._arm_watchdog()

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
    def _dispatch(self, st: _AreaSlot) -> None:
        st.dispatch_pending = False
        queue = st.queue
        stats = st.stats
        if not queue.pending:
            return
        loop = asyncio.get_running_loop()
        now = time.perf_counter_ns()
        held = now < st.hold_until_ns
        while queue.pending and stats.inflight < st.depth:
            lowest = (
                Priority.DEMAND
                if held or stats.inflight >= st.background_limit
                else Priority.BACKGROUND
            )
            head = queue.pick(
                now,
                memalloc_allowed=stats.inflight_memalloc < st.memalloc_limit,
                lowest_class=lowest,
            )
            if head is None:
                break
            members = queue.take_merged(head)
            batch = Batch(members, now)
            for req in members:
                req.batch = batch
            stats.merged += len(members) - 1
            stats.batches += 1
            stats.inflight += 1
            stats.peak_inflight = max(stats.peak_inflight, stats.inflight)
            if batch.memalloc:
                stats.inflight_memalloc += 1
            # the task inherits the memalloc flag of the batch, not of whoever kicked us
            with memalloc_context(batch.memalloc):
                task = loop.create_task(self._run(st, batch))
            st.tasks[task] = batch
            task.add_done_callback(st.forget_task)
        stats.pending = queue.pending
        if held and queue.pending and st.hold_timer is None:
            st.hold_timer = loop.call_later((st.hold_until_ns - now) / 1e9, self._hold_expired, st)

    def _anticipate(self, st: _AreaSlot) -> None:
        """A demand request was seen: hold background dispatch for ``anticipation``."""
        if self._anticipation_ns:
            st.hold_until_ns = time.perf_counter_ns() + self._anticipation_ns

    def _hold_expired(self, st: _AreaSlot) -> None:
        st.hold_timer = None
        if time.perf_counter_ns() < st.hold_until_ns and not self._closed:
            # extended by later demand requests: wait for the new end
            st.hold_timer = asyncio.get_running_loop().call_later(
                (st.hold_until_ns - time.perf_counter_ns()) / 1e9, self._hold_expired, st
            )
            return
        self._kick(st)

    def _kick(self, st: _AreaSlot) -> None:
        if st.queue.pending and not st.dispatch_pending and not self._closed:
            st.dispatch_pending = True
            asyncio.get_running_loop().call_soon(self._dispatch, st)

    async def _run(self, st: _AreaSlot, batch: Batch) -> None:
        error: BaseException | None = None
        cancelled = False
        try:
            buffers = batch.page_buffers() if batch.direction is not Direction.DISCARD else ()
            await self._call(st, batch.direction, batch.slot, buffers, batch.count)
        except asyncio.CancelledError:
            cancelled = True
            error = SchedulerClosedError(
                f"{batch.direction.value} of slots {batch.slot}..{batch.slot + batch.count - 1}"
                f" on {st.area.location} was cancelled by scheduler shutdown"
            )
        except Exception as exc:
            error = exc
        self._complete(st, batch, error)
        if cancelled:
            raise asyncio.CancelledError

    def _complete(self, st: _AreaSlot, batch: Batch, error: BaseException | None) -> None:
        stats = st.stats
        now = time.perf_counter_ns()
        pages = 0
        done = RequestState.DONE
        latency = stats.latency
        hist = None
        hist_priority = None
        for req in batch.requests:
            req.state = done
            pages += req.count
            if req.priority is not hist_priority:
                hist_priority = req.priority
                hist = latency[hist_priority]
                if hist_priority is Priority.DEMAND:
                    self._anticipate(st)
            assert hist is not None
            hist.record(now - req.submitted_ns)
            if req._future is None:  # nobody waits yet: record the outcome, no future
                req._settled = True
                req._error = error
            else:
                req.settle(error)
        if error is None:
            stats.pages[batch.direction] += pages
        else:
            stats.errors += len(batch.requests)
        stats.inflight -= 1
        if batch.memalloc:
            stats.inflight_memalloc -= 1
        batch.finished = True
        if batch.done is not None and not batch.done.done():
            batch.done.set_result(None)
        self._kick(st)
        self._maybe_idle(st)

    async def _settle(self, batch: Batch) -> None:
        if batch.finished:
            return
        if batch.done is None:
            batch.done = asyncio.get_running_loop().create_future()
        await asyncio.shield(batch.done)

    def _maybe_idle(self, st: _AreaSlot) -> None:
        if st.idle_waiters and not st.queue.pending and not st.stats.inflight:
            waiters, st.idle_waiters = st.idle_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    # ------------------------------------------------------------------ lifecycle
    async def drain(self, area: SwapArea | None = None) -> None:
        """Wait until ``area`` (or every area) has nothing queued and nothing in flight."""
        slots = list(self._areas.values()) if area is None else [self._areas.get(area)]
        for st in slots:
            if st is None:
                continue
            while st.queue.pending or st.stats.inflight:
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                st.idle_waiters.append(fut)
                await fut

    def forget(self, area: SwapArea) -> None:
        """Drop the scheduler's state for an idle area (after deactivation)."""
        st = self._areas.get(area)
        if st is None:
            return
        if st.queue.pending or st.stats.inflight:
            raise UsageError(f"area {area.location} still has queued or in-flight requests")
        del self._areas[area]

    async def aclose(self) -> None:
        """Fail queued requests, cancel in-flight ones, and refuse new submissions.

        On return every request this scheduler accepted is settled: queued ones and in-flight
        ones fail with :class:`SchedulerClosedError`, including batches whose task was created
        but never got to run (cancelling such a task skips its body, so nothing else would
        settle their requests and their waiters would wait forever).  Calls issued directly
        in a caller's task (:meth:`swap_out` and friends on an idle queue) belong to that
        task and are not cancelled.
        """
        self._closed = True
        tasks: list[tuple[_AreaSlot, asyncio.Task[None], Batch]] = []
        for st in self._areas.values():
            for req in st.queue.drain():
                req.settle(
                    SchedulerClosedError(
                        f"{req.direction.value} of slot {req.slot} on {st.area.location} "
                        "was still queued when the scheduler closed"
                    )
                )
            st.stats.pending = 0
            if st.hold_timer is not None:
                st.hold_timer.cancel()
                st.hold_timer = None
            tasks.extend((st, task, batch) for task, batch in st.tasks.items())
            self._maybe_idle(st)
        for _, task, _ in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*(task for _, task, _ in tasks), return_exceptions=True)
        for st, _, batch in tasks:
            if not batch.finished:  # cancelled before its first step: _run never ran
                self._complete(
                    st,
                    batch,
                    SchedulerClosedError(
                        f"{batch.direction.value} of slots {batch.slot}.."
                        f"{batch.slot + batch.count - 1} on {st.area.location} was cancelled "
                        "by scheduler shutdown before it started"
                    ),
                )
        if self._watchdog is not None and not self._calls:
            self._watchdog.cancel()
            self._watchdog = None

    async def __aenter__(self) -> IOScheduler:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ inspection
    @property
    def closed(self) -> bool:
        """True after :meth:`aclose`."""
        return self._closed

    def stats(self, area: SwapArea) -> AreaStatsSnapshot:
        """Counters and latency summaries for ``area``."""
        st = self._areas.get(area)
        if st is None:
            return AreaStats().snapshot()
        return st.stats.snapshot()

    def latency(self, area: SwapArea, priority: Priority) -> LatencyHistogram | None:
        """The live latency histogram of ``priority`` requests on ``area`` (or None)."""
        st = self._areas.get(area)
        return None if st is None else st.stats.latency[priority]


class _Call:
    """An area call in flight, watched for its deadline."""

    __slots__ = ("cancelling", "deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float, cancelling: int) -> None:
        self.task = task
        self.deadline = deadline
        self.cancelling = cancelling
        self.expired = False


async def _dispatch_call(
    area: SwapArea, direction: Direction, slot: int, buffers: Sequence[Any], n: int
) -> None:
    if direction is Direction.SWAP_OUT:
        await area.swap_out(slot, buffers)
    elif direction is Direction.SWAP_IN:
        await area.swap_in(slot, buffers)
    else:
        await area.discard(slot, n)


_DEFAULT_PRIORITY = {
    Direction.SWAP_OUT: Priority.RECLAIM,
    Direction.SWAP_IN: Priority.DEMAND,
    Direction.DISCARD: Priority.BACKGROUND,
}


def _check_buffers(area: SwapArea, direction: Direction, buffers: Sequence[Any], size: int) -> None:
    writable = direction is Direction.SWAP_IN
    for buf in buffers:
        kind = type(buf)
        if (kind is bytes and not writable) or kind is bytearray:
            if len(buf) == size:
                continue
        elif kind is memoryview:
            if buf.nbytes == size and not (writable and buf.readonly):
                continue
        else:
            view = memoryview(buf)
            if view.nbytes == size and not (writable and view.readonly):
                continue
        view = memoryview(buf)
        if view.nbytes != size:
            raise PageSizeError(
                f"{direction.value} on {area.location}: buffer of {view.nbytes} bytes, "
                f"expected {size}"
            )
        raise PageSizeError(
            f"swap_in on {area.location}: buffers must be writable, got a read-only one"
        )
