"""The client's page connections: keep-alive HTTP/1.1 for ``POST /areas/NAME/io``.

A page request is one ``POST`` whose head and frames the client has already laid out in one
pool buffer, and one answer of a known length (RFC 9112 §6.2, ``Content-Length``).  That
needs none of a general HTTP client's machinery, so page requests do not go through
``aiohttp.ClientSession`` (the JSON resources still do):

* :class:`PageConnection` is an :class:`asyncio.BufferedProtocol`: an answer's head is read
  into a small buffer, and its body **straight into the caller's buffer** (``recv_into``: a
  reply frame lands in the pool buffer it is delivered from, with no ``bytes`` per chunk in
  between).  One request at a time per connection (no pipelining).
* :class:`ConnectionPool` keeps up to ``limit`` connections (``?connections=``), reuses idle
  ones (last in, first out), and opens TLS connections when given an SSL context.

An answer head this module does not accept — no or repeated ``Content-Length``,
``Transfer-Encoding`` (the page server never chunks), a status line that is not HTTP/1.x —
is a :class:`~swapio.errors.RemoteProtocolError`; a connection that breaks mid-answer raises
:class:`ConnectionResetError`.  A connection is reused only after an answer was read exactly
to its end and did not ask to close.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from typing import Final

from swapio.errors import RemoteProtocolError

#: Longest answer head accepted (aiohttp's client allows 8190-byte lines as well).
MAX_HEAD: Final = 16384
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?")
_SCRATCH: Final = 4096


class StaleConnectionError(ConnectionResetError):
    """A reused keep-alive connection was closed before any byte of the answer arrived
    (the server's idle timeout raced the request): the request may be sent again."""


class PageConnection(asyncio.BufferedProtocol):
    """One keep-alive connection carrying page requests (see the module docstring)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        #: The loop, looked up once (``get_running_loop`` costs a ``getpid`` syscall).
        self._loop = asyncio.get_running_loop()
        self._scratch = memoryview(bytearray(_SCRATCH))
        self._buf = bytearray()
        self._target: memoryview | None = None
        self._filled = 0
        self._waiter: asyncio.Future[None] | None = None
        self._want_head = False
        self._need = 0
        self.closed = False
        self._lost: BaseException | None = None
        #: Requests this connection has carried (a reused one may have gone stale).
        self.requests = 0
        self._answered = False
        #: When the request in flight must have been answered; None when idle.
        self._due: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._timed_out = False

    # --- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._target is not None:
            return self._target[self._filled :]
        return self._scratch

    def buffer_updated(self, nbytes: int) -> None:
        self._answered = True
        if self._target is not None:
            self._filled += nbytes
            if self._filled >= self._target.nbytes:
                self._target = None
                self._wake()
            return
        self._buf += self._scratch[:nbytes]
        if self._waiter is not None and self._ready():
            self._wake()

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._lost = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self._lost_error())

    def _lost_error(self) -> OSError:
        if self._timed_out:
            return TimeoutError("no complete answer in time")
        detail = f": {self._lost}" if self._lost else ""
        if not self._answered and self.requests > 1:
            return StaleConnectionError(f"kept-alive connection closed by the server{detail}")
        return ConnectionResetError(f"connection closed mid-answer{detail}")

    # --- reading ---------------------------------------------------------------------------

    def _ready(self) -> bool:
        if self._want_head:
            return b"\r\n\r\n" in self._buf or len(self._buf) > MAX_HEAD
        return len(self._buf) >= self._need

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        if self.closed:
            raise self._lost_error()
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def send(self, data: memoryview, timeout: float) -> None:
        """Send one request (head and body laid out in ``data``); the transport copies what
        the socket does not take at once.  Its answer must be read within ``timeout``
        seconds, else the connection is aborted and reading raises :class:`TimeoutError`."""
        if self.closed or self.transport is None:
            raise self._lost_error()
        self.requests += 1
        self._answered = False
        self._due = self._loop.time() + timeout
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(self._due, self._check_due)
        self.transport.write(data)

    def done(self) -> None:
        """The answer was read: the request's deadline no longer applies."""
        self._due = None

    def _check_due(self) -> None:
        """The watchdog: one timer per connection, re-armed lazily (no timer is made and
        cancelled per request, as ``asyncio.timeout`` would)."""
        self._watchdog = None
        if self._due is None or self.closed:
            return
        if self._loop.time() < self._due:
            self._watchdog = self._loop.call_at(self._due, self._check_due)
            return
        self._timed_out = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError("no complete answer in time"))
        if self.transport is not None:
            self.transport.abort()

    async def read_head(self) -> tuple[int, int, bool]:
        """The answer's status, ``Content-Length`` and whether the server closes after it."""
        self._want_head = True
        try:
            if not self._ready():
                await self._wait()
        finally:
            self._want_head = False
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            raise RemoteProtocolError(f"answer head longer than {MAX_HEAD} bytes")
        head = bytes(self._buf[:end])
        del self._buf[: end + 4]
        return parse_answer_head(head)

    async def read(self, nbytes: int) -> bytes:
        """Exactly ``nbytes`` more bytes of the answer (for small bodies)."""
        if len(self._buf) < nbytes:
            self._need = nbytes
            await self._wait()
        data = bytes(self._buf[:nbytes])
        del self._buf[:nbytes]
        return data

    async def readinto(self, view: memoryview) -> None:
        """Fill ``view`` with the next bytes of the answer, receiving into it directly."""
        count = min(len(self._buf), view.nbytes)
        if count:
            view[:count] = self._buf[:count]
            del self._buf[:count]
        if count < view.nbytes:
            self._target = view
            self._filled = count
            try:
                await self._wait()
            finally:
                self._target = None

    @property
    def leftover(self) -> int:
        """Bytes received beyond what was read (an answer longer than it said)."""
        return len(self._buf)

    def close(self) -> None:
        """Close the connection; **abort** it while the transport still holds unsent bytes
        of a request.  A request is sent from a pool buffer whose memory is reused once it
        is released (``PagePool.alloc(zero=False)``), and a transport may keep a view of it
        rather than a copy (asyncio's since Python 3.12): a graceful close would go on
        sending from memory that then holds another request."""
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.transport is not None:
            if self.transport.get_write_buffer_size():
                self.transport.abort()  # drops the unsent bytes at once
            else:
                self.transport.close()

    @property
    def unsent(self) -> bool:
        """True while the transport holds bytes of the request not yet sent."""
        return self.transport is not None and bool(self.transport.get_write_buffer_size())


def parse_answer_head(head: bytes) -> tuple[int, int, bool]:
    """``(status, content_length, close)`` of an HTTP/1.x answer head (RFC 9112 §4, §6)."""
    lines = head.split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise RemoteProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    length: int | None = None
    close = lines[0].startswith(b"HTTP/1.0")
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if not sep:
            raise RemoteProtocolError(f"malformed answer header line {line[:80]!r}")
        if name == b"content-length":
            if length is not None or not value.isdigit() or len(value) > 18:
                raise RemoteProtocolError(f"bad or repeated Content-Length {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            raise RemoteProtocolError("chunked answer: the page server sends Content-Length")
        elif name == b"connection":
            close = close or b"close" in value.lower()
    if length is None:
        raise RemoteProtocolError("answer without Content-Length")
    return int(match.group(1)), length, close


class ConnectionPool:
    """Up to ``limit`` page connections to one server (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        limit: int,
        connect_timeout: float = 30.0,
    ) -> None:
        #: Seconds a new connection (and its TLS handshake) may take.
        self.connect_timeout = connect_timeout
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._limit = limit
        self._idle: list[PageConnection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[PageConnection | None]] = deque()
        self._closed = False

    async def acquire(self, timeout: float) -> PageConnection:
        """An idle connection, a new one within the limit, or the next one released (waited
        for at most ``timeout`` seconds: :class:`TimeoutError`)."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._open -= 1
        if self._open >= self._limit:
            waiter: asyncio.Future[PageConnection | None]
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(timeout):
                    handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._pass_on(waiter.result())
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
            if handed is not None:
                return handed
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._pass_on(None)
            raise

    async def _connect(self) -> PageConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, conn = await loop.create_connection(
                PageConnection,
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl is not None else None,
            )
        assert isinstance(conn, PageConnection)
        return conn

    def release(self, conn: PageConnection, reusable: bool) -> None:
        """Give ``conn`` back; one that is not ``reusable`` (or broken) is closed."""
        if not reusable or conn.closed or self._closed or conn.unsent:
            conn.close()
            self._open -= 1
            self._pass_on(None)
            return
        self._pass_on(conn)

    def _pass_on(self, conn: PageConnection | None) -> None:
        """Hand ``conn`` (or, with None, room for a new connection) to a waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections; busy ones close when they are released."""
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._open -= len(self._idle)
        self._idle.clear()
