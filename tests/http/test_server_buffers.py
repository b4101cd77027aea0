"""The page server's buffer pool: bodies are counted, per-token in-flight bytes and memalloc
share are enforced.

The server pool is bounded with derived watermarks (4 MiB: 1,024 pages, reserve 64 pages);
with two tokens each token's memalloc share is half the reserve.  The ``gated`` store holds
swap-outs inside the store until the test opens its gate, so requests stay in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from swapio_http._auth import owner_id
from swapio_http._wire import RESPONSE_HEADER, Flag, Op, RequestHeader, encode_request_header
from swapio_http.server import STATE, build_app

from swapio.memalloc import memalloc
from swapio.plugins import PluginHost
from swapio.pool import PagePool, PoolBuffer

from .conftest import OTHER_TOKEN, SERVINGS, TOKEN, GatedMemory, auth, server_config, serving

PAGE = 4096
Client = Any


def frame(op: Op, slot: int, count: int, data: bytes = b"", memalloc_flag: bool = False) -> bytes:
    flags = Flag.MEMALLOC if memalloc_flag else Flag.NONE
    return encode_request_header(RequestHeader(op, slot, count, PAGE, flags)) + data


async def io(client: Client, body: bytes, token: str = TOKEN, name: str = "a") -> Any:
    return await client.post(f"/areas/{name}/io", data=body, headers=auth(token))


@pytest_asyncio.fixture(params=SERVINGS)
async def served(
    request: pytest.FixtureRequest, aiohttp_client: Any, server_host: PluginHost
) -> AsyncIterator[Client]:
    pool = PagePool.of_bytes(4 << 20)  # derived watermarks: reserve 64 pages
    config = server_config("gated", pool=pool, buffer_timeout=5.0)
    async with serving(request.param, aiohttp_client, config, server_host) as client:
        for token in (TOKEN, OTHER_TOKEN):
            response = await client.put(
                "/areas/a", json={"pages": 256, "page_size": PAGE}, headers=auth(token)
            )
            assert response.status == 201
        yield client
        assert pool.used_pages == 0


def squeeze(pool: PagePool) -> list[PoolBuffer]:
    """Lend out every page above *min*, leaving only the reserve."""
    held = [pool.try_alloc((pool.free_pages - pool.low_pages) * PAGE)]
    with memalloc():
        held.append(pool.try_alloc((pool.free_pages - pool.min_pages) * PAGE))
    assert pool.free_pages == pool.min_pages
    return [buf for buf in held if buf is not None]


async def until(condition: Any, what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_one_token_cannot_drain_the_reserve(served: Client, gated: GatedMemory) -> None:
    state = served.app[STATE]
    pool = state.budget.pool
    share = state.budget.memalloc_share_bytes
    assert share == pool.reserve_pages * PAGE // 2
    held = squeeze(pool)
    data = b"M" * (8 * PAGE)
    # Token A floods memalloc writes that stall in the store, holding their buffers.
    flood = [
        asyncio.create_task(io(served, frame(Op.SWAP_OUT, 8 * i, 8, data, memalloc_flag=True)))
        for i in range(8)
    ]
    await until(lambda: pool.waiters >= 1, "A's requests beyond its share to wait")
    a_held = state.budget.memalloc_held[owner_id(TOKEN)]
    assert 0 < a_held <= share
    assert pool.reserve_used_pages * PAGE <= share
    # Token B's memalloc read still finds the reserve it needs.
    response = await asyncio.wait_for(
        io(served, frame(Op.SWAP_IN, 0, 8, memalloc_flag=True), token=OTHER_TOKEN), 4
    )
    assert response.status == 200, await response.text()
    assert len(await response.read()) == RESPONSE_HEADER.size + 8 * PAGE
    gated.gate.set()
    for buf in held:
        buf.release()
    for response in await asyncio.gather(*flood):
        assert response.status == 200, await response.text()


async def test_memalloc_request_is_served_from_the_reserve(served: Client) -> None:
    pool = served.app[STATE].budget.pool
    held = squeeze(pool)
    response = await io(served, frame(Op.SWAP_IN, 0, 8, memalloc_flag=True))
    assert response.status == 200, await response.text()
    assert pool.snapshot().reserve_dips >= 1
    for buf in held:
        buf.release()


async def test_ordinary_request_under_pressure_waits_then_is_busy(served: Client) -> None:
    budget = served.app[STATE].budget
    budget.timeout = 0.5  # (default 10 s) keeps the test short
    pool = budget.pool
    held = squeeze(pool)
    response = await io(served, frame(Op.SWAP_IN, 0, 1))
    assert (await response.json())["error"] == "busy"
    assert response.status == 503
    assert pool.snapshot().reserve_dips == 0
    for buf in held:
        buf.release()


@pytest.mark.parametrize("how", SERVINGS)
async def test_in_flight_bytes_per_token_are_limited(
    aiohttp_client: Any, server_host: PluginHost, gated: GatedMemory, how: str
) -> None:
    body = frame(Op.SWAP_OUT, 0, 4, b"W" * (4 * PAGE))
    config = server_config("gated", max_inflight_bytes=3 * (len(body) + RESPONSE_HEADER.size))
    async with serving(how, aiohttp_client, config, server_host) as client:
        await _in_flight_bytes_are_limited(client, gated, body)


async def _in_flight_bytes_are_limited(client: Client, gated: GatedMemory, body: bytes) -> None:
    for token in (TOKEN, OTHER_TOKEN):
        response = await client.put(
            "/areas/a", json={"pages": 64, "page_size": PAGE}, headers=auth(token)
        )
        assert response.status == 201
    stalled = [
        asyncio.create_task(io(client, frame(Op.SWAP_OUT, 4 * i, 4, b"W" * (4 * PAGE))))
        for i in range(3)
    ]
    await until(gated.entered.is_set, "the writes to reach the store")
    await asyncio.sleep(0.05)
    refused = await io(client, body)
    assert refused.status == 429
    assert (await refused.json())["error"] == "too-much-in-flight"
    other = await io(client, frame(Op.SWAP_IN, 0, 1), token=OTHER_TOKEN)
    assert other.status == 200  # another token is not limited by this one's requests
    gated.gate.set()
    for response in await asyncio.gather(*stalled):
        assert response.status == 200
    assert (await io(client, body)).status == 200
    assert client.app[STATE].budget.inflight == {}


async def test_bodies_are_received_into_the_pool(served: Client) -> None:
    pool = served.app[STATE].budget.pool
    before = pool.snapshot().allocations
    response = await io(served, frame(Op.SWAP_IN, 0, 4))
    assert response.status == 200
    after = pool.snapshot()
    assert after.allocations - before == 2  # the request body and the response body
    assert after.peak_used_pages >= 1 + 5  # 28 bytes; 16 + 4 pages
    assert pool.used_pages == 0


async def test_create_delete_cycles_under_new_names_hit_the_token_quota(
    aiohttp_client: Any, server_host: PluginHost
) -> None:
    area_bytes = 16 * PAGE
    config = server_config(max_bytes_per_token=3 * area_bytes, max_areas=1)
    client = await aiohttp_client(build_app(config, server_host))
    for cycle in range(3):
        response = await client.put(
            f"/areas/c{cycle}", json={"pages": 16, "page_size": PAGE}, headers=auth()
        )
        assert response.status == 201
        assert (await client.delete(f"/areas/c{cycle}", headers=auth())).status == 204
    response = await client.put("/areas/c3", json={"pages": 16, "page_size": PAGE}, headers=auth())
    assert response.status == 429
    assert (await response.json())["error"] == "quota"
    # the stores already made can be attached and reused; another token has its own quota
    assert (await client.put("/areas/c0", json={}, headers=auth())).status == 200
    response = await client.put(
        "/areas/c3", json={"pages": 16, "page_size": PAGE}, headers=auth(OTHER_TOKEN)
    )
    assert response.status == 201


async def test_a_stalled_upload_that_disconnects_gives_its_buffer_back(
    server_host: PluginHost,
) -> None:
    from swapio_http.server import start_server

    server = await start_server(server_config(), port=0, host=server_host)
    try:
        state = server.runner.app[STATE]
        put = (
            f"PUT /areas/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            'Content-Length: 31\r\n\r\n{"pages": 256, "page_size": 4096}'
        )
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(put.replace("Content-Length: 31", "Content-Length: 33").encode())
        assert b" 201 " in await reader.readuntil(b"\r\n\r\n")
        body = frame(Op.SWAP_OUT, 0, 16, bytes(16 * PAGE))  # the test server's largest frame
        writer.write(
            f"POST /areas/a/io HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:-1]  # all but the last byte
        )
        await until(lambda: state.budget.inflight, "the upload's buffer to be granted")
        assert state.budget.pool.used_pages > 16
        writer.transport.abort()  # the client goes away
        await until(lambda: not state.budget.inflight, "the buffer to be given back")
        assert state.budget.pool.used_pages == 0
    finally:
        await server.stop()
