"""What the benchmark measures: swapio areas (backends) and the peer tools they compete with.

A :class:`Target` moves pages between buffers and slots; workloads only see this interface,
so a backend and a peer run the very same loop.  Backend targets wrap an activated
:class:`~swapio.area.SwapArea`; peers are the in-process limit (raw ``os.pwritev`` /
``os.preadv`` on a local file) and the naive approach (one ``aiofiles`` seek + write per page).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiofiles
import aiohttp
from aiofiles.threadpool.binary import AsyncFileIO
from aiohttp import web

from swapio.area import PageBuffer, SwapArea
from swapio.bench.results import Kind
from swapio.pool import PagePool


@dataclass
class Target:
    """Base class: a named store of ``pages`` slots of ``page_size`` bytes."""

    name: str
    kind: Kind
    page_size: int
    pages: int
    #: Slots [0, written) hold data written by an earlier workload (seq-in reads them).
    written: int = 0
    #: Activates another, fresh area of the same backend on a given pool (or None).
    open_fresh: Callable[[PagePool], Awaitable[SwapArea]] | None = None

    @property
    def area(self) -> SwapArea | None:
        """The swap area behind a backend target (pager workloads need one)."""
        return None

    async def write(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        raise NotImplementedError

    async def read(self, slot: int, views: Sequence[memoryview]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release the target's resources."""


@dataclass
class AreaTarget(Target):
    """A swapio backend: every call goes through the area's bound operations."""

    swap_area: SwapArea | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def area(self) -> SwapArea | None:
        return self.swap_area

    async def write(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        assert self.swap_area is not None
        await self.swap_area.swap_out(slot, pages)

    async def read(self, slot: int, views: Sequence[memoryview]) -> None:
        assert self.swap_area is not None
        await self.swap_area.swap_in(slot, views)

    async def close(self) -> None:
        if self.swap_area is not None:
            await self.swap_area.deactivate()


def _preallocate(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
        # Write zeros rather than leave a sparse file, as the file backend's create does.
        block = bytes(1 << 20)
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


@dataclass
class RawFileTarget(Target):
    """Peer: ``os.pwritev``/``os.preadv`` straight from the event loop (the in-process limit).

    No thread hop and no swapio code: the most a Python process gets from this file.
    Concurrency gives it nothing (the calls block), which is the point of the comparison.
    """

    path: Path = Path()
    fd: int = -1

    @classmethod
    def create(cls, path: Path, pages: int, page_size: int) -> RawFileTarget:
        _preallocate(path, pages * page_size)
        fd = os.open(path, os.O_RDWR)
        return cls("raw-pwritev", Kind.PEER, page_size, pages, path=path, fd=fd)

    async def write(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        os.pwritev(self.fd, pages, slot * self.page_size)

    async def read(self, slot: int, views: Sequence[memoryview]) -> None:
        os.preadv(self.fd, views, slot * self.page_size)

    async def close(self) -> None:
        os.close(self.fd)


@dataclass
class AiofilesTarget(Target):
    """Peer: the naive asyncio approach — per page, ``await f.seek()`` then write/read.

    Each concurrent caller takes its own handle from a small pool (sharing one handle's file
    position between tasks would corrupt data).
    """

    path: Path = Path()
    handles: asyncio.Queue[AsyncFileIO] = field(default_factory=asyncio.Queue)
    opened: list[AsyncFileIO] = field(default_factory=list)

    @classmethod
    async def create(cls, path: Path, pages: int, page_size: int, handles: int) -> AiofilesTarget:
        _preallocate(path, pages * page_size)
        target = cls("aiofiles-naive", Kind.PEER, page_size, pages, path=path)
        for _ in range(max(1, handles)):
            f = await aiofiles.open(path, "r+b", buffering=0)
            target.opened.append(f)
            target.handles.put_nowait(f)
        return target

    async def write(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        f = await self.handles.get()
        try:
            for i, page in enumerate(pages):
                await f.seek((slot + i) * self.page_size)
                await f.write(page)
        finally:
            self.handles.put_nowait(f)

    async def read(self, slot: int, views: Sequence[memoryview]) -> None:
        f = await self.handles.get()
        try:
            for i, view in enumerate(views):
                await f.seek((slot + i) * self.page_size)
                view[:] = await f.read(self.page_size)
        finally:
            self.handles.put_nowait(f)

    async def close(self) -> None:
        for f in self.opened:
            await f.close()


@dataclass
class AiohttpFloorTarget(Target):
    """Peer: the HTTP transport alone — aiohttp client and server in this process.

    ``write`` POSTs the pages to a handler that reads the body and answers 16 bytes;
    ``read`` POSTs a page count and gets that many pages back.  No frames, no checks, no
    store: the ceiling any page server built on aiohttp reaches on this machine.
    """

    runner: web.AppRunner | None = None
    session: aiohttp.ClientSession | None = None
    base: str = ""

    @classmethod
    async def create(cls, pages: int, page_size: int, connections: int) -> AiohttpFloorTarget:
        blob = bytes(page_size * 1024)

        async def sink(request: web.Request) -> web.Response:
            async for _chunk, _ in request.content.iter_chunks():
                pass
            return web.Response(body=b"\0" * 16)

        async def source(request: web.Request) -> web.Response:
            count = int(await request.text())
            return web.Response(body=blob[: count * page_size])

        app = web.Application(client_max_size=len(blob) + 1024)
        app.router.add_post("/w", sink)
        app.router.add_post("/r", source)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))
        return cls(
            "aiohttp-floor",
            Kind.PEER,
            page_size,
            pages,
            runner=runner,
            session=session,
            base=f"http://127.0.0.1:{port}",
        )

    async def write(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        assert self.session is not None
        async with self.session.post(f"{self.base}/w", data=b"".join(pages)) as response:
            await response.read()

    async def read(self, slot: int, views: Sequence[memoryview]) -> None:
        assert self.session is not None
        async with self.session.post(f"{self.base}/r", data=str(len(views))) as response:
            data = memoryview(await response.read())
        size = self.page_size
        for i, view in enumerate(views):
            view[:] = data[i * size : (i + 1) * size]

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()
