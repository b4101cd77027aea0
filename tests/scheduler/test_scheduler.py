"""IOScheduler: merging, priorities, depth, memalloc, errors, timeouts, cancellation."""

from __future__ import annotations

import array
import asyncio
from collections.abc import Sequence

import pytest

import swapio
from swapio import CreateRequest, PluginHost
from swapio.area import Capabilities, PageBuffer, SwapArea
from swapio.errors import (
    AreaInactiveError,
    BackendIOError,
    CapabilityError,
    MemoryPressureError,
    PageSizeError,
    ReadOnlyAreaError,
    SchedulerClosedError,
    SlotRangeError,
    SwapTimeoutError,
    UsageError,
)
from swapio.memalloc import in_memalloc, memalloc
from swapio.pool import PagePool
from swapio.scheduler import Direction, IOScheduler, Priority
from tests.scheduler.fakes import ControlledBackend, activate, page

OUT = Direction.SWAP_OUT
IN = Direction.SWAP_IN


async def ticks(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_adjacent_submissions_in_one_tick_merge_into_one_call() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    sched = IOScheduler()
    reqs = [sched.submit(area, OUT, slot, [page(slot)]) for slot in range(8)]
    await asyncio.gather(*(r.future for r in reqs))
    assert [(c.op, c.slot, c.count) for c in backend.calls] == [("out", 0, 8)]
    assert all(backend.store[s] == page(s) for s in range(8))
    assert sched.stats(area).merged == 7


async def test_front_merge_keeps_slot_order() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    sched = IOScheduler()
    reqs = [sched.submit(area, OUT, slot, [page(slot)]) for slot in (5, 4, 6, 3)]
    await asyncio.gather(*(r.future for r in reqs))
    assert [(c.slot, c.count) for c in backend.calls] == [(3, 4)]
    assert [backend.store[s] for s in range(3, 7)] == [page(s) for s in range(3, 7)]


async def test_merging_stops_at_max_pages_per_request() -> None:
    backend = ControlledBackend(capabilities=Capabilities(max_pages_per_request=4))
    area = await activate(backend)
    sched = IOScheduler()
    reqs = [sched.submit(area, OUT, slot, [page(slot)]) for slot in range(10)]
    await asyncio.gather(*(r.future for r in reqs))
    assert sorted(c.count for c in backend.calls) == [2, 4, 4]
    assert all(backend.store[s] == page(s) for s in range(10))


async def test_no_merge_across_directions_or_gaps() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    sched = IOScheduler()
    views = [memoryview(bytearray(4096)) for _ in range(2)]
    reqs = [
        sched.submit(area, OUT, 0, [page(0)]),
        sched.submit(area, IN, 1, [views[0]]),
        sched.submit(area, OUT, 3, [page(3)]),
        sched.submit(area, IN, 4, [views[1]]),
    ]
    await asyncio.gather(*(r.future for r in reqs))
    assert sorted((c.op, c.slot, c.count) for c in backend.calls) == [
        ("in", 1, 1),
        ("in", 4, 1),
        ("out", 0, 1),
        ("out", 3, 1),
    ]


async def test_priority_classes_dispatch_most_urgent_first() -> None:
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=1))
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler(aging_interval=3600)
    blocker = sched.submit(area, OUT, 100, [page(0)], priority=Priority.BACKGROUND)
    await asyncio.sleep(0)
    view = memoryview(bytearray(4096))
    reqs = [
        sched.submit(area, OUT, 10, [page(1)], priority=Priority.BACKGROUND),
        sched.submit(area, IN, 20, [view], priority=Priority.READAHEAD),
        sched.submit(area, IN, 30, [memoryview(bytearray(4096))], priority=Priority.DEMAND),
        sched.submit(area, OUT, 40, [page(2)], priority=Priority.RECLAIM),
    ]
    backend.gate.set()
    await asyncio.gather(blocker.future, *(r.future for r in reqs))
    assert [c.slot for c in backend.calls] == [100, 40, 30, 20, 10]


async def test_demand_read_gets_a_slot_while_background_fills_the_queue() -> None:
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=4))
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler(aging_interval=3600, background_share=0.75)  # 3 of 4 slots
    background = [
        sched.submit(area, OUT, 10 * i, [page(i)], priority=Priority.BACKGROUND) for i in range(8)
    ]
    await ticks()
    assert backend.concurrent == 3  # a quarter of the depth is kept for urgent work
    demand = sched.submit(area, IN, 999, [memoryview(bytearray(4096))])
    await ticks()
    assert backend.calls[-1].slot == 999
    backend.gate.set()
    await asyncio.gather(demand.future, *(r.future for r in background))


async def test_queue_depth_bounds_requests_in_flight() -> None:
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=2))
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler()
    reqs = [sched.submit(area, OUT, 10 * i, [page(i)]) for i in range(5)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert backend.concurrent == 2
    assert sched.stats(area).pending == 3
    backend.gate.set()
    await asyncio.gather(*(r.future for r in reqs))
    assert backend.peak_concurrent == 2
    assert sched.stats(area).peak_inflight == 2


async def test_memalloc_requests_in_flight_are_limited_to_what_the_reserve_covers() -> None:
    caps = Capabilities(queue_depth=8, reserve_pages_per_request=2, memalloc_requests=1)
    backend = ControlledBackend(capabilities=caps)
    backend.gate = asyncio.Event()
    area = await activate(backend, PagePool(256))
    sched = IOScheduler()
    reclaim = [sched.submit(area, OUT, 10 * i, [page(i)]) for i in range(3)]
    reads = [sched.submit(area, IN, 500 + 10 * i, [memoryview(bytearray(4096))]) for i in range(2)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert backend.concurrent_memalloc == 1
    assert backend.concurrent == 3  # the reads are not held back by the memalloc limit
    backend.gate.set()
    await asyncio.gather(*(r.future for r in reclaim + reads))
    assert backend.peak_concurrent_memalloc == 1


async def test_the_memalloc_cap_is_per_area_across_schedulers() -> None:
    # the reserve holds exactly memalloc_requests requests' worth of pages for the AREA: two
    # schedulers feeding one area (a pager's and a resync's) must share the cap
    caps = Capabilities(queue_depth=8, reserve_pages_per_request=2, memalloc_requests=1)
    backend = ControlledBackend(capabilities=caps)
    backend.gate = asyncio.Event()
    area = await activate(backend, PagePool(256))
    first, second = IOScheduler(), IOScheduler()
    reqs = [first.submit(area, OUT, 0, [page(0)]), second.submit(area, OUT, 10, [page(1)])]
    await ticks()
    assert backend.concurrent_memalloc == 1
    assert second.stats(area).pending + first.stats(area).pending == 1
    backend.gate.set()  # the first finishing wakes the other scheduler
    await asyncio.wait_for(asyncio.gather(*(r.future for r in reqs)), 5.0)
    assert backend.peak_concurrent_memalloc == 1
    assert sorted(c.slot for c in backend.calls) == [0, 10]


async def test_the_memalloc_cap_admits_exactly_the_declared_number() -> None:
    caps = Capabilities(queue_depth=8, reserve_pages_per_request=1, memalloc_requests=2)
    backend = ControlledBackend(capabilities=caps)
    backend.gate = asyncio.Event()
    area = await activate(backend, PagePool(256))
    scheds = [IOScheduler() for _ in range(3)]
    reqs = [s.submit(area, OUT, 10 * i, [page(i)]) for i, s in enumerate(scheds)]
    await ticks()
    assert backend.concurrent_memalloc == 2
    backend.gate.set()
    await asyncio.wait_for(asyncio.gather(*(r.future for r in reqs)), 5.0)
    assert backend.peak_concurrent_memalloc == 2


async def test_a_direct_memalloc_swap_out_waits_for_the_areas_cap() -> None:
    caps = Capabilities(queue_depth=8, reserve_pages_per_request=2, memalloc_requests=1)
    backend = ControlledBackend(capabilities=caps)
    backend.gate = asyncio.Event()
    area = await activate(backend, PagePool(256))
    other = IOScheduler()
    held = other.submit(area, OUT, 0, [page(0)])  # holds the area's one memalloc slot
    await ticks()
    writer = asyncio.create_task(IOScheduler().swap_out(area, 10, [page(1)]))
    await ticks()
    assert [c.slot for c in backend.calls] == [0]  # queued, not issued directly
    backend.gate.set()
    await asyncio.wait_for(asyncio.gather(held.future, writer), 5.0)
    assert backend.peak_concurrent_memalloc == 1


async def test_areas_without_a_reserve_need_have_no_memalloc_cap() -> None:
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=8))
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler()
    reqs = [sched.submit(area, OUT, 10 * i, [page(i)]) for i in range(3)]
    await ticks()
    assert backend.concurrent_memalloc == 3
    backend.gate.set()
    await asyncio.gather(*(r.future for r in reqs))


async def test_reclaim_swap_out_runs_in_memalloc_context_and_demand_reads_do_not() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    sched = IOScheduler()
    await sched.swap_out(area, 0, [page(1)])
    await sched.swap_in(area, 0, [memoryview(bytearray(4096))])
    await sched.swap_out(area, 1, [page(1)], priority=Priority.BACKGROUND)
    with memalloc():
        await sched.swap_in(area, 1, [memoryview(bytearray(4096))])
    assert [(c.op, c.memalloc) for c in backend.calls] == [
        ("out", True),
        ("in", False),
        ("out", False),
        ("in", True),
    ]


async def test_memalloc_follows_queued_requests_into_the_dispatch_task() -> None:
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=1))
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler()
    first = sched.submit(area, IN, 0, [memoryview(bytearray(4096))])
    await asyncio.sleep(0)
    queued = sched.submit(area, OUT, 7, [page(7)])  # RECLAIM, queued behind the read
    backend.gate.set()
    await asyncio.gather(first.future, queued.future)
    assert [(c.slot, c.memalloc) for c in backend.calls] == [(0, False), (7, True)]


async def test_swap_in_reads_back_what_swap_out_wrote_on_the_memory_backend() -> None:
    host = PluginHost()
    area = await host.activate("memory://sched-roundtrip", create=CreateRequest(pages=64))
    try:
        sched = IOScheduler()
        reqs = [sched.submit(area, OUT, s, [page(s + 1)]) for s in range(64)]
        await asyncio.gather(*(r.future for r in reqs))
        views = [memoryview(bytearray(4096)) for _ in range(64)]
        reads = [sched.submit(area, IN, s, [views[s]]) for s in range(64)]
        await asyncio.gather(*(r.future for r in reads))
        assert [bytes(v) for v in views] == [page(s + 1) for s in range(64)]
        assert sched.stats(area).batches == 2
    finally:
        await area.deactivate()
        from swapio_memory.plugin import forget

        forget("sched-roundtrip")


async def test_backend_error_reaches_every_waiter_of_a_merged_request() -> None:
    backend = ControlledBackend(reply_pages=1)
    backend.fail_out = BackendIOError("disk on fire", detail="EIO")
    pool = PagePool(64)
    area = await activate(backend, pool)
    before = pool.accounting()
    sched = IOScheduler()
    reqs = [sched.submit(area, OUT, s, [page(s)]) for s in range(4)]
    results = await asyncio.gather(*(r.future for r in reqs), return_exceptions=True)
    assert len(backend.calls) == 1
    assert all(isinstance(r, BackendIOError) and "disk on fire" in str(r) for r in results)
    assert sched.stats(area).errors == 4
    assert pool.accounting() == before


async def test_direct_issue_error_propagates_and_is_counted() -> None:
    backend = ControlledBackend()
    backend.fail_in = BackendIOError("bad sector")
    area = await activate(backend)
    sched = IOScheduler()
    with pytest.raises(BackendIOError, match="bad sector"):
        await sched.swap_in(area, 0, [memoryview(bytearray(4096))])
    assert sched.stats(area).errors == 1
    assert sched.stats(area).inflight == 0


async def test_backend_that_never_answers_times_out_for_every_waiter() -> None:
    backend = ControlledBackend(reply_pages=2)
    backend.hang = True
    pool = PagePool(64)
    area = await activate(backend, pool)
    before = pool.accounting()
    sched = IOScheduler(request_timeout=0.05)
    reqs = [sched.submit(area, OUT, s, [page(s)]) for s in range(3)]
    results = await asyncio.gather(*(r.future for r in reqs), return_exceptions=True)
    assert all(isinstance(r, SwapTimeoutError) for r in results)
    assert "did not complete within 0.05 s" in str(results[0])
    with pytest.raises(SwapTimeoutError, match=r"swap_in of slots 9\.\.9"):
        await sched.swap_in(area, 9, [memoryview(bytearray(4096))])
    assert sched.stats(area).timeouts == 2
    assert pool.accounting() == before
    assert area.inflight == 0


async def test_cancelling_a_queued_request_removes_it() -> None:
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=1), reply_pages=1)
    backend.gate = asyncio.Event()
    pool = PagePool(64)
    area = await activate(backend, pool)
    before = pool.accounting()
    sched = IOScheduler()
    first = asyncio.create_task(sched.swap_out(area, 0, [page(0)]))
    await asyncio.sleep(0)
    second = asyncio.create_task(sched.swap_out(area, 5, [page(5)]))
    await asyncio.sleep(0)
    assert sched.stats(area).pending == 1
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    backend.gate.set()
    await first
    await sched.drain(area)
    assert [c.slot for c in backend.calls] == [0]
    assert 5 not in backend.store
    assert sched.stats(area).cancelled == 1
    assert pool.accounting() == before


async def test_cancelling_an_in_flight_queued_waiter_waits_for_the_io_to_settle() -> None:
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=2))
    backend.gate = asyncio.Event()
    backend.store[9] = page(9)
    area = await activate(backend)
    sched = IOScheduler()
    view = memoryview(bytearray(4096))
    first = sched.submit(area, IN, 0, [memoryview(bytearray(4096))])
    reader = asyncio.create_task(sched.wait(sched.submit(area, IN, 9, [view])))
    await ticks()
    assert backend.calls[-1].slot == 9  # in flight, blocked on the gate
    reader.cancel()
    await asyncio.sleep(0.01)
    assert not reader.done()  # it cannot return while the backend may still fill the view
    backend.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await first
    assert bytes(view) == page(9)


async def test_demand_read_is_issued_directly_past_queued_background_work() -> None:
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=4))
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler(background_share=0.25)
    background = [
        sched.submit(area, OUT, 10 * i, [page(i)], priority=Priority.BACKGROUND) for i in range(6)
    ]
    await ticks()
    assert backend.concurrent == 1
    backend.store[999] = page(99)
    view = memoryview(bytearray(4096))
    backend.gate.set()
    await sched.swap_in(area, 999, [view])  # no queued request is more urgent
    assert bytes(view) == page(99)
    assert sched.stats(area).pending > 0  # background work still queued behind it
    await asyncio.gather(*(r.future for r in background))


class TaskRecordingBackend(ControlledBackend):
    """Records the task each swap-in runs in."""

    tasks: list[asyncio.Task[object] | None]

    @swapio.hookimpl
    async def swap_in(self, area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
        self.tasks.append(asyncio.current_task())
        await super().swap_in(area, slot, pages)


async def test_a_read_on_an_idle_area_runs_in_the_callers_task() -> None:
    backend = TaskRecordingBackend()
    backend.tasks = []
    area = await activate(backend)
    sched = IOScheduler()
    await sched.swap_in(area, 0, [memoryview(bytearray(4096))])
    assert backend.tasks == [asyncio.current_task()]  # issued directly, no dispatch task


async def test_a_read_behind_queued_demand_work_is_queued_not_issued_directly() -> None:
    backend = TaskRecordingBackend(capabilities=Capabilities(queue_depth=1))
    backend.tasks = []
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler()
    first = sched.submit(area, IN, 0, [memoryview(bytearray(4096))])
    await ticks()
    reader = asyncio.create_task(sched.swap_in(area, 5, [memoryview(bytearray(4096))]))
    await ticks()
    assert len(backend.tasks) == 1  # the depth is used: the read waits in the queue
    backend.gate.set()
    await asyncio.gather(first.future, reader)
    assert reader not in backend.tasks  # it ran in a dispatch task, not the caller's


async def test_cancelling_a_direct_swap_out_cancels_the_backend_call() -> None:
    backend = ControlledBackend(reply_pages=1)
    backend.gate = asyncio.Event()
    pool = PagePool(64)
    area = await activate(backend, pool)
    before = pool.accounting()
    sched = IOScheduler()
    writer = asyncio.create_task(sched.swap_out(area, 3, [page(3)]))
    await ticks()
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    assert 3 not in backend.store
    assert sched.stats(area).inflight == 0
    assert pool.accounting() == before


async def test_requests_on_an_inactive_area_are_refused() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    await area.deactivate()
    with pytest.raises(AreaInactiveError, match="inactive"):
        await IOScheduler().swap_out(area, 0, [page(0)])


@pytest.mark.parametrize("size", [4095, 4097, 0])
async def test_buffers_of_the_wrong_size_are_refused(size: int) -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    with pytest.raises(PageSizeError, match=f"buffer of {size} bytes, expected 4096"):
        IOScheduler().submit(area, OUT, 0, [bytes(size)])
    assert backend.calls == []


async def test_read_only_swap_in_buffer_is_refused() -> None:
    area = await activate(ControlledBackend())
    with pytest.raises(PageSizeError, match="writable"):
        await IOScheduler().swap_in(area, 0, [memoryview(bytes(4096))])


@pytest.mark.parametrize(
    ("direction", "buffer", "message"),
    [
        (OUT, "not a page", "str is not a bytes-like page"),
        (IN, bytearray(4096), "must be writable memoryviews, got bytearray"),
    ],
)
async def test_buffers_of_the_wrong_kind_are_refused_in_one_line(
    direction: Direction, buffer: object, message: str
) -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    with pytest.raises(PageSizeError, match=message):
        IOScheduler().submit(area, direction, 0, [buffer])
    assert backend.calls == []


async def test_any_bytes_like_page_of_the_right_size_is_swapped_out() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    await IOScheduler().swap_out(area, 0, [array.array("B", page(7))])  # type: ignore[list-item]
    assert backend.store[0] == page(7)


async def test_out_of_range_slots_are_refused() -> None:
    area = await activate(ControlledBackend(pages=16))
    with pytest.raises(SlotRangeError, match=r"slots 15\.\.16 out of range"):
        IOScheduler().submit(area, OUT, 15, [page(0), page(1)])


async def test_empty_request_is_refused() -> None:
    area = await activate(ControlledBackend())
    with pytest.raises(UsageError, match="at least one page"):
        IOScheduler().submit(area, OUT, 0, [])


async def test_close_fails_queued_and_cancels_in_flight_requests() -> None:
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=1), reply_pages=1)
    backend.gate = asyncio.Event()
    pool = PagePool(64)
    area = await activate(backend, pool)
    before = pool.accounting()
    sched = IOScheduler()
    inflight = sched.submit(area, OUT, 0, [page(0)])
    await asyncio.sleep(0)
    queued = sched.submit(area, OUT, 9, [page(9)])
    await asyncio.sleep(0)
    await sched.aclose()
    with pytest.raises(SchedulerClosedError, match="cancelled by scheduler shutdown"):
        await inflight
    with pytest.raises(SchedulerClosedError, match="still queued"):
        await queued
    with pytest.raises(SchedulerClosedError, match="closed"):
        sched.submit(area, OUT, 0, [page(0)])
    assert pool.accounting() == before


async def test_close_settles_batches_dispatched_but_not_yet_started() -> None:
    # one tick after submit, the dispatcher has made the batch tasks but none has run yet:
    # cancelling them then must still settle their requests, or their waiters hang forever
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=4), reply_pages=1)
    pool = PagePool(64)
    area = await activate(backend, pool)
    before = pool.accounting()
    sched = IOScheduler()
    reqs = [sched.submit(area, OUT, slot, [page(slot)]) for slot in (0, 2, 4, 6, 8, 10)]
    await asyncio.sleep(0)
    assert sched.stats(area).inflight == 4
    assert sched.stats(area).pending == 2
    await sched.aclose()
    assert all(r.future.done() for r in reqs)
    for req in reqs:
        with pytest.raises(SchedulerClosedError):
            await req
    assert backend.calls == []
    stats = sched.stats(area)
    assert (stats.inflight, stats.pending, stats.inflight_memalloc) == (0, 0, 0)
    await sched.drain()  # nothing left: returns at once
    assert pool.accounting() == before


async def test_close_settles_requests_whose_waiters_hold_only_the_future() -> None:
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=1))
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler()
    reqs = [sched.submit(area, OUT, slot, [page(slot)]) for slot in (0, 2, 4)]
    waiters = [asyncio.ensure_future(asyncio.wait([r.future])) for r in reqs]
    await ticks()
    await sched.aclose()
    await asyncio.gather(*waiters)
    assert all(isinstance(r.future.exception(), SchedulerClosedError) for r in reqs)


async def test_discard_goes_through_the_queue() -> None:
    backend = ControlledBackend(capabilities=Capabilities(discard=True))
    area = await activate(backend)
    sched = IOScheduler()
    await sched.swap_out(area, 3, [page(3)])
    await sched.discard(area, 3, 1)
    assert 3 not in backend.store
    assert sched.stats(area).pages_discarded == 1


async def test_drain_waits_for_queued_and_in_flight_work() -> None:
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=1))
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler()
    reqs = [sched.submit(area, OUT, 10 * i, [page(i)]) for i in range(3)]
    drained = asyncio.create_task(sched.drain(area))
    await asyncio.sleep(0.01)
    assert not drained.done()
    backend.gate.set()
    await drained
    assert all(r.done() for r in reqs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"aging_interval": 0}, "aging_interval"),
        ({"request_timeout": -1}, "request_timeout"),
        ({"background_share": 0}, "background_share"),
    ],
)
def test_bad_scheduler_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        IOScheduler(**kwargs)


class SpawningBackend(ControlledBackend):
    """Does its work in a task it spawns, as a network client's reply handler would."""

    seen: list[bool]

    @swapio.hookimpl
    async def swap_out(self, area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
        async def worker() -> None:
            self.seen.append(in_memalloc())
            with await area.pool.alloc(2 * 4096) as reply:
                self.seen.append(reply.pfmemalloc)

        await asyncio.create_task(worker())


async def test_memalloc_follows_the_request_into_tasks_the_backend_spawns() -> None:
    backend = SpawningBackend()
    backend.seen = []
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    area = await activate(backend, pool)
    hog = [b for b in (pool.try_alloc(4096) for _ in range(64)) if b is not None]
    assert pool.free_pages == pool.low_pages
    with memalloc():
        hog += [b for b in (pool.try_alloc(4096) for _ in range(2)) if b is not None]
    assert pool.free_pages == pool.min_pages  # only the reserve is left
    await IOScheduler().swap_out(area, 0, [page(0)])
    assert backend.seen == [True, True]  # memalloc in the spawned task, and it used the reserve
    for b in hog:
        b.release()
    assert pool.used_pages == 0


async def test_activation_refused_when_the_budget_cannot_hold_the_reserve() -> None:
    caps = Capabilities(reserve_pages_per_request=40, memalloc_requests=2)
    pool = PagePool(64)
    before = pool.accounting()
    with pytest.raises(MemoryPressureError, match="cannot hold a reserve"):
        await activate(ControlledBackend(capabilities=caps), pool)
    assert pool.accounting() == before


async def test_anticipation_holds_background_after_a_demand_read() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    sched = IOScheduler(anticipation=0.5, aging_interval=3600)  # long: no flake under load
    await sched.swap_in(area, 0, [memoryview(bytearray(4096))])
    background = sched.submit(area, OUT, 10, [page(1)], priority=Priority.BACKGROUND)
    await ticks()
    assert not background.done()  # held: a demand read was just served
    await asyncio.wait_for(background.future, 5.0)  # released when the hold expires
    assert [c.op for c in backend.calls] == ["in", "out"]


async def test_aged_background_work_is_not_held() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    sched = IOScheduler(anticipation=3600, aging_interval=0.001)
    await sched.swap_in(area, 0, [memoryview(bytearray(4096))])
    background = sched.submit(area, OUT, 10, [page(1)], priority=Priority.BACKGROUND)
    await asyncio.sleep(0.01)  # ages past DEMAND
    await sched.swap_in(area, 1, [memoryview(bytearray(4096))])  # kicks a dispatch
    await asyncio.wait_for(background.future, 1.0)


async def test_without_anticipation_background_goes_while_a_demand_read_is_in_flight() -> None:
    # the demand read is still in flight (gated) when the background write is queued in
    # the same tick: any hold at all — even the 2 ms default — would keep it queued
    backend = ControlledBackend()
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler(anticipation=0, aging_interval=3600)
    demand = sched.submit(area, IN, 0, [memoryview(bytearray(4096))])
    background = sched.submit(area, OUT, 10, [page(1)], priority=Priority.BACKGROUND)
    await ticks()
    assert [(c.op, c.slot) for c in backend.calls] == [("in", 0), ("out", 10)]
    backend.gate.set()
    await asyncio.gather(demand.future, background.future)


async def test_with_anticipation_the_same_background_write_is_held() -> None:
    # the control of the test above: same sequence, default anticipation
    backend = ControlledBackend()
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler(anticipation=0.5, aging_interval=3600)
    demand = sched.submit(area, IN, 0, [memoryview(bytearray(4096))])
    background = sched.submit(area, OUT, 10, [page(1)], priority=Priority.BACKGROUND)
    await ticks()
    assert [(c.op, c.slot) for c in backend.calls] == [("in", 0)]
    backend.gate.set()
    await asyncio.gather(demand.future, background.future)


async def test_a_demand_swap_out_to_a_known_area_starts_anticipation() -> None:
    # submit() once had a fast path for swap-outs to an area it already knew that skipped
    # anticipation; every request now takes one path
    backend = ControlledBackend()
    area = await activate(backend)
    sched = IOScheduler(anticipation=0.5, aging_interval=3600)
    await sched.wait(sched.submit(area, OUT, 0, [page(0)]))  # RECLAIM: the area is now known
    backend.gate = asyncio.Event()
    demand = sched.submit(area, OUT, 1, [page(1)], priority=Priority.DEMAND)
    background = sched.submit(area, OUT, 10, [page(2)], priority=Priority.BACKGROUND)
    await ticks()
    assert [c.slot for c in backend.calls] == [0, 1]  # background held while demand runs
    backend.gate.set()
    await asyncio.wait_for(asyncio.gather(demand.future, background.future), 5.0)


@pytest.mark.parametrize("timeout", [30.0, None])
async def test_each_request_is_validated_once_whether_queued_or_issued_directly(
    monkeypatch: pytest.MonkeyPatch, timeout: float | None
) -> None:
    from swapio.scheduler import admission, scheduler

    checks: list[int] = []
    area_checks: list[int] = []
    real_check = admission.check_request
    real_begin = SwapArea._begin

    def counting_check(*args: object, **kwargs: object) -> int:
        checks.append(1)
        return real_check(*args, **kwargs)  # type: ignore[arg-type]

    def counting_begin(self: SwapArea, slot: int, count: int) -> object:
        area_checks.append(1)
        return real_begin(self, slot, count)

    monkeypatch.setattr(scheduler, "check_request", counting_check)
    monkeypatch.setattr(SwapArea, "_begin", counting_begin)
    backend = ControlledBackend()
    area = await activate(backend)
    sched = IOScheduler(request_timeout=timeout)
    await asyncio.gather(*(sched.submit(area, OUT, s, [page(s)]).future for s in range(8)))
    await sched.swap_in(area, 3, [memoryview(bytearray(4096))])  # issued directly
    assert [(c.op, c.slot, c.count) for c in backend.calls] == [("out", 0, 8), ("in", 3, 1)]
    assert len(checks) == 9  # one per request
    assert area_checks == []  # the area does not check them again


async def test_a_bad_request_fails_alone_and_never_reaches_a_merged_batch() -> None:
    backend = ControlledBackend(pages=16)
    area = await activate(backend)
    sched = IOScheduler()
    good = [sched.submit(area, OUT, s, [page(s)]) for s in (0, 1)]
    with pytest.raises(PageSizeError):
        sched.submit(area, OUT, 2, [bytes(100)])
    good.append(sched.submit(area, OUT, 2, [page(2)]))
    await asyncio.gather(*(r.future for r in good))
    assert [(c.slot, c.count) for c in backend.calls] == [(0, 3)]


async def test_read_only_area_refuses_swap_out_at_submission() -> None:
    backend = ControlledBackend(capabilities=Capabilities(read_only=True))
    area = await activate(backend)
    sched = IOScheduler()
    with pytest.raises(ReadOnlyAreaError, match="read-only; swap_out refused"):
        sched.submit(area, OUT, 0, [page(0)])
    with pytest.raises(ReadOnlyAreaError, match="read-only; swap_out refused"):
        await sched.swap_out(area, 0, [page(0)])
    assert backend.calls == []


async def test_discard_on_an_area_without_discard_is_refused_at_submission() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    with pytest.raises(CapabilityError, match="does not support discard"):
        await IOScheduler().discard(area, 0, 4)
    assert backend.calls == []


async def test_a_queued_request_fails_if_its_area_is_deactivated_before_the_call() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    sched = IOScheduler()
    req = sched.submit(area, OUT, 0, [page(0)])
    deactivating = asyncio.create_task(area.deactivate())  # before the end of the tick
    with pytest.raises(AreaInactiveError, match="no new I/O"):
        await req
    await deactivating
    assert backend.calls == []


@pytest.mark.parametrize(
    ("buffers", "slot", "error", "message"),
    [
        ([bytes(4095)], 0, PageSizeError, "buffer of 4095 bytes"),
        ([bytearray(4097)], 0, PageSizeError, "buffer of 4097 bytes"),
        ([bytes(4096)], 1024, SlotRangeError, "out of range"),
        ([], 0, UsageError, "at least one page"),
    ],
)
async def test_requests_to_a_known_area_are_validated_like_the_first(
    buffers: list[bytes], slot: int, error: type[Exception], message: str
) -> None:
    backend = ControlledBackend(pages=1024)
    area = await activate(backend)
    sched = IOScheduler()
    await sched.wait(sched.submit(area, OUT, 0, [page(0)]))  # the area is now known
    with pytest.raises(error, match=message):
        sched.submit(area, OUT, slot, buffers)
    ok = sched.submit(area, OUT, 5, [memoryview(bytearray(page(5)))])  # non-bytes buffer
    await ok
    assert backend.store[5] == page(5)


async def test_a_call_is_watched_for_its_deadline_only_once_it_suspends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from swapio.scheduler.deadline import Watchdog

    watched: list[int] = []
    real_watch = Watchdog.watch

    def counting_watch(self: Watchdog, loop: asyncio.AbstractEventLoop) -> object:
        watched.append(1)
        return real_watch(self, loop)

    monkeypatch.setattr(Watchdog, "watch", counting_watch)
    backend = ControlledBackend()
    area = await activate(backend)
    sched = IOScheduler(request_timeout=5.0)
    await sched.swap_in(area, 0, [memoryview(bytearray(4096))])  # direct
    await sched.submit(area, OUT, 1, [page(1)])  # queued
    assert watched == []  # both completed inline: nothing to watch
    assert sched.inline(area)
    backend.gate = asyncio.Event()
    reader = asyncio.create_task(sched.swap_in(area, 1, [memoryview(bytearray(4096))]))
    await ticks()
    assert watched == [1]  # it suspended: from now on the watchdog covers it
    assert not sched.inline(area)
    backend.gate.set()
    await reader
    assert sched.stats(area).inflight == 0


async def test_cancelling_a_suspended_direct_call_reaches_the_backend() -> None:
    backend = ControlledBackend()
    backend.gate = asyncio.Event()
    area = await activate(backend)
    sched = IOScheduler()
    view = memoryview(bytearray(4096))
    reader = asyncio.create_task(sched.swap_in(area, 0, [view]))
    await ticks()
    assert backend.concurrent == 1  # suspended inside the backend, in the reader's task
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert backend.concurrent == 0  # the cancellation reached the backend call
    stats = sched.stats(area)
    assert (stats.inflight, stats.errors, stats.pages_in) == (0, 1, 0)
