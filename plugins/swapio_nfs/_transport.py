"""ONC RPC over TCP on asyncio: many outstanding calls on one connection.

The thin I/O shell around :mod:`swapio_nfs._rpc` and :mod:`swapio_nfs._record`:

* Calls are matched to replies by XID (RFC 5531 §9); any number may be outstanding.
* Each call has a deadline.  When it passes the call is **retransmitted with the same XID** (so
  the server's duplicate request cache can answer it) with the timeout doubled, up to
  ``retrans`` times; then the call fails with :class:`RpcTimeoutError`.
* A lost connection is re-established with exponential backoff and every outstanding call is
  sent again, with its XID, on the new connection; a call made while disconnected waits for
  the reconnect the same way.  A call whose retransmissions run out while disconnected fails
  with :class:`RpcConnectionError` naming the last connect error.
* **Reply buffers come from the page pool**, allocated when the call is made, in the
  caller's context (sunrpc's ``call_allocate``/``rpc_malloc``): a call made in memalloc
  context may get a reserve-backed buffer (``kmalloc_reserve``), any other call waits for
  ordinary memory (waking reclaim).  So a reply lands in reserve memory only when it answers
  memalloc work — the ``SOCK_MEMALLOC`` rule — and a swap-out never waits for memory that
  only its own completion could free.  The reply record is assembled in the connection's
  receive ring (bounded by ``max_record``) and copied into the call's buffer; a reply larger
  than the buffer its call allocated is a protocol error of that call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from swapio_nfs._errors import (
    MalformedReplyError,
    RecordMarkError,
    RpcConnectionError,
    RpcTimeoutError,
)
from swapio_nfs._record import DEFAULT_MAX_RECORD, RecordReader, encode_mark
from swapio_nfs._rpc import (
    AUTH_NONE,
    CallTemplate,
    OpaqueAuth,
    accepted_results_offset,
    decode_reply,
    peek_xid,
)
from swapio_nfs._xdr import Buffer

if TYPE_CHECKING:
    from swapio.pool import PagePool, PoolBuffer

log = logging.getLogger(__name__)

DEFAULT_REPLY_SIZE = 1024
"""Reply buffer of a call that carries no bulk data (GETATTR, WRITE, COMMIT...)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts, retransmissions and reconnect backoff (``timeo``/``retrans`` of nfs(5))."""

    timeout: float = 5.0
    """Seconds before the first retransmission of a call."""
    retrans: int = 3
    """Retransmissions before a call fails."""
    max_timeout: float = 30.0
    """Cap on the doubled per-attempt timeout."""
    connect_timeout: float = 5.0
    """Seconds one connection attempt may take."""
    backoff_initial: float = 0.05
    backoff_max: float = 2.0


class RpcResult:
    """A successful reply's results, held in a pool buffer until :meth:`release`."""

    __slots__ = ("_buffer", "results")

    def __init__(self, results: memoryview, buffer: PoolBuffer | None) -> None:
        self.results = results
        self._buffer = buffer

    @property
    def pfmemalloc(self) -> bool:
        """True when the reply lives in reserve memory."""
        return self._buffer is not None and self._buffer.pfmemalloc

    def release(self) -> None:
        """Give the reply's buffer back to the pool (idempotent)."""
        buf, self._buffer = self._buffer, None
        if buf is not None:
            buf.release()

    def __enter__(self) -> RpcResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(eq=False)
class _Pending:
    xid: int
    message: list[Buffer]
    future: asyncio.Future[RpcResult]
    program: str
    timeout: float
    buffer: PoolBuffer | None = None
    attempts: int = 0
    deadline: float = 0.0
    sent_on: int = -1


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: RpcConnection, generation: int) -> None:
        self._owner = owner
        self._generation = generation
        self._reader = RecordReader(owner.max_record)
        self.transport: asyncio.Transport | None = None
        self._writable = asyncio.Event()
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._reader.feed(data)
        except RecordMarkError as exc:
            self._owner._protocol_failure(self._generation, exc)
            return
        while (record := self._reader.next_record()) is not None:
            self._owner._on_record(record)

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()
        self._owner._on_lost(self._generation, exc)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    @property
    def writable(self) -> bool:
        return self._writable.is_set()

    async def drain(self) -> None:
        await self._writable.wait()


class RpcConnection:
    """A client connection to one ONC RPC server over TCP.

    :param host: server address.
    :param port: server TCP port.
    :param pool: page pool reply buffers come from (``None``: plain memory, for the short
        MOUNT and portmap exchanges at activation).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        pool: PagePool | None = None,
        policy: RetryPolicy | None = None,
        max_record: int = DEFAULT_MAX_RECORD,
        name: str = "RPC",
    ) -> None:
        self.host = host
        self.port = port
        self.pool = pool
        self.policy = policy or RetryPolicy()
        self.max_record = max_record
        self.name = name
        self._xid = int.from_bytes(os.urandom(4), "big")
        self._pending: dict[int, _Pending] = {}
        self._protocol: _Protocol | None = None
        self._generation = 0
        self._closed = False
        self._connecting: asyncio.Task[None] | None = None
        self._first: asyncio.Task[None] | None = None
        self._last_error: BaseException | None = None
        self._outgoing: list[Buffer] = []
        self._flush_scheduled = False
        self._ever_connected = False
        self._sweep: asyncio.TimerHandle | None = None
        self._templates: dict[tuple[int, int, int, OpaqueAuth], CallTemplate] = {}
        # counters, for tests and the benchmark
        self.calls = 0
        self.retransmissions = 0
        self.reconnects = 0
        self.unknown_xids = 0

    # ----------------------------------------------------------------- connection

    @property
    def connected(self) -> bool:
        """True while a TCP connection is up."""
        return self._protocol is not None

    @property
    def outstanding(self) -> int:
        """Calls sent and not yet answered."""
        return len(self._pending)

    async def connect(self) -> None:
        """Open the connection; raise :class:`RpcConnectionError` if the server is unreachable.

        Concurrent callers share one connection attempt.
        """
        if self._closed:
            raise RpcConnectionError(f"{self.name} connection to {self._where} is closed")
        if self._protocol is not None:
            return
        if self._first is None or self._first.done():
            self._first = asyncio.get_running_loop().create_task(self._open())
        await asyncio.shield(self._first)

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._generation += 1
        generation = self._generation
        try:
            async with asyncio.timeout(self.policy.connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Protocol(self, generation), self.host, self.port
                )
        except TimeoutError:
            raise RpcConnectionError(
                f"{self.name} server {self._where} did not accept a connection within "
                f"{self.policy.connect_timeout:g} s"
            ) from None
        except socket.gaierror as exc:
            raise RpcConnectionError(
                f"cannot resolve {self.name} server host {self.host!r}: {exc.strerror}"
            ) from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            err = RpcConnectionError(
                f"cannot connect to {self.name} server {self._where}: {reason}"
            )
            err.errno = exc.errno
            raise err from None
        sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._protocol = protocol
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        for pending in list(self._pending.values()):
            if not pending.future.done() and pending.sent_on != generation:
                self._send(pending)

    def _on_lost(self, generation: int, exc: Exception | None) -> None:
        if generation != self._generation:
            return
        self._protocol = None
        self._outgoing.clear()  # unsent calls go out again, whole, after the reconnect
        if exc is not None:
            self._last_error = exc
        if self._closed:
            return
        log.debug("%s connection to %s lost: %s", self.name, self._where, exc)
        if self._pending:
            self._start_reconnect()

    def _start_reconnect(self) -> None:
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self.policy.backoff_initial
        while not self._closed and self._protocol is None and self._pending:
            try:
                await self._open()
                return
            except RpcConnectionError as exc:
                self._last_error = exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.policy.backoff_max)

    def _protocol_failure(self, generation: int, exc: BaseException) -> None:
        """The byte stream is out of sync: fail every call and drop the connection."""
        if generation != self._generation:
            return
        self._fail_all(exc)
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.abort()

    def _fail_all(self, exc: BaseException) -> None:
        for pending in list(self._pending.values()):
            self._finish(pending, exc)

    async def close(self) -> None:
        """Close the connection; outstanding calls fail with :class:`RpcConnectionError`."""
        self._closed = True
        for task in (self._connecting, self._first):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._fail_all(RpcConnectionError(f"{self.name} connection to {self._where} was closed"))
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            await asyncio.sleep(0)

    def abort(self) -> None:
        """Drop the TCP connection abruptly (a connection reset); calls are retried."""
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.abort()

    # ----------------------------------------------------------------- calls

    def _next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        while self._xid in self._pending:
            self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    async def call(
        self,
        prog: int,
        vers: int,
        proc: int,
        args: Buffer | Sequence[Buffer] = b"",
        *,
        cred: OpaqueAuth = AUTH_NONE,
        program: str | None = None,
        timeout: float | None = None,
        reply_size: int = DEFAULT_REPLY_SIZE,
    ) -> RpcResult:
        """Send a call and return its results; raise the error the server or network gave.

        :param reply_size: the largest reply expected (whole record); its buffer is taken
            from the pool before the call is sent.

        The caller must :meth:`RpcResult.release` the result (or use it in ``with``).
        """
        if self._closed:
            raise RpcConnectionError(f"{self.name} connection to {self._where} is closed")
        if self._protocol is None and not self._ever_connected:
            await self.connect()  # the first connection: fail at once if there is no server
        xid = self._next_xid()
        key = (prog, vers, proc, cred)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = CallTemplate(prog, vers, proc, cred)
        head = template.header(xid)
        parts: list[Buffer] = [head]
        if isinstance(args, bytes | bytearray | memoryview):
            parts.append(args)
            size = len(head) + memoryview(args).nbytes
        else:
            parts.extend(args)
            size = len(head) + sum(memoryview(a).nbytes for a in args)
        parts.insert(0, encode_mark(size))
        loop = asyncio.get_running_loop()
        pending = _Pending(
            xid,
            parts,
            loop.create_future(),
            program or self.name,
            self.policy.timeout if timeout is None else timeout,
        )
        if self.pool is not None:  # kmalloc_reserve in the caller's (memalloc) context
            pool = self.pool
            pending.buffer = pool.try_alloc(reply_size) or await pool.alloc(reply_size)
        try:
            self._pending[xid] = pending
            self.calls += 1
            protocol = self._protocol
            if protocol is not None and not protocol.writable:
                await protocol.drain()
            if self._protocol is None:
                # connection lost earlier: the call waits for the reconnect within its own
                # retransmission budget, like every call that was in flight
                self._start_reconnect()
            elif not pending.future.done():
                self._send(pending)
            self._arm(pending)
            return await pending.future
        finally:
            self._pending.pop(xid, None)
            if pending.buffer is not None:  # not handed over to a result
                pending.buffer.release()
                pending.buffer = None

    def _send(self, pending: _Pending) -> None:
        """Queue a call for the next flush: calls made in one loop iteration share a send."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            return
        pending.sent_on = self._generation
        self._outgoing.extend(pending.message)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._outgoing = self._outgoing, []
        protocol = self._protocol
        transport = protocol.transport if protocol is not None else None
        if out and transport is not None and not transport.is_closing():
            transport.write(b"".join(out))

    def _arm(self, pending: _Pending) -> None:
        """Set the call's deadline; one sweep timer per connection checks all deadlines.

        A timer per call would cost a heap insertion and a cancellation on every page; the
        sweep runs a few times per timeout instead (``xprt->timer`` in the kernel works alike).
        """
        loop = asyncio.get_running_loop()
        pending.deadline = loop.time() + pending.timeout
        if self._sweep is None:
            self._sweep = loop.call_later(self._tick(), self._on_sweep)

    def _tick(self) -> float:
        return max(0.005, min(self.policy.timeout, self.policy.max_timeout) / 4)

    def _on_sweep(self) -> None:
        self._sweep = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for pending in list(self._pending.values()):
            if pending.deadline <= now and not pending.future.done():
                self._on_timeout(pending)
        if self._pending and self._sweep is None:
            self._sweep = loop.call_later(self._tick(), self._on_sweep)

    def _on_timeout(self, pending: _Pending) -> None:
        if pending.future.done():
            return
        if pending.attempts >= self.policy.retrans:
            if self._protocol is None:
                exc: BaseException = RpcConnectionError(
                    f"{pending.program} call (xid {pending.xid:#x}) to {self._where} failed: "
                    f"connection lost and not re-established ({self._last_error})"
                )
            else:
                exc = RpcTimeoutError(
                    f"{pending.program} call (xid {pending.xid:#x}) to {self._where} got no "
                    f"reply after {pending.attempts + 1} transmissions"
                )
            self._finish(pending, exc)
            return
        pending.attempts += 1
        self.retransmissions += 1
        pending.timeout = min(pending.timeout * 2, self.policy.max_timeout)
        if self._protocol is None:
            self._start_reconnect()
        else:
            self._send(pending)
        pending.deadline = asyncio.get_running_loop().time() + pending.timeout

    def _finish(self, pending: _Pending, exc: BaseException) -> None:
        self._pending.pop(pending.xid, None)
        if not pending.future.done():
            pending.future.set_exception(exc)

    # ----------------------------------------------------------------- replies

    def _on_record(self, record: bytearray) -> None:
        try:
            xid = peek_xid(record)
        except MalformedReplyError as exc:
            self._protocol_failure(self._generation, exc)
            return
        pending = self._pending.get(xid)
        if pending is None or pending.future.done():
            self.unknown_xids += 1  # a late duplicate, or a reply to nothing we sent
            return
        buffer = pending.buffer
        view: memoryview
        if buffer is not None:
            size = len(record)
            if size > buffer.nbytes:
                self._finish(
                    pending,
                    MalformedReplyError(
                        f"{pending.program} reply (xid {xid:#x}) is {size} bytes, larger than "
                        f"the {buffer.nbytes}-byte buffer its call allocated",
                        xid,
                    ),
                )
                return
            view = buffer.view[:size]
            view[:] = record
        else:
            view = memoryview(record)
        start = accepted_results_offset(view)
        if start < 0:  # not the common case: decode fully for the precise error
            try:
                reply = decode_reply(view, pending.program)
            except MalformedReplyError as exc:
                self._finish(pending, exc)
                return
            if reply.error is not None:
                self._finish(pending, reply.error)
                return
            results = reply.results
        else:
            results = view[start:]
        self._pending.pop(xid, None)
        pending.buffer = None  # ownership moves to the result
        pending.future.set_result(RpcResult(results, buffer))
