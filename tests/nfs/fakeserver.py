"""A scriptable ONC RPC server on loopback, for transport tests (in addition to ganesha).

Each received call is handed to ``handler(call, conn)``; the handler returns reply bytes
(framed here), ``None`` for no answer, or sends raw bytes itself through ``conn.raw``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Self

from swapio_nfs._record import RecordReader, frame
from swapio_nfs._rpc import Call, decode_call, encode_accepted_reply


class FakeConn:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def reply(self, data: bytes) -> None:
        self.writer.write(frame(data))

    def raw(self, data: bytes) -> None:
        self.writer.write(data)

    def reset(self) -> None:
        """Reset the connection (an RST: ``SO_LINGER`` 0; a bare ``abort`` sends a FIN)."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Handler = Callable[[Call, FakeConn], Awaitable[bytes | None]]


async def echo(call: Call, conn: FakeConn) -> bytes | None:
    """Answer SUCCESS with the arguments as results."""
    return encode_accepted_reply(call.xid, bytes(call.args))


class LoopbackServer:
    """A TCP server on a free loopback port for ``async with``; ``_serve`` handles each
    connection, and tasks put in ``_tasks`` are cancelled and awaited on exit."""

    port: int
    _server: asyncio.Server | None
    _tasks: set[asyncio.Task[None]]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._server.wait_closed()


class FakeRpcServer(LoopbackServer):
    def __init__(self, handler: Handler = echo) -> None:
        self.handler = handler
        self.calls: list[Call] = []
        self.connections = 0
        #: the client's (address, port) of each connection, in order
        self.peers: list[tuple[str, int]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.peers.append(writer.get_extra_info("peername")[:2])
        conn = FakeConn(writer)
        records = RecordReader()
        try:
            while data := await reader.read(65536):
                records.feed(data)
                while (record := records.next_record()) is not None:
                    call = decode_call(record)
                    self.calls.append(call)
                    task = asyncio.get_running_loop().create_task(self._answer(call, conn))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _answer(self, call: Call, conn: FakeConn) -> None:
        reply = await self.handler(call, conn)
        if reply is not None and not conn.writer.is_closing():
            conn.reply(reply)
