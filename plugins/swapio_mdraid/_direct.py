"""A leg's own hooks, called directly: the core area's per-call machinery paid once.

A mirror request is validated once, by the mirror's own area (:class:`swapio.area.SwapArea`
checks slots, buffer sizes, read-only-ness and splits by ``max_pages_per_request``).  The
legs share the mirror's geometry and the mirror's ``max_pages_per_request`` is the legs'
smallest, so what :meth:`SwapArea.call_validated` would still do for each leg is: check the
leg's state, count the request in flight (so the leg's ``deactivate`` drains it), and call
the owner plugin's hook.  This module does exactly that, without the two coroutine frames
(``call_validated`` and ``_split``) and the string dispatch around it; the mirror's write
loop (``Mirror.write``) inlines the same three steps.

The hook is read from the area at every call (``area._ops``), so the area stays the one
place that says which plugin serves it (tests swap it to inject leg failures).

**Write-back file legs** go one step further (:func:`inline_writer`).  The file backend's
``swap_out`` hook is "run the request on the loop if :class:`swapio_file.inline.InlinePath`
allows it, else hand it to the owner thread"; the mirror calls that first step itself —
the backend's own function, with all of its rules (owner thread idle, size limit, stall
guard) — and calls the hook only when it declined.  That saves the hook's coroutine and the
area's ``private`` lookups, about a quarter of a leg write's Python, twice per mirror
write.  It is used only while the area is served by the ``file`` plugin through the very
hooks it was taken from (``area._ops`` unchanged), and only for data writes; everything
else goes through the hook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from swapio.area import AreaState, BoundOps, PageBuffer, SwapArea
from swapio.errors import AreaInactiveError

__all__ = ["ACTIVE", "FILE_PLUGIN", "InlineWrite", "inactive", "inline_writer", "leg_in", "leg_out"]

ACTIVE = AreaState.ACTIVE
#: The plugin whose areas have an inline write step (``swapio_file``, named ``file``).
FILE_PLUGIN = "file"
#: ``InlinePath.write(offset, pages)``: True when the write was done on the loop.
InlineWrite = Callable[[int, Sequence[PageBuffer]], bool]


def inline_writer(area: SwapArea) -> tuple[BoundOps, InlineWrite] | None:
    """The file backend's inline write step of ``area``, with the hooks it belongs to; None
    for an area of any other plugin (or a file area without one)."""
    if area.owner != FILE_PLUGIN:
        return None
    write = getattr(getattr(area.private, "inline", None), "write", None)
    if not callable(write):
        return None
    return area._ops, write


def inactive(area: SwapArea) -> AreaInactiveError:
    """The error :meth:`SwapArea.call_validated` raises for an area that is not active."""
    return AreaInactiveError(f"area {area.location} is {area.state.value}; no new I/O")


async def leg_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
    """``pages`` (checked by the mirror's area) to ``slot`` of leg ``area``."""
    if area.state is not ACTIVE:
        raise inactive(area)
    area._enter()
    try:
        await area._ops.swap_out(area, slot, pages)
    finally:
        area._leave()


async def leg_in(area: SwapArea, slot: int, pages: Sequence[Any]) -> None:
    """Fill ``pages`` (checked by the mirror's area) from ``slot`` of leg ``area``."""
    if area.state is not ACTIVE:
        raise inactive(area)
    area._enter()
    try:
        await area._ops.swap_in(area, slot, pages)
    finally:
        area._leave()
