"""The server's ``/io`` fast lane: which heads it serves, and the connection around them.

Everything a lane request answers (statuses, error codes, budgets, shutdown) is also covered
by the server tests, which run on both servings (``conftest.SERVINGS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from swapio_http._head import IoHead, parse_io_head
from swapio_http._wire import RESPONSE_HEADER, Op, RequestHeader, encode_request_header
from swapio_http.server import STATE, RunningServer, start_server

from swapio.plugins import PluginHost

from .conftest import TOKEN, server_config

PAGE = 4096
PLAIN = (
    b"POST /areas/scratch/io HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\n"
    b"Content-Type: application/x-swapio-frame\r\nContent-Length: 28"
)


def test_a_plain_io_head_is_for_the_lane() -> None:
    assert parse_io_head(PLAIN) == IoHead("scratch", 28, "Bearer abc", close=False)


def test_connection_close_is_noted() -> None:
    head = parse_io_head(PLAIN + b"\r\nConnection: keep-alive, close")
    assert head is not None
    assert head.close


@pytest.mark.parametrize(
    "raw",
    [
        PLAIN.replace(b"POST", b"GET"),
        PLAIN.replace(b"HTTP/1.1", b"HTTP/1.0"),
        PLAIN.replace(b"/areas/scratch/io", b"/areas/scratch%0A/io"),
        PLAIN.replace(b"/areas/scratch/io", b"/areas/scratch/io?x=1"),
        PLAIN.replace(b"/areas/scratch/io", b"/areas/.hidden/io"),
        PLAIN.replace(b"/areas/scratch/io", b"/prefix/areas/scratch/io"),
        PLAIN.replace(b"Content-Length: 28", b"Transfer-Encoding: chunked"),
        PLAIN + b"\r\nContent-Length: 28",
        PLAIN + b"\r\nTransfer-Encoding: chunked",
        PLAIN + b"\r\nExpect: 100-continue",
        PLAIN + b"\r\nConnection: Upgrade",
        PLAIN + b"\r\nAuthorization: Bearer other",
        PLAIN + b"\r\n folded continuation",
        PLAIN + b"\r\nX-Name: caf\xc3\xa9",
        PLAIN + b"\r\nX Bad: 1",
        PLAIN + b"\r\nNoColon",
        PLAIN + b"\r\nX-Bare: a\nb",
        PLAIN.replace(b"Content-Length: 28", b"Content-Length: +28"),
        PLAIN.replace(b"Content-Length: 28", b"Content-Length: 1234567890123456789"),
        PLAIN.replace(b"\r\nContent-Length: 28", b""),
    ],
    ids=lambda raw: "",
)
def test_anything_else_goes_to_aiohttp(raw: bytes) -> None:
    assert parse_io_head(raw) is None


def frame(op: Op, slot: int, count: int, data: bytes = b"") -> bytes:
    return encode_request_header(RequestHeader(op, slot, count, PAGE)) + data


def post(body: bytes, name: str = "a", token: str = TOKEN, extra: str = "") -> bytes:
    return (
        f"POST /areas/{name}/io HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    fields = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)
    }
    body = await reader.readexactly(int(fields[b"content-length"]))
    return int(head.split()[1]), fields, body


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RunningServer]:
    running = await start_server(server_config(idle_timeout=0.5), port=0, host=PluginHost())
    try:
        reader, writer = await asyncio.open_connection(running.host, running.port)
        doc = json.dumps({"pages": 64, "page_size": PAGE}).encode()
        writer.write(
            f"PUT /areas/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Length: {len(doc)}\r\nConnection: close\r\n\r\n".encode()
            + doc
        )
        assert (await answer(reader))[0] == 201
        writer.close()
        yield running
    finally:
        await running.stop()


@contextlib.asynccontextmanager
async def connection(
    server: RunningServer,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_pipelined_requests_are_answered_in_order(server: RunningServer) -> None:
    async with connection(server) as (reader, writer):
        writer.write(
            post(frame(Op.SWAP_OUT, 3, 1, b"P" * PAGE))
            + post(frame(Op.SWAP_IN, 3, 1))
            + post(frame(Op.SWAP_IN, 4, 1))
        )
        assert (await answer(reader))[0] == 200
        status, fields, body = await answer(reader)
        assert (status, body[RESPONSE_HEADER.size :]) == (200, b"P" * PAGE)
        assert fields[b"content-type"] == b"application/x-swapio-frame"
        assert (await answer(reader))[2][RESPONSE_HEADER.size :] == bytes(PAGE)


async def test_a_body_sent_in_pieces_is_received_whole(server: RunningServer) -> None:
    request = post(frame(Op.SWAP_OUT, 5, 2, b"Q" * 2 * PAGE))
    async with connection(server) as (reader, writer):
        for cut in range(0, len(request), 999):
            writer.write(request[cut : cut + 999])
            await writer.drain()
            await asyncio.sleep(0)
        assert (await answer(reader))[0] == 200
        writer.write(post(frame(Op.SWAP_IN, 5, 2)))
        assert (await answer(reader))[2][RESPONSE_HEADER.size :] == b"Q" * 2 * PAGE


async def test_another_request_after_the_lane_goes_to_aiohttp(server: RunningServer) -> None:
    async with connection(server) as (reader, writer):
        writer.write(post(frame(Op.SWAP_IN, 0, 1)))
        assert (await answer(reader))[0] == 200
        writer.write(
            f"GET /areas HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        status, _, body = await answer(reader)
        assert status == 200
        assert [a["name"] for a in json.loads(body)["areas"]] == ["a"]


async def test_an_idle_lane_connection_is_closed(server: RunningServer) -> None:
    async with connection(server) as (reader, writer):
        writer.write(post(frame(Op.SWAP_IN, 0, 1)))
        assert (await answer(reader))[0] == 200
        assert await closed_by_server(reader, within=3)


async def test_an_error_before_the_body_closes_after_the_answer(server: RunningServer) -> None:
    async with connection(server) as (reader, writer):
        request = post(frame(Op.SWAP_OUT, 0, 1, b"W" * PAGE), token="wrong-token-0123456789")
        writer.write(request[:-100])  # the server answers before the body is complete
        status, fields, body = await answer(reader)
        assert (status, json.loads(body)["error"]) == (401, "unauthorized")
        assert fields[b"www-authenticate"] == b'Bearer realm="swapio"'
        assert fields[b"connection"] == b"close"
        writer.write(request[-100:])  # the rest is read and dropped, then the server closes
        assert await closed_by_server(reader, within=3)


async def test_a_lane_upload_that_disconnects_gives_its_buffer_back(
    server: RunningServer,
) -> None:
    state = server.runner.app[STATE]
    async with connection(server) as (_, writer):
        writer.write(post(frame(Op.SWAP_OUT, 0, 16, bytes(16 * PAGE)))[:-1])
        for _ in range(500):
            if state.budget.inflight:
                break
            await asyncio.sleep(0.01)
        assert state.budget.pool.used_pages > 16
        writer.transport.abort()
    for _ in range(500):
        if not state.budget.inflight:
            break
        await asyncio.sleep(0.01)
    assert state.budget.pool.used_pages == 0


async def test_an_error_after_the_whole_body_keeps_the_connection(server: RunningServer) -> None:
    async with connection(server) as (reader, writer):
        writer.write(post(frame(Op.SWAP_OUT, 64, 1, b"W" * PAGE)))  # one slot past the end
        status, fields, body = await answer(reader)
        assert (status, json.loads(body)["error"]) == (416, "slot-range")
        assert b"connection" not in fields
        writer.write(post(frame(Op.SWAP_IN, 63, 1)))
        assert (await answer(reader))[0] == 200


async def test_a_slow_io_head_is_closed() -> None:
    server = await start_server(server_config(header_timeout=0.5), port=0, host=PluginHost())
    try:
        async with connection(server) as (reader, writer):
            writer.write(post(frame(Op.SWAP_IN, 0, 1))[:40])  # the lane's head, never finished
            for _ in range(4):  # a byte now and then does not extend the deadline
                await asyncio.sleep(0.2)
                with contextlib.suppress(ConnectionError):
                    writer.write(b"X")
            assert await closed_by_server(reader, within=3)
    finally:
        await server.stop()


async def test_a_chunked_upload_is_handed_to_aiohttp_and_refused(server: RunningServer) -> None:
    body = frame(Op.SWAP_OUT, 0, 1, b"C" * PAGE)
    async with connection(server) as (reader, writer):
        writer.write(
            f"POST /areas/a/io HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
            + b"%x\r\n" % len(body)
            + body
            + b"\r\n0\r\n\r\n"
        )
        status, _, answer_body = await answer(reader)
        assert (status, json.loads(answer_body)["error"]) == (411, "length-required")
        writer.write(post(frame(Op.SWAP_IN, 0, 1)))  # the connection is aiohttp's from now on
        status, _, answer_body = await answer(reader)
        assert (status, answer_body[RESPONSE_HEADER.size :]) == (200, bytes(PAGE))
