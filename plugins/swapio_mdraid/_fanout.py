"""One mirror request, many legs: whose error it is, and the legs written at once.

raid1 sends a write to every member and completes it when all have answered
(``raid1_end_write_request``); a member's I/O error fails that member (``md_error``), not
the request, as long as one member took the data.  Here the same split is made by the
error's class (:func:`is_leg_failure`): a caller's mistake would be raised by every leg
alike and says nothing about a leg's health.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from swapio.errors import (
    MemoryPressureError,
    PageSizeError,
    SlotRangeError,
    SwapioError,
    UsageError,
)

T = TypeVar("T")


def is_leg_failure(exc: BaseException) -> bool:
    """Does ``exc``, raised by a leg's I/O, mean the leg failed (rather than the request)?

    Every :class:`SwapioError` does — :class:`BackendIOError`, :class:`SwapTimeoutError`,
    :class:`ProtocolError`, :class:`AreaInactiveError`, ... — except the caller's own
    mistakes (:class:`UsageError`, :class:`SlotRangeError`, :class:`PageSizeError`), which
    every leg would raise alike and which say nothing about the leg's health, and memory
    pressure (:class:`MemoryPressureError`: the pool could not lend a buffer; the request
    fails, the leg is fine).
    """
    return isinstance(exc, SwapioError) and not isinstance(
        exc, (UsageError, SlotRangeError, PageSizeError, MemoryPressureError)
    )


async def in_turn(
    write: Callable[[T], Awaitable[None]], targets: Sequence[T]
) -> list[BaseException | None]:
    """``write`` each target one after the other; each one's :class:`SwapioError` (or None).

    Anything else (a crash injected by a test, cancellation) stops here and propagates.
    """
    results: list[BaseException | None] = []
    for target in targets:
        try:
            await write(target)
        except SwapioError as exc:
            results.append(exc)
        else:
            results.append(None)
    return results


async def at_once(
    write: Callable[[T], Awaitable[None]], targets: Sequence[T]
) -> list[BaseException | None]:
    """``write`` every target concurrently, the first in this task (one task fewer); each
    one's exception or None, as ``gather(return_exceptions=True)`` would collect them.
    The other writes finish whatever happens to the first (cancellation included)."""
    others = [asyncio.ensure_future(write(target)) for target in targets[1:]]
    results: list[BaseException | None] = []
    try:
        await write(targets[0])
        results.append(None)
    except Exception as exc:  # collected
        results.append(exc)
    finally:
        for task in others:
            try:
                await task
            except Exception as exc:  # collected
                results.append(exc)
            else:
                results.append(None)
    return results
