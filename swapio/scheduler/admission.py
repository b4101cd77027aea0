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

_IMMUTABLE_OK = frozenset({bytes, bytearray})  # page types accepted as-is for swap-out
_WRITABLE_OK = frozenset({bytearray})  # ... and for swap-in


def check_request(
    lane: AreaLane,
    direction: Direction,
    slot: int,
    buffers: Sequence[Any],
    count: int | None,
) -> int:
    """Return the number of slots the request covers; raise if it is not valid for the
    lane's area."""
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
        if direction is Direction.SWAP_OUT and lane.read_only:
            raise ReadOnlyAreaError(f"area {area.location} is read-only; swap_out refused")
        check_buffers(lane, direction, buffers)
    if n <= 0:
        raise UsageError("a request needs at least one page")
    if slot < 0 or slot + n > lane.pages:
        raise SlotRangeError(
            f"slots {slot}..{slot + n - 1} out of range for {area.location} ({lane.pages} slots)"
        )
    return n


def check_buffers(lane: AreaLane, direction: Direction, buffers: Sequence[Any]) -> None:
    """Every buffer is ``page_size`` bytes (and writable for swap-in)."""
    size = lane.page_size
    writable = direction is Direction.SWAP_IN
    if len(buffers) > 1:  # the common case, in C: all bytes/bytearray of the right length
        accepted = _WRITABLE_OK if writable else _IMMUTABLE_OK
        if set(map(type, buffers)) <= accepted and set(map(len, buffers)) == {size}:
            return
    for buf in buffers:
        kind = type(buf)
        if kind is bytearray or (kind is bytes and not writable):
            fits = len(buf) == size
        elif kind is memoryview:
            fits = buf.nbytes == size and not (writable and buf.readonly)
        else:
            fits = False  # any other buffer object: checked through a view below
        if fits:
            continue
        view = memoryview(buf)
        if view.nbytes != size:
            raise PageSizeError(
                f"{direction.value} on {lane.area.location}: buffer of {view.nbytes} bytes, "
                f"expected {size}"
            )
        if writable and view.readonly:
            raise PageSizeError(
                f"swap_in on {lane.area.location}: buffers must be writable, got a read-only one"
            )
