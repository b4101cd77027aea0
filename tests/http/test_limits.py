"""Connection limits of ``swapio serve``: open connections, header time, idle keep-alive."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from swapio_http.server import RunningServer, start_server

from .conftest import TOKEN, server_config

GET = f"GET /areas HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()


@pytest_asyncio.fixture
async def limited() -> AsyncIterator[RunningServer]:
    config = server_config(max_connections=4, header_timeout=0.5, idle_timeout=0.5)
    server = await start_server(config, port=0)
    try:
        yield server
    finally:
        await server.stop()


async def connect(server: RunningServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(server.host, server.port)


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the server closes the connection (EOF or reset) within ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def get_areas(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(GET)
    head = await reader.readuntil(b"\r\n\r\n")
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
    length = int({k.lower(): v for k, v in fields.items()}[b"content-length"])
    await reader.readexactly(length)
    return int(head.split()[1])


async def close(*writers: asyncio.StreamWriter) -> None:
    for writer in writers:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_connections_beyond_the_limit_get_503_and_are_closed(limited: Any) -> None:
    idle = [await connect(limited) for _ in range(4)]
    await asyncio.sleep(0.05)
    reader, writer = await connect(limited)
    answer = await asyncio.wait_for(reader.read(), 2)
    assert answer.startswith(b"HTTP/1.1 503")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "too-many-connections"
    await close(writer, *(w for _, w in idle))
    await asyncio.sleep(0.05)
    reader, writer = await connect(limited)
    assert await get_areas(reader, writer) == 200  # room again
    await close(writer)


async def test_a_connection_that_sends_no_head_is_closed(limited: Any) -> None:
    reader, writer = await connect(limited)
    assert await closed_by_server(reader, within=3)
    await close(writer)


async def test_a_slow_request_head_is_closed(limited: Any) -> None:
    reader, writer = await connect(limited)
    writer.write(b"GET /areas HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
    for _ in range(4):  # a byte now and then does not extend the deadline
        await asyncio.sleep(0.2)
        with contextlib.suppress(ConnectionError):
            writer.write(b"X")
    assert await closed_by_server(reader, within=3)
    await close(writer)


async def test_an_idle_keep_alive_connection_is_closed(limited: Any) -> None:
    reader, writer = await connect(limited)
    assert await get_areas(reader, writer) == 200
    assert await closed_by_server(reader, within=3)
    await close(writer)


async def test_a_legitimate_client_is_served_while_others_stall(limited: Any) -> None:
    stalled = [await connect(limited) for _ in range(3)]
    for _, writer in stalled:
        writer.write(b"GET /areas HTTP/1.1\r\n")
    reader, writer = await connect(limited)
    for _ in range(5):
        assert await get_areas(reader, writer) == 200
    await close(writer, *(w for _, w in stalled))
