"""Running a request's checked frames against an area (the page server's I/O, sans HTTP).

:func:`check_frame` applies, once per frame and before any frame runs, what
:meth:`SwapArea.swap_out` / ``swap_in`` / ``discard`` would check; :func:`run_frames` then
runs them — concurrently unless two overlap with a write among them (the hook contract) —
each writing its response frame into its part of the answer buffer.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Final

from swapio.area import SwapArea
from swapio.errors import PageSizeError, ReadOnlyAreaError, SlotRangeError

from ._wire import (
    RESPONSE_HEADER,
    Flag,
    Op,
    Request,
    RequestHeader,
    pack_response_header_into,
)


def response_size(head: RequestHeader) -> int:
    """Bytes of the response frame answering ``head`` (header, and SWAP_IN's pages)."""
    if head.op is Op.SWAP_IN:
        return RESPONSE_HEADER.size + head.count * head.page_size
    return RESPONSE_HEADER.size


def wants_memalloc(head: RequestHeader | None) -> bool:
    """The first frame asks for memalloc treatment (``int``: no ``IntFlag`` arithmetic)."""
    return head is not None and bool(int(head.flags) & MEMALLOC_FLAG)


MEMALLOC_FLAG: Final = int(Flag.MEMALLOC)


async def run_frames(
    area: SwapArea, frames: list[Request], body: memoryview, out: memoryview
) -> None:
    """Apply ``frames`` (held in ``body``), each writing its response into its part of ``out``."""
    slices = []
    offset = 0
    for frame in frames:
        size = response_size(frame.header)
        slices.append(out[offset : offset + size])
        offset += size
    if len(frames) == 1:
        await apply_frame(area, frames[0], body, slices[0])
    elif not conflicting(frames):
        await asyncio.gather(
            *(apply_frame(area, f, body, v) for f, v in zip(frames, slices, strict=True))
        )
    else:
        for frame, view in zip(frames, slices, strict=True):
            await apply_frame(area, frame, body, view)


def check_frame(area: SwapArea, head: RequestHeader) -> None:
    """What :meth:`SwapArea.swap_out` / ``swap_in`` / ``discard`` would check, once per
    frame before any frame runs (so :func:`apply_frame` calls the area pre-validated)."""
    if head.op is not Op.SWAP_IN and area.capabilities.read_only:
        raise ReadOnlyAreaError(f"area {area.location} is read-only; {head.op.name} refused")
    if head.page_size != area.page_size:
        raise PageSizeError(
            f"frame page size {head.page_size} does not match the area's {area.page_size}"
        )
    if head.slot + head.count > area.pages:
        raise SlotRangeError(
            f"slots {head.slot}..{head.slot + head.count - 1} out of range "
            f"(area has {area.pages} slots)"
        )


def conflicting(frames: list[Request]) -> bool:
    """True if two frames overlap in slots and one of them writes (hook contract)."""
    spans = sorted(
        (f.header.slot, f.header.slot + f.header.count, f.header.op is not Op.SWAP_IN)
        for f in frames
    )
    for (_, end, writes), (start, _, next_writes) in itertools.pairwise(spans):
        if start < end and (writes or next_writes):
            return True
    return False


async def apply_frame(area: SwapArea, frame: Request, body: memoryview, out: memoryview) -> None:
    """Run one frame; write its response frame (header, SWAP_IN pages) into ``out``."""
    op, slot, count = frame.header.op, frame.header.slot, frame.header.count
    size = area.page_size
    head = RESPONSE_HEADER.size
    pack_response_header_into(out, op, count, size)
    # check_frame checked page size, slot range and read-only; pages_of and the slices of
    # ``out`` are exact page views: the area re-checks only its state (call_validated)
    if op is Op.SWAP_OUT:
        await area.call_validated("swap_out", slot, frame.pages_of(body), count)
    elif op is Op.SWAP_IN:
        pages = [out[head + i * size : head + (i + 1) * size] for i in range(count)]
        await area.call_validated("swap_in", slot, pages, count)
    else:
        await area.discard(slot, count)
