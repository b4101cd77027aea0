"""One TCP connection on the event loop: scatter reads with ``recvmsg_into``, vectored writes
with ``sendmsg``.

asyncio's transports (CPython 3.11) read into a fresh ``bytes`` per ``data_received`` and
join every ``writelines`` into one ``bytes``; this shell does neither.  It reads into the
views a :class:`~swapio_nfs._receive.ReplyReceiver` names (pool buffers, or a READ's
destination pages), and sends a list of buffers with one ``sendmsg`` (at most ``IOV_MAX``
pieces per system call).  What the kernel does not take is copied into a send queue and sent
when the socket is writable, so callers may reuse their buffers once their call has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from swapio.errors import AllocationTimeout, RemoteProtocolError
from swapio_nfs._xdr import Buffer

if TYPE_CHECKING:
    from swapio_nfs._receive import ReplyReceiver

#: Pieces per ``sendmsg`` (Linux ``UIO_MAXIOV``).
IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024
#: Reads per readable event while each read fills the buffers it was given.
READS_PER_EVENT = 4
#: Queued (unsent) bytes above which callers wait before sending more.
HIGH_WATER = 1 << 20
#: ``struct linger`` {on, 0 s}: close with a reset, leaving no TIME_WAIT behind
_LINGER_RESET = struct.pack("ii", 1, 0)

LostCallback = Callable[["Link", BaseException | None], None]
FailureCallback = Callable[["Link", BaseException], None]


class Link:
    """A connected, non-blocking TCP socket read into ``receiver``'s buffers.

    :param on_lost: called once when the connection ends (``None``: closed by the peer).
    :param on_failure: called when the byte stream breaks the protocol.
    """

    def __init__(
        self,
        sock: socket.socket,
        receiver: ReplyReceiver,
        on_lost: LostCallback,
        on_failure: FailureCallback,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._fd = sock.fileno()
        self._receiver = receiver
        self._on_lost = on_lost
        self._on_failure = on_failure
        self._queue: deque[memoryview] = deque()
        self._queued = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed = False
        self._memory_wait: asyncio.Task[None] | None = None
        self._loop.add_reader(self._fd, self._on_readable)

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        receiver: Callable[[], ReplyReceiver],
        on_lost: LostCallback,
        on_failure: FailureCallback,
        *,
        local_port: int | None = None,
    ) -> Link:
        """Connect to ``host:port`` (every address ``getaddrinfo`` gives, in order).

        :param local_port: connect from this source port if it can be had (``SO_REUSEADDR``),
            else from any: a reconnect from the old port lets the server's duplicate request
            cache, which nfs-ganesha keys by client address *and port*, recognise the calls
            sent again (Linux: ``RPC_CLNT_CREATE_REUSEPORT``, ``xs_bind`` with the transport's
            ``srcport``).
        """
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: OSError = ConnectionRefusedError(f"no address for {host}")
        for family, kind, proto, _, address in infos:
            for source in (local_port, None) if local_port else (None,):
                sock = socket.socket(family, kind, proto)
                try:
                    sock.setblocking(False)
                    if source is not None:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", source))
                    await loop.sock_connect(sock, address)
                except OSError as exc:
                    sock.close()
                    error = exc
                    if source is not None:
                        # the port is not free yet (EADDRINUSE, EADDRNOTAVAIL), or the 4-tuple is
                        # still in the server's TIME_WAIT: a connection from any port is better
                        # than none (the duplicate request cache is a bonus, liveness is not)
                        continue
                    break
                except BaseException:
                    sock.close()
                    raise
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return cls(sock, receiver(), on_lost, on_failure)
        raise error

    @property
    def local_port(self) -> int:
        """The connection's source port."""
        return int(self._sock.getsockname()[1])

    # ----------------------------------------------------------------- reading

    def _on_readable(self) -> None:
        # a read that fills every view given may leave more bytes waiting: read again at once
        # (a few times at most, so one busy connection does not starve the loop)
        for _ in range(READS_PER_EVENT):
            views = self._receiver.buffers()
            if not views:  # no receive buffer can be had: stop reading until one can
                self._loop.remove_reader(self._fd)
                self._memory_wait = self._loop.create_task(self._wait_for_memory())
                return
            try:
                if len(views) == 1:
                    n = self._sock.recv_into(views[0])
                else:
                    n = self._sock.recvmsg_into(views)[0]
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lose(exc)
                return
            if n == 0:
                self._lose(None)
                return
            try:
                self._receiver.received(n)
            except RemoteProtocolError as exc:
                self._on_failure(self, exc)
                return
            if self._closed or n < sum(v.nbytes for v in views):
                return

    async def _wait_for_memory(self) -> None:
        while not self._closed:
            with contextlib.suppress(AllocationTimeout):
                await self._receiver.wait_for_memory()
                break
        if not self._closed:
            self._loop.add_reader(self._fd, self._on_readable)

    # ----------------------------------------------------------------- writing

    @property
    def writable(self) -> bool:
        """False while more than :data:`HIGH_WATER` bytes wait in the send queue."""
        return self._queued <= HIGH_WATER

    async def drain(self) -> None:
        """Wait until the send queue is empty (or the link is gone)."""
        await self._drained.wait()

    def send(self, pieces: Sequence[Buffer]) -> None:
        """Send ``pieces`` in order: now as far as the kernel takes them, the rest later."""
        if self._closed:
            return
        if self._queue:
            self._enqueue(pieces, 0, 0)
            return
        views = list(pieces)
        i, offset = self._send_now(views)
        if i < len(views):
            self._enqueue(views, i, offset)
            self._loop.add_writer(self._fd, self._on_writable)

    def _send_now(self, views: list[Buffer]) -> tuple[int, int]:
        """Write from ``views``; return where the kernel stopped (index, byte offset)."""
        i, offset = 0, 0
        count = len(views)
        while i < count:
            batch = views[i : i + IOV_MAX]
            if offset:
                batch[0] = memoryview(batch[0])[offset:]
            try:
                sent = self._sock.sendmsg(batch)
            except (BlockingIOError, InterruptedError):
                return i, offset
            except OSError as exc:
                self._lose(exc)
                return count, 0
            for k, piece in enumerate(batch):
                size = memoryview(piece).nbytes
                if sent < size:
                    return i, (offset if k == 0 else 0) + sent
                sent -= size
                i += 1
                offset = 0
        return count, 0

    def _enqueue(self, views: Sequence[Buffer], i: int, offset: int) -> None:
        rest = [memoryview(views[i])[offset:], *views[i + 1 :]]
        data = memoryview(b"".join(rest))  # only bytes the kernel did not take are copied
        self._queue.append(data)
        self._queued += data.nbytes
        self._drained.clear()

    def _on_writable(self) -> None:
        views: list[Buffer] = list(self._queue)
        i, offset = self._send_now(views)
        if self._closed:
            return
        for _ in range(i):
            self._queued -= self._queue.popleft().nbytes
        if offset:
            self._queue[0] = self._queue[0][offset:]  # a view: the rest is not copied again
            self._queued -= offset
        if not self._queue:
            self._loop.remove_writer(self._fd)
            self._drained.set()

    # ----------------------------------------------------------------- ending

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        if self._memory_wait is not None:
            self._memory_wait.cancel()
        self._queue.clear()
        self._queued = 0
        self._drained.set()
        self._sock.close()
        self._receiver.close()

    def _lose(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        self._shutdown()
        self._loop.call_soon(self._on_lost, self, exc)

    def abort(self) -> None:
        """Drop the connection at once with a reset (``SO_LINGER`` 0: no TIME_WAIT, so a
        reconnect may use the same source port); ``on_lost`` runs soon after."""
        if not self._closed:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self._lose(None)

    def close(self) -> None:
        """Close without notifying ``on_lost``."""
        self._shutdown()

    @property
    def closed(self) -> bool:
        """True once the socket is closed."""
        return self._closed
