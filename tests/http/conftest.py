"""Fixtures for the page server and http backend tests."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from swapio_http._auth import TokenSet
from swapio_http._wire import Limits
from swapio_http.server import RunningServer, ServerConfig, build_app, start_server
from swapio_memory import plugin as memory

import swapio
from swapio.area import PageBuffer, SwapArea, SwapInfo
from swapio.plugins import PluginHost

TOKEN = "alice-token-0123456789abcdef"
OTHER_TOKEN = "bob-token-0123456789abcdef00"
LIMITS = Limits(max_pages=16, max_page_size=4096)


class GatedMemory:
    """A ``gated://`` backend: memory, but swap_out waits for ``gate`` (for drain tests)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    @swapio.hookimpl
    def swapio_backend(self) -> swapio.BackendInfo:
        return swapio.BackendInfo(name="gated", version="0", schemes=("gated",))

    @swapio.hookimpl
    async def swapfile(self, area: SwapArea, activate: bool) -> SwapInfo | None:
        return await memory.swapfile(area, activate)

    @swapio.hookimpl
    async def swap_out(self, area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
        self.entered.set()
        await self.gate.wait()
        await memory.swap_out(area, slot, pages)

    @swapio.hookimpl
    async def swap_in(self, area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
        await memory.swap_in(area, slot, pages)


def server_config(scheme: str = "memory", **overrides: object) -> ServerConfig:
    store = f"{scheme}://t{uuid.uuid4().hex}/{{owner}}/{{area}}"
    config = ServerConfig(tokens=TokenSet((TOKEN, OTHER_TOKEN)), store=store, limits=LIMITS)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def gated() -> GatedMemory:
    return GatedMemory()


@pytest.fixture
def server_host(gated: GatedMemory) -> PluginHost:
    host = PluginHost()
    host.register(gated, "gated")
    return host


class LaneClient:
    """The calls of aiohttp's ``TestClient``, made to a server on a real socket.

    Every request gets a connection of its own, so each ``POST /areas/NAME/io`` is served by
    the server's fast lane (:mod:`swapio_http._lane`), which a connection leaves for good once
    it carries any other request.
    """

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), raise_for_status=False
        )

    @property
    def app(self) -> web.Application:
        app = self.server.runner.app
        assert isinstance(app, web.Application)
        return app

    async def request(self, method: str, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.session.request(method, self.server.url + path, **kw)

    async def put(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.request("PUT", path, **kw)

    async def post(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.request("POST", path, **kw)

    async def get(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.request("GET", path, **kw)

    async def delete(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.request("DELETE", path, **kw)

    async def close(self) -> None:
        await self.session.close()
        await self.server.stop()


#: How a server test reaches the page server: aiohttp's test client (the application behind
#: aiohttp's own server: every request through aiohttp), or a real socket (``/io`` on the lane).
SERVINGS = ("aiohttp", "lane")


@asynccontextmanager
async def serving(
    how: str, aiohttp_client: Any, config: ServerConfig, host: PluginHost
) -> AsyncIterator[Any]:
    """A client of a page server built from ``config``, served as ``how`` says."""
    if how == "aiohttp":
        yield await aiohttp_client(build_app(config, host))
        return
    lane = LaneClient(await start_server(config, port=0, host=host))
    try:
        yield lane
    finally:
        await lane.close()


@pytest_asyncio.fixture(params=SERVINGS)
async def client(
    request: pytest.FixtureRequest, aiohttp_client: Any, server_host: PluginHost
) -> AsyncIterator[TestClient[web.Request, web.Application] | LaneClient]:
    async with serving(request.param, aiohttp_client, server_config(), server_host) as served:
        yield served


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SWAPIO_TOKEN", TOKEN)
    monkeypatch.delenv("SWAPIO_TOKEN_FILE", raising=False)
    return TOKEN


@pytest_asyncio.fixture
async def live_server() -> AsyncIterator[RunningServer]:
    """A server on a real loopback socket in the test's own event loop."""
    server = await start_server(server_config(), port=0)
    try:
        yield server
    finally:
        await server.stop()


class ThreadedServer:
    """A page server on a real socket, running its own event loop in a thread."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await start_server(self.config, port=0)
        self.url = server.url
        self._ready.set()
        await self._stop.wait()
        await server.stop()

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("page server thread did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[ThreadedServer]:
    # The conformance kit runs every page size up to 16 KiB.
    with ThreadedServer(
        server_config(limits=Limits(max_pages=16, max_page_size=1 << 16))
    ) as server:
        yield server
