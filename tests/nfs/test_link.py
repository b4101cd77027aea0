"""The socket shell: vectored sends that survive a full socket buffer, in order, and that
never send bytes a caller changed after :meth:`Link.send` returned."""

from __future__ import annotations

import asyncio
import os
import socket

from swapio_nfs._link import Link
from swapio_nfs._receive import ReplyReceiver

from swapio.pool import PagePool


class NoReplies:
    def target(self, xid: int) -> None:
        return None

    def deliver(self, xid: int, record: memoryview, pin: object) -> None:
        raise AssertionError("no reply expected")

    def drop_reply(self, xid: int) -> None:
        raise AssertionError("no reply expected")

    def unknown_reply(self, xid: int) -> None:
        raise AssertionError("no reply expected")


def link_over(sock: socket.socket) -> Link:
    sock.setblocking(False)
    receiver = ReplyReceiver(
        PagePool.unbounded(), NoReplies(), sock_memalloc=False, max_record=1 << 20
    )
    return Link(sock, receiver, lambda link, exc: None, lambda link, exc: None)


async def read_all(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    out = bytearray()
    while len(out) < size:
        out += await loop.sock_recv(sock, 1 << 20)
    return bytes(out)


async def test_pieces_beyond_the_socket_buffer_arrive_whole_and_in_order() -> None:
    mine, theirs = socket.socketpair()
    link = link_over(mine)
    theirs.setblocking(False)
    pages = [bytearray(os.urandom(4096)) for _ in range(2048)]  # 8 MiB, more than IOV_MAX
    expected = b"".join(pages)
    link.send([memoryview(p) for p in pages])
    assert not link.writable  # the kernel took only part: the rest waits in the queue
    for page in pages:  # the caller may reuse its buffers once send() has returned
        page[:] = bytes(4096)
    received = await asyncio.wait_for(read_all(theirs, len(expected)), 30)
    assert received == expected
    await asyncio.wait_for(link.drain(), 5)
    assert link.writable
    link.close()
    theirs.close()


async def test_later_sends_queue_behind_earlier_ones() -> None:
    mine, theirs = socket.socketpair()
    link = link_over(mine)
    theirs.setblocking(False)
    first = os.urandom(4 << 20)
    link.send([first[i : i + 65536] for i in range(0, len(first), 65536)])
    link.send([b"second", b"-and-", b"third"])
    data = await asyncio.wait_for(read_all(theirs, len(first) + 16), 30)
    assert data == first + b"second-and-third"
    link.close()
    theirs.close()
