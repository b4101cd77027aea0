"""Property tests: pool accounting under random interleavings of allocations, releases,
reserve changes, waits, cancellations and timeouts."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from swapio.errors import AllocationTimeout, MemoryPressureError, UsageError
from swapio.memalloc import memalloc
from swapio.pool import PagePool, PoolBuffer

PAGE = 512

op = st.one_of(
    st.tuples(st.just("try"), st.integers(1, 4 * PAGE), st.booleans()),
    st.tuples(st.just("fault"), st.integers(1, 2 * PAGE), st.just(False)),
    st.tuples(st.just("wait"), st.integers(1, 3 * PAGE), st.booleans()),
    st.tuples(st.just("release"), st.integers(0, 1000)),
    st.tuples(st.just("reserve"), st.integers(-4, 4)),
    st.tuples(st.just("cancel"), st.integers(0, 1000)),
    st.tuples(st.just("tick"), st.just(0)),
)


def check_invariants(pool: PagePool, held: list[PoolBuffer]) -> None:
    assert pool.used_pages == sum(b.pages for b in held)
    assert pool.snapshot().pfmemalloc_pages == sum(b.pages for b in held if b.pfmemalloc)
    assert pool.snapshot().buffers_outstanding == len(held)
    assert pool.free_pages == pool.budget_pages - pool.used_pages
    # nothing is lent beyond the budget: the reserve is the last thing to go, never more
    assert pool.used_pages <= pool.budget_pages
    assert pool.reserve_used_pages == max(0, pool.min_pages - pool.free_pages)


async def run(ops: list[tuple[object, ...]], reserve_enabled: bool) -> None:
    pool = PagePool(
        32, PAGE, min_pages=4, low_pages=6, high_pages=8, reserve_enabled=reserve_enabled
    )
    start = pool.accounting()
    held: list[PoolBuffer] = []
    waiting: list[tuple[asyncio.Task[PoolBuffer], bool]] = []

    def collect() -> None:
        for task, is_memalloc in list(waiting):
            if task.done():
                waiting.remove((task, is_memalloc))
                if task.cancelled() or task.exception() is not None:
                    assert task.cancelled() or isinstance(task.exception(), AllocationTimeout)
                    continue
                buf = task.result()
                assert is_memalloc or not buf.pfmemalloc  # only memalloc work dips
                held.append(buf)

    for item in ops:
        kind = item[0]
        if kind == "try":
            nbytes, is_memalloc = int(item[1]), bool(item[2])  # type: ignore[call-overload]
            free_before = pool.free_pages
            with memalloc(is_memalloc):
                buf = pool.try_alloc(nbytes)
            if buf is not None:
                held.append(buf)
                if not is_memalloc:
                    assert not buf.pfmemalloc
                    assert free_before - buf.pages >= pool.low_pages
                elif buf.pfmemalloc:
                    assert free_before - buf.pages < pool.min_pages
                    assert reserve_enabled
        elif kind == "fault":  # a page-fault frame: the slow path's floor is min
            free_before = pool.free_pages
            buf = pool.try_alloc(int(item[1]), to_min=True)  # type: ignore[call-overload]
            if buf is not None:
                held.append(buf)
                assert not buf.pfmemalloc
                assert free_before - buf.pages >= pool.min_pages
            else:
                assert free_before - pool.pages_for(int(item[1])) < pool.min_pages  # type: ignore[call-overload]
        elif kind == "wait":
            nbytes, is_memalloc = int(item[1]), bool(item[2])  # type: ignore[call-overload]
            with memalloc(is_memalloc):
                task = asyncio.create_task(pool.alloc(nbytes, timeout=0.05))
            waiting.append((task, is_memalloc))
        elif kind == "release" and held:
            held.pop(int(item[1]) % len(held)).release()  # type: ignore[call-overload]
        elif kind == "reserve":
            delta = int(item[1])  # type: ignore[call-overload]
            before = pool.area_reserve_pages
            try:
                pool.adjust_reserve(delta)
            except (UsageError, MemoryPressureError):
                assert pool.area_reserve_pages == before
        elif kind == "cancel" and waiting:
            waiting[int(item[1]) % len(waiting)][0].cancel()  # type: ignore[call-overload]
        await asyncio.sleep(0)
        collect()
        check_invariants(pool, held)

    for task, _ in waiting:
        task.cancel()
    await asyncio.gather(*(t for t, _ in waiting), return_exceptions=True)
    collect()
    for buf in held:
        buf.release()
    pool.adjust_reserve(-pool.area_reserve_pages)
    assert pool.accounting() == start
    assert pool.waiters == 0


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=40), st.booleans())
def test_accounting_holds_under_random_interleavings(
    ops: list[tuple[object, ...]], reserve_enabled: bool
) -> None:
    asyncio.run(run(ops, reserve_enabled))
