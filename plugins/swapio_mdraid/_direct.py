"""A leg's own hooks, called directly: the core area's per-call machinery paid once.

A mirror request is validated once, by the mirror's own area (:class:`swapio.area.SwapArea`
checks slots, buffer sizes, read-only-ness and splits by ``max_pages_per_request``).  The
legs share the mirror's geometry and the mirror's ``max_pages_per_request`` is the legs'
smallest, so the mirror is a *stacked* area (docs/plugin-authors.md, "Stacked areas"): what
:meth:`SwapArea.call_validated` would still do for each leg is check the leg's state, count
the request in flight (so the leg's ``deactivate`` drains it) and call the owner plugin's
hook — :meth:`SwapArea.begin_request` (which returns the hooks) and
:meth:`SwapArea.end_request`.  :func:`leg_io` does exactly that, without the two coroutine
frames (``call_validated`` and ``_split``) and the string dispatch around them; the
mirror's write loop (``Mirror.write``) inlines the same calls.

The hooks are read from the area at every call, so the area stays the one place that says
which plugin serves it (tests swap them to inject leg failures).

**Write-back file legs** go one step further (:func:`inline_writer`).  The file backend's
``swap_out`` hook is "run the request on the loop if :class:`swapio_file.inline.InlinePath`
allows it, else hand it to the owner thread"; the mirror calls that first step itself —
the backend's own function (:func:`swapio_file.plugin.inline_writer`), with all of its
rules (owner thread idle, size limit, stall guard) — and calls the hook only when it
declined.  That saves the hook's coroutine and the area's ``private`` lookups, about a
quarter of a leg write's Python, twice per mirror write.  It is used only while the area is
served by the very hooks it was taken from (``area.hooks`` unchanged), and only for data
writes; everything else goes through the hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swapio_file.plugin import InlineWrite
from swapio_file.plugin import inline_writer as file_inline_writer

from swapio.area import BoundOps, SwapArea

__all__ = ["InlineWrite", "inline_writer", "leg_io"]


def inline_writer(area: SwapArea) -> tuple[BoundOps, InlineWrite] | None:
    """The file backend's inline write step of ``area``, with the hooks it belongs to; None
    for an area of any other plugin."""
    write = file_inline_writer(area)
    return None if write is None else (area.hooks, write)


async def leg_io(area: SwapArea, write: bool, slot: int, pages: Sequence[Any]) -> None:
    """Write ``pages`` (``write``) to, or fill them from, ``slot`` of leg ``area``; the
    request was checked by the mirror's area."""
    hooks = area.begin_request()
    try:
        await (hooks.swap_out if write else hooks.swap_in)(area, slot, pages)
    finally:
        area.end_request()
