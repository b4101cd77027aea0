"""The one call of the area for a request or batch: started eagerly in the calling task,
watched for its deadline only once it suspends.

A call that completes without suspending (the memory backend; the file backend on a page-cache
hit) runs start to finish inside :func:`call_area` — no watchdog entry, no extra event-loop
step — as Python 3.12's eager tasks would run it; the coroutine is started with
``send(None)`` in the task that awaits :func:`call_area`, so ``asyncio.current_task()``,
``asyncio.timeout()`` and context variables inside the backend see that task throughout.  A
call that suspends is registered with the :class:`~swapio.scheduler.deadline.Watchdog` and
then awaited to its end through :func:`_resume` (``yield from`` written out, since the first
step already ran).  Whether the area's last call completed inline is kept on the lane
(:attr:`AreaLane.inline`): a caller with several requests for an area whose calls complete
inline loses no overlap by issuing them one after another in its own task.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator, Sequence
from typing import Any

from swapio.errors import SwapTimeoutError
from swapio.scheduler.deadline import Watchdog
from swapio.scheduler.lane import AreaLane
from swapio.scheduler.request import Direction

__all__ = ["call_area"]


async def call_area(
    lane: AreaLane,
    watchdog: Watchdog | None,
    direction: Direction,
    slot: int,
    buffers: Sequence[Any],
    count: int,
) -> None:
    """Run the area's call for ``count`` slots from ``slot``; an overrun of the watchdog's
    timeout becomes :class:`SwapTimeoutError`."""
    call = lane.area.call_validated(direction, slot, buffers, count)
    try:
        yielded = call.send(None)
    except StopIteration:
        lane.inline = True
        return
    lane.inline = False
    if watchdog is None:
        await _resume(call, yielded)
        return
    watched = watchdog.watch(lane.loop)
    try:
        await _resume(call, yielded)
    except asyncio.CancelledError:
        if watchdog.timed_out(watched):
            lane.stats.timeouts += 1
            raise SwapTimeoutError(
                f"{direction.value} of slots {slot}..{slot + count - 1} on "
                f"{lane.area.location} did not complete within {watchdog.timeout:g} s"
            ) from None
        raise
    finally:
        watchdog.unwatch(watched)


@types.coroutine
def _resume(call: Coroutine[Any, Any, None], yielded: Any) -> Generator[Any, Any, None]:
    """Await ``call`` after its first step yielded ``yielded``: pass every value the task
    sends and every exception it throws (cancellation) on to ``call``."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            call.close()
            raise
        except BaseException as exc:  # handed to the call, which decides
            try:
                yielded = call.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = call.send(sent)
            except StopIteration:
                return
