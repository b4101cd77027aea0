"""One server connection: the connection guard, the ``/io`` fast lane, and aiohttp behind them.

Every accepted connection gets a :class:`LaneProtocol`.  It is an
:class:`asyncio.BufferedProtocol`, so the transport receives straight into a buffer the
protocol names (``recv_into``; the ``sock_recvmsg``-into-the-page idea of a zero-copy receive
path):

* **Request heads** are read into a small per-connection buffer.  A head that
  :func:`swapio_http._head.parse_io_head` recognises (a plain ``POST /areas/NAME/io``) is
  served by the server's :class:`Lane` (``swapio_http._iolane``): the request body is then
  received **directly into its pool buffer** (no intermediate ``bytes``, no copy by an HTTP
  parser, no zero-filled buffer copied over), and the response is written by the lane.
* **Every other head** (the JSON resources, anything unusual or malformed) hands the
  connection to aiohttp's protocol for good, from the first byte of that head: aiohttp then
  answers it exactly as it would without the lane.

The guard's limits hold on both paths (:mod:`swapio_http._guard`): connections beyond
``max_connections`` are refused, a head must arrive within ``header_timeout``; on the lane an
idle keep-alive connection is closed after ``idle_timeout`` (aiohttp does it for handed-over
ones), writing is flow-controlled (no new request is read while the peer does not read its
responses), and after an error answered before the body was read the rest of the body is
discarded for at most :data:`LINGER` seconds before the connection closes (aiohttp's
``lingering_time``).
"""

from __future__ import annotations

import asyncio
import enum
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ._head import MAX_HEAD, PREFIX, IoHead, parse_io_head

if TYPE_CHECKING:
    from ._guard import ConnectionGuard

#: Seconds the rest of an unread body is discarded before the connection closes.
LINGER = 10.0
#: Bytes buffered outside a pool buffer before the connection stops being read (what
#: aiohttp's stream reader allows before it pauses reading).
_BUF_LIMIT = 1 << 17


class Lane(Protocol):
    """The server side of the fast lane: serves one recognised request on ``conn``."""

    def accept(self, conn: LaneProtocol, head: IoHead) -> None: ...


class _State(enum.Enum):
    HEAD = "head"  # reading a request head
    WAIT = "wait"  # a request is being served; bytes that arrive are kept for later
    BODY = "body"  # receiving a body into the lane's buffer
    DISCARD = "discard"  # skipping the rest of an unread body, then closing
    HANDED = "handed"  # aiohttp's protocol owns the connection
    CLOSED = "closed"


class LaneProtocol(asyncio.BufferedProtocol):
    """The protocol of one accepted connection (see the module docstring)."""

    def __init__(
        self,
        guard: ConnectionGuard,
        inner_factory: Callable[[], asyncio.Protocol],
        lane: Lane | None,
        idle_timeout: float,
        scratch: memoryview,
    ) -> None:
        self._guard = guard
        self._inner_factory = inner_factory
        self._inner: asyncio.Protocol | None = None
        self._lane = lane
        self._idle_timeout = idle_timeout
        self._scratch = scratch
        self.transport: asyncio.Transport | None = None
        #: The loop, looked up once (``get_running_loop`` costs a ``getpid`` syscall).
        self.loop = asyncio.get_running_loop()
        self._deadline: asyncio.TimerHandle | None = None
        #: When the head being received must be complete; None between heads.
        self._head_due: float | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._last_active = 0.0
        self._refused = False
        self.busy = False
        self._state = _State.HEAD if lane is not None else _State.HANDED
        self._buf = bytearray()
        self._need = 0
        self._body = memoryview(b"")
        self._filled = 0
        self._on_data: Callable[[int], None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        #: Body bytes of the current lane request not yet received (for discarding).
        self.body_left = 0
        self._write_paused = False
        self._read_paused = False
        self._close_after = False

    # --- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        guard = self._guard
        if guard.open >= guard.max_connections:
            self._refused = True
            guard.refused += 1
            transport.write(guard.refusal)
            transport.close()
            return
        guard.open += 1
        self.transport = transport
        guard.register(transport, self)
        self._arm()
        if self._state is _State.HANDED:
            self._handover()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small answers now

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._state is _State.BODY:
            return self._body[self._filled :]
        return self._scratch

    def buffer_updated(self, nbytes: int) -> None:
        state = self._state
        if state is _State.BODY:
            self._body_received(nbytes)
            return
        if self._refused or state is _State.CLOSED:
            return
        if state is _State.HANDED:
            if not self.busy and self._head_due is None:
                self._arm()  # the first bytes of a new request head: it has header_timeout s
            assert self._inner is not None
            self._inner.data_received(bytes(self._scratch[:nbytes]))
            return
        if state is _State.DISCARD:
            self.body_left -= min(nbytes, self.body_left)
            if self.body_left == 0:
                self.close()
            return
        if state is _State.HEAD and not self._buf and self._head_due is None:
            self._arm()
        self._buf += self._scratch[:nbytes]
        if len(self._buf) > _BUF_LIMIT and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()
        if state is _State.HEAD:
            self._scan()
        elif self._waiter is not None and len(self._buf) >= self._need:
            self._wake(None)

    def eof_received(self) -> bool | None:
        if self._refused:
            return None
        if self._state is _State.HANDED:
            assert self._inner is not None
            return self._inner.eof_received()
        if self._state in (_State.WAIT, _State.BODY):
            self._close_after = True
            self._wake(ConnectionResetError("the client closed its side mid-request"))
            return True  # keep the transport to answer what was accepted
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        previous, self._state = self._state, _State.CLOSED
        self.disarm()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._cancel_idle()
        self._guard.open -= 1
        self._guard.unregister(self.transport)
        self._wake(ConnectionResetError("connection lost"))
        if previous is _State.HANDED and self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()
        else:
            self._write_paused = True

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
            return
        self._write_paused = False
        if self._state is _State.HEAD:
            self._scan()

    # --- the guard's header deadline and the idle timer ------------------------------------

    def _arm(self) -> None:
        """A request head starts: it must be complete within ``header_timeout``.

        One timer per connection, checked lazily: a head that completes in time only clears
        :attr:`_head_due` (no timer is cancelled and made again per request)."""
        loop = self.loop
        self._head_due = loop.time() + self._guard.header_timeout
        if self._deadline is None:
            self._deadline = loop.call_at(self._head_due, self._expire)

    def disarm(self) -> None:
        self._head_due = None

    def _expire(self) -> None:
        self._deadline = None
        due = self._head_due
        if due is None or self.transport is None:
            return
        loop = self.loop
        if loop.time() < due:
            self._deadline = loop.call_at(due, self._expire)  # a later head's deadline
        elif not self.busy:
            self._guard.timed_out += 1
            self.transport.abort()

    def _arm_idle(self) -> None:
        loop = self.loop
        self._last_active = loop.time()
        if self._idle is None:
            self._idle = loop.call_at(self._last_active + self._idle_timeout, self._idle_check)

    def _idle_check(self) -> None:
        self._idle = None
        if self._state is not _State.HEAD or self._buf:
            return  # serving, or a head is arriving (the header deadline covers it)
        loop = self.loop
        due = self._last_active + self._idle_timeout
        if loop.time() < due:
            self._idle = loop.call_at(due, self._idle_check)  # it was active meanwhile
        else:
            self.close()

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    # --- heads -------------------------------------------------------------------------------

    def _scan(self) -> None:
        """Serve or hand over the head at the start of the buffer, once it is complete."""
        buf = self._buf
        if not buf or self._write_paused:
            return
        if not buf.startswith(PREFIX[: len(buf)]):
            self._handover()
            return
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._handover()
            return
        head = parse_io_head(bytes(buf[:end])) if end <= MAX_HEAD else None
        if head is None or self._lane is None:
            self._handover()
            return
        del buf[: end + 4]
        self._state = _State.WAIT
        self.busy = True
        self.disarm()
        self.body_left = head.content_length
        self._lane.accept(self, head)

    def _handover(self) -> None:
        """Give the connection, and every byte not yet served, to aiohttp's protocol."""
        self._state = _State.HANDED
        self._cancel_idle()
        inner = self._inner = self._inner_factory()
        assert self.transport is not None
        inner.connection_made(self.transport)
        if self._write_paused:
            inner.pause_writing()
        data, self._buf = bytes(self._buf), bytearray()
        if data:
            inner.data_received(data)

    # --- what the lane calls ---------------------------------------------------------------

    async def read_prefix(self, nbytes: int) -> None:
        """Wait until ``nbytes`` of the body are buffered (:meth:`take_into` takes them)."""
        if len(self._buf) >= nbytes:
            return
        self._need = nbytes
        await self._wait()

    def peek(self, nbytes: int) -> bytes:
        """The first ``nbytes`` buffered body bytes (a copy; they stay buffered)."""
        return bytes(self._buf[:nbytes])

    def take_into(self, view: memoryview) -> int:
        """Move the buffered body bytes (at most the body's rest) to the start of ``view``."""
        count = min(len(self._buf), self.body_left, view.nbytes)
        view[:count] = self._buf[:count]
        del self._buf[:count]
        self.body_left -= count
        self._resume_reading()
        return count

    def _resume_reading(self) -> None:
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()

    @property
    def unread(self) -> bool:
        """True while body bytes of the current request have not arrived yet."""
        return self.body_left > len(self._buf)

    async def receive_into(
        self, view: memoryview, filled: int, on_data: Callable[[int], None]
    ) -> None:
        """Receive the rest of the body straight into ``view[filled:]`` (``recv_into``).

        ``on_data(end)`` is called as bytes arrive (``end`` bytes of ``view`` are filled); an
        exception it raises ends the receive and is raised here.
        """
        if filled >= view.nbytes:
            return
        self._state = _State.BODY
        self._body = view
        self._filled = filled
        self._on_data = on_data
        self._resume_reading()
        try:
            await self._wait()
        finally:
            self._on_data = None
            self._body = memoryview(b"")
            if self._state is _State.BODY:
                self._state = _State.WAIT

    def _body_received(self, nbytes: int) -> None:
        self._filled += nbytes
        self.body_left -= nbytes
        assert self._on_data is not None
        try:
            self._on_data(self._filled)
        except Exception as exc:  # a frame header failed its checks: stop receiving
            self._state = _State.WAIT
            self._wake(exc)
            return
        if self._filled >= self._body.nbytes:
            self._state = _State.WAIT
            self._wake(None)

    async def _wait(self) -> None:
        if self._state is _State.CLOSED or self._close_after:
            raise ConnectionResetError("connection lost")
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self, exc: BaseException | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def write(self, data: bytes | memoryview) -> None:
        """Send (part of) the answer; the transport copies what it cannot send at once."""
        if self.transport is not None and self._state is not _State.CLOSED:
            self.transport.write(data)

    def finish(self, close: bool) -> None:
        """The answer is written: serve the next head, or close (``close``, or at shutdown).

        Body bytes not received yet (an error answered early) are discarded first, for at
        most :data:`LINGER` seconds, and the connection is then closed.
        """
        if self._state is _State.CLOSED:
            return
        self.busy = False
        if self.body_left > len(self._buf) and not self._close_after:
            self.body_left -= len(self._buf)
            self._buf.clear()
            self._resume_reading()
            self._state = _State.DISCARD
            loop = self.loop
            loop.call_later(LINGER, self.close)
            return
        del self._buf[: self.body_left]
        self.body_left = 0
        self._resume_reading()
        if close or self._close_after or self._guard.closing:
            self.close()
            return
        self._state = _State.HEAD
        self._arm_idle()
        if self._buf:
            self._arm()
            self._scan()

    def close(self) -> None:
        """Close the connection after what was written is sent."""
        if self.transport is not None and self._state is not _State.HANDED:
            self._state = _State.CLOSED
            self.transport.close()

    @property
    def idle(self) -> bool:
        """True between requests on the lane (nothing received of a next head)."""
        return self._state is _State.HEAD and not self._buf
