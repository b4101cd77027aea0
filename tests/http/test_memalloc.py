"""SOCK_MEMALLOC in the http client: replies are received like packets on a memalloc socket.

The receive path allocates a reply's buffer from the area's pool with the reserve allowed
(it cannot know whose reply it is); only memalloc work may keep a reserve-backed reply, other
work drops it, waits for ordinary memory and asks again.  The pool here is bounded with its
own derived watermarks; "pressure" is the pool with every page above *min* lent out, i.e.
only the reserve left, as when reclaim is running.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from swapio_http.client import PageClient
from swapio_http.server import build_app

from swapio.area import CreateRequest, SwapArea
from swapio.memalloc import memalloc
from swapio.plugins import PluginHost
from swapio.pool import PagePool, PoolBuffer
from swapio.testing import page_pattern

from .conftest import server_config

PAGE = 4096


def pattern(slot: int) -> bytes:
    return page_pattern(slot, 0, PAGE)


@pytest.fixture
def replies() -> asyncio.Event:
    """Set while the server answers I/O; cleared, it holds every reply back."""
    gate = asyncio.Event()
    gate.set()
    return gate


@pytest_asyncio.fixture(params=["coalesce=1", "coalesce=0"])
async def area(
    token_env: str, replies: asyncio.Event, request: pytest.FixtureRequest
) -> AsyncIterator[SwapArea]:
    @web.middleware
    async def hold(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        await replies.wait()
        return await handler(request)

    app = build_app(server_config())
    app.middlewares.insert(0, hold)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    pool = PagePool(budget_pages=1024, page_size=PAGE)  # derived watermarks
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/areas/m?frame_pages=8&{request.param}"
    swap_area = await PluginHost(pool=pool).activate(url, create=CreateRequest(64, PAGE))
    await swap_area.write(0, b"".join(pattern(s) for s in range(16)))
    try:
        yield swap_area
    finally:
        replies.set()
        await swap_area.deactivate()
        await runner.cleanup()
    assert pool.used_pages == 0


def squeeze(pool: PagePool) -> list[PoolBuffer]:
    """Lend out every page above *min*: ordinary pages down to *low*, then memalloc ones."""
    held = [pool.try_alloc((pool.free_pages - pool.low_pages) * PAGE)]
    with memalloc():
        held.append(pool.try_alloc((pool.free_pages - pool.min_pages) * PAGE))
    assert all(buf is not None and not buf.pfmemalloc for buf in held)
    assert pool.free_pages == pool.min_pages
    return [buf for buf in held if buf is not None]


async def until(condition: Any, what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_ordinary_read_whose_reply_lands_in_the_reserve_drops_it_and_waits(
    area: SwapArea, replies: asyncio.Event
) -> None:
    pool, client = area.pool, area.private
    assert isinstance(client, PageClient)
    replies.clear()
    read = asyncio.create_task(area.read(3, 2))  # sent while memory is plentiful
    await until(lambda: pool.used_pages > 0, "the request to be sent")
    await asyncio.sleep(0.05)
    held = squeeze(pool)  # memory runs out while the reply is on its way
    replies.set()
    await until(lambda: client.replies_dropped >= 1, "the reply to be dropped")
    await asyncio.sleep(0.05)
    assert not read.done()  # waiting for ordinary memory, not finished on the reserve
    assert pool.snapshot().pfmemalloc_pages == 0  # the dropped reply's buffer went back
    assert pool.reserve_used_pages == 0  # the reserve is untouched
    assert pool.waiters == 1  # the read waits for ordinary memory for its reply
    for buf in held:
        buf.release()
    assert await read == pattern(3) + pattern(4)
    assert client.replies_dropped == 1


async def test_ordinary_write_under_pressure_waits_without_touching_the_reserve(
    area: SwapArea,
) -> None:
    pool = area.pool
    held = squeeze(pool)
    write = asyncio.create_task(area.write(20, pattern(20)))
    await until(lambda: pool.waiters >= 1, "the write to wait for memory")
    assert pool.snapshot().reserve_dips == 0
    assert pool.free_pages == pool.min_pages
    for buf in held:
        buf.release()
    await write
    assert await area.read(20) == pattern(20)


async def test_memalloc_swap_out_completes_on_the_reserve(area: SwapArea) -> None:
    pool, client = area.pool, area.private
    held = squeeze(pool)
    data = b"".join(pattern(s) for s in range(30, 38))
    with memalloc():
        await area.write(30, data)  # request buffer and reply buffer from the reserve
        assert await area.read(30, 8) == data  # a memalloc read keeps its reserve reply
    snapshot = pool.snapshot()
    assert snapshot.reserve_dips >= 4
    assert snapshot.peak_reserve_used_pages > 0
    assert client.replies_dropped == 0
    assert pool.free_pages == pool.min_pages
    for buf in held:
        buf.release()


async def test_reply_buffers_are_counted_in_the_pool(area: SwapArea) -> None:
    pool = area.pool
    allocations = pool.snapshot().allocations
    await area.write(40, pattern(40))
    # the request buffer and the reply's receive buffer
    assert pool.snapshot().allocations - allocations == 2
    allocations = pool.snapshot().allocations
    assert await area.read(0, 8) == b"".join(pattern(s) for s in range(8))
    after = pool.snapshot()
    assert after.allocations - allocations == 2
    # 16-byte reply header + 8 pages: 9 pool pages on top of the 1-page request
    assert after.peak_used_pages >= 10
