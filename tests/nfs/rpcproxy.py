"""A TCP proxy between an RPC client and a real server that records what passes, in order.

Every client connection gets its own upstream connection; bytes are forwarded unchanged in
both directions.  Calls (client to server) are logged with their XID and whole record, replies
(server to client) with their XID, so a test can check what went on the wire: that a
retransmission carried the XID and bytes of the first transmission, and that a call was sent
only after the reply to another one had come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass

from swapio_nfs._record import RecordReader

from .fakeserver import LoopbackServer

MAX_RECORD = 8 << 20


@dataclass(frozen=True)
class Seen:
    """One record that passed: ``kind`` is ``"call"`` or ``"reply"``."""

    kind: str
    xid: int
    record: bytes
    connection: int


class RecordingProxy(LoopbackServer):
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.upstream_port = port
        self.port = 0
        self.log: list[Seen] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def calls(self, xid: int) -> list[Seen]:
        return [s for s in self.log if s.kind == "call" and s.xid == xid]

    def index(self, kind: str, xid: int) -> int:
        """Position in the log of the first record of ``kind`` with ``xid``."""
        return next(i for i, s in enumerate(self.log) if s.kind == kind and s.xid == xid)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        loop = asyncio.get_running_loop()
        pumps = [
            loop.create_task(self._pump(reader, up_writer, "call", number)),
            loop.create_task(self._pump(up_reader, writer, "reply", number)),
        ]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # either side closing ends both
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        for w in (writer, up_writer):
            w.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        kind: str,
        number: int,
    ) -> None:
        records = RecordReader(MAX_RECORD)
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                records.feed(data)
                while (record := records.next_record()) is not None:
                    (xid,) = struct.unpack_from(">I", record)
                    self.log.append(Seen(kind, xid, bytes(record), number))
                writer.write(data)
                await writer.drain()
