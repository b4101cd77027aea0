"""The page server: areas of any swapio backend, served over HTTP by aiohttp.

Each bearer token owns a namespace of areas; an area ``NAME`` of owner ``O`` is stored at the
location obtained from the server's store template (default ``memory://serve/{owner}/{area}``)
and activated through :class:`swapio.plugins.PluginHost`, so the server serves whatever
backends are installed.  Page I/O uses the binary frames of :mod:`swapio_http._wire`.

Shutdown is graceful: new I/O is refused with 503, I/O already accepted completes, then every
area is deactivated (which drains it and makes completed writes durable where the backend
is durable).

Resources are bounded: request and response bodies live in a pool charged per token
(:mod:`swapio_http._budget`), connections and the time to send a request head are limited
(:mod:`swapio_http._guard`), and the stores one token may create are capped
(``max_bytes_per_token``).  See ``docs/http.md`` ("Server memory", options table).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from swapio.area import CreateRequest, SwapArea
from swapio.errors import (
    AreaExistsError,
    SwapioError,
    UsageError,
)
from swapio.location import Location
from swapio.memalloc import memalloc
from swapio.plugins import PluginHost
from swapio.pool import PagePool, PoolBuffer

from ._answers import HTTPError, answer_for, check_body_length
from ._api import AreaDescription, CreateBody, ErrorBody, check_area_name
from ._auth import TokenSet
from ._budget import TokenBudget
from ._frames import check_frame, response_size, run_frames, wants_memalloc
from ._guard import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    ConnectionGuard,
    GuardedSite,
)
from ._iolane import IoLane
from ._wire import (
    CONTENT_TYPE,
    REQUEST_HEADER,
    FrameError,
    Limits,
    Request,
    RequestStreamParser,
)

log = logging.getLogger("swapio.http.server")

DEFAULT_STORE: Final = "memory://serve/{owner}/{area}"
DEFAULT_MAX_AREA_BYTES: Final = 1 << 30
DEFAULT_MAX_AREAS: Final = 64
#: Bytes of stores one token may create (deactivated areas' stores included).
DEFAULT_MAX_BYTES_PER_TOKEN: Final = 4 << 30
#: Budget of the pool holding request and response bodies (``--buffer-bytes``).
DEFAULT_BUFFER_BYTES: Final = 256 << 20
#: Bytes of buffers one token's requests may hold at once (``--max-inflight-bytes``).
DEFAULT_MAX_INFLIGHT_BYTES: Final = 64 << 20
#: Seconds a request waits for buffer memory before it is answered ``503 busy``.
DEFAULT_BUFFER_TIMEOUT: Final = 10.0
MAX_JSON_BYTES: Final = 4096
_IO_HEADERS: Final = {"Content-Type": CONTENT_TYPE}


@dataclass
class ServerConfig:
    """How a page server behaves; see ``swapio serve --help``."""

    tokens: TokenSet
    store: str = DEFAULT_STORE
    limits: Limits = field(default_factory=Limits)
    max_area_bytes: int = DEFAULT_MAX_AREA_BYTES
    max_areas: int = DEFAULT_MAX_AREAS
    max_bytes_per_token: int = DEFAULT_MAX_BYTES_PER_TOKEN
    #: TLS for the listening socket (``swapio serve --tls-cert/--tls-key``); None: plain HTTP.
    ssl_context: ssl.SSLContext | None = None
    drain_timeout: float = 30.0
    buffer_bytes: int = DEFAULT_BUFFER_BYTES
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES
    #: A token's share of the buffer pool's reserve; None: the reserve / number of tokens.
    memalloc_share_bytes: int | None = None
    buffer_timeout: float = DEFAULT_BUFFER_TIMEOUT
    #: The buffer pool itself (tests); None: ``PagePool.of_bytes(buffer_bytes)``.
    pool: PagePool | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT

    def location(self, owner: str, area: str) -> str:
        return self.store.format(owner=owner, area=area)

    def check_store(self, host: PluginHost) -> None:
        """Refuse a store template that could never make an area (checked at start).

        It must contain ``{owner}`` and ``{area}`` and no other placeholder, and its scheme
        must be served by an installed backend; raises :class:`UsageError` otherwise.
        """
        if "{area}" not in self.store or "{owner}" not in self.store:
            raise UsageError(
                f"--store {self.store!r} must contain {{owner}} and {{area}} "
                f"(e.g. {DEFAULT_STORE}) so tokens cannot share areas"
            )
        try:
            sample = self.location("0123456789abcdef", "area")
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(
                f"--store {self.store!r}: only {{owner}} and {{area}} may appear in braces "
                f"({type(exc).__name__}: {exc})"
            ) from None
        host.owner(Location.parse(sample).scheme)  # LocationError naming the known schemes


class ServerState:
    """Areas by (owner, name), plus the in-flight count used by graceful shutdown."""

    def __init__(self, config: ServerConfig, host: PluginHost) -> None:
        self.config = config
        self.host = host
        self.areas: dict[tuple[str, str], SwapArea] = {}
        #: Bytes of every store each owner created or attached since start (active or not).
        self.stores: defaultdict[str, dict[str, int]] = defaultdict(dict)
        self.activating: dict[str, asyncio.Lock] = {}
        self.closing = False
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        pool = config.pool or PagePool.of_bytes(config.buffer_bytes)
        share = config.memalloc_share_bytes
        if share is None:
            share = pool.reserve_pages * pool.page_size // max(1, len(config.tokens.tokens))
        self.budget = TokenBudget(pool, config.max_inflight_bytes, share, config.buffer_timeout)
        self.guard = ConnectionGuard(config.max_connections, config.header_timeout)

    @contextlib.contextmanager
    def io(self) -> Iterator[None]:
        """Count one accepted I/O request; refuse it with 503 once shutdown began."""
        self.io_begin()
        try:
            yield
        finally:
            self.io_end()

    def io_begin(self) -> None:
        """:meth:`io` without a context manager (the page path): call :meth:`io_end` after."""
        if self.closing:
            raise HTTPError(503, "shutting-down", "the page server is shutting down")
        self.inflight += 1
        if self.inflight == 1:
            self.idle.clear()

    def io_end(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.idle.set()

    async def shutdown(self) -> None:
        """Refuse new I/O, wait for accepted I/O, deactivate every area."""
        self.closing = True
        self.guard.shut_down()
        try:
            await asyncio.wait_for(self.idle.wait(), self.config.drain_timeout)
        except TimeoutError:
            log.error("%d request(s) still in flight at shutdown", self.inflight)
        for key, area in list(self.areas.items()):
            try:
                await area.deactivate(timeout=self.config.drain_timeout)
            except SwapioError as exc:
                log.error("deactivating %s failed: %s", area.location, exc)
            self.areas.pop(key, None)


STATE: Final = web.AppKey("swapio_state", ServerState)
OWNER: Final = "swapio_owner"


def _error_response(status: int, code: str, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="swapio"'} if status == 401 else None
    return web.json_response(ErrorBody(code, message).to_json(), status=status, headers=headers)


@web.middleware
async def _errors_and_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    state = request.app[STATE]
    guard, transport = state.guard, request.transport
    guard.request_started(transport)  # the head has arrived: no header deadline while serving
    try:
        return await _authenticated(request, handler)
    finally:
        guard.request_done(transport)


async def _authenticated(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    state = request.app[STATE]
    owner = state.config.tokens.authenticate(request.headers.get("Authorization"))
    if owner is None:
        return _error_response(401, "unauthorized", "missing or wrong bearer token")
    request[OWNER] = owner
    try:
        return await handler(request)
    except ConnectionError:
        # The client went away mid-request (a reset upload): nothing to answer, no traceback.
        log.info(
            "%s %s: connection lost before the request was complete", request.method, request.path
        )
        return _error_response(400, "connection-lost", "connection lost mid-request")
    except Exception as exc:
        answer = answer_for(exc, state, owner, request.match_info.get("name"))
        if answer is None:
            raise
        if answer[0] >= 500:
            log.warning("%s %s: %s", request.method, request.path, exc)
        return _error_response(*answer)


def _area_key(request: web.Request) -> tuple[str, str]:
    name = request.match_info["name"]
    try:
        check_area_name(name)
    except UsageError as exc:
        raise HTTPError(400, "bad-name", str(exc)) from None
    return request[OWNER], name


def _find(request: web.Request) -> SwapArea:
    # A name in the table was checked when its area was activated: check only unknown ones.
    area = request.app[STATE].areas.get((request[OWNER], request.match_info["name"]))
    if area is not None:
        return area
    key = _area_key(request)
    area = request.app[STATE].areas.get(key)
    if area is None:
        # Another token's area of the same name is invisible: same answer as no area at all.
        raise HTTPError(404, "not-found", f"no active area {key[1]!r} for this token")
    return area


def _describe(name: str, area: SwapArea, limits: Limits) -> AreaDescription:
    caps = area.capabilities
    return AreaDescription(
        name=name,
        pages=area.pages,
        page_size=area.page_size,
        durable=caps.durable,
        discard=caps.discard,
        max_frame_pages=limits.max_pages,
        backend=area.owner,
        max_frames=limits.max_frames,
    )


async def _read_json(request: web.Request) -> object:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise HTTPError(413, "too-large", f"JSON body over {MAX_JSON_BYTES} bytes")
    raw = bytearray()
    # Until end of body: one read returns what has arrived, which may be a first segment.
    while chunk := await request.content.read(MAX_JSON_BYTES + 1 - len(raw)):
        raw += chunk
        if len(raw) > MAX_JSON_BYTES:
            raise HTTPError(413, "too-large", f"JSON body over {MAX_JSON_BYTES} bytes")
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise HTTPError(400, "bad-json", f"body is not JSON: {exc}") from None


async def put_area(request: web.Request) -> web.Response:
    """Activate (and with ``pages``, create) the caller's area ``NAME``."""
    state = request.app[STATE]
    key = _area_key(request)
    body = CreateBody.from_json(await _read_json(request))
    # One lock per token (bounded by the token list): activations of one token are rare and
    # serializing them keeps "already active?" and "activate" one step.
    async with state.activating.setdefault(key[0], asyncio.Lock()):
        return await _activate(state, key, body)


async def _activate(state: ServerState, key: tuple[str, str], body: CreateBody) -> web.Response:
    """Attach to or create the area ``key`` (caller holds the name's lock)."""
    area = state.areas.get(key)
    if area is not None:
        if body.pages is not None:
            raise AreaExistsError(f"area {key[1]!r} already exists and is active")
        return web.json_response(_describe(key[1], area, state.config.limits).to_json())
    active = sum(1 for owner, _ in state.areas if owner == key[0])
    if active >= state.config.max_areas:
        raise HTTPError(
            429,
            "too-many-areas",
            f"this token already has {active} active areas (the server's limit is "
            f"{state.config.max_areas}); deactivate one first",
        )
    create = None
    if body.pages is not None:
        assert body.page_size is not None
        if body.page_size > state.config.limits.max_page_size:
            raise HTTPError(
                413,
                "too-large",
                f"page size {body.page_size} exceeds this server's limit "
                f"{state.config.limits.max_page_size}",
            )
        if body.pages * body.page_size > state.config.max_area_bytes:
            raise HTTPError(
                413,
                "too-large",
                f"{body.pages} pages of {body.page_size} bytes exceed this server's area "
                f"limit of {state.config.max_area_bytes} bytes",
            )
        _check_quota(state, key, body.pages * body.page_size)
        create = CreateRequest(pages=body.pages, page_size=body.page_size)
    area = await state.host.activate(state.config.location(*key), create=create)
    state.areas[key] = area
    state.stores[key[0]][key[1]] = area.pages * area.page_size
    status = 201 if create is not None else 200
    return web.json_response(_describe(key[1], area, state.config.limits).to_json(), status=status)


def _check_quota(state: ServerState, key: tuple[str, str], size: int) -> None:
    """429 when creating ``size`` bytes would take the token over ``max_bytes_per_token``.

    Every store the token created or attached since the server started counts, active or
    not: ``DELETE`` deactivates an area but keeps its store, so a quota on active areas alone
    would let create/delete cycles under new names grow memory or disk without bound.
    """
    owner, name = key
    held = sum(b for n, b in state.stores[owner].items() if n != name)
    limit = state.config.max_bytes_per_token
    if held + size > limit:
        raise HTTPError(
            429,
            "quota",
            f"this token's stores hold {held} bytes; {size} more would exceed the server's "
            f"quota of {limit} bytes per token (stores of deactivated areas count: attach and "
            "reuse them)",
        )


async def get_area(request: web.Request) -> web.Response:
    """Describe the caller's area ``NAME``."""
    area = _find(request)
    return web.json_response(
        _describe(request.match_info["name"], area, request.app[STATE].config.limits).to_json()
    )


async def list_areas(request: web.Request) -> web.Response:
    """List the caller's active areas."""
    state = request.app[STATE]
    owner = request[OWNER]
    docs = [
        _describe(name, area, state.config.limits).to_json()
        for (who, name), area in sorted(state.areas.items())
        if who == owner
    ]
    return web.json_response({"areas": docs})


async def delete_area(request: web.Request) -> web.Response:
    """Deactivate the caller's area ``NAME`` (its store is kept)."""
    state = request.app[STATE]
    key = _area_key(request)
    async with state.activating.setdefault(key[0], asyncio.Lock()):
        area = _find(request)
        state.areas.pop(key, None)
        await area.deactivate(timeout=state.config.drain_timeout)
    return web.Response(status=204)


async def area_io(request: web.Request) -> web.StreamResponse:
    """Run the request's frames (swap_out, swap_in, discard) against the caller's area.

    Every frame is parsed and checked (limits, page size, slot range) before the first one
    runs, so a bad request writes nothing.  Frames run concurrently unless two of them
    overlap with a write among them (then in order); the response holds one response frame
    per request frame, in request order.  The body is received into, and the response built
    in, buffers of the server's pool charged to the token (:mod:`swapio_http._budget`); a
    first frame flagged ``MEMALLOC`` gets memalloc treatment within the token's share.
    """
    state = request.app[STATE]
    area = _find(request)
    limits = state.config.limits
    length = request.content_length
    if length is None:
        raise HTTPError(411, "length-required", "frames need a Content-Length")
    check_body_length(length, limits.max_request_bytes)
    state.io_begin()
    try:
        parser = RequestStreamParser(limits, length)
        # iter_chunks hands over received chunks as they are (iter_any would join them, and
        # a read(n) that splits a chunk copies the rest of it).
        chunks = request.content.iter_chunks()
        early = await _first_header(parser, chunks)
        first = parser.first_header
        wants = wants_memalloc(first)
        grant = state.budget.grant(request[OWNER], wants)
        try:
            body = await grant.alloc(max(length, 1))
            frames = await _receive(parser, chunks, early, body)
            for frame in frames:
                check_frame(area, frame.header)
            out = await grant.alloc(sum(response_size(f.header) for f in frames))
            if grant.memalloc:
                with memalloc():
                    await run_frames(area, frames, body.view, out.view)
            else:
                await run_frames(area, frames, body.view, out.view)
            response = web.Response(body=out.view, headers=_IO_HEADERS)
            await response.prepare(request)
            await response.write_eof()
            return response
        finally:
            grant.release()
    finally:
        state.io_end()


async def _first_header(
    parser: RequestStreamParser, chunks: AsyncIterator[tuple[bytes, bool]]
) -> list[bytes]:
    """Receive until the first frame header has passed its checks; the chunks received.

    The header bytes are fed to ``parser`` (a copy of 28 bytes); the chunks are kept whole
    for :func:`_receive`, which copies them into the body buffer.
    """
    early: list[bytes] = []
    head = bytearray()
    while len(head) < REQUEST_HEADER.size:
        chunk = await anext(chunks, None)
        if chunk is None:
            break
        early.append(chunk[0])
        head += chunk[0][: REQUEST_HEADER.size - len(head)]
    if head:
        parser.receive_data(head)
    return early


async def _receive(
    parser: RequestStreamParser,
    chunks: AsyncIterator[tuple[bytes, bool]],
    early: list[bytes],
    body: PoolBuffer,
) -> list[Request]:
    """Receive the body into ``body`` (``early`` chunks first); the frames it holds.

    The parser has seen the first header; it is fed the rest as views of ``body``, so the
    frames' pages handed to the store are views of the pool buffer.
    """
    view = body.view
    filled = 0
    fed = REQUEST_HEADER.size

    def take(chunk: bytes) -> None:
        nonlocal filled, fed
        end = filled + len(chunk)
        if end > view.nbytes:
            raise FrameError("body longer than its Content-Length", code="length-mismatch")
        view[filled:end] = chunk
        filled = end
        if filled > fed:
            parser.receive_data(view[fed:filled])
            fed = filled

    for chunk in early:
        take(chunk)
    async for chunk, _ in chunks:
        take(chunk)
    parser.receive_data(b"")
    return parser.result()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[STATE].shutdown()


def build_app(config: ServerConfig, host: PluginHost | None = None) -> web.Application:
    """The aiohttp application for ``config`` (activating areas through ``host``)."""
    app = web.Application(
        middlewares=[_errors_and_auth],
        client_max_size=config.limits.max_request_bytes,
    )
    app[STATE] = ServerState(config, host if host is not None else PluginHost())
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get("/areas", list_areas)
    app.router.add_put("/areas/{name}", put_area)
    app.router.add_get("/areas/{name}", get_area)
    app.router.add_delete("/areas/{name}", delete_area)
    app.router.add_post("/areas/{name}/io", area_io)
    return app


@dataclass
class RunningServer:
    """A server listening on a socket; ``stop()`` shuts it down gracefully."""

    runner: web.AppRunner
    host: str
    port: int
    tls: bool = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_server(
    config: ServerConfig,
    *,
    bind: str = "127.0.0.1",
    port: int = 0,
    host: PluginHost | None = None,
) -> RunningServer:
    """Start serving on ``bind:port`` (port 0 picks a free one) and return at once."""
    if not bind:
        raise UsageError("--bind is empty; give an address (0.0.0.0 or :: for every interface)")
    config.check_store(host if host is not None else PluginHost())
    app = build_app(config, host)
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=config.drain_timeout,
        handle_signals=False,
        keepalive_timeout=config.idle_timeout,
    )
    await runner.setup()
    guard = app[STATE].guard
    site = GuardedSite(
        runner,
        bind,
        port,
        guard=guard,
        ssl_context=config.ssl_context,
        lane=IoLane(app[STATE]),
        idle_timeout=config.idle_timeout,
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(f"cannot listen on {bind}:{port}: {exc.strerror}") from None
    addresses = runner.addresses
    real_port = int(addresses[0][1]) if addresses else port
    return RunningServer(runner, bind, real_port, tls=config.ssl_context is not None)


__all__ = [
    "DEFAULT_STORE",
    "RunningServer",
    "ServerConfig",
    "build_app",
    "start_server",
]
