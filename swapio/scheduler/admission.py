"""Admission checks: a request is validated once, against its area, before it is accepted.

The checks are those of :meth:`swapio.area.SwapArea.swap_out` / ``swap_in`` / ``discard``
(slot range, page size, writable views, read-only areas, discard capability); the scheduler
then calls :meth:`~swapio.area.SwapArea.call_validated`, which does not repeat them, so a
bad request fails at submission — alone — instead of failing a whole merged batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swapio.errors import (
    CapabilityError,
    PageSizeError,
    ReadOnlyAreaError,
    SlotRangeError,
    UsageError,
)
from swapio.scheduler.lane import AreaLane
from swapio.scheduler.request import Direction

__all__ = ["check_request"]


def check_request(
    lane: AreaLane,
    direction: Direction,
    slot: int,
    buffers: Sequence[Any],
    count: int | None,
) -> int:
    """Return the number of slots the request covers; raise if it is not valid for the
    lane's area.

    Swap-out pages are bytes-like objects of ``page_size`` bytes; swap-in buffers are
    writable memoryviews of ``page_size`` bytes (the area's ``swap_in`` contract).  The
    buffer loop is a plain one: cheaper than ``memoryview(buf).nbytes`` per page (what the
    area's own entry points check) and than set-of-``map`` tricks, measured for 1 to 64 pages.
    """
    area = lane.area
    if direction is Direction.DISCARD:
        n = 1 if count is None else count
        if lane.read_only:
            raise ReadOnlyAreaError(f"area {area.location} is read-only; discard refused")
        if not lane.discard:
            raise CapabilityError(f"area {area.location} does not support discard")
    else:
        n = len(buffers)
        if count is not None and count != n:
            raise UsageError(f"count={count} does not match {n} buffer(s)")
        writable = direction is Direction.SWAP_IN
        if not writable and lane.read_only:
            raise ReadOnlyAreaError(f"area {area.location} is read-only; swap_out refused")
        size = lane.page_size
        for buf in buffers:
            kind = type(buf)
            if kind is memoryview:
                if buf.nbytes == size and not (writable and buf.readonly):
                    continue
            elif not writable and (kind is bytes or kind is bytearray) and len(buf) == size:
                continue
            _refuse_unless_fit(lane, direction, buf, size)
    if n <= 0:
        raise UsageError("a request needs at least one page")
    if slot < 0 or slot + n > lane.pages:
        raise SlotRangeError(
            f"slots {slot}..{slot + n - 1} out of range for {area.location} ({lane.pages} slots)"
        )
    return n


def _refuse_unless_fit(lane: AreaLane, direction: Direction, buf: Any, size: int) -> None:
    """A buffer the fast checks did not accept: other bytes-like objects of the right size
    are fine for swap-out; anything else is refused with a one-line error."""
    where = f"{direction.value} on {lane.area.location}"
    try:
        view = memoryview(buf)
    except TypeError:
        raise PageSizeError(f"{where}: {type(buf).__name__} is not a bytes-like page") from None
    if view.nbytes != size:
        raise PageSizeError(f"{where}: buffer of {view.nbytes} bytes, expected {size}")
    if direction is Direction.SWAP_IN:
        kind = "a read-only one" if view.readonly else type(buf).__name__
        raise PageSizeError(f"{where}: buffers must be writable memoryviews, got {kind}")
