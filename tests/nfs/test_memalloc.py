"""SOCK_MEMALLOC on a real nfs-ganesha: the area's pool under real pressure (derived
watermarks, memalloc work holding everything down into the reserve).

Both halves of the rule: memalloc swap-out completes on reserve receive buffers; ordinary
work (a swap-in) neither keeps nor waits on reserve memory and completes once memory returns.
The declared reserve need is what a swap-out really takes from the reserve."""

from __future__ import annotations

import asyncio
import os

from swapio_nfs._backend import NfsSwapFile
from swapio_nfs._receive import RESERVE_PAGES_PER_REPLY
from swapio_nfs._transport import RpcConnection

from swapio.area import CreateRequest, SwapArea
from swapio.memalloc import memalloc
from swapio.plugins import PluginHost
from swapio.pool import PagePool, PoolBuffer

from .conftest import GaneshaServer

PAGE = 4096
PAGES = 64
BUDGET = 256  # derived watermarks: min 32, low 40; the area adds its need on top


async def activate(ganesha: GaneshaServer, name: str, pool: PagePool) -> SwapArea:
    url = ganesha.url(name, timeo=30, retrans=2)
    setup = await PluginHost().activate(url, create=CreateRequest(PAGES, PAGE))
    await setup.deactivate()
    return await PluginHost().activate(url, pool=pool)


def connection(area: SwapArea) -> RpcConnection:
    swap: NfsSwapFile = area.private
    return swap.client.conn


def squeeze(pool: PagePool, leave: int) -> list[PoolBuffer]:
    """Memalloc work takes the pool down to ``leave`` free pages."""
    with memalloc():
        hog = [pool.try_alloc(PAGE) for _ in range(pool.free_pages - leave)]
    assert all(b is not None for b in hog)
    assert pool.free_pages == leave
    return [b for b in hog if b is not None]


def release(hog: list[PoolBuffer]) -> None:
    for buf in hog:
        buf.release()


async def test_memalloc_swap_out_completes_on_reserve_receive_buffers(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    pool = PagePool(BUDGET, PAGE)
    area = await activate(ganesha, nfs_name, pool)
    conn = connection(area)
    data = os.urandom(PAGE)
    hog = squeeze(pool, pool.min_pages // 2)  # half the reserve already in use
    try:
        with memalloc():
            await asyncio.wait_for(area.swap_out(5, [data]), 30)
        assert conn.receive.reserve_buffers >= 2  # the WRITE and the COMMIT reply
        assert conn.dropped_replies == 0
    finally:
        release(hog)
    out = bytearray(PAGE)
    await area.swap_in(5, [memoryview(out)])
    assert bytes(out) == data
    await area.deactivate()
    assert pool.accounting().buffers_outstanding == 0


async def test_swap_in_under_pressure_keeps_no_reserve_and_completes_when_memory_returns(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    pool = PagePool(BUDGET, PAGE)
    area = await activate(ganesha, nfs_name, pool)
    conn = connection(area)
    data = os.urandom(PAGE)
    await area.swap_out(9, [data])
    out = bytearray(PAGE)
    ganesha.pause()
    try:
        swap_in = asyncio.ensure_future(area.swap_in(9, [memoryview(out)]))
        await asyncio.sleep(0.1)  # the READ is sent while memory is plentiful
        assert conn.outstanding == 1
        hog = squeeze(pool, pool.min_pages // 2)
    finally:
        ganesha.resume()
    try:
        # the READ reply arrives into a reserve buffer: dropped, not kept
        for _ in range(3000):
            if conn.dropped_replies:
                break
            await asyncio.sleep(0.01)
        assert conn.dropped_replies >= 1
        # memalloc work makes progress meanwhile, in the same pressure
        with memalloc():
            await asyncio.wait_for(area.swap_out(10, [data]), 30)
        await asyncio.sleep(0.2)
        assert not swap_in.done()  # ordinary work waits for ordinary memory
        assert pool.snapshot().pfmemalloc_pages == sum(b.pages for b in hog if b.pfmemalloc)
    finally:
        release(hog)
    await asyncio.wait_for(swap_in, 30)
    assert bytes(out) == data
    await area.deactivate()
    assert pool.accounting().buffers_outstanding == 0


async def test_one_swap_out_takes_exactly_the_declared_reserve_per_request(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    pool = PagePool(BUDGET, PAGE)
    area = await activate(ganesha, nfs_name, pool)
    caps = area.capabilities
    assert caps.reserve_pages_per_request == RESERVE_PAGES_PER_REPLY
    hog = squeeze(pool, pool.min_pages)  # at min: the next page is reserve
    try:
        assert pool.snapshot().peak_reserve_used_pages == 0
        with memalloc():
            await asyncio.wait_for(area.swap_out(1, [bytes(PAGE)]), 30)
        assert pool.snapshot().peak_reserve_used_pages == caps.reserve_pages_per_request
    finally:
        release(hog)
    await area.deactivate()


async def test_a_full_queue_of_memalloc_swap_outs_stays_within_the_declared_need(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    pool = PagePool(BUDGET, PAGE)
    area = await activate(ganesha, nfs_name, pool)
    caps = area.capabilities
    pages = [os.urandom(PAGE) for _ in range(caps.memalloc_requests)]
    hog = squeeze(pool, pool.min_pages)
    try:
        with memalloc():
            await asyncio.wait_for(
                asyncio.gather(*(area.swap_out(i, [p]) for i, p in enumerate(pages))), 60
            )
        peak = pool.snapshot().peak_reserve_used_pages
        assert 0 < peak <= caps.reserve_need
    finally:
        release(hog)
    for i, page in enumerate(pages):
        out = bytearray(PAGE)
        await area.swap_in(i, [memoryview(out)])
        assert bytes(out) == page
    await area.deactivate()


async def test_memalloc_swap_outs_beyond_the_declared_count_wait_for_a_slot(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    pool = PagePool(BUDGET, PAGE)
    area = await activate(ganesha, nfs_name, pool)
    caps = area.capabilities
    swap: NfsSwapFile = area.private
    pages = [os.urandom(PAGE) for _ in range(2 * caps.memalloc_requests)]
    hog = squeeze(pool, pool.min_pages)
    try:
        with memalloc():
            await asyncio.wait_for(
                asyncio.gather(*(area.swap_out(i, [p]) for i, p in enumerate(pages))), 60
            )
        assert swap.peak_memalloc_inflight == caps.memalloc_requests
        assert 0 < pool.snapshot().peak_reserve_used_pages <= caps.reserve_need
    finally:
        release(hog)
    await area.deactivate()
