"""The memory backend in ``swapio bench``: a named area in this process (``volatile``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
        )
    ]
