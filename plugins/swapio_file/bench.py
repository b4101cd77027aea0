"""The file backend in ``swapio bench``, and the local-file peers it is compared with.

Targets: ``file`` (the page cache: no ``fdatasync``) and ``file-durable`` (``durable=1``:
``fdatasync`` before each swap-out completes).  Peers, run on the same workloads in the same
directory:

* ``raw-pwritev`` — ``os.pwritev``/``os.preadv`` straight from the event loop, no swapio
  code: the most a Python process gets from this file (concurrency gives it nothing: the
  calls block, which is the point of the comparison).
* ``aiofiles-naive`` — per page, ``await f.seek()`` then ``write``/``read`` through
  ``aiofiles`` (two thread hops per page): what an asyncio programmer writes first.  Each
  concurrent caller takes its own handle (sharing one handle's position would corrupt data).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swapio.area import PageBuffer
from swapio.bench.hook import BenchPeer, BenchSite, BenchTarget, Durability, Kind, Target
from swapio.location import Location


def _preallocate(path: Path, size: int) -> None:
    """Write zeros (not a sparse file), as the file backend's create does."""
    block = bytes(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


@dataclass
class RawFileTarget(Target):
    """Peer ``raw-pwritev``: vectored syscalls from the event loop (the in-process limit)."""

    fd: int = -1

    async def write(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        os.pwritev(self.fd, pages, slot * self.page_size)

    async def read(self, slot: int, views: Sequence[memoryview]) -> None:
        os.preadv(self.fd, views, slot * self.page_size)

    async def close(self) -> None:
        os.close(self.fd)


@dataclass
class AiofilesTarget(Target):
    """Peer ``aiofiles-naive``: one ``seek`` + ``write``/``read`` per page, per handle."""

    handles: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    opened: list[Any] = field(default_factory=list)

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


@asynccontextmanager
async def _raw(site: BenchSite, url: str) -> AsyncIterator[Target]:
    cfg = site.config
    path = site.directory / "raw.swap"
    await asyncio.to_thread(_preallocate, path, cfg.pages * cfg.page_size)
    target = RawFileTarget(
        "raw-pwritev", Kind.PEER, cfg.page_size, cfg.pages, fd=os.open(path, os.O_RDWR)
    )
    try:
        yield target
    finally:
        await target.close()
        path.unlink(missing_ok=True)


@asynccontextmanager
async def _aiofiles(site: BenchSite, url: str) -> AsyncIterator[Target]:
    import aiofiles  # noqa: PLC0415 (a peer's dependency, imported when it runs)

    cfg = site.config
    path = site.directory / "aiofiles.swap"
    await asyncio.to_thread(_preallocate, path, cfg.pages * cfg.page_size)
    target = AiofilesTarget("aiofiles-naive", Kind.PEER, cfg.page_size, cfg.pages)
    try:
        for _ in range(max(1, cfg.qd)):
            f = await aiofiles.open(path, "r+b", buffering=0)
            target.opened.append(f)
            target.handles.put_nowait(f)
        yield target
    finally:
        await target.close()
        path.unlink(missing_ok=True)


PEERS = (
    BenchPeer(
        "raw-pwritev",
        Durability.PAGE_CACHE,
        "os.pwritev/os.preadv from the event loop: the in-process limit",
        open=_raw,
    ),
    BenchPeer(
        "aiofiles-naive",
        Durability.PAGE_CACHE,
        "aiofiles seek + write per page: the naive asyncio approach",
        open=_aiofiles,
        needs_modules=("aiofiles",),
        install_hint="pip install aiofiles",
    ),
)


def _placer(name: str, query: str) -> Any:
    @asynccontextmanager
    async def place(site: BenchSite) -> AsyncIterator[str]:
        path = site.directory / f"{name}-{site.uid}.swap"
        try:
            yield f"file://{path}{query}"
        finally:
            path.unlink(missing_ok=True)

    return place


async def _remove(url: str) -> None:
    path = Path(Location.parse(url).path)
    await asyncio.to_thread(path.unlink, missing_ok=True)


def _mapped(url: str, tag: str) -> tuple[str, Path | None]:
    """The mapping workloads' area: a sibling file ``<path>.<tag>`` with the same query."""
    loc = Location.parse(url)
    path = Path(f"{loc.path}.{tag}")
    query = "&".join(f"{k}={v}" for k, v in loc.query.items())
    return f"file://{path}" + (f"?{query}" if query else ""), path


def targets() -> list[BenchTarget]:
    """``file`` (page cache, with the local-file peers) and ``file-durable``."""
    return [
        BenchTarget(
            name="file",
            backend="file",
            durability=Durability.PAGE_CACHE,
            place=_placer("file", ""),
            summary="a regular file, no fdatasync: survives the process, not a crash",
            peers=PEERS,
            remove=_remove,
            mapped=_mapped,
        ),
        BenchTarget(
            name="file-durable",
            backend="file",
            durability=Durability.DURABLE,
            place=_placer("file-durable", "?durable=1"),
            summary="a regular file with durable=1: fdatasync before each swap-out completes",
            remove=_remove,
            mapped=_mapped,
        ),
    ]
