"""Pager: faults, eviction through swap-out, swap cache, readahead, dirty limits, faults."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

import swapio
from swapio import CreateRequest, PluginHost
from swapio.area import Capabilities, PageBuffer, SwapArea
from swapio.errors import (
    BackendIOError,
    SchedulerClosedError,
    SlotRangeError,
    SwapTimeoutError,
    UsageError,
)
from swapio.pager import Pager
from swapio.pool import PagePool
from swapio.scheduler import IOScheduler
from tests.scheduler.fakes import ControlledBackend, activate, page

PAGE = 4096


def outs(backend: ControlledBackend, slot: int | None = None) -> list[tuple[int, int]]:
    return [
        (c.slot, c.count)
        for c in backend.calls
        if c.op == "out" and (slot is None or c.slot <= slot < c.slot + c.count)
    ]


def ins(backend: ControlledBackend) -> list[tuple[int, int]]:
    return [(c.slot, c.count) for c in backend.calls if c.op == "in"]


async def test_more_pages_than_resident_budget_round_trip() -> None:
    backend = ControlledBackend(pages=256)
    pool = PagePool(128)
    area = await activate(backend, pool)
    before = pool.accounting()
    async with Pager(area, resident_pages=16, reclaim_batch=4) as pager:
        for i in range(64):
            await pager.write(i, page(i + 1))
            assert pager.resident <= 16
        for i in range(64):
            assert await pager.read(i) == page(i + 1)
        stats = pager.stats()
        assert stats.evictions > 0
        assert stats.writebacks >= 48
        assert stats.major_faults > 0
        assert stats.hits + stats.faults == stats.accesses
    assert pool.accounting() == before


async def test_round_trip_on_the_memory_backend() -> None:
    host = PluginHost()
    area = await host.activate("memory://pager-rt", create=CreateRequest(pages=512))
    try:
        async with Pager(area, resident_pages=32) as pager:
            rng = random.Random(7)
            model: dict[int, bytes] = {}
            for _ in range(1500):
                i = rng.randrange(512)
                if rng.random() < 0.5:
                    model[i] = page(rng.randrange(256))
                    await pager.write(i, model[i])
                else:
                    assert await pager.read(i) == model.get(i, bytes(PAGE))
    finally:
        await area.deactivate()
        from swapio_memory.plugin import forget

        forget("pager-rt")


async def test_never_written_pages_read_as_zeros_without_io() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    async with Pager(area, resident_pages=4) as pager:
        for i in range(20):
            assert await pager.read(i) == bytes(PAGE)
        assert backend.calls == []
        assert pager.stats().minor_faults == 20
        assert pager.stats().clean_drops == 20 - pager.resident


async def test_clean_page_with_a_valid_copy_is_dropped_without_io() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    async with Pager(area, resident_pages=4, reclaim_batch=1, readahead=0) as pager:
        await pager.write(0, page(9))
        await pager.sync()
        assert outs(backend, 0) == [(0, 1)]
        for i in range(1, 12):
            await pager.read(i)
        assert not pager.is_resident(0)
        assert outs(backend, 0) == [(0, 1)]  # evicted clean: no second write
        assert await pager.read(0) == page(9)
        assert ins(backend) == [(0, 1)]
        assert pager.stats().clean_drops >= 1


async def test_partial_write_keeps_the_rest_of_the_page() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    async with Pager(area, resident_pages=2, reclaim_batch=1) as pager:
        await pager.write(5, page(1))
        for i in range(10, 14):
            await pager.write(i, page(2))
        await pager.write(5, b"\xff\xff", offset=100)
        expected = bytearray(page(1))
        expected[100:102] = b"\xff\xff"
        assert await pager.read(5) == bytes(expected)


async def _pushed_out(backend: ControlledBackend, pager: Pager, pages: int) -> None:
    """Write pages 0..pages-1, sync them, then push them out by touching other pages."""
    for i in range(pages):
        await pager.write(i, page(i))
    await pager.sync()
    for i in range(500, 500 + pager.resident_budget):
        await pager.read(i)
    backend.calls.clear()


async def test_sequential_faults_grow_the_readahead_window_to_whole_clusters() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    async with Pager(area, resident_pages=64, reclaim_batch=16, readahead=8) as pager:
        await _pushed_out(backend, pager, 64)
        for i in range(64):
            assert await pager.read(i) == page(i)
        reads = ins(backend)
        # the window grows 1, 2, 4, then whole aligned clusters of 8 read in one request
        assert reads[-4:] == [(32, 8), (40, 8), (48, 8), (56, 8)]
        assert len(reads) < 16
        stats = pager.stats()
        assert stats.readahead_issued == 64 - len(reads)
        assert stats.readahead_hits == stats.readahead_issued  # none wasted


async def test_random_faults_issue_no_readahead() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    async with Pager(area, resident_pages=64, reclaim_batch=16, readahead=8) as pager:
        await _pushed_out(backend, pager, 256)
        for i in random.Random(3).sample(range(0, 256, 3), 40):
            assert await pager.read(i) == page(i)
        assert pager.stats().readahead_issued == 0
        assert all(count == 1 for _, count in ins(backend))


async def test_readahead_is_dropped_when_the_pool_is_below_low() -> None:
    backend = ControlledBackend()
    pool = PagePool.for_resident(64)
    area = await activate(backend, pool)
    async with Pager(area, resident_pages=64, reclaim_batch=16, readahead=8) as pager:
        await _pushed_out(backend, pager, 64)
        await pager.read(0)
        await pager.read(1)  # adjacent: the next fault would read ahead
        hog = []
        while not pool.below_low():
            hog.append(pool.try_alloc(4096, to_min=True))
        await pager.read(2)
        assert ins(backend)[-1] == (2, 1)
        assert pager.stats().readahead_issued == 0
        for buf in hog:
            assert buf is not None
            buf.release()


async def test_eviction_writes_back_in_memalloc_context_and_merges() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    async with Pager(area, resident_pages=8, reclaim_batch=8) as pager:
        for i in range(9):
            await pager.write(i, page(i))
        writes = [c for c in backend.calls if c.op == "out"]
        assert writes
        assert all(c.memalloc for c in writes)
        # the victims 0..k-1 are one contiguous run: one request, not one per page
        assert [(c.slot, c.count) for c in writes] == [(0, writes[0].count)]
        assert writes[0].count > 1


async def test_failed_swap_out_leaves_the_page_dirty_and_loses_nothing() -> None:
    backend = ControlledBackend()
    pool = PagePool(64)
    area = await activate(backend, pool)
    before = pool.accounting()
    async with Pager(area, resident_pages=4, reclaim_batch=4) as pager:
        for i in range(4):
            await pager.write(i, page(i + 1))
        backend.fail_out = BackendIOError("server said EIO")
        with pytest.raises(BackendIOError, match="EIO"):
            await pager.write(4, page(5))
        assert pager.dirty == 4
        assert pager.stats().writeback_errors == 4
        assert all(pager.is_resident(i) for i in range(4))
        backend.fail_out = None
        await pager.write(4, page(5))
        for i in range(5):
            assert await pager.read(i) == page(i + 1)
    assert pool.accounting() == before


async def test_failed_swap_in_leaves_no_frame_behind() -> None:
    backend = ControlledBackend()
    pool = PagePool(64)
    area = await activate(backend, pool)
    before = pool.accounting()
    async with Pager(area, resident_pages=2, reclaim_batch=2, readahead=0) as pager:
        await pager.write(0, page(3))
        await pager.write(1, page(4))
        await pager.write(2, page(5))
        await pager.write(3, page(6))
        assert not pager.is_resident(0)
        backend.fail_in = BackendIOError("read failed")
        with pytest.raises(BackendIOError, match="read failed"):
            await pager.read(0)
        assert not pager.is_resident(0)
        assert pager.stats().fault_errors == 1
        backend.fail_in = None
        assert await pager.read(0) == page(3)
    assert pool.accounting() == before


async def test_backend_that_never_answers_times_out_and_keeps_the_page() -> None:
    backend = ControlledBackend(reply_pages=1)
    pool = PagePool(64)
    area = await activate(backend, pool)
    before = pool.accounting()
    sched = IOScheduler(request_timeout=0.05)
    async with Pager(area, resident_pages=2, reclaim_batch=2, scheduler=sched) as pager:
        await pager.write(0, page(1))
        await pager.write(1, page(2))
        backend.hang = True
        with pytest.raises(SwapTimeoutError):
            await pager.write(2, page(3))
        assert pager.dirty == 2
        backend.hang = False
        await pager.write(2, page(3))
        assert await pager.read(0) == page(1)
    await sched.aclose()
    assert pool.accounting() == before


@pytest.mark.parametrize("ticks", [1, 2, 3, 6])
async def test_pager_close_after_scheduler_close_returns_and_balances(ticks: int) -> None:
    # writebacks queued, dispatched-but-not-started or blocked in the backend (depending on
    # how many loop ticks pass) when the shared scheduler closes: the scheduler must settle
    # them all, so closing the pager afterwards needs no timeout to return
    backend = ControlledBackend(capabilities=Capabilities(queue_depth=4), reply_pages=1)
    backend.gate = asyncio.Event()
    pool = PagePool(64)
    area = await activate(backend, pool)
    before = pool.accounting()
    sched = IOScheduler(request_timeout=None)
    pager = Pager(area, resident_pages=16, scheduler=sched)
    for i in range(0, 16, 2):  # not adjacent: one batch each, more than the queue depth
        await pager.write(i, page(i + 1))
    sync = asyncio.ensure_future(pager.sync())
    for _ in range(ticks):
        await asyncio.sleep(0)
    await sched.aclose()
    await pager.close(timeout=None)
    # every writeback failed with SchedulerClosedError; if the pager closed before sync
    # resumed, sync says the frames were discarded instead
    with pytest.raises((BackendIOError, UsageError), match="8 page|closed during sync"):
        await sync
    assert pager.resident == 0
    assert sched.stats(area).inflight == 0
    assert pool.accounting() == before


async def test_pager_close_is_bounded_when_io_never_settles() -> None:
    backend = ControlledBackend(reply_pages=1)
    pool = PagePool(64)
    area = await activate(backend, pool)
    before = pool.accounting()
    sched = IOScheduler(request_timeout=None)
    pager = Pager(area, resident_pages=8, scheduler=sched)
    await pager.write(0, page(1))
    backend.hang = True
    sync = asyncio.ensure_future(pager.sync())
    for _ in range(5):
        await asyncio.sleep(0)
    assert backend.calls  # the writeback reached the backend, which never answers
    with pytest.raises(SwapTimeoutError, match="still in flight"):
        await pager.close(timeout=0.01)
    assert pager.resident == 1  # the backend may still use the frame: not released yet
    await sched.aclose()  # settles the writeback; the frame goes back to the pool
    with pytest.raises(UsageError, match="closed during sync"):
        await sync
    await asyncio.sleep(0)
    assert pager.resident == 0
    assert pool.accounting() == before


async def test_eviction_under_pressure_dips_into_the_reserve() -> None:
    caps = Capabilities(reserve_pages_per_request=2, memalloc_requests=1)
    backend = ControlledBackend(capabilities=caps, reply_pages=2)
    pool = PagePool(40, min_pages=4, low_pages=4, high_pages=6, dirty_ratio=100)
    area = await activate(backend, pool)
    assert pool.reserve_pages == 6
    before = pool.accounting()
    async with Pager(area, resident_pages=34, reclaim_batch=4) as pager:
        for i in range(34):
            await pager.write(i, page(i))
        assert pool.free_pages == pool.min_pages
        for i in range(34, 50):
            await pager.write(i, page(i))
        assert backend.reply_dips > 0
        assert pager.stats().reserve_dips > 0
        assert pool.snapshot().peak_reserve_used_pages <= pool.reserve_pages
        for i in range(50):
            assert await pager.read(i) == page(i)
    assert pool.accounting() == before


async def test_dirty_limit_makes_writers_write_back_first() -> None:
    backend = ControlledBackend()
    pool = PagePool(110, min_pages=10, low_pages=12, high_pages=14)  # dirty limit 20
    area = await activate(backend, pool)
    async with Pager(area, resident_pages=80, throttle_dirty=True) as pager:
        for i in range(60):
            await pager.write(i, page(i))
            assert pool.dirty_pages <= pool.dirty_limit_pages
        stats = pager.stats()
        assert stats.dirty_throttles > 0
        assert stats.writebacks > 0
        assert stats.evictions == 0  # written back, not evicted: all 60 fit
        assert stats.hits + stats.faults == stats.accesses  # each access counted once
        for i in range(60):
            assert await pager.read(i) == page(i)


async def test_anonymous_pages_are_not_dirty_throttled_by_default() -> None:
    backend = ControlledBackend()
    pool = PagePool(110, min_pages=10, low_pages=12, high_pages=14)  # dirty limit 20
    area = await activate(backend, pool)
    async with Pager(area, resident_pages=80) as pager:
        for i in range(60):
            await pager.write(i, page(i))
        assert pool.dirty_pages == 60 > pool.dirty_limit_pages
        assert pager.stats().dirty_throttles == 0


async def test_concurrent_tasks_see_their_writes() -> None:
    backend = ControlledBackend(pages=256, capabilities=Capabilities(queue_depth=4))
    pool = PagePool(256)
    area = await activate(backend, pool)
    before = pool.accounting()
    async with Pager(area, resident_pages=24, reclaim_batch=8) as pager:

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            mine = range(seed * 32, seed * 32 + 32)  # each task owns its pages
            model: dict[int, bytes] = {}
            for _ in range(300):
                i = rng.choice(mine)
                if rng.random() < 0.6:
                    model[i] = page(rng.randrange(256))
                    await pager.write(i, model[i])
                else:
                    assert await pager.read(i) == model.get(i, bytes(PAGE))

        await asyncio.gather(*(worker(s) for s in range(6)))
        assert pager.resident <= 24
    assert pool.accounting() == before


async def test_sync_writes_every_dirty_page() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    async with Pager(area, resident_pages=8) as pager:
        for i in range(5):
            await pager.write(i, page(i))
        await pager.sync()
        assert pager.dirty == 0
        assert all(backend.store[i] == page(i) for i in range(5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resident_pages": 0}, "resident_pages must be >= 1"),
        ({"resident_pages": 4, "pages": 5000}, "pages must be between 1"),
        ({"resident_pages": 4, "readahead": 3}, "power of two"),
        ({"resident_pages": 4, "reclaim_batch": 0}, "reclaim_batch"),
    ],
)
async def test_bad_pager_settings_are_refused(kwargs: dict[str, int], message: str) -> None:
    area = await activate(ControlledBackend())
    with pytest.raises(UsageError, match=message):
        Pager(area, **kwargs)  # type: ignore[arg-type]


async def test_out_of_range_page_and_oversized_write_are_refused() -> None:
    area = await activate(ControlledBackend(pages=16))
    async with Pager(area, resident_pages=4) as pager:
        with pytest.raises(SlotRangeError, match="page 16 out of range"):
            await pager.read(16)
        with pytest.raises(SlotRangeError, match="page -1 out of range"):
            await pager.write(-1, b"x")
        with pytest.raises(UsageError, match="does not fit"):
            await pager.write(0, b"x" * 10, offset=PAGE - 5)


async def test_closed_pager_refuses_access() -> None:
    area = await activate(ControlledBackend())
    pager = Pager(area, resident_pages=4)
    await pager.close()
    with pytest.raises(UsageError, match="closed"):
        await pager.read(0)


async def test_io_completion_wakes_kswapd_after_it_found_every_page_busy() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    async with Pager(area, resident_pages=16, reclaim_batch=4, readahead=0) as pager:
        for i in range(32):
            await pager.write(i, page(i))
        await pager.sync()
        for i in range(100, 116):
            await pager.read(i)  # pages 0..31 are out; 16 clean zero pages are resident
        backend.gate = asyncio.Event()  # every read blocks until the gate opens
        readers = [asyncio.create_task(pager.read(i)) for i in range(16)]
        for _ in range(10):
            await asyncio.sleep(0)  # every frame now waits for its read: kswapd finds
        assert pager.resident == 16  # nothing evictable and sleeps
        runs = pager.stats().kswapd_runs
        backend.gate.set()
        await asyncio.gather(*readers)
        for _ in range(10):
            await asyncio.sleep(0)
        # the read completions woke kswapd, which freed frame slots up to its high mark
        # without any fault asking it to
        assert pager.stats().kswapd_runs > runs
        assert pager.resident < 16


async def test_an_evicted_frame_goes_straight_to_the_waiting_fault() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    async with Pager(area, resident_pages=8, reclaim_batch=4, readahead=0) as pager:
        backend.gate = asyncio.Event()  # write-outs block: the fault must wait for one
        for i in range(8):
            await pager.write(i, page(i))
        lent = area.pool.snapshot().allocations
        fault = asyncio.create_task(pager.write(8, page(8)))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not fault.done()  # every frame is dirty and its write-out is gated
        backend.gate.set()
        await fault
        # the fault got the frame of a page whose write-out finished, not a new pool page
        assert area.pool.snapshot().allocations == lent
        assert await pager.read(8) == page(8)


async def test_sync_with_every_frame_dirty_and_only_the_reserve_left_completes() -> None:
    # writing dirty pages out is what makes them reclaimable: under pressure sync's write-outs
    # run in memalloc context, else their reply buffers wait for memory only they can free
    backend = ControlledBackend(
        reply_pages=2,
        capabilities=Capabilities(reserve_pages_per_request=2, memalloc_requests=1),
    )
    pool = PagePool.for_resident(16, wait_timeout=5.0)
    area = await activate(backend, pool)
    async with Pager(area, resident_pages=16, readahead=0) as pager:
        writers = [
            asyncio.create_task(pager.write(i, page(i))) for i in range(16)
        ]  # all at once: every frame dirty before kswapd gets a turn
        await asyncio.gather(*writers)
        await pager.sync()
        assert pager.dirty == 0
        for i in range(16):
            assert backend.store[i] == page(i)


async def test_a_writeback_refused_by_a_closed_scheduler_leaves_no_page_under_writeback() -> None:
    # the runs of one writeback are marked before the first is submitted: when a submission
    # is refused, the runs after it must be released too, or close() waits for I/O that
    # will never be issued
    backend = ControlledBackend()
    area = await activate(backend)
    sched = IOScheduler()
    pager = Pager(area, resident_pages=16, scheduler=sched)
    for i in (0, 2, 4, 6):  # four runs
        await pager.write(i, page(i + 1))
    await sched.aclose()
    with pytest.raises(SchedulerClosedError):
        await pager.sync()
    assert pager.dirty == 4  # nothing was written, nothing lost
    await asyncio.wait_for(pager.close(timeout=5.0), 1.0)  # no page I/O left to wait for
    assert pager.resident == 0


async def test_a_read_of_a_page_under_writeback_is_a_hit() -> None:
    backend = ControlledBackend()
    area = await activate(backend)
    async with Pager(area, resident_pages=8) as pager:
        await pager.write(3, page(3))
        backend.gate = asyncio.Event()  # the write-out blocks in the backend
        sync = asyncio.create_task(pager.sync())
        await asyncio.sleep(0)
        before = pager.stats()
        assert await pager.read(3) == page(3)  # readable while it is written (stable page)
        after = pager.stats()
        assert (after.hits, after.faults) == (before.hits + 1, before.faults)
        assert after.hits + after.faults == after.accesses
        backend.gate.set()
        await sync


class TaskRecordingBackend(ControlledBackend):
    """Records the task every swap-out runs in."""

    out_tasks: list[asyncio.Task[object] | None]

    @swapio.hookimpl
    async def swap_out(self, area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
        self.out_tasks.append(asyncio.current_task())
        await super().swap_out(area, slot, pages)


async def test_reclaim_writeback_on_an_inline_area_runs_in_the_reclaiming_task() -> None:
    # the backend completes every call without suspending: each writeback run is one call in
    # the task that reclaims (the faulting one, or kswapd), no dispatch task per run
    backend = TaskRecordingBackend(pages=512)
    backend.out_tasks = []
    area = await activate(backend)
    rng = random.Random(3)
    async with Pager(area, resident_pages=32, readahead=0) as pager:
        for i in range(256):
            await pager.write(i, page(i))
        for _ in range(400):
            i = rng.randrange(256)
            if rng.random() < 0.5:
                await pager.write(i, page(i + 7), offset=0)
            else:
                await pager.read(i)
        assert pager.scheduler.inline(area)
        writes = pager.stats().writebacks
    assert writes > 100
    others = {t for t in backend.out_tasks if t is not asyncio.current_task()}
    assert len(others) <= 1  # at most kswapd's task besides ours


class YieldingBackend(ControlledBackend):
    """Suspends once in every swap-out, as a network round trip would."""

    outs_in_flight = 0
    peak_outs_in_flight = 0

    @swapio.hookimpl
    async def swap_out(self, area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
        self.outs_in_flight += 1
        self.peak_outs_in_flight = max(self.peak_outs_in_flight, self.outs_in_flight)
        try:
            await asyncio.sleep(0)
            await super().swap_out(area, slot, pages)
        finally:
            self.outs_in_flight -= 1


async def test_reclaim_writeback_on_an_area_whose_calls_suspend_overlaps_its_runs() -> None:
    # a backend that suspends (a network round trip) gets the runs of a reclaim pass as
    # queued requests in flight together, not one after another
    backend = YieldingBackend(pages=512)
    area = await activate(backend)
    async with Pager(area, resident_pages=16, reclaim_batch=8, readahead=0) as pager:
        for i in range(0, 64, 2):  # non-adjacent dirty pages: one run each
            await pager.write(i, page(i))
        assert pager.stats().writebacks > 0
        assert not pager.scheduler.inline(area)
        assert backend.peak_outs_in_flight > 2  # more than the two reclaiming tasks


async def test_faults_on_an_inline_area_reclaim_in_slices_not_whole_batches() -> None:
    # an access stream served inline never yields to kswapd; each fault below the low mark
    # of free frame slots reclaims the slot it took plus reclaim_batch // 8 victims, so no
    # fault writes a whole batch
    backend = ControlledBackend(pages=4096)
    area = await activate(backend)
    rng = random.Random(5)
    async with Pager(area, resident_pages=1024, reclaim_batch=32, readahead=0) as pager:
        for i in range(2048):
            await pager.write(i, page(i))
        start = len(backend.calls)
        for _ in range(3000):
            i = rng.randrange(2048)
            if rng.random() < 0.5:
                # half a page: the fault reads the page (a whole-page write would not), so
                # every fault shows as one swap-in and the writes between two are its own
                await pager.write(i, page(i + 1)[: PAGE // 2], offset=0)
            else:
                await pager.read(i)
        assert pager.stats().writebacks > 500
    written = 0
    most = 0
    for call in backend.calls[start:]:
        if call.op == "in":
            most = max(most, written)
            written = 0
        else:
            written += call.count
    assert most <= 1 + 32 // 8


async def _evicted_stored_page(pager: Pager, backend: ControlledBackend) -> None:
    """Page 0 written, then pushed out to the area by writing pages 1..16."""
    await pager.write(0, page(1))
    for i in range(1, 17):
        await pager.write(i, page(i + 1))
    assert not pager.is_resident(0)
    assert outs(backend, 0), "page 0 was not written out"
    backend.calls.clear()


async def test_a_whole_page_write_to_an_evicted_page_reads_nothing_from_the_area() -> None:
    backend = ControlledBackend(pages=64)
    area = await activate(backend, PagePool(128))
    async with Pager(area, resident_pages=8, reclaim_batch=4) as pager:
        await _evicted_stored_page(pager, backend)
        await pager.write(0, page(9))
        assert ins(backend) == []  # the old contents would all be overwritten
        assert await pager.read(0) == page(9)


async def test_a_partial_write_to_an_evicted_page_reads_the_rest_of_it_first() -> None:
    backend = ControlledBackend(pages=64)
    area = await activate(backend, PagePool(128))
    async with Pager(area, resident_pages=8, reclaim_batch=4) as pager:
        await _evicted_stored_page(pager, backend)
        await pager.write(0, b"\xee" * 16, offset=8)
        assert [slot for slot, _ in ins(backend)] == [0]
        assert await pager.read(0) == page(1)[:8] + b"\xee" * 16 + page(1)[24:]


async def test_with_dirty_throttling_a_whole_page_write_still_reads_the_page() -> None:
    """The throttle may wait between the fault and the copy: a reader then sees the page."""
    backend = ControlledBackend(pages=64)
    area = await activate(backend, PagePool(128))
    async with Pager(area, resident_pages=8, reclaim_batch=4, throttle_dirty=True) as pager:
        await _evicted_stored_page(pager, backend)
        await pager.write(0, page(9))
        assert [slot for slot, _ in ins(backend)] == [0]
        assert await pager.read(0) == page(9)
