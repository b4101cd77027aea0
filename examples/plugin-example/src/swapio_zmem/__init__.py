"""``zmem://NAME``: an example swapio backend keeping zlib-compressed pages in memory.

Everything a backend needs is here: ``swapio_backend`` says who we are, ``swapfile``
activates an area and returns its geometry and capabilities, ``swap_out``/``swap_in`` move
pages, ``swap_discard`` forgets them.  Compression is CPU work of ~10 µs per page, so each
request is handed to a worker thread once (never once per page) to keep the event loop free.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import swapio
from swapio.area import Capabilities, PageBuffer, SwapArea, SwapInfo
from swapio.bench.hook import BenchSite, BenchTarget, Durability
from swapio.errors import AreaExistsError, AreaNotFoundError, LocationError

__version__ = "0.1.0"


@dataclass
class ZStore:
    """One named area: page size, slot count and the compressed pages that were written."""

    pages: int
    page_size: int
    data: dict[int, bytes] = field(default_factory=dict)

    def put(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        for i, page in enumerate(pages):
            self.data[slot + i] = zlib.compress(page, 1)

    def get(self, slot: int, views: Sequence[memoryview]) -> None:
        for i, view in enumerate(views):
            blob = self.data.get(slot + i)
            view[:] = zlib.decompress(blob) if blob is not None else bytes(self.page_size)


_stores: dict[str, ZStore] = {}


def _name(area: SwapArea) -> str:
    area.location.check_query(set())
    name = (area.location.host + area.location.path).strip("/")
    if not name:
        raise LocationError(f"{area.location.url!r}: expected zmem://NAME")
    return name


@swapio.hookimpl
def swapio_backend() -> swapio.BackendInfo:
    return swapio.BackendInfo(
        name="zmem",
        version=__version__,
        schemes=("zmem",),
        summary="zlib-compressed pages in memory (example)",
        capabilities=("discard", "create"),
    )


@swapio.hookimpl
async def swapfile(area: SwapArea, activate: bool) -> SwapInfo | None:
    if not activate:
        return None
    name = _name(area)
    store = _stores.get(name)
    if area.create is not None:
        if store is not None:
            raise AreaExistsError(f"zmem area {name!r} already exists")
        store = _stores[name] = ZStore(area.create.pages, area.create.page_size)
    elif store is None:
        raise AreaNotFoundError(f"zmem area {name!r} does not exist")
    caps = Capabilities(durable=False, discard=True, max_pages_per_request=64)
    return SwapInfo(pages=store.pages, page_size=store.page_size, capabilities=caps, private=store)


@swapio.hookimpl
async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
    store: ZStore = area.private
    await asyncio.to_thread(store.put, slot, [bytes(p) for p in pages])


@swapio.hookimpl
async def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
    store: ZStore = area.private
    await asyncio.to_thread(store.get, slot, pages)


@swapio.hookimpl
async def swap_discard(area: SwapArea, slot: int, count: int) -> None:
    store: ZStore = area.private
    for s in range(slot, slot + count):
        store.data.pop(s, None)


@asynccontextmanager
async def _bench_place(site: BenchSite) -> AsyncIterator[str]:
    """A fresh area for ``swapio bench``, forgotten when the run ends."""
    name = f"bench-{site.uid}"
    try:
        yield f"zmem://{name}"
    finally:
        _stores.pop(name, None)


@swapio.hookimpl
def swapio_bench() -> Sequence[BenchTarget]:
    """Join ``swapio bench``: one target, placed in memory, volatile like its store."""
    return [
        BenchTarget(
            name="zmem",
            backend="zmem",
            durability=Durability.VOLATILE,
            place=_bench_place,
            summary="zlib-compressed pages in memory (example)",
        )
    ]
