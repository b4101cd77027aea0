"""The memory backend in ``swapio bench``: a named area in this process (``volatile``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from swapio.bench.hook import BenchSite, BenchTarget, Durability
from swapio.location import Location
from swapio_memory.plugin import forget


@asynccontextmanager
async def _place(site: BenchSite) -> AsyncIterator[str]:
    name = f"bench-{site.uid}"
    try:
        yield f"memory://{name}"
    finally:
        forget(name)


async def _remove(url: str) -> None:
    loc = Location.parse(url)
    forget((loc.host + loc.path).strip("/"))


def _mapped(url: str, tag: str) -> tuple[str, Path | None]:
    """The mapping workloads' area: another named area (in the handler process; no file)."""
    loc = Location.parse(url)
    return f"memory://{(loc.host + loc.path).strip('/')}-{tag}-{os.getpid()}", None


def targets() -> list[BenchTarget]:
    """The ``memory`` target: the floor every other backend is measured against."""
    return [
        BenchTarget(
            name="memory",
            backend="memory",
            durability=Durability.VOLATILE,
            place=_place,
            summary="a bytearray in this process: what swapio itself costs",
            remove=_remove,
            mapped=_mapped,
        )
    ]
