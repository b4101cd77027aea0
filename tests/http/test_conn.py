"""The client's page connections (``swapio_http._conn``): answer heads, reuse, the limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from swapio_http._conn import ConnectionPool, StaleConnectionError, parse_answer_head

from swapio.errors import RemoteProtocolError

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-swapio-frame\r\nContent-Length: 16"


def test_an_answer_head_gives_status_length_and_close() -> None:
    assert parse_answer_head(OK) == (200, 16, False)
    assert parse_answer_head(OK + b"\r\nConnection: close") == (200, 16, True)
    assert parse_answer_head(OK.replace(b"HTTP/1.1", b"HTTP/1.0"))[2]


@pytest.mark.parametrize(
    "head",
    [
        OK.replace(b"Content-Length: 16", b"Transfer-Encoding: chunked"),
        OK.replace(b"\r\nContent-Length: 16", b""),
        OK + b"\r\nContent-Length: 16",
        OK.replace(b"16", b"-1"),
        OK.replace(b"HTTP/1.1 200", b"HTTP/2 200"),
        OK + b"\r\nno colon",
    ],
    ids=["chunked", "no-length", "two-lengths", "negative", "http2", "no-colon"],
)
def test_an_answer_the_page_server_never_sends_is_a_protocol_error(head: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_answer_head(head)


class Server:
    """Answers each request with 16 bytes; closes a connection unanswered at its
    ``drop_at``-th request (the server's idle timeout racing a reused connection)."""

    def __init__(self, drop_at: int = 0) -> None:
        self.drop_at = drop_at
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                served += 1
                if served == self.drop_at:
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n" + bytes(16))
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[Server, int]]:
    server = Server()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield server, port
    finally:
        listening.close()


REQUEST = memoryview(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")


async def exchange(pool: ConnectionPool) -> None:
    conn = await pool.acquire(5.0)
    ok = False
    try:
        conn.send(REQUEST, 5.0)
        status, length, close = await conn.read_head()
        body = bytearray(length)
        await conn.readinto(memoryview(body))
        assert (status, bytes(body)) == (200, bytes(16))
        ok = not close
    finally:
        pool.release(conn, ok)


async def test_a_connection_is_reused(served: tuple[Server, int]) -> None:
    server, port = served
    pool = ConnectionPool("127.0.0.1", port, None, limit=4)
    for _ in range(5):
        await exchange(pool)
    assert server.connections == 1
    pool.close()


async def test_no_more_than_the_limit_are_open(served: tuple[Server, int]) -> None:
    server, port = served
    pool = ConnectionPool("127.0.0.1", port, None, limit=3)
    await asyncio.gather(*(exchange(pool) for _ in range(12)))
    assert server.connections == 3
    pool.close()


async def test_a_reused_connection_closed_unanswered_is_stale(
    served: tuple[Server, int],
) -> None:
    server, port = served
    server.drop_at = 2
    pool = ConnectionPool("127.0.0.1", port, None, limit=1)
    await exchange(pool)
    with pytest.raises(StaleConnectionError):
        await exchange(pool)
    await exchange(pool)  # a new connection
    assert server.connections == 2
    pool.close()


async def test_a_connection_given_back_with_unsent_bytes_is_aborted() -> None:
    """A request's pool buffer is reused once released: a transport that still holds part
    of it (possibly as a view) must drop it, not go on sending it."""

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    listening = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    pool = ConnectionPool("127.0.0.1", port, None, limit=1)
    conn = await pool.acquire(5.0)
    conn.send(memoryview(bytes(32 << 20)), 5.0)  # more than the socket buffers take
    assert conn.unsent
    assert conn.transport is not None
    pool.release(conn, reusable=True)
    assert conn.transport.get_write_buffer_size() == 0  # aborted: nothing left to send
    listening.close()
