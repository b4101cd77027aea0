"""PagePool: watermarks, kmalloc_reserve allocation, reserve accounting, throttling."""

from __future__ import annotations

import asyncio
import math

import pytest

from swapio.errors import AllocationTimeout, MemoryPressureError, PoolUsageError, UsageError
from swapio.memalloc import memalloc
from swapio.pool import PagePool, PoolBuffer, derive_watermarks

PAGE = 4096


def fill_to_low(pool: PagePool) -> list[PoolBuffer]:
    bufs = []
    while (buf := pool.try_alloc(PAGE)) is not None:
        bufs.append(buf)
    return bufs


def release_all(bufs: list[PoolBuffer]) -> None:
    for buf in bufs:
        buf.release()


def test_default_watermarks_follow_min_free_kbytes() -> None:
    # 1 GiB of 4 KiB pages: min_free_kbytes = isqrt(1048576 * 16) = 4096 kB = 1024 pages
    assert derive_watermarks(262144, PAGE) == (1024, 1286, 1548)
    # 4 MiB: isqrt(4096 * 16) = 256 kB = 64 pages; gap = max(64 // 4, 1024 * 10 // 10000, 1)
    assert derive_watermarks(1024, PAGE) == (64, 80, 96)


def test_tiny_budget_caps_min_at_an_eighth() -> None:
    # 64 pages = 256 kB: Linux's 128 kB floor would be half the budget; swapio caps at B // 8
    assert derive_watermarks(64, PAGE) == (8, 10, 12)


def test_watermarks_out_of_order_are_rejected() -> None:
    with pytest.raises(UsageError, match="min <= low <= high"):
        PagePool(100, min_pages=10, low_pages=5, high_pages=20)


@pytest.mark.parametrize("budget", [0, -1])
def test_non_positive_budget_is_rejected(budget: int) -> None:
    with pytest.raises(UsageError, match="budget_pages must be > 0"):
        PagePool(budget)


def test_low_equal_to_budget_is_rejected() -> None:
    with pytest.raises(UsageError, match="low < budget"):
        PagePool(10, min_pages=2, low_pages=10, high_pages=10)


@pytest.mark.parametrize("nbytes", [0, -5])
def test_non_positive_allocation_is_rejected(nbytes: int) -> None:
    with pytest.raises(UsageError, match="must be > 0 bytes"):
        PagePool(64).try_alloc(nbytes)


def test_allocation_larger_than_budget_fails_immediately() -> None:
    with pytest.raises(MemoryPressureError, match="can never fit"):
        PagePool(8).try_alloc(9 * PAGE)


def test_buffer_has_requested_size_and_rounds_pages_up() -> None:
    pool = PagePool(64)
    buf = pool.try_alloc(PAGE + 1)
    assert buf is not None
    assert len(buf.view) == PAGE + 1
    assert buf.pages == 2
    assert not buf.view.readonly
    assert pool.used_pages == 2
    buf.release()
    assert pool.used_pages == 0


def test_double_release_raises() -> None:
    pool = PagePool(64)
    buf = pool.try_alloc(PAGE)
    assert buf is not None
    buf.release()
    with pytest.raises(PoolUsageError, match="released twice"):
        buf.release()
    assert pool.used_pages == 0


def test_context_manager_releases() -> None:
    pool = PagePool(64)
    buf = pool.try_alloc(PAGE)
    assert buf is not None
    with buf:
        assert pool.used_pages == 1
    assert pool.used_pages == 0


def test_ordinary_allocation_stops_at_low() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    bufs = fill_to_low(pool)
    assert pool.free_pages == pool.low_pages == 10
    assert len(bufs) == 54
    release_all(bufs)


def test_memalloc_goes_to_min_unmarked_then_into_reserve_marked() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    bufs = fill_to_low(pool)
    with memalloc():
        above_min = [pool.try_alloc(PAGE) for _ in range(2)]
        reserve = [pool.try_alloc(PAGE) for _ in range(8)]
        assert pool.try_alloc(PAGE) is None
    assert [b is not None and b.pfmemalloc for b in above_min] == [False, False]
    assert [b is not None and b.pfmemalloc for b in reserve] == [True] * 8
    assert pool.reserve_used_pages == 8
    assert pool.snapshot().reserve_dips == 8
    release_all([b for b in above_min + reserve if b is not None])
    release_all(bufs)
    assert pool.snapshot().pfmemalloc_pages == 0


def test_disabled_reserve_stops_memalloc_at_min() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12, reserve_enabled=False)
    bufs = fill_to_low(pool)
    with memalloc():
        bufs += fill_to_low(pool)
    assert pool.free_pages == pool.min_pages
    assert not any(b.pfmemalloc for b in bufs)
    release_all(bufs)


def test_adjust_reserve_moves_all_watermarks() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    pool.adjust_reserve(+6)
    assert (pool.min_pages, pool.low_pages, pool.high_pages) == (14, 16, 18)
    assert pool.area_reserve_pages == 6
    pool.adjust_reserve(-6)
    assert (pool.min_pages, pool.low_pages, pool.high_pages) == (8, 10, 12)


def test_adjust_reserve_beyond_budget_is_an_error_and_changes_nothing() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    with pytest.raises(MemoryPressureError, match="cannot hold a reserve of 62 pages"):
        pool.adjust_reserve(54)
    assert pool.reserve_pages == 8


def test_adjust_reserve_below_zero_is_an_error() -> None:
    pool = PagePool(64)
    pool.adjust_reserve(3)
    with pytest.raises(UsageError, match="only 3 page"):
        pool.adjust_reserve(-4)
    assert pool.area_reserve_pages == 3


async def test_ordinary_allocation_waits_for_release() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    bufs = fill_to_low(pool)
    task = asyncio.create_task(pool.alloc(PAGE))
    await asyncio.sleep(0)
    assert not task.done()
    assert pool.waiters == 1
    bufs.pop().release()
    buf = await task
    assert not buf.pfmemalloc
    buf.release()
    release_all(bufs)
    assert pool.snapshot().waits == 1


async def test_allocation_timeout_names_the_state_and_leaks_nothing() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    bufs = fill_to_low(pool)
    before = pool.accounting()
    with pytest.raises(AllocationTimeout, match=r"ordinary allocation of 1 page\(s\) waited"):
        await pool.alloc(PAGE, timeout=0.01)
    assert pool.accounting() == before
    release_all(bufs)


async def test_cancelled_waiter_leaks_nothing() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    bufs = fill_to_low(pool)
    before = pool.accounting()
    task = asyncio.create_task(pool.alloc(PAGE))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.accounting() == before
    release_all(bufs)


async def test_grant_racing_with_cancellation_goes_back_to_the_pool() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    bufs = fill_to_low(pool)
    task = asyncio.create_task(pool.alloc(PAGE))
    await asyncio.sleep(0)
    bufs.pop().release()  # grants the waiter's future...
    task.cancel()  # ...but the task is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await task
    release_all(bufs)
    assert pool.used_pages == 0
    assert pool.waiters == 0


async def test_memalloc_waiters_are_served_before_ordinary_ones() -> None:
    # one release makes room for either waiter but not both: the order decides who wins
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12, reserve_enabled=False)
    bufs = fill_to_low(pool)
    with memalloc():
        bufs += fill_to_low(pool)  # down to min
    ordinary = asyncio.create_task(pool.alloc(PAGE))  # queued first
    await asyncio.sleep(0)
    with memalloc():
        # wants everything between min and low + 1: granted only if served before ordinary
        reclaim = asyncio.create_task(pool.alloc(PAGE * (pool.low_pages + 1 - pool.min_pages)))
    await asyncio.sleep(0)
    for _ in range(pool.low_pages + 1 - pool.free_pages):
        bufs.pop().release()
    await asyncio.sleep(0)
    assert reclaim.done()
    assert not ordinary.done()
    (await reclaim).release()
    await asyncio.sleep(0)
    assert ordinary.done()
    (await ordinary).release()
    release_all(bufs)
    assert pool.used_pages == 0


def test_page_fault_frames_go_down_to_min_but_not_into_the_reserve() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    bufs = fill_to_low(pool)
    assert pool.try_alloc(PAGE) is None  # ordinary: stops at low
    while (buf := pool.try_alloc(PAGE, to_min=True)) is not None:
        bufs.append(buf)
        assert not buf.pfmemalloc
    assert pool.free_pages == pool.min_pages
    release_all(bufs)


def test_for_resident_leaves_exactly_the_reserve_when_every_frame_is_used() -> None:
    pool = PagePool.for_resident(100)
    pool.adjust_reserve(6)  # an area's need goes on top of the budget
    frames = [pool.try_alloc(PAGE * 8 // 8, to_min=True) for _ in range(100)]
    assert all(f is not None for f in frames)
    assert pool.free_pages == pool.min_pages
    assert pool.try_alloc(PAGE, to_min=True) is None
    for f in frames:
        assert f is not None
        f.release()
    pool.adjust_reserve(-6)


def test_default_pool_is_bounded_with_derived_watermarks() -> None:
    pool = PagePool.default()
    assert not pool.is_unbounded
    assert 64 << 20 <= pool.budget_pages * pool.page_size <= 1 << 30
    assert 0 < pool.min_pages < pool.low_pages < pool.high_pages < pool.budget_pages


def test_kswapd_is_woken_below_low() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    woken: list[int] = []
    remove = pool.add_kswapd(lambda: woken.append(pool.free_pages))
    bufs = fill_to_low(pool)
    assert woken == []
    with memalloc():
        extra = pool.try_alloc(PAGE)
    assert woken == [9]
    remove()
    assert extra is not None
    extra.release()
    release_all(bufs)


async def test_direct_reclaim_is_throttled_at_half_the_reserve() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    bufs = fill_to_low(pool)
    with memalloc():
        bufs += [b for b in (pool.try_alloc(PAGE) for _ in range(6)) if b is not None]
    assert pool.free_pages == 4
    assert not pool.allow_direct_reclaim()
    with memalloc():
        await pool.throttle_direct_reclaim(timeout=0.01)  # memalloc work is never throttled
    task = asyncio.create_task(pool.throttle_direct_reclaim())
    await asyncio.sleep(0)
    assert not task.done()
    bufs.pop().release()
    await task
    assert pool.snapshot().direct_reclaim_throttles == 1
    release_all(bufs)


async def test_direct_reclaim_throttle_times_out_clearly() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    bufs = fill_to_low(pool)
    with memalloc():
        bufs += fill_to_low(pool)
    with pytest.raises(AllocationTimeout, match="half the reserve"):
        await pool.throttle_direct_reclaim(timeout=0.01)
    release_all(bufs)


async def test_dirty_limit_throttles_until_pages_are_cleaned() -> None:
    pool = PagePool(100, min_pages=10, low_pages=12, high_pages=14)
    assert pool.dirty_limit_pages == 18  # 20% of 90 dirtyable pages
    assert pool.dirty_background_pages == 9
    pool.account_dirty(18)
    assert pool.dirty_exceeded()
    assert pool.over_background_dirty()
    task = asyncio.create_task(pool.balance_dirty_pages())
    await asyncio.sleep(0)
    assert not task.done()
    pool.account_dirty(-1)
    await task
    with pytest.raises(PoolUsageError, match="negative"):
        pool.account_dirty(-18)
    pool.account_dirty(-17)


async def test_dirty_throttle_times_out_clearly() -> None:
    pool = PagePool(100, min_pages=10, low_pages=12, high_pages=14)
    pool.account_dirty(20)
    with pytest.raises(AllocationTimeout, match="dirty pages stayed"):
        await pool.balance_dirty_pages(timeout=0.01)
    pool.account_dirty(-20)


async def test_unbounded_pool_never_waits_but_keeps_accounts() -> None:
    pool = PagePool.unbounded()
    bufs = [await pool.alloc(PAGE) for _ in range(1000)]
    assert pool.used_pages == 1000
    pool.adjust_reserve(50)
    assert pool.snapshot().area_reserve_pages == 50
    assert not any(b.pfmemalloc for b in bufs)
    release_all(bufs)
    pool.adjust_reserve(-50)
    assert pool.accounting() == PagePool.unbounded().accounting()


async def test_infinite_timeout_waits_until_granted() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    bufs = fill_to_low(pool)
    task = asyncio.create_task(pool.alloc(PAGE, timeout=math.inf))
    await asyncio.sleep(0)
    bufs.pop().release()
    (await task).release()
    release_all(bufs)


def test_only_memalloc_work_may_keep_a_reserve_backed_buffer() -> None:
    pool = PagePool(64, min_pages=8, low_pages=10, high_pages=12)
    bufs = fill_to_low(pool)
    with memalloc():
        bufs += [b for b in (pool.try_alloc(PAGE) for _ in range(3)) if b is not None]
        assert bufs[-1].pfmemalloc
        assert bufs[-1].may_keep()
    assert not bufs[-1].may_keep()  # outside memalloc context: drop it
    assert bufs[0].may_keep()  # an ordinary buffer may always be kept
    release_all(bufs)


def test_budget_in_bytes_rounds_down_to_pages() -> None:
    pool = PagePool.of_bytes(10 * PAGE + 100, min_pages=1, low_pages=2, high_pages=3)
    assert pool.budget_pages == 10
    with pytest.raises(UsageError, match="holds no 4096-byte page"):
        PagePool.of_bytes(100)
