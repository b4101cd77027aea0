"""The ``redis`` backend: pages in Redis (``redis://``) or Redis Cluster (``redis+cluster://``).

URL: ``redis://HOST[:PORT][/DB]?prefix=NAME`` or
``redis+cluster://HOST:PORT[,HOST:PORT...]?prefix=NAME`` (``rediss`` for TLS with
``cafile=``), options ``durable=1``, ``replicas=N``, ``timeout=S``, ``coalesce=0``,
``rounds=N``.  The password comes from ``$SWAPIO_REDIS_PASSWORD`` or the file named by
``$SWAPIO_REDIS_PASSWORD_FILE``, never from the URL.  See ``docs/redis.md``.

redis-py is imported by the hooks that activate an area (through ``_store``), never at
import time: ``swapio backends`` and every command that does not touch a redis area load
this module without it (tests/redis/test_lazy_import.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import swapio
from swapio.area import Capabilities, PageBuffer, SwapArea, SwapInfo

from . import _about
from ._ops import Kind
from ._options import SCHEMES

if TYPE_CHECKING:
    from ._store import RedisArea

VERSION = _about.VERSION
#: Pages the core hands one call at most (4 stripe units: at most 4 nodes, 8 commands).
MAX_PAGES_PER_REQUEST = 128
#: Memalloc requests per area the reserve covers.
MEMALLOC_REQUESTS = 2


@swapio.hookimpl
def swapio_backend() -> swapio.BackendInfo:
    return swapio.BackendInfo(
        name=_about.NAME,
        version=_about.VERSION,
        schemes=SCHEMES,
        summary=_about.SUMMARY,
        capabilities=_about.CAPABILITIES,
    )


def _capabilities(area: SwapArea, store: RedisArea) -> Capabilities:
    from ._engine import MEMALLOC_PAGES  # noqa: PLC0415 (redis-py: imported on activation)
    from ._ops import MAX_KEYS_PER_COMMAND  # noqa: PLC0415
    from ._store import QUEUE_DEPTH  # noqa: PLC0415

    # A memalloc request sends MEMALLOC_PAGES pages at a time, as commands of at most
    # MAX_KEYS_PER_COMMAND pages, each charged to the pool while it is on the wire.
    per_command = area.pool.pages_for(MAX_KEYS_PER_COMMAND * store.meta.page_size)
    commands = -(-MEMALLOC_PAGES // MAX_KEYS_PER_COMMAND)
    return Capabilities(
        durable=store.options.durable,
        discard=True,
        max_pages_per_request=MAX_PAGES_PER_REQUEST,
        queue_depth=QUEUE_DEPTH,
        reserve_pages_per_request=per_command * commands,
        memalloc_requests=MEMALLOC_REQUESTS,
    )


@swapio.hookimpl
async def swapfile(area: SwapArea, activate: bool) -> SwapInfo | None:
    if not activate:
        store: RedisArea = area.private
        await store.close()
        return None
    store = await _activate(area)
    return SwapInfo(
        pages=store.meta.pages,
        page_size=store.meta.page_size,
        capabilities=_capabilities(area, store),
        private=store,
    )


async def _activate(area: SwapArea) -> RedisArea:
    from ._store import activate  # noqa: PLC0415 (redis-py: imported on activation)

    return await activate(area.location, area.create)


# The two data hooks await a coalesced request's future themselves (Engine.enqueue): at
# queue depth 32 a single-page swap-in is mostly per-call Python work, and every coroutine
# frame between the core and the future is paid again when the round wakes the caller.


@swapio.hookimpl
async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
    engine = area.private.engine
    request = engine.enqueue(area.pool, Kind.SET, slot, pages)
    if request is None:
        await engine.swap_out(area.pool, slot, pages)
        return
    try:
        await request.future
    except asyncio.CancelledError:
        await engine.cancelled(request)
        raise


@swapio.hookimpl
async def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
    engine = area.private.engine
    request = engine.enqueue(area.pool, Kind.GET, slot, pages)
    if request is None:
        await engine.swap_in(area.pool, slot, pages)
        return
    try:
        await request.future
    except asyncio.CancelledError:
        await engine.cancelled(request)
        raise


@swapio.hookimpl
async def swap_discard(area: SwapArea, slot: int, count: int) -> None:
    store: RedisArea = area.private
    await store.engine.discard(area.pool, slot, count)


@swapio.hookimpl
def swapio_bench() -> Sequence[object]:
    """This backend's ``swapio bench`` targets (BenchTarget records; swapio_redis.bench)."""
    from swapio_redis.bench import targets  # noqa: PLC0415 (imported only when the bench runs)

    return targets()
