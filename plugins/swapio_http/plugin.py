"""The ``http`` backend (client of swapio's page server) and the ``swapio serve`` verb.

URL: ``http://HOST[:PORT]/areas/NAME[?connections=16&frame_pages=64&timeout=30]``.  The bearer
token comes from ``$SWAPIO_TOKEN`` or the file named by ``$SWAPIO_TOKEN_FILE``, never from the
URL.  See ``docs/http.md``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import click

import swapio
from swapio.area import Capabilities, PageBuffer, SwapArea, SwapInfo
from swapio.plugins import PluginHost

from ._auth import ENV_TOKEN, TokenSet, client_token
from ._wire import REQUEST_HEADER
from .cli import serve
from .client import DEFAULT_CONNECTIONS, ClientOptions, PageClient
from .server import ServerConfig, start_server

VERSION = "0.1.0"
#: Frames one memalloc request keeps in flight at once (they are sent one after another).
MEMALLOC_FRAMES = 1
#: Memalloc requests per area the reserve covers.
MEMALLOC_REQUESTS = 2


@swapio.hookimpl
def swapio_backend() -> swapio.BackendInfo:
    return swapio.BackendInfo(
        name="http",
        version=VERSION,
        schemes=("http", "https"),
        summary="swapio page server over HTTP (`swapio serve`), any backend on the far side",
        capabilities=("durable", "discard", "create", "reserve"),
    )


@swapio.hookimpl
def swapio_add_commands(cli: click.Group) -> None:
    cli.add_command(serve)


def _capabilities(client: PageClient, pool_page_size: int) -> Capabilities:
    assert client.description is not None
    desc = client.description
    frame_bytes = REQUEST_HEADER.size + client.memalloc_frame_pages * desc.page_size
    # A memalloc request holds two buffers at once: its request buffer and its reply's
    # receive buffer.  One of them carries the frame's pages (the request of a swap_out, the
    # reply of a swap_in); the other is a header alone, which fits one pool page.
    frame_pool_pages = -(-frame_bytes // pool_page_size) + 1
    return Capabilities(
        durable=desc.durable,
        discard=desc.discard,
        max_pages_per_request=client.frame_pages * client.options.connections,
        queue_depth=client.options.connections,
        reserve_pages_per_request=frame_pool_pages * MEMALLOC_FRAMES,
        memalloc_requests=MEMALLOC_REQUESTS,
    )


@swapio.hookimpl
async def swapfile(area: SwapArea, activate: bool) -> SwapInfo | None:
    if not activate:
        client: PageClient = area.private
        await client.close()
        return None
    options = ClientOptions.from_location(area.location)
    client = PageClient(options, client_token())
    desc = await client.open(area.create)
    return SwapInfo(
        pages=desc.pages,
        page_size=desc.page_size,
        capabilities=_capabilities(client, area.pool.page_size),
        private=client,
    )


@swapio.hookimpl
async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
    client: PageClient = area.private
    await client.swap_out(area.pool, slot, pages)


@swapio.hookimpl
async def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
    client: PageClient = area.private
    await client.swap_in(area.pool, slot, pages)


@swapio.hookimpl
async def swap_discard(area: SwapArea, slot: int, count: int) -> None:
    client: PageClient = area.private
    await client.discard(area.pool, slot, count)


@asynccontextmanager
async def bench_location(host: PluginHost, uid: str, qd: int) -> AsyncIterator[str]:
    """For ``swapio bench``: an area URL on a page server started in this process.

    The server uses the memory store (the remote-memory use case) and a fresh token, which
    is put in ``$SWAPIO_TOKEN`` for the client side while the context is open.
    """
    token = secrets.token_urlsafe(24)
    server = await start_server(ServerConfig(tokens=TokenSet((token,))), port=0, host=host)
    saved = os.environ.get(ENV_TOKEN)
    os.environ[ENV_TOKEN] = token
    try:
        yield f"{server.url}/areas/bench-{uid}?connections={max(DEFAULT_CONNECTIONS, qd)}"
    finally:
        await server.stop()
        if saved is None:
            os.environ.pop(ENV_TOKEN, None)
        else:
            os.environ[ENV_TOKEN] = saved


@swapio.hookimpl
def swapio_bench() -> Sequence[object]:
    """This backend's ``swapio bench`` targets (BenchTarget records; swapio_http.bench)."""
    from swapio_http.bench import targets  # noqa: PLC0415 (imported only when the bench runs)

    return targets()
