"""ONC RPC over TCP on asyncio: many outstanding calls on one connection.

The call layer over :mod:`swapio_nfs._rpc` (messages), :mod:`swapio_nfs._receive` (records in
pool buffers) and :mod:`swapio_nfs._link` (the socket):

* Calls are matched to replies by XID (RFC 5531 §9); any number may be outstanding.
* Each call has a deadline.  When it passes the call is **retransmitted with the same XID** (so
  the server's duplicate request cache can answer it) with the timeout doubled, up to
  ``retrans`` times; then the call fails with :class:`RpcTimeoutError`.
* A lost connection is re-established with exponential backoff and every outstanding call is
  sent again, with its XID, on the new connection (from the old source port if
  ``reuse_port``: nfs-ganesha's duplicate request cache is per client address and port); a
  call made while disconnected waits for
  the reconnect the same way.  A call whose retransmissions run out while disconnected fails
  with :class:`RpcConnectionError` naming the last connect error.
* **Receive buffers come from the page pool** and follow the ``SOCK_MEMALLOC`` rule; READ
  data is received straight into the caller's pages (:mod:`swapio_nfs._receive`).  A reply
  dropped under that rule makes its call wait for ordinary memory and retransmit (same XID).
  A call made outside memalloc context while the pool is below *low* waits for ordinary
  memory before it is sent: its reply would otherwise land in the reserve only to be dropped.
* **In-doubt calls** (``on_doubt`` given, WRITE on the swap path): a call that was sent and
  whose caller gives up without its reply (retransmissions exhausted, a broken stream, a
  cancelled caller) may still be executed by the server.  It stays outstanding under its XID
  with a private copy of its bytes, is sent again (same XID, same bytes, so the server's
  duplicate request cache recognises it: RFC 5531 §5 and §9, RFC 1813 §4.5) on every sweep and on
  every reconnect, and is *settled* when any reply to that XID arrives, or failed when the
  connection is closed.  ``on_doubt(xid, settled)`` tells the caller's owner before the caller
  sees its error, so it can order later requests after the settlement (Linux keeps a hard
  mount's ``rpc_task`` alive the same way: ``xprt_retransmit`` resends ``rq_xid`` after
  every reconnect until ``xprt_complete_rqst``).
* **Vectored sends**: a call's record mark, header, arguments and the caller's pages go to
  the socket in one ``sendmsg``; calls made in one loop iteration share it.  Only bytes the
  kernel did not take are copied (into the connection's send queue), as asyncio's transports
  do, so a caller's buffer may change once its call has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from swapio.memalloc import in_memalloc, memalloc
from swapio.pool import PagePool
from swapio_nfs._errors import (
    MalformedReplyError,
    RpcConnectionError,
    RpcTimeoutError,
)
from swapio_nfs._link import Link
from swapio_nfs._receive import Placement, ReceiveStats, ReplyReceiver, RxBuffer
from swapio_nfs._record import DEFAULT_MAX_RECORD, encode_mark
from swapio_nfs._rpc import (
    AUTH_NONE,
    CallTemplate,
    OpaqueAuth,
    accepted_results_offset,
    decode_reply,
)
from swapio_nfs._xdr import Buffer

if TYPE_CHECKING:
    from swapio.pool import PoolBuffer

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

    def budget(self) -> float:
        """Seconds a call waits in all before it fails (its timeout, doubled ``retrans``
        times up to ``max_timeout``): the wait allowed for anything a call depends on."""
        total, step = 0.0, self.timeout
        for _ in range(self.retrans + 1):
            total += step
            step = min(step * 2, self.max_timeout)
        return total


class RpcResult:
    """A successful reply's results, held in its receive buffer until :meth:`release`."""

    __slots__ = ("_pin", "results")

    def __init__(self, results: memoryview, pin: RxBuffer | None) -> None:
        self.results = results
        self._pin = pin

    @property
    def pfmemalloc(self) -> bool:
        """True when the reply lives in reserve memory."""
        return self._pin is not None and self._pin.pfmemalloc

    def release(self) -> None:
        """Give the reply's receive buffer back (idempotent)."""
        pin, self._pin = self._pin, None
        if pin is not None:
            pin.unpin()

    def __enter__(self) -> RpcResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


DoubtCallback = Callable[[int, "asyncio.Future[None]"], None]
"""``on_doubt(xid, settled)``: the call ``xid`` went in doubt; ``settled`` completes when a
reply to it arrives (or fails with :class:`RpcConnectionError` when the connection closes)."""


class _ReplyDropped(Exception):
    """The reply landed in reserve memory and the call is not memalloc work."""


@dataclass(eq=False, slots=True)
class _Pending:
    xid: int
    message: list[Buffer]
    future: asyncio.Future[RpcResult]
    program: str
    timeout: float
    memalloc: bool = False
    placement: Placement | None = None
    on_doubt: DoubtCallback | None = None
    attempts: int = 0
    deadline: float = 0.0
    sent_on: Link | None = None
    #: set once the call is in doubt (its caller gone, no reply yet)
    settled: asyncio.Future[None] | None = None

    def waiting(self) -> bool:
        return not self.future.done() or self.settled is not None


class RpcConnection:
    """A client connection to one ONC RPC server over TCP.

    :param host: server address.
    :param port: server TCP port.
    :param pool: page pool receive buffers come from (``None``: uncounted memory, for the
        short MOUNT and portmap exchanges at activation).
    :param sock_memalloc: the connection serves a swap area (``sk_set_memalloc``): its
        receive buffers may come from the pool's reserve, and the SOCK_MEMALLOC rule applies.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        pool: PagePool | None = None,
        sock_memalloc: bool = False,
        policy: RetryPolicy | None = None,
        max_record: int = DEFAULT_MAX_RECORD,
        name: str = "RPC",
        reuse_port: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.pool = pool
        self._rx_pool = pool if pool is not None else PagePool.unbounded()
        self.sock_memalloc = sock_memalloc and pool is not None
        self.policy = policy or RetryPolicy()
        self.max_record = max_record
        self.name = name
        #: reconnect from the last connection's source port (see :meth:`Link.open`)
        self.reuse_port = reuse_port
        self.local_port: int | None = None
        self._xid = int.from_bytes(os.urandom(4), "big")
        self._pending: dict[int, _Pending] = {}
        self._link: Link | None = None
        self._closed = False
        self._connecting: asyncio.Task[None] | None = None
        self._first: asyncio.Task[None] | None = None
        self._last_error: BaseException | None = None
        self._outgoing: list[Buffer] = []
        self._flush_scheduled = False
        self._ever_connected = False
        self._sweep: asyncio.TimerHandle | None = None
        #: Call headers by (program, version, procedure), for the credential they hold
        #: (compared by identity: hashing a dataclass per call costs more than the header).
        self._templates: dict[tuple[int, int, int], CallTemplate] = {}
        # counters, for tests and the benchmark
        self.receive = ReceiveStats()
        self.calls = 0
        self.retransmissions = 0
        self.reconnects = 0
        #: reconnects that could not have the last connection's source port (``reuse_port``):
        #: calls sent again on them are not in the server's duplicate request cache
        self.port_changes = 0
        self.unknown_xids = 0
        self.dropped_replies = 0
        self.doubts = 0
        """Calls that went in doubt."""
        self.doubts_settled = 0
        """In-doubt calls settled by a reply."""

    # ----------------------------------------------------------------- connection

    @property
    def connected(self) -> bool:
        """True while a TCP connection is up."""
        return self._link is not None

    @property
    def outstanding(self) -> int:
        """Calls sent and not yet answered (in-doubt ones included)."""
        return len(self._pending)

    @property
    def in_doubt(self) -> int:
        """In-doubt calls: their callers gave up, no reply has arrived yet."""
        return sum(1 for p in self._pending.values() if p.settled is not None)

    async def connect(self) -> None:
        """Open the connection; raise :class:`RpcConnectionError` if the server is unreachable.

        Concurrent callers share one connection attempt.
        """
        if self._closed:
            raise RpcConnectionError(f"{self.name} connection to {self._where} is closed")
        if self._link is not None:
            return
        if self._first is None or self._first.done():
            self._first = asyncio.get_running_loop().create_task(self._open())
        await asyncio.shield(self._first)

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _receiver(self) -> ReplyReceiver:
        return ReplyReceiver(
            self._rx_pool,
            self,
            sock_memalloc=self.sock_memalloc,
            max_record=self.max_record,
            stats=self.receive,
        )

    async def _open(self) -> None:
        try:
            async with asyncio.timeout(self.policy.connect_timeout):
                link = await Link.open(
                    self.host,
                    self.port,
                    self._receiver,
                    self._on_lost,
                    self._protocol_failure,
                    local_port=self.local_port if self.reuse_port else None,
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
        if self._closed:
            link.close()
            return
        self._link = link
        # the port of the connection calls were last sent on: after a reconnect that had to
        # take another port, resent calls are in the server's cache under the new one
        if self.reuse_port and self.local_port not in (None, link.local_port):
            self.port_changes += 1
        self.local_port = link.local_port
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        for pending in list(self._pending.values()):
            if (not pending.future.done() or pending.settled is not None) and (
                pending.sent_on is not link
            ):
                # same XID, same bytes (Linux: xprt_request_retransmit_after_disconnect)
                self._send(pending)

    def _on_lost(self, link: Link, exc: BaseException | None) -> None:
        if link is not self._link:
            return
        self._link = None
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
        while not self._closed and self._link is None and self._pending:
            try:
                await self._open()
                return
            except RpcConnectionError as exc:
                self._last_error = exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.policy.backoff_max)

    def _protocol_failure(self, link: Link, exc: BaseException) -> None:
        """The byte stream is out of sync: fail every call and drop the connection."""
        if link is not self._link:
            return
        self._fail_all(exc)
        link.abort()

    def _fail_all(self, exc: BaseException) -> None:
        """Fail every caller; in-doubt calls stay (resent after the reconnect) unless closed."""
        for pending in list(self._pending.values()):
            if pending.settled is not None:
                if self._closed:
                    self._pending.pop(pending.xid, None)
                    if not pending.settled.done():
                        pending.settled.set_exception(exc)
                continue
            if not self._closed and pending.on_doubt is not None and pending.sent_on is not None:
                self._doubt(pending)
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
        link, self._link = self._link, None
        if link is not None:
            link.close()
            await asyncio.sleep(0)

    def abort(self) -> None:
        """Drop the TCP connection abruptly (a connection reset); calls are retried."""
        if self._link is not None:
            self._link.abort()

    # ----------------------------------------------------------------- calls

    def _next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        while self._xid in self._pending:
            self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    async def call(  # noqa: PLR0912 - one send, wait, retry loop on the per-page path
        self,
        prog: int,
        vers: int,
        proc: int,
        args: Buffer | Sequence[Buffer] = b"",
        *,
        cred: OpaqueAuth = AUTH_NONE,
        program: str | None = None,
        timeout: float | None = None,
        placement: Placement | None = None,
        on_doubt: DoubtCallback | None = None,
    ) -> RpcResult:
        """Send a call and return its results; raise the error the server or network gave.

        :param placement: where the reply's bulk data goes (the caller's pages); the
            results then end where that data begins.
        :param on_doubt: keep the call in doubt if it was sent and its caller ends without
            its reply (see the module docstring); called as ``on_doubt(xid, settled)`` before
            the caller sees its error.  Not for calls with a ``placement``.

        The caller must :meth:`RpcResult.release` the result (or use it in ``with``).
        """
        if self._closed:
            raise RpcConnectionError(f"{self.name} connection to {self._where} is closed")
        if self._link is None and not self._ever_connected:
            await self.connect()  # the first connection: fail at once if there is no server
        memalloc_work = in_memalloc()
        if not memalloc_work and self.pool is not None and self.pool.below_low():
            await self._wait_for_ordinary_memory()
        xid = self._next_xid()
        key = (prog, vers, proc)
        template = self._templates.get(key)
        if template is None or template.cred is not cred:
            template = self._templates[key] = CallTemplate(prog, vers, proc, cred)
        head = template.header(xid)
        parts: list[Buffer]
        if type(args) is bytes:  # the data path's small calls (READ, COMMIT): one piece
            parts = [encode_mark(len(head) + len(args)), head, args]
        else:
            parts = [b"", head]
            size = len(head)
            if isinstance(args, bytes | bytearray | memoryview):
                parts.append(args)
                size += memoryview(args).nbytes
            else:
                for piece in args:
                    parts.append(piece)
                    size += memoryview(piece).nbytes
            parts[0] = encode_mark(size)
        loop = asyncio.get_running_loop()
        pending = _Pending(
            xid,
            parts,
            loop.create_future(),
            program or self.name,
            self.policy.timeout if timeout is None else timeout,
            memalloc_work,
            placement,
            on_doubt,
        )
        self._pending[xid] = pending
        self.calls += 1
        try:
            while True:
                link = self._link
                if link is not None and not link.writable:
                    await link.drain()
                if self._link is None:
                    # connection lost earlier: the call waits for the reconnect within its own
                    # retransmission budget, like every call that was in flight
                    self._start_reconnect()
                elif not pending.future.done():
                    self._send(pending)
                self._arm(pending)
                try:
                    return await pending.future
                except _ReplyDropped:
                    # SOCK_MEMALLOC: the reply was in reserve memory; wait for ordinary
                    # memory, then ask again (same XID: the server may answer from its cache)
                    await self._wait_for_ordinary_memory()
                    pending.future = loop.create_future()
        finally:
            if pending.on_doubt is None or self._pending.get(xid) is not pending:
                self._pending.pop(xid, None)  # answered, or not to be kept: forget the call
            elif pending.settled is None:
                self._end_call(pending)  # out, unanswered, and its caller is leaving

    def _end_call(self, pending: _Pending) -> None:
        """The caller of a call that may go in doubt is leaving before its reply (cancelled):
        keep the call in doubt if it went out, else forget it."""
        if pending.sent_on is not None and not self._closed:
            self._doubt(pending)
        else:
            self._pending.pop(pending.xid, None)

    async def _wait_for_ordinary_memory(self) -> None:
        """Wait until an ordinary (non-reserve) allocation of one page succeeds."""
        pool = self._rx_pool
        with memalloc(False):
            buf: PoolBuffer = await pool.alloc(pool.page_size)
        buf.release()

    def _send(self, pending: _Pending) -> None:
        """Queue a call for the next flush: calls made in one loop iteration share a send."""
        link = self._link
        if link is None or link.closed:
            return
        pending.sent_on = link
        self._outgoing.extend(pending.message)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._outgoing = self._outgoing, []
        link = self._link
        if out and link is not None:
            link.send(out)

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
            if pending.deadline <= now and (
                not pending.future.done() or pending.settled is not None
            ):
                self._on_timeout(pending)
        if self._pending and self._sweep is None:
            self._sweep = loop.call_later(self._tick(), self._on_sweep)

    def _on_timeout(self, pending: _Pending) -> None:
        if pending.future.done() and pending.settled is None:
            return
        if pending.attempts >= self.policy.retrans and pending.settled is None:
            if self._link is None:
                exc: BaseException = RpcConnectionError(
                    f"{pending.program} call (xid {pending.xid:#x}) to {self._where} failed: "
                    f"connection lost and not re-established ({self._last_error})"
                )
            else:
                exc = RpcTimeoutError(
                    f"{pending.program} call (xid {pending.xid:#x}) to {self._where} got no "
                    f"reply after {pending.attempts + 1} transmissions"
                )
            if pending.on_doubt is not None and pending.sent_on is not None:
                self._doubt(pending)
            self._finish(pending, exc)
            return
        pending.timeout = min(pending.timeout * 2, self.policy.max_timeout)
        pending.deadline = asyncio.get_running_loop().time() + pending.timeout
        link = self._link
        if link is None:
            self._start_reconnect()
        elif pending.settled is not None and not link.writable:
            return  # in doubt, and the socket is backed up: another copy would only queue
        else:
            self._send(pending)
        pending.attempts += 1
        self.retransmissions += 1

    def _finish(self, pending: _Pending, exc: BaseException) -> None:
        if pending.settled is None:
            self._pending.pop(pending.xid, None)
        if not pending.future.done():
            pending.future.set_exception(exc)

    def _doubt(self, pending: _Pending) -> None:
        """The call's caller is leaving without a reply: keep the call outstanding, in doubt.

        Its bytes are copied now (the caller may reuse its pages once it has seen the error;
        a retransmission must be byte for byte the call the server may already hold, which
        nfs-ganesha's cache compares by XID and checksum).  Its reply, if ever one comes, is
        only read for its XID and released at once, so it may land in reserve memory like
        memalloc work's (the SOCK_MEMALLOC rule would otherwise drop it).
        """
        assert pending.on_doubt is not None
        pending.message = [b"".join(pending.message)]
        pending.placement = None
        pending.memalloc = True
        pending.settled = settled = asyncio.get_running_loop().create_future()
        self.doubts += 1
        log.info(
            "%s call (xid %#x) to %s is in doubt: sent, no reply; sending it again until one "
            "arrives",
            pending.program,
            pending.xid,
            self._where,
        )
        pending.on_doubt(pending.xid, settled)

    def _settle(self, pending: _Pending) -> None:
        """A reply to an in-doubt call arrived: the server has executed it (once, by its
        duplicate request cache); nothing of the reply is kept."""
        self._pending.pop(pending.xid, None)
        self.doubts_settled += 1
        if pending.settled is not None and not pending.settled.done():
            pending.settled.set_result(None)

    # ----------------------------------------------------------------- replies (ReceiverOwner)

    def target(self, xid: int) -> _Pending | None:
        """The call waiting for the reply ``xid``, if any (an in-doubt one included)."""
        pending = self._pending.get(xid)
        if pending is None or (pending.future.done() and pending.settled is None):
            return None
        return pending

    def unknown_reply(self, xid: int) -> None:
        """A late duplicate, or a reply to nothing we sent."""
        self.unknown_xids += 1

    def drop_reply(self, xid: int) -> None:
        """The SOCK_MEMALLOC rule dropped the reply to ``xid``: its call asks again."""
        pending = self._pending.get(xid)
        if pending is not None and not pending.future.done() and pending.settled is None:
            self.dropped_replies += 1
            pending.future.set_exception(_ReplyDropped())

    def deliver(self, xid: int, record: memoryview, pin: RxBuffer | None) -> None:
        """The reply to ``xid`` (its results pin ``pin`` until released)."""
        pending = self._pending.get(xid)
        if pending is None or pending.future.done():
            if pending is not None and pending.settled is not None:
                self._settle(pending)  # any reply settles it, an error reply too
            else:
                self.unknown_xids += 1
            return
        start = accepted_results_offset(record)
        if start < 0:  # not the common case: decode fully for the precise error
            self._pending.pop(xid, None)  # answered: never in doubt
            try:
                reply = decode_reply(record, pending.program)
            except MalformedReplyError as exc:
                self._finish(pending, exc)
                return
            if reply.error is not None:
                self._finish(pending, reply.error)
                return
            results = reply.results
        else:
            results = record[start:]
        self._pending.pop(xid, None)
        if pin is not None:
            pin.pin()
        pending.future.set_result(RpcResult(results, pin))
