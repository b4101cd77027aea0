"""The page server through aiohttp's test client: API, auth, isolation, limits, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Sequence
from typing import Any

import pytest
from swapio_http._auth import owner_id
from swapio_http._wire import (
    REQUEST_HEADER,
    RESPONSE_HEADER,
    Op,
    RequestHeader,
    encode_request_header,
)
from swapio_http.server import STATE, build_app
from swapio_memory import plugin as memory

import swapio
from swapio.area import PageBuffer, SwapArea, SwapInfo
from swapio.plugins import PluginHost

from .conftest import OTHER_TOKEN, SERVINGS, TOKEN, GatedMemory, auth, server_config, serving

PAGE = 4096
Client = Any  # aiohttp TestClient


def frame(op: Op, slot: int, count: int, data: bytes = b"") -> bytes:
    return encode_request_header(RequestHeader(op, slot, count, PAGE)) + data


async def create(client: Client, name: str = "scratch", pages: int = 32, token: str = "") -> None:
    headers = auth(token) if token else auth()
    response = await client.put(
        f"/areas/{name}", json={"pages": pages, "page_size": PAGE}, headers=headers
    )
    assert response.status == 201, await response.text()


async def write(client: Client, slot: int, data: bytes, name: str = "scratch", **kw: Any) -> Any:
    body = frame(Op.SWAP_OUT, slot, len(data) // PAGE, data)
    return await client.post(f"/areas/{name}/io", data=body, headers=kw.get("headers", auth()))


async def read(client: Client, slot: int, count: int = 1, name: str = "scratch", **kw: Any) -> Any:
    body = frame(Op.SWAP_IN, slot, count)
    return await client.post(f"/areas/{name}/io", data=body, headers=kw.get("headers", auth()))


async def read_pages(client: Client, slot: int, count: int = 1, **kw: Any) -> bytes:
    response = await read(client, slot, count, **kw)
    assert response.status == 200, await response.text()
    raw: bytes = await response.read()
    return raw[RESPONSE_HEADER.size :]


async def error_of(response: Any, status: int) -> str:
    assert response.status == status, await response.text()
    doc = await response.json()
    assert set(doc) == {"error", "message"}
    return str(doc["message"])


async def test_create_write_read_discard_round_trip(client: Client) -> None:
    await create(client)
    data = b"A" * PAGE + b"B" * PAGE
    response = await write(client, 3, data)
    assert response.status == 200
    assert len(await response.read()) == RESPONSE_HEADER.size
    assert await read_pages(client, 3, 2) == data
    response = await client.post("/areas/scratch/io", data=frame(Op.DISCARD, 3, 1), headers=auth())
    assert response.status == 200
    assert await read_pages(client, 3, 2) == bytes(PAGE) + b"B" * PAGE


async def test_info_and_list_describe_the_area(client: Client) -> None:
    await create(client)
    doc = await (await client.get("/areas/scratch", headers=auth())).json()
    assert doc == {
        "name": "scratch",
        "pages": 32,
        "page_size": PAGE,
        "durable": False,
        "discard": True,
        "max_frame_pages": 16,
        "backend": "memory",
        "max_frames": 64,
    }
    listing = await (await client.get("/areas", headers=auth())).json()
    assert [a["name"] for a in listing["areas"]] == ["scratch"]


async def test_missing_token_is_401_and_touches_nothing(client: Client) -> None:
    response = await client.put("/areas/scratch", json={"pages": 8, "page_size": PAGE})
    assert await error_of(response, 401) == "missing or wrong bearer token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await client.get("/areas/scratch", headers=auth())).status == 404


async def test_wrong_token_is_401_and_leaves_data(client: Client) -> None:
    await create(client)
    await write(client, 0, b"K" * PAGE)
    bad = {"Authorization": "Bearer not-the-token-at-all-xxxx"}
    response = await write(client, 0, b"X" * PAGE, headers=bad)
    await error_of(response, 401)
    response = await client.post("/areas/scratch/io", data=frame(Op.SWAP_IN, 0, 1), headers=bad)
    await error_of(response, 401)
    basic = {"Authorization": "Basic YWxpY2U6cGFzcw=="}
    await error_of(await client.get("/areas/scratch", headers=basic), 401)
    assert await read_pages(client, 0) == b"K" * PAGE


async def test_other_tokens_area_is_invisible(client: Client) -> None:
    await create(client)
    await write(client, 0, b"S" * PAGE)
    bob = auth(OTHER_TOKEN)
    assert "no active area 'scratch'" in await error_of(
        await client.get("/areas/scratch", headers=bob), 404
    )
    await error_of(await read(client, 0, headers=bob), 404)
    await error_of(await write(client, 0, b"X" * PAGE, headers=bob), 404)
    assert (await (await client.get("/areas", headers=bob)).json()) == {"areas": []}
    # Bob's own area of the same name is a different store.
    await create(client, token=OTHER_TOKEN)
    assert await read_pages(client, 0, headers=bob) == bytes(PAGE)
    assert await read_pages(client, 0) == b"S" * PAGE


async def test_oversized_frame_is_413_before_reading(client: Client) -> None:
    await create(client)
    huge = REQUEST_HEADER.size + 17 * PAGE
    response = await client.post("/areas/scratch/io", data=b"\0" * huge, headers=auth())
    assert "exceeds this server's limit" in await error_of(response, 413)


async def test_too_many_pages_in_header_is_413(client: Client) -> None:
    await create(client)
    response = await read(client, 0, 17)
    assert "17 pages in one frame exceeds" in await error_of(response, 413)


async def test_truncated_body_is_400_and_writes_nothing(client: Client) -> None:
    await create(client)
    body = frame(Op.SWAP_OUT, 0, 2, b"T" * PAGE)  # header promises 2 pages, 1 sent
    response = await client.post("/areas/scratch/io", data=body, headers=auth())
    assert "does not match the frame" in await error_of(response, 400)
    assert await read_pages(client, 0, 2) == bytes(2 * PAGE)


async def test_wrong_page_count_is_400(client: Client) -> None:
    await create(client)
    body = frame(Op.SWAP_OUT, 0, 1, b"W" * 2 * PAGE)  # header says 1 page, 2 sent
    await error_of(await client.post("/areas/scratch/io", data=body, headers=auth()), 400)
    assert await read_pages(client, 0, 2) == bytes(2 * PAGE)


async def test_slot_out_of_range_is_416_and_writes_nothing(client: Client) -> None:
    await create(client)
    message = await error_of(await write(client, 31, b"R" * 2 * PAGE), 416)
    assert "slots 31..32 out of range (area has 32 slots)" in message
    assert await read_pages(client, 31) == bytes(PAGE)


async def test_wrong_page_size_is_400(client: Client) -> None:
    await create(client)
    body = encode_request_header(RequestHeader(Op.SWAP_IN, 0, 1, 1024))
    response = await client.post("/areas/scratch/io", data=body, headers=auth())
    assert "does not match the area's 4096" in await error_of(response, 400)


async def test_garbage_frame_is_400(client: Client) -> None:
    await create(client)
    response = await client.post(
        "/areas/scratch/io", data=b"GET / HTTP/1.0\r\n\r\n" * 3, headers=auth()
    )
    assert "bad magic" in await error_of(response, 400)


async def test_bad_area_name_is_400(client: Client) -> None:
    response = await client.put("/areas/..secret", json={}, headers=auth())
    await error_of(response, 400)


async def test_open_missing_area_is_404(client: Client) -> None:
    await error_of(await client.put("/areas/nothing", json={}, headers=auth()), 404)


async def test_create_existing_area_is_409(client: Client) -> None:
    await create(client)
    response = await client.put(
        "/areas/scratch", json={"pages": 4, "page_size": PAGE}, headers=auth()
    )
    await error_of(response, 409)


async def test_area_larger_than_limit_is_413(client: Client) -> None:
    response = await client.put(
        "/areas/big", json={"pages": 1 << 20, "page_size": PAGE}, headers=auth()
    )
    assert "exceed this server's area limit" in await error_of(response, 413)


async def test_bad_json_body_is_400(client: Client) -> None:
    response = await client.put("/areas/x", data=b"{not json", headers=auth())
    await error_of(response, 400)
    response = await client.put("/areas/x", json={"pages": -1}, headers=auth())
    assert "pages must be a positive integer" in await error_of(response, 400)


async def test_delete_deactivates(client: Client) -> None:
    await create(client)
    assert (await client.delete("/areas/scratch", headers=auth())).status == 204
    await error_of(await read(client, 0), 404)


@pytest.mark.parametrize("how", SERVINGS)
async def test_shutdown_completes_in_flight_write_and_refuses_new_io(
    aiohttp_client: Any, server_host: PluginHost, gated: GatedMemory, how: str
) -> None:
    async with serving(how, aiohttp_client, server_config("gated"), server_host) as client:
        await _shutdown_completes_in_flight_write(client, server_host, gated)


async def _shutdown_completes_in_flight_write(
    client: Client, server_host: PluginHost, gated: GatedMemory
) -> None:
    await create(client, "slow", pages=8)
    state = client.app[STATE]
    pending = asyncio.create_task(write(client, 2, b"D" * PAGE, name="slow"))
    await gated.entered.wait()
    shutdown = asyncio.create_task(state.shutdown())
    await asyncio.sleep(0)
    refused = await read(client, 0, name="slow")
    assert "shutting down" in await error_of(refused, 503)
    assert not shutdown.done()
    gated.gate.set()
    assert (await pending).status == 200
    await shutdown
    assert state.areas == {}
    # The write completed before the area was deactivated: the store holds it.
    area = await server_host.activate(state.config.location(owner_id(TOKEN), "slow"))
    assert await area.read(2) == b"D" * PAGE
    await area.deactivate()


async def test_one_request_carries_several_frames(client: Client) -> None:
    await create(client)
    body = frame(Op.SWAP_OUT, 4, 1, b"F" * PAGE) + frame(Op.SWAP_IN, 4, 1) + frame(Op.SWAP_IN, 0, 1)
    response = await client.post("/areas/scratch/io", data=body, headers=auth())
    assert response.status == 200, await response.text()
    raw = await response.read()
    # Response frames in request order; the read of slot 4 ran after the write (they overlap).
    sizes = [RESPONSE_HEADER.size, RESPONSE_HEADER.size + PAGE, RESPONSE_HEADER.size + PAGE]
    assert len(raw) == sum(sizes)
    assert raw[sizes[0] + RESPONSE_HEADER.size : sizes[0] + sizes[1]] == b"F" * PAGE
    assert raw[-PAGE:] == bytes(PAGE)


async def test_a_bad_frame_anywhere_means_nothing_runs(client: Client) -> None:
    await create(client)
    body = frame(Op.SWAP_OUT, 1, 1, b"G" * PAGE) + frame(Op.SWAP_OUT, 40, 1, b"H" * PAGE)
    response = await client.post("/areas/scratch/io", data=body, headers=auth())
    await error_of(response, 416)
    assert await read_pages(client, 1) == bytes(PAGE)


async def test_random_bodies_get_4xx_and_never_touch_the_area(client: Client) -> None:
    await create(client)
    await write(client, 0, b"Z" * PAGE)
    rng = random.Random(7)
    valid = frame(Op.SWAP_OUT, 0, 1, b"Q" * PAGE)
    for _ in range(60):
        raw = bytearray(valid)
        for _ in range(rng.randint(1, 4)):  # corrupt a few header bytes, or truncate
            if rng.random() < 0.8:
                raw[rng.randrange(REQUEST_HEADER.size)] = rng.randrange(256)
            else:
                del raw[rng.randrange(len(raw)) :]
        response = await client.post("/areas/scratch/io", data=bytes(raw), headers=auth())
        if response.status == 200:
            continue  # the corruption hit a field that still makes a valid frame
        assert 400 <= response.status < 500, await response.text()
        assert (await response.json())["message"]
    # Whatever was accepted wrote "Q"; nothing else ever reached slot 0.
    assert await read_pages(client, 0) in (b"Z" * PAGE, b"Q" * PAGE)


async def test_areas_per_token_are_limited(aiohttp_client: Any, server_host: PluginHost) -> None:
    client = await aiohttp_client(build_app(server_config(max_areas=2), server_host))
    await create(client, "a1", pages=4)
    await create(client, "a2", pages=4)
    response = await client.put("/areas/a3", json={"pages": 4, "page_size": PAGE}, headers=auth())
    assert "already has 2 active areas" in await error_of(response, 429)
    await create(client, "b1", pages=4, token=OTHER_TOKEN)  # another token has its own quota
    assert (await client.delete("/areas/a1", headers=auth())).status == 204
    await create(client, "a3", pages=4)


class ReadOnlyMemory:
    """A ``romem://`` backend: memory areas that report themselves read-only."""

    def __init__(self) -> None:
        self.writes = 0

    @swapio.hookimpl
    def swapio_backend(self) -> swapio.BackendInfo:
        return swapio.BackendInfo(name="romem", version="0", schemes=("romem",))

    @swapio.hookimpl
    async def swapfile(self, area: SwapArea, activate: bool) -> SwapInfo | None:
        info = await memory.swapfile(area, activate)
        if info is None:
            return None
        return dataclasses.replace(
            info, capabilities=dataclasses.replace(info.capabilities, read_only=True)
        )

    @swapio.hookimpl
    async def swap_out(self, area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
        self.writes += 1
        await memory.swap_out(area, slot, pages)

    @swapio.hookimpl
    async def swap_in(self, area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
        await memory.swap_in(area, slot, pages)


@pytest.mark.parametrize("how", SERVINGS)
async def test_writing_a_read_only_area_is_400_and_never_reaches_the_store(
    aiohttp_client: Any, how: str
) -> None:
    backend = ReadOnlyMemory()
    host = PluginHost(autoload=False)
    host.register(backend, "romem")
    async with serving(how, aiohttp_client, server_config("romem"), host) as client:
        await create(client)
        assert "read-only" in await error_of(await write(client, 0, b"W" * PAGE), 400)
        assert backend.writes == 0
        assert await read_pages(client, 0) == bytes(PAGE)
