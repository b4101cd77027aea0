"""The ``memory://NAME`` backend: swap areas held in process memory.

The simplest complete backend, and the template for plugin authors: a named area is a
``bytearray`` that lives as long as the process, so deactivating and reactivating
``memory://scratch`` finds the same pages (but a process restart does not: not durable).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import swapio
from swapio.area import Capabilities, PageBuffer, SwapArea, SwapInfo
from swapio.errors import (
    AreaExistsError,
    AreaNotFoundError,
    LocationError,
    MemoryPressureError,
)
from swapio_memory import _about

VERSION = _about.VERSION


@dataclass
class _Store:
    page_size: int
    data: bytearray

    @property
    def pages(self) -> int:
        return len(self.data) // self.page_size


_stores: dict[str, _Store] = {}


def _name(area: SwapArea) -> str:
    loc = area.location
    name = (loc.host + loc.path).strip("/")
    if not name:
        raise LocationError(f"{loc.url!r}: a memory area needs a name, e.g. memory://scratch")
    loc.check_query(set())
    return name


def _allocate(name: str, size: int) -> bytearray:
    """A zeroed store of ``size`` bytes; more than the machine's RAM is refused up front
    (zeroing it would page the machine to death or wake the OOM killer)."""
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if size > ram:
        raise MemoryPressureError(
            f"memory area {name!r}: {size} bytes asked, more than this machine's {ram} bytes of RAM"
        )
    try:
        return bytearray(size)
    except MemoryError:
        raise MemoryPressureError(f"memory area {name!r}: cannot allocate {size} bytes") from None


def forget(name: str) -> None:
    """Drop the named store (tests and the CLI use this to free memory)."""
    _stores.pop(name, None)


@swapio.hookimpl
def swapio_backend() -> swapio.BackendInfo:
    return swapio.BackendInfo(
        name=_about.NAME,
        version=_about.VERSION,
        schemes=("memory",),
        summary=_about.SUMMARY,
        capabilities=_about.CAPABILITIES,
    )


@swapio.hookimpl
async def swapfile(area: SwapArea, activate: bool) -> SwapInfo | None:
    if not activate:
        return None
    name = _name(area)
    store = _stores.get(name)
    if area.create is not None:
        if store is not None:
            raise AreaExistsError(f"memory area {name!r} already exists")
        store = _Store(
            area.create.page_size, _allocate(name, area.create.pages * area.create.page_size)
        )
        _stores[name] = store
    elif store is None:
        raise AreaNotFoundError(f"memory area {name!r} does not exist (create it first)")
    return SwapInfo(
        pages=store.pages,
        page_size=store.page_size,
        capabilities=Capabilities(durable=False, discard=True, max_pages_per_request=1024),
        private=store,
    )


@swapio.hookimpl
async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
    store: _Store = area.private
    size = store.page_size
    data = store.data
    offset = slot * size
    for page in pages:
        data[offset : offset + size] = page
        offset += size


@swapio.hookimpl
async def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
    store: _Store = area.private
    size = store.page_size
    source = memoryview(store.data)
    offset = slot * size
    for view in pages:
        view[:] = source[offset : offset + size]
        offset += size


@swapio.hookimpl
async def swap_discard(area: SwapArea, slot: int, count: int) -> None:
    store: _Store = area.private
    size = store.page_size
    store.data[slot * size : (slot + count) * size] = bytes(count * size)


@swapio.hookimpl
def swapio_bench() -> Sequence[object]:
    """This backend's ``swapio bench`` targets (BenchTarget records; swapio_memory.bench)."""
    from swapio_memory.bench import targets  # noqa: PLC0415 (imported only when the bench runs)

    return targets()
