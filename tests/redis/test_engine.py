"""Batching, coalescing and the memory rules of the redis backend, on a real redis-server."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from swapio_redis.local import LocalRedis, free_ports

from swapio.area import CreateRequest, SwapArea
from swapio.errors import AllocationTimeout, BackendIOError
from swapio.memalloc import memalloc
from swapio.plugins import PluginHost
from swapio.pool import PagePool, PoolBuffer
from swapio.testing.conformance import page_pattern

PAGE = 4096


async def _area(url: str, pages: int = 256, pool: PagePool | None = None) -> SwapArea:
    return await PluginHost().activate(url, create=CreateRequest(pages), pool=pool)


async def _fill(area: SwapArea, count: int) -> None:
    await area.write(0, b"".join(page_pattern(s, 0, PAGE) for s in range(count)))


async def test_a_multi_page_request_is_one_round_trip_on_one_server(standalone_url: str) -> None:
    area = await _area(standalone_url)
    try:
        engine = area.private.engine
        before = engine.round_trips
        await _fill(area, 128)
        assert engine.round_trips - before == 1
        before = engine.round_trips
        assert await area.read(0, 128) == b"".join(page_pattern(s, 0, PAGE) for s in range(128))
        assert engine.round_trips - before == 1
    finally:
        await area.deactivate()


@pytest.mark.parametrize(("coalesce", "most"), [("1", 2), ("0", 32)])
async def test_concurrent_single_page_swap_ins_are_coalesced(
    standalone_url: str, coalesce: str, most: int
) -> None:
    area = await _area(f"{standalone_url}&coalesce={coalesce}")
    try:
        engine = area.private.engine
        await _fill(area, 64)
        before = engine.round_trips
        pages = await asyncio.gather(*(area.read(slot) for slot in range(0, 64, 2)))
        trips = engine.round_trips - before
        assert [bytes(p) for p in pages] == [page_pattern(s, 0, PAGE) for s in range(0, 64, 2)]
        assert trips <= most
        if coalesce == "0":
            assert trips == 32  # the same load without coalescing: one command per page
    finally:
        await area.deactivate()


async def test_concurrent_single_page_swap_outs_are_coalesced(standalone_url: str) -> None:
    area = await _area(standalone_url)
    try:
        engine = area.private.engine
        before = engine.round_trips
        await asyncio.gather(*(area.write(s, page_pattern(s, 3, PAGE)) for s in range(32)))
        assert engine.round_trips - before <= 2
        assert await area.read(0, 32) == b"".join(page_pattern(s, 3, PAGE) for s in range(32))
    finally:
        await area.deactivate()


async def test_discard_deletes_the_keys(standalone_url: str, redis_server: object) -> None:
    area = await _area(standalone_url)
    try:
        await _fill(area, 32)
        key = area.private.layout.key(5)
        await area.discard(0, 32)
        from swapio_redis.local import LocalRedis

        assert isinstance(redis_server, LocalRedis)
        assert redis_server.cli("EXISTS", key.decode()).strip() == "0"
        assert bytes(await area.read(5)) == bytes(PAGE)
    finally:
        await area.deactivate()


async def test_the_reserve_need_is_declared_and_added_to_the_pool(standalone_url: str) -> None:
    pool = PagePool(1024, PAGE)
    reserve = pool.reserve_pages
    area = await _area(standalone_url, pool=pool)
    try:
        # a memalloc request: 32 pages as 2 commands of 16 pages, 2 such requests per area
        assert area.capabilities.reserve_need == 2 * 2 * 16
        assert pool.reserve_pages == reserve + 64
    finally:
        await area.deactivate()
    assert pool.reserve_pages == reserve


async def test_payloads_are_charged_to_the_area_pool(standalone_url: str) -> None:
    pool = PagePool(4096, PAGE)
    area = await _area(standalone_url, pool=pool)
    try:
        await _fill(area, 128)
        assert pool.stats.peak_used_pages >= 128  # the 128 pages' request, while on the wire
        await area.read(0, 128)
        assert pool.used_pages == 0  # every charge released
    finally:
        await area.deactivate()


def _exhaust(pool: PagePool, *, into_reserve: bool) -> list[PoolBuffer]:
    """Hold pool pages until ordinary allocations fail (and memalloc ones dip, if asked)."""
    held: list[PoolBuffer] = []
    while (buf := pool.try_alloc(PAGE)) is not None:
        held.append(buf)
    if into_reserve:
        with memalloc():
            while pool.free_pages > pool.min_pages and (buf := pool.try_alloc(PAGE)):
                held.append(buf)
    return held


async def test_memalloc_swap_out_completes_from_the_reserve(standalone_url: str) -> None:
    pool = PagePool(512, PAGE, wait_timeout=2.0)
    area = await _area(standalone_url, pool=pool)
    held = _exhaust(pool, into_reserve=True)
    try:
        with pytest.raises(AllocationTimeout):  # ordinary work waits for reclaim...
            await area.write(0, page_pattern(0, 1, PAGE) * 32)
        dips = pool.stats.reserve_dips
        with memalloc():  # ...swap-out (reclaim) goes through on the reserve
            await area.write(0, b"".join(page_pattern(s, 1, PAGE) for s in range(32)))
        assert pool.stats.reserve_dips > dips
    finally:
        for buf in held:
            buf.release()
        await area.deactivate()


async def test_an_ordinary_swap_in_drops_a_reserve_backed_reply_charge(standalone_url: str) -> None:
    pool = PagePool(512, PAGE, wait_timeout=10.0)
    area = await _area(standalone_url, pool=pool)
    try:
        await _fill(area, 16)
        engine = area.private.engine
        held = _exhaust(pool, into_reserve=True)  # down to min: the receive path dips
        reader = asyncio.ensure_future(area.read(0, 16))
        await asyncio.sleep(0.3)
        assert engine.dropped_reserve == 1  # the reserve-backed charge was not kept...
        assert not reader.done()  # ...the read waits for ordinary memory
        for buf in held:
            buf.release()
        got = await asyncio.wait_for(reader, 10)
        assert got == b"".join(page_pattern(s, 0, PAGE) for s in range(16))
        assert pool.stats.pfmemalloc_pages == 0
    finally:
        await area.deactivate()


async def test_a_cancelled_swap_in_returns_only_after_its_round_ended(standalone_url: str) -> None:
    area = await _area(standalone_url)
    try:
        await _fill(area, 8)
        engine = area.private.engine
        view = memoryview(bytearray(PAGE))
        task = asyncio.ensure_future(area.swap_in(3, [view]))
        await asyncio.sleep(0)  # queued; the flush runs on the next loop turn
        await asyncio.sleep(0)  # the round is on its way
        assert engine._rounds == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert engine._rounds == 0  # nothing writes into `view` after the caller left
        assert bytes(view) == page_pattern(3, 0, PAGE)
    finally:
        await area.deactivate()


async def test_a_swap_in_cancelled_while_queued_is_never_sent(standalone_url: str) -> None:
    area = await _area(f"{standalone_url}&rounds=1")
    try:
        engine = area.private.engine
        before = engine.round_trips
        first = asyncio.ensure_future(area.swap_in(1, [memoryview(bytearray(PAGE))]))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert engine._rounds == 1  # the only round allowed is on the wire
        queued = asyncio.ensure_future(area.swap_in(3, [memoryview(bytearray(PAGE))]))
        await asyncio.sleep(0)  # queued behind it
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await first
        await asyncio.sleep(0.05)
        assert engine.round_trips - before == 1  # the cancelled request never went out
    finally:
        await area.deactivate()


async def test_a_server_that_stops_answering_fails_requests_after_the_timeout(
    tmp_path: Path, redis_password: str
) -> None:
    """The connections have no socket timeout of their own: each round trip has one (the
    area's ``timeout``), so a server that stops answering — here SIGSTOPped, connection
    open — fails the request with one line instead of hanging it."""
    server = LocalRedis(tmp_path, free_ports(1)[0], password=redis_password)
    server.start()
    try:
        area = await _area(f"redis://{server.address}?prefix=stopped&timeout=1")
        try:
            await _fill(area, 4)
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)
            read = asyncio.ensure_future(area.read(0))
            try:
                finished, _ = await asyncio.wait({read}, timeout=30)  # 30: only a hang guard
            finally:
                server.process.send_signal(signal.SIGCONT)
            assert finished, "a request to a stopped server was still waiting after 30 s"
            with pytest.raises(BackendIOError, match="still failing after 1 s"):
                read.result()
            assert bytes(await area.read(2)) == page_pattern(2, 0, PAGE)  # and it recovers
        finally:
            await area.deactivate()
    finally:
        server.stop()
