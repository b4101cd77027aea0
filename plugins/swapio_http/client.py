"""The http backend's client: one keep-alive connection pool per area, frames in parallel.

A ``swap_out`` or ``swap_in`` call is cut into frames of at most ``frame_pages`` pages; the
frames of one call go out concurrently over up to ``connections`` reused connections
(HTTP/1.1 keep-alive; aiohttp does not pipeline on one connection, so parallel connections
play that part).  Request and receive buffers come from the area's page pool, so under
memory pressure a swap-out in memalloc context draws on the reserve the area declared at
activation (``Capabilities.reserve_pages_per_request``), and ordinary traffic waits.  A
reply is received as on a ``SOCK_MEMALLOC`` socket: into a buffer that may come from the
reserve, kept only by memalloc work; other work drops it, waits for memory and asks again
(:meth:`PageClient._exchange`).  In
memalloc context the frames of a call are at most ``MEMALLOC_FRAME_PAGES`` pages and are sent
one after another, which is what keeps the declared reserve small and sufficient.

Small frames (random single pages) issued in the same event-loop turn are coalesced into one
request of several frames (``?coalesce=0`` disables it); memalloc frames never are, so
their buffers are allocated in the reclaiming task's own context.

When some frames of a call fail (server killed, connection reset, timeout), the call raises
:class:`IncompleteBatchError` naming exactly which slots were confirmed and which were not.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from swapio.area import CreateRequest, PageBuffer
from swapio.errors import (
    AreaExistsError,
    AreaInactiveError,
    AreaNotFoundError,
    BackendIOError,
    LocationError,
    PageSizeError,
    RemoteProtocolError,
    SlotRangeError,
    SwapioError,
    SwapTimeoutError,
)
from swapio.location import Location
from swapio.memalloc import in_memalloc, memalloc
from swapio.pool import PagePool, PoolBuffer

from ._api import AREAS_PREFIX, AreaDescription, CreateBody, ErrorBody, check_area_name
from ._conn import ConnectionPool, StaleConnectionError
from ._wire import (
    CONTENT_TYPE,
    REQUEST_HEADER,
    RESPONSE_HEADER,
    Flag,
    Op,
    RequestHeader,
    check_response_header,
    encode_request_header,
)

DEFAULT_CONNECTIONS: Final = 16
DEFAULT_TIMEOUT: Final = 30.0
#: Largest frame sent in memalloc context (``SWAP_CLUSTER_MAX`` pages).
MEMALLOC_FRAME_PAGES: Final = 32
#: Pages one coalesced request may carry at most (keeps its buffers within a pool's headroom).
COALESCE_GROUP_PAGES: Final = 16
#: Frames of at most this many pages may share a request (the single-page reads and writes
#: of random access; larger frames already amortize a request's cost).
COALESCE_MAX_PAGES: Final = 8
_SKIPPED_HEADERS: Final = ("Accept", "Accept-Encoding", "User-Agent")
#: Largest page request body whose length the HTTP head must hold (for its size).
MAX_BODY_DIGITS: Final = 1 << 40
QUERY_KEYS: Final = frozenset({"connections", "frame_pages", "timeout", "coalesce", "cafile"})
_FORBIDDEN_QUERY: Final = frozenset({"token", "access_token", "auth", "password"})


@dataclass
class _Frame:
    """One request frame on its way: what to send, where SWAP_IN pages go."""

    header: RequestHeader
    pages: Sequence[PageBuffer] = ()
    dest: Sequence[memoryview] = ()
    future: asyncio.Future[None] | None = None

    @property
    def request_bytes(self) -> int:
        return REQUEST_HEADER.size + self.header.body_size

    @property
    def response_bytes(self) -> int:
        body = self.header.count * self.header.page_size if self.header.op is Op.SWAP_IN else 0
        return RESPONSE_HEADER.size + body

    def encode_into(self, view: memoryview, offset: int) -> int:
        """Write header and pages at ``offset``; return the offset after them."""
        raw = encode_request_header(self.header)
        view[offset : offset + len(raw)] = raw
        offset += len(raw)
        size = self.header.page_size
        for page in self.pages:
            view[offset : offset + size] = page
            offset += size
        return offset

    def deliver(self, data: memoryview, offset: int) -> int:
        """Check this frame's response at ``offset``, copy SWAP_IN pages out; new offset."""
        head = self.header
        check_response_header(
            data[offset : offset + RESPONSE_HEADER.size], head.op, head.count, head.page_size
        )
        offset += RESPONSE_HEADER.size
        if head.op is Op.SWAP_IN:
            size = head.page_size
            for view in self.dest:
                view[:] = data[offset : offset + size]
                offset += size
        return offset


class PageServerError(BackendIOError):
    """The page server answered with an HTTP error; ``status`` and ``code`` say which."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message, detail={"status": status, "error": code})
        self.status = status
        self.code = code


class IncompleteBatchError(BackendIOError):
    """Some frames of a batch did not complete.

    ``completed`` and ``failed`` are ``(slot, count)`` runs; pages in ``failed`` runs must be
    treated as not written (swap-out) or not read (swap-in).  ``causes`` holds each failed
    frame's exception, in the order of ``failed``.
    """

    def __init__(
        self,
        message: str,
        *,
        completed: tuple[tuple[int, int], ...],
        failed: tuple[tuple[int, int], ...],
        causes: tuple[BaseException, ...],
    ) -> None:
        super().__init__(message, detail={"completed": completed, "failed": failed})
        self.completed = completed
        self.failed = failed
        self.causes = causes

    @property
    def failed_slots(self) -> list[int]:
        """Every slot that did not complete, ascending."""
        return [s for slot, count in self.failed for s in range(slot, slot + count)]


def _runs(text: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{s}..{s + n - 1}" if n > 1 else str(s) for s, n in text) or "none"


@dataclass(frozen=True)
class ClientOptions:
    """Where the area is and how to talk to it, from ``http://HOST:PORT/areas/NAME?...``."""

    base_url: str
    area: str
    connections: int = DEFAULT_CONNECTIONS
    frame_pages: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    coalesce: bool = True
    #: PEM file of the CA (or self-signed certificate) to trust for an https server.
    cafile: str | None = None

    @classmethod
    def from_location(cls, location: Location) -> ClientOptions:
        """Parse the area URL; credentials in it are refused (tokens live in the env).

        Those refusals do not repeat the URL: it holds the secret.
        """
        if "@" in urlsplit(location.url).netloc:
            raise LocationError(
                "http(s) area URL with user info (user:password@): never put credentials in "
                "the URL; set SWAPIO_TOKEN or SWAPIO_TOKEN_FILE instead"
            )
        leaked = sorted(_FORBIDDEN_QUERY & set(location.query))
        if leaked:
            raise LocationError(
                f"http(s) area URL with {', '.join(f'{k}=' for k in leaked)}: never put a token "
                "in the URL; set SWAPIO_TOKEN or SWAPIO_TOKEN_FILE instead"
            )
        location.check_query(QUERY_KEYS)
        prefix, sep, name = location.path.rpartition(AREAS_PREFIX)
        if not sep or not location.host:
            raise LocationError(
                f"{location.url!r}: expected http[s]://HOST[:PORT]/areas/NAME, "
                "e.g. http://127.0.0.1:8700/areas/scratch"
            )
        try:
            check_area_name(name)
        except SwapioError as exc:
            raise LocationError(f"{location.url!r}: {exc}") from None
        host = f"[{location.host}]" if ":" in location.host else location.host
        port = f":{location.port}" if location.port else ""
        timeout_raw = location.query.get("timeout")
        try:
            timeout = float(timeout_raw) if timeout_raw is not None else DEFAULT_TIMEOUT
        except ValueError:
            raise LocationError(
                f"{location.url!r}: timeout={timeout_raw!r} is not a number"
            ) from None
        if not (timeout > 0 and math.isfinite(timeout)):
            raise LocationError(
                f"{location.url!r}: timeout={timeout_raw} must be a finite number of seconds > 0"
            )
        return cls(
            base_url=f"{location.scheme}://{host}{port}{prefix}",
            area=name,
            connections=location.query_int("connections", DEFAULT_CONNECTIONS, minimum=1)
            or DEFAULT_CONNECTIONS,
            frame_pages=location.query_int("frame_pages", None, minimum=1),
            timeout=timeout,
            coalesce=location.query_bool("coalesce", True),
            cafile=location.query.get("cafile") or None,
        )

    @property
    def area_url(self) -> str:
        return f"{self.base_url}{AREAS_PREFIX}{self.area}"


#: HTTP statuses, then error codes, that map to a specific swapio error (else PageServerError).
_ERROR_BY_STATUS: Final[dict[int, type[SwapioError]]] = {
    404: AreaNotFoundError,
    409: AreaExistsError,
    416: SlotRangeError,
}
_ERROR_BY_CODE: Final[dict[str, type[SwapioError]]] = {
    "page-size": PageSizeError,
    "inactive": AreaInactiveError,
}


async def _error_from(response: aiohttp.ClientResponse, what: str) -> SwapioError:
    """The swapio error for an HTTP error answer of aiohttp's client."""
    return _error_of(response.status, await response.read(), what)


def _error_of(status: int, raw: bytes, what: str) -> SwapioError:
    """The swapio error for an HTTP error answer (the one place statuses are mapped)."""
    try:
        doc: object = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    body = ErrorBody.from_json(doc, status)
    message = f"{what}: page server said {status} {body.code}: {body.message}"
    kind = _ERROR_BY_STATUS.get(status) or _ERROR_BY_CODE.get(body.code)
    if kind is not None:
        return kind(message)
    return PageServerError(message, status=status, code=body.code)


class _transport_errors:
    """Map the transport's failures (the one place they are mapped): a timeout is
    :class:`SwapTimeoutError`, any other aiohttp client error or socket error (a page
    connection's) :class:`BackendIOError`; swapio's own errors pass unchanged.

    ``what`` names the request in the message (any object: the page path passes a
    :class:`_Frames` name, formatted only when something failed).  A class, not
    ``@contextmanager``: this wraps every page request, and a generator costs more."""

    __slots__ = ("_timeout", "_what")

    def __init__(self, what: object, timeout: float) -> None:
        self._what = what
        self._timeout = timeout

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, SwapioError):
            return
        what = self._what
        if isinstance(exc, TimeoutError):
            raise SwapTimeoutError(f"{what}: no answer within {self._timeout} s") from None
        if isinstance(exc, aiohttp.ClientError | OSError):
            raise BackendIOError(f"{what}: {type(exc).__name__}: {exc}", detail=exc) from None


class _Frames:
    """The name of a request's frames in error messages, built only if one is needed."""

    __slots__ = ("_frames",)

    def __init__(self, frames: list[_Frame]) -> None:
        self._frames = frames

    def __str__(self) -> str:
        if len(self._frames) > 1:
            return f"{len(self._frames)} coalesced frames"
        first = self._frames[0].header
        return f"{first.op.name} slots {first.slot}..{first.slot + first.count - 1}"


class _ReplyDropped(Exception):
    """A reply landed in a reserve buffer but the work it belongs to is not memalloc work."""


class PageClient:
    """One area on one page server, seen from the client."""

    def __init__(self, options: ClientOptions, token: str | None) -> None:
        self.options = options
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None
        #: Page requests have their own connections (:mod:`swapio_http._conn`); the server
        #: serves them on its fast lane, which a connection leaves once it carries any other.
        self._pages: ConnectionPool | None = None
        self._pages_options: ClientOptions | None = None
        self._io_head = b""
        self.description: AreaDescription | None = None
        self._pending: deque[_Frame] = deque()
        self._flush_scheduled = False
        self._groups: set[asyncio.Future[None]] = set()
        #: Replies dropped by the SOCK_MEMALLOC rule (and asked for again).
        self.replies_dropped = 0

    @property
    def frame_pages(self) -> int:
        """Pages per frame: the URL's ``frame_pages`` capped by the server's limit."""
        assert self.description is not None
        limit = self.description.max_frame_pages
        return min(self.options.frame_pages or limit, limit)

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.options.base_url.startswith("https:"):
            return False
        try:
            return ssl.create_default_context(cafile=self.options.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise LocationError(f"cafile={self.options.cafile!r}: {exc}") from None

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = self._new_session()
        return self._session

    def _open_pages(self) -> ConnectionPool:
        """The page connections, and the head every page request starts with (both made
        again when :attr:`options` changed)."""
        if self._pages is None or self._pages_options is not self.options:
            if self._pages is not None:
                self._pages.close()
            self._pages_options = self.options
            url = urlsplit(self.options.area_url)
            ctx = self._ssl()
            self._pages = ConnectionPool(
                url.hostname or "",
                url.port or (443 if url.scheme == "https" else 80),
                ctx if isinstance(ctx, ssl.SSLContext) else None,
                self.options.connections,
                connect_timeout=self.options.timeout,
            )
            auth = "".join(f"{k}: {v}\r\n" for k, v in self._headers.items())
            self._io_head = (
                f"POST {url.path}/io HTTP/1.1\r\nHost: {url.netloc}\r\n{auth}"
                f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: "
            ).encode()
        return self._pages

    @property
    def request_head_bytes(self) -> int:
        """Most bytes of HTTP head in front of a page request's frames (they share its pool
        buffer, so the reserve covers them)."""
        self._open_pages()
        return len(self._io_head) + len(str(MAX_BODY_DIGITS)) + 4

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.options.connections, keepalive_timeout=60, ssl=self._ssl()
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self.options.timeout),
            raise_for_status=False,
            # Per-request costs a page client has no use for: cookie filtering, and the
            # default Accept/Accept-Encoding/User-Agent headers (built, sent and parsed).
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_SKIPPED_HEADERS,
        )

    async def _call(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        session = self._open_session()
        with _transport_errors(what, self.options.timeout):
            async with session.request(method, url, **kwargs) as response:
                if response.status >= 400:
                    raise await _error_from(response, what)
                if response.status == 204:
                    return None
                return await response.json()

    async def open(self, create: CreateRequest | None) -> AreaDescription:
        """``PUT /areas/NAME``: attach to the area, creating it when ``create`` is given."""
        body = CreateBody(create.pages, create.page_size) if create else CreateBody()
        what = f"activate {self.options.area_url}"
        try:
            doc = await self._call("PUT", self.options.area_url, what, json=body.to_json())
            self.description = AreaDescription.from_json(doc)
        except BaseException:
            await self.close_session()
            raise
        return self.description

    async def close(self) -> None:
        """``DELETE /areas/NAME`` (deactivate on the server), then drop the connections."""
        try:
            await self._call("DELETE", self.options.area_url, f"deactivate {self.options.area_url}")
        finally:
            await self.close_session()

    async def close_session(self) -> None:
        if self._pages is not None:
            self._pages.close()
            self._pages = None
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # --- frames -----------------------------------------------------------------------

    async def _exchange(self, frames: list[_Frame], pool: PagePool) -> None:
        """One POST carrying ``frames``, retried when its reply had to be dropped.

        A reply is received like a packet on a ``SOCK_MEMALLOC`` socket: into a buffer the
        receive path allocates without knowing whose reply it is, which may come from the
        reserve (:meth:`_receive_buffer`).  Work that is not memalloc work may not keep such a
        buffer (``sk_filter``): the reply is dropped, the client waits in its own context for
        ordinary buffers to receive the reply into, and asks again (every frame is
        idempotent: a write rewrites the same pages, a read reads them again).
        """
        ready: list[PoolBuffer] | None = None
        try:
            while True:
                try:
                    await self._exchange_once(frames, pool, ready)
                    return
                except _ReplyDropped:
                    self.replies_dropped += 1
                    if ready is None:
                        ready = []
                        for frame in frames:
                            ready.append(await pool.alloc(frame.response_bytes, zero=False))
        finally:
            for buf in ready or ():
                buf.release()

    async def _exchange_once(
        self, frames: list[_Frame], pool: PagePool, ready: list[PoolBuffer] | None
    ) -> None:
        """Send ``frames`` in one POST; deliver SWAP_IN pages into their destinations.

        The request — HTTP head, then the frames — is laid out in one buffer from ``pool``,
        in the caller's memalloc context, and sent in one write; receive buffers are
        ``ready`` (allocated by the caller) or allocated as the reply arrives, and each reply
        frame is received straight into its buffer.  Any failure fails every frame of the
        request.
        """
        what = _Frames(frames)
        pages = self._pages if self._pages_options is self.options else None
        pages = pages or self._open_pages()
        if len(frames) == 1:
            size = frames[0].request_bytes
            expect = frames[0].response_bytes
        else:
            size = sum(f.request_bytes for f in frames)
            expect = sum(f.response_bytes for f in frames)
        head = self._io_head + b"%d\r\n\r\n" % size
        request = await pool.alloc(len(head) + size, zero=False)  # all of it is written
        try:
            view = request.view
            view[: len(head)] = head
            offset = len(head)
            for frame in frames:
                offset = frame.encode_into(view, offset)
            with _transport_errors(what, self.options.timeout):
                await self._post(pages, view, frames, expect, pool, ready, what)
        finally:
            request.release()

    async def _post(
        self,
        pages: ConnectionPool,
        request: memoryview,
        frames: list[_Frame],
        expect: int,
        pool: PagePool,
        ready: list[PoolBuffer] | None,
        what: _Frames,
    ) -> None:
        """One exchange on a page connection; a stale kept-alive one is replaced once.

        The answer must be complete within the URL's ``timeout`` of sending (the
        connection's watchdog); opening a connection is bounded by it too."""
        for attempt in (1, 2):
            conn = await pages.acquire(self.options.timeout)
            reusable = False
            try:
                conn.send(request, self.options.timeout)
                status, length, close = await conn.read_head()
                if status >= 400:
                    raw = await conn.read(length)
                    conn.done()
                    reusable = not close
                    raise _error_of(status, raw, str(what))
                if status != 200 or length != expect:
                    raise RemoteProtocolError(
                        f"{what}: answer {status} of {length} bytes, expected 200 of {expect}"
                    )
                for index, frame in enumerate(frames):
                    buf = ready[index] if ready else await self._receive_buffer(pool, frame)
                    try:
                        if not buf.may_keep():
                            raise _ReplyDropped  # SOCK_MEMALLOC rule (sk_filter)
                        await conn.readinto(buf.view)
                        frame.deliver(buf.view, 0)
                    finally:
                        if not ready:
                            buf.release()
                if conn.leftover:
                    raise RemoteProtocolError(f"{what}: answer longer than {expect} bytes")
                conn.done()
                reusable = not close
                return
            except StaleConnectionError:
                if attempt == 2:
                    raise
            finally:
                pages.release(conn, reusable)

    @staticmethod
    async def _receive_buffer(pool: PagePool, frame: _Frame) -> PoolBuffer:
        """The receive path's buffer for ``frame``'s reply (``__netdev_alloc_skb``).

        Allocated the way the network stack allocates for a ``SOCK_MEMALLOC`` socket: at
        once, with the reserve allowed (``kmalloc_reserve`` from softirq context), because
        the receive path does not know which work the reply belongs to.  Whether the reply
        may be kept is decided afterwards, in the context of that work
        (:meth:`PoolBuffer.may_keep`).  Only when even the reserve is exhausted does the
        receive wait, in the caller's own context.  One buffer per frame: the largest
        allocation is one frame's reply, however many frames share the request.
        """
        # zero=False: the reply fills the buffer (a short one is an error and is dropped).
        # Tried as ordinary work first: what succeeds so would succeed the same way (above
        # min, not pfmemalloc) in memalloc context, without switching context per reply.
        buf = pool.try_alloc(frame.response_bytes, zero=False)
        if buf is None:
            with memalloc():
                buf = pool.try_alloc(frame.response_bytes, zero=False)
        if buf is None:
            buf = await pool.alloc(frame.response_bytes, zero=False)
        return buf

    def _coalescable(self, count: int) -> bool:
        """Small frames outside memalloc context may share a request with others."""
        assert self.description is not None
        limit = min(COALESCE_MAX_PAGES, self.frame_pages)
        return (
            self.options.coalesce
            and self.description.max_frames > 1
            and count <= limit
            and not in_memalloc()
        )

    async def _send(self, frame: _Frame, pool: PagePool) -> None:
        """Send ``frame`` alone, or queue it to share a request with frames sent meanwhile."""
        if not self._coalescable(frame.header.count):
            await self._exchange([frame], pool)
            return
        loop = asyncio.get_running_loop()
        frame.future = loop.create_future()
        self._pending.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush, pool)
        await frame.future

    def _flush(self, pool: PagePool) -> None:
        """Group the queued frames into requests (up to one frame's worth of pages each)."""
        assert self.description is not None
        self._flush_scheduled = False
        max_frames = self.description.max_frames
        max_pages = min(self.frame_pages, COALESCE_GROUP_PAGES)
        while self._pending:
            group: list[_Frame] = []
            pages = 0
            while (
                self._pending
                and len(group) < max_frames
                and pages + self._pending[0].header.count <= max_pages
            ):
                frame = self._pending.popleft()
                group.append(frame)
                pages += frame.header.count
            task = asyncio.ensure_future(self._send_group(group, pool))
            self._groups.add(task)
            task.add_done_callback(self._groups.discard)

    async def _send_group(self, group: list[_Frame], pool: PagePool) -> None:
        try:
            await self._exchange(group, pool)
        except Exception as exc:
            for frame in group:
                if frame.future is not None and not frame.future.done():
                    frame.future.set_exception(exc)
        except BaseException:
            for frame in group:
                if frame.future is not None:
                    frame.future.cancel()
            raise
        else:
            for frame in group:
                if frame.future is not None and not frame.future.done():
                    frame.future.set_result(None)

    @property
    def memalloc_frame_pages(self) -> int:
        """Pages per frame in memalloc context (smaller frames keep the reserve small)."""
        return min(self.frame_pages, MEMALLOC_FRAME_PAGES)

    def _one_request(self, count: int, flags: Flag) -> bool:
        """The call is one frame sent alone (not split, not coalesced)."""
        step = self.memalloc_frame_pages if flags else self.frame_pages
        return count <= step and not self._coalescable(count)

    def _frames(self, slot: int, count: int) -> list[tuple[int, int]]:
        step = self.memalloc_frame_pages if in_memalloc() else self.frame_pages
        return [(s, min(step, slot + count - s)) for s in range(slot, slot + count, step)]

    async def _batch(self, frames: list[tuple[int, int]], run: Any, what: str) -> None:
        """Run ``run(slot, count)`` for every frame; concurrent unless in memalloc context."""
        if len(frames) == 1:
            await run(*frames[0])  # a single frame's error is the call's error
            return
        if in_memalloc():
            results: list[BaseException | None] = []
            for slot, count in frames:
                if results and results[-1] is not None:
                    results.append(results[-1])  # not attempted after a failure
                    continue
                try:
                    await run(slot, count)
                    results.append(None)
                except (SwapioError, OSError) as exc:
                    if len(frames) == 1:
                        raise
                    results.append(exc)
        else:
            gathered = await asyncio.gather(
                *(run(slot, count) for slot, count in frames), return_exceptions=True
            )
            results = [r if isinstance(r, BaseException) else None for r in gathered]
            for r in results:
                if r is not None and not isinstance(r, Exception):
                    raise r  # cancellation and the like are not I/O errors
        failed = tuple(f for f, r in zip(frames, results, strict=True) if r is not None)
        if not failed:
            return
        completed = tuple(f for f, r in zip(frames, results, strict=True) if r is None)
        causes = tuple(r for r in results if r is not None)
        raise IncompleteBatchError(
            f"{what} on {self.options.area_url}: {len(failed)} of {len(frames)} frames did not "
            f"complete; slots not done: {_runs(failed)}; first cause: {causes[0]}",
            completed=completed,
            failed=failed,
            causes=causes,
        )

    async def swap_out(self, pool: PagePool, slot: int, pages: Sequence[PageBuffer]) -> None:
        """Write ``pages`` from ``slot`` in frames sent in parallel."""
        assert self.description is not None
        size = self.description.page_size
        flags = Flag.MEMALLOC if in_memalloc() else Flag.NONE
        if self._one_request(len(pages), flags):  # what _batch and _send would do, directly
            header = RequestHeader(Op.SWAP_OUT, slot, len(pages), size, flags)
            await self._exchange([_Frame(header, pages=pages)], pool)
            return

        async def run(first: int, count: int) -> None:
            header = RequestHeader(Op.SWAP_OUT, first, count, size, flags)
            chunk = pages[first - slot : first - slot + count]
            await self._send(_Frame(header, pages=chunk), pool)

        await self._batch(self._frames(slot, len(pages)), run, "swap_out")

    async def swap_in(self, pool: PagePool, slot: int, pages: Sequence[memoryview]) -> None:
        """Fill ``pages`` from ``slot``; receive buffers come from ``pool``."""
        assert self.description is not None
        size = self.description.page_size
        flags = Flag.MEMALLOC if in_memalloc() else Flag.NONE
        if self._one_request(len(pages), flags):
            header = RequestHeader(Op.SWAP_IN, slot, len(pages), size, flags)
            await self._exchange([_Frame(header, dest=pages)], pool)
            return

        async def run(first: int, count: int) -> None:
            header = RequestHeader(Op.SWAP_IN, first, count, size, flags)
            dest = pages[first - slot : first - slot + count]
            await self._send(_Frame(header, dest=dest), pool)

        await self._batch(self._frames(slot, len(pages)), run, "swap_in")

    async def discard(self, pool: PagePool, slot: int, count: int) -> None:
        """Discard ``count`` slots from ``slot``."""
        assert self.description is not None
        size = self.description.page_size

        async def run(first: int, n: int) -> None:
            await self._send(_Frame(RequestHeader(Op.DISCARD, first, n, size)), pool)

        await self._batch(self._frames(slot, count), run, "discard")
