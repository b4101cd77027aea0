"""A controllable backend for scheduler and pager tests (a mock *in addition* to the real
memory and file backends used elsewhere in these suites)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import swapio
from swapio.area import Capabilities, PageBuffer, SwapArea, SwapInfo
from swapio.memalloc import in_memalloc
from swapio.plugins import PluginHost
from swapio.pool import PagePool, PoolBuffer


@dataclass
class Call:
    op: str
    slot: int
    count: int
    memalloc: bool


@dataclass
class ControlledBackend:
    """Stores pages in a dict; can block (``gate``), fail, hang, and allocate reply buffers
    from the area's pool for every call (modelling NFS request/reply buffers)."""

    scheme: str = "ctl"
    pages: int = 1024
    page_size: int = 4096
    capabilities: Capabilities = field(default_factory=Capabilities)
    reply_pages: int = 0
    store: dict[int, bytes] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    gate: asyncio.Event | None = None
    fail_out: BaseException | None = None
    fail_in: BaseException | None = None
    hang: bool = False
    concurrent: int = 0
    peak_concurrent: int = 0
    concurrent_memalloc: int = 0
    peak_concurrent_memalloc: int = 0
    reply_dips: int = 0

    @swapio.hookimpl
    def swapio_backend(self) -> swapio.BackendInfo:
        return swapio.BackendInfo(name=self.scheme, version="0", schemes=(self.scheme,))

    @swapio.hookimpl
    async def swapfile(self, area: SwapArea, activate: bool) -> SwapInfo | None:
        if not activate:
            return None
        return SwapInfo(self.pages, self.page_size, self.capabilities)

    def _enter(self, op: str, slot: int, count: int) -> bool:
        memalloc = in_memalloc()
        self.calls.append(Call(op, slot, count, memalloc))
        self.concurrent += 1
        self.peak_concurrent = max(self.peak_concurrent, self.concurrent)
        if memalloc:
            self.concurrent_memalloc += 1
            self.peak_concurrent_memalloc = max(
                self.peak_concurrent_memalloc, self.concurrent_memalloc
            )
        return memalloc

    async def _work(self, area: SwapArea) -> PoolBuffer | None:
        """Allocate the reply buffer, then block as configured.  The caller owns the reply
        the moment it exists (the ``with``), so cancellation cannot leak it."""
        if self.gate is not None:
            await self.gate.wait()
        if self.hang:
            await asyncio.Event().wait()
        return None

    def _leave(self, memalloc: bool) -> None:
        self.concurrent -= 1
        if memalloc:
            self.concurrent_memalloc -= 1

    async def _reply(self, area: SwapArea) -> PoolBuffer | None:
        if not self.reply_pages:
            return None
        reply = await area.pool.alloc(self.reply_pages * self.page_size)
        self.reply_dips += reply.pfmemalloc
        return reply

    @swapio.hookimpl
    async def swap_out(self, area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
        memalloc = self._enter("out", slot, len(pages))
        try:
            reply = await self._reply(area)
            try:
                await self._work(area)
                if self.fail_out is not None:
                    raise self.fail_out
                for i, page in enumerate(pages):
                    self.store[slot + i] = bytes(page)
            finally:
                if reply is not None:
                    reply.release()
        finally:
            self._leave(memalloc)

    @swapio.hookimpl
    async def swap_in(self, area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
        memalloc = self._enter("in", slot, len(pages))
        try:
            reply = await self._reply(area)
            try:
                await self._work(area)
                if self.fail_in is not None:
                    raise self.fail_in
                for i, view in enumerate(pages):
                    view[:] = self.store.get(slot + i, bytes(self.page_size))
            finally:
                if reply is not None:
                    reply.release()
        finally:
            self._leave(memalloc)

    @swapio.hookimpl
    async def swap_discard(self, area: SwapArea, slot: int, count: int) -> None:
        memalloc = self._enter("discard", slot, count)
        try:
            await self._work(area)
            for i in range(count):
                self.store.pop(slot + i, None)
        finally:
            self._leave(memalloc)


async def activate(
    backend: ControlledBackend, pool: PagePool | None = None, name: str = "a"
) -> SwapArea:
    """Register ``backend`` on a fresh host and activate ``<scheme>://<name>``."""
    host = PluginHost(autoload=False)
    host.register(backend, backend.scheme)
    return await host.activate(f"{backend.scheme}://{name}", pool=pool)


def page(byte: int, size: int = 4096) -> bytes:
    """A page filled with one byte value."""
    return bytes([byte % 256]) * size
