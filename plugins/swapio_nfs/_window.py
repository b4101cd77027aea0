"""Run one coroutine per item with at most ``window`` in flight; the first failure stops the rest.

Used for the WRITEs of a preallocation and the WRITEs/READs of a request larger than the
server's transfer size (the Linux client likewise sends a large request as ``wsize``/``rsize``
pieces in parallel, ``nfs_pageio_doio``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sized
from typing import TypeVar

T = TypeVar("T")


async def run_windowed(
    items: Iterable[T], window: int, work: Callable[[T], Awaitable[None]]
) -> None:
    """Await ``work(item)`` for every item, at most ``window`` at a time, in item order.

    Items are taken lazily, so memory does not grow with their number.  The first exception
    cancels the other workers and is raised once they have ended.
    """
    if isinstance(items, Sized):
        window = min(window, len(items))
    if window <= 1:
        for item in items:
            await work(item)
        return
    source = iter(items)

    async def worker() -> None:
        for item in source:
            await work(item)

    workers = [asyncio.ensure_future(worker()) for _ in range(window)]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
