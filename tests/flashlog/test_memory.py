"""flashlog under memory pressure: its buffers come from the area's pool, within the reserve
it declares (the ``kmalloc_reserve`` / ``SOCK_MEMALLOC`` rules of :mod:`swapio.pool`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from swapio_flashlog.plugin import gc_step

from swapio import CreateRequest, PluginHost
from swapio.area import SwapArea
from swapio.errors import AllocationTimeout
from swapio.memalloc import memalloc
from swapio.pool import PagePool, PoolBuffer
from swapio.testing import page_pattern

EB = 65536
PAGES = 60


async def _churned_area(tmp_path: Path, pool: PagePool) -> SwapArea:
    """An area on a small image whose free space is low, so a swap-out must run GC."""
    area = await PluginHost().activate(
        f"flashlog://{tmp_path}/f.img?size={12 * EB}", create=CreateRequest(PAGES), pool=pool
    )
    for generation in range(3):
        for slot in range(0, PAGES, 4):
            await area.swap_out(slot, [page_pattern(slot + k, generation, 4096) for k in range(4)])
    return area


def _drain_to_min(pool: PagePool) -> list[PoolBuffer]:
    """Take every page above *min*: ordinary work to *low*, memalloc work down to *min*."""
    held = []
    while (buf := pool.try_alloc(pool.page_size)) is not None:
        held.append(buf)
    with memalloc():
        while pool.free_pages is not None and pool.free_pages > pool.min_pages:
            buf = pool.try_alloc(pool.page_size)
            assert buf is not None
            assert not buf.pfmemalloc
            held.append(buf)
    assert pool.free_pages == pool.min_pages
    return held


async def test_the_declared_need_is_one_erase_block_of_pool_pages(tmp_path: Path) -> None:
    pool = PagePool(64, 4096)
    area = await _churned_area(tmp_path, pool)
    assert area.capabilities.reserve_pages_per_request == EB // 4096
    assert pool.area_reserve_pages == EB // 4096
    await area.deactivate()
    assert pool.area_reserve_pages == 0


async def test_a_swap_out_allocates_its_buffer_from_the_pool_and_gc_needs_none(
    tmp_path: Path,
) -> None:
    pool = PagePool(64, 4096)
    area = await _churned_area(tmp_path, pool)
    before = pool.snapshot().allocations
    await area.swap_out(0, [page_pattern(0, 9, 4096)])
    assert pool.snapshot().allocations == before + 1
    steps = await _gc_until_idle(area)  # copies are programmed from the victim's read
    after = pool.snapshot()
    assert steps > 0
    assert after.allocations == before + 1
    assert after.buffers_outstanding == 0
    assert after.used_pages == 0
    await area.deactivate()


async def _gc_until_idle(area: SwapArea) -> int:
    steps = 0
    while steps < 50 and await gc_step(area):
        steps += 1
    return steps


async def test_a_memalloc_swap_out_completes_on_the_reserve_alone(tmp_path: Path) -> None:
    """Every page above *min* is taken: a memalloc swap-out that needs a GC step still
    completes on the reserve the area declared, and reads back."""
    pool = PagePool(64, 4096, wait_timeout=2.0)
    area = await _churned_area(tmp_path, pool)
    log = area.private.log
    held = _drain_to_min(pool)
    dips, steps = pool.snapshot().reserve_dips, log.gc_steps
    pages = [page_pattern(slot, 7, 4096) for slot in range(16, 32)]
    with memalloc():
        for _ in range(6):  # enough swap-outs that foreground GC runs inside them
            await area.swap_out(16, pages)
    assert pool.snapshot().reserve_dips > dips
    assert log.gc_steps > steps
    for slot in range(16, 32):
        assert bytes(await area.read(slot)) == page_pattern(slot, 7, 4096)
    for buf in held:
        buf.release()
    await area.deactivate()


async def test_an_ordinary_swap_out_does_not_touch_the_reserve(tmp_path: Path) -> None:
    pool = PagePool(64, 4096, wait_timeout=0.3)
    area = await _churned_area(tmp_path, pool)
    held = _drain_to_min(pool)
    with pytest.raises(AllocationTimeout):
        await area.swap_out(0, [page_pattern(0, 8, 4096)])
    assert pool.snapshot().reserve_used_pages == 0
    for buf in held:
        buf.release()
    await area.deactivate()
