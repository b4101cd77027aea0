"""The ``http`` backend (client of swapio's page server) and the ``swapio serve`` verb.

URL: ``http://HOST[:PORT]/areas/NAME[?connections=16&frame_pages=64&timeout=30]``.  The bearer
token comes from ``$SWAPIO_TOKEN`` or the file named by ``$SWAPIO_TOKEN_FILE``, never from the
URL.  See ``docs/http.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

import swapio
from swapio.area import Capabilities, PageBuffer, SwapArea, SwapInfo
from swapio_http import _about

from ._wire import REQUEST_HEADER

if TYPE_CHECKING:  # aiohttp (through the client and server) is imported only when used
    from .client import PageClient

VERSION = _about.VERSION
#: Frames one memalloc request keeps in flight at once (they are sent one after another).
MEMALLOC_FRAMES = 1
#: Memalloc requests per area the reserve covers.
MEMALLOC_REQUESTS = 2


@swapio.hookimpl
def swapio_backend() -> swapio.BackendInfo:
    return swapio.BackendInfo(
        name=_about.NAME,
        version=_about.VERSION,
        schemes=("http", "https"),
        summary=_about.SUMMARY,
        capabilities=_about.CAPABILITIES,
    )


@swapio.hookimpl
def swapio_add_commands(cli: click.Group) -> None:
    from .cli import serve  # noqa: PLC0415 - the server (aiohttp) loads only when serve runs

    cli.add_command(serve)


def _capabilities(client: PageClient, pool_page_size: int) -> Capabilities:
    assert client.description is not None
    desc = client.description
    frame_bytes = (
        client.request_head_bytes
        + REQUEST_HEADER.size
        + client.memalloc_frame_pages * desc.page_size
    )
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
    from ._auth import client_token  # noqa: PLC0415 - aiohttp loads on first activation
    from .client import ClientOptions, PageClient  # noqa: PLC0415

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


@swapio.hookimpl
def swapio_bench() -> Sequence[object]:
    """This backend's ``swapio bench`` targets (BenchTarget records; swapio_http.bench)."""
    from swapio_http.bench import targets  # noqa: PLC0415 (imported only when the bench runs)

    return targets()
