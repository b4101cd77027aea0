"""The per-area cap on memalloc requests in flight, shared by every scheduler of the process.

An area that declares a reserve need (``Capabilities.reserve_pages_per_request > 0``) had
``reserve_pages_per_request × memalloc_requests`` pages added to its pool's reserve at
activation (``sk_adjust_memalloc``): enough for exactly ``memalloc_requests`` memalloc
requests at once.  The cap therefore belongs to the area, not to one scheduler — two
schedulers (a pager's and a resync's, say) feeding one area must share it, or the reserve
is overdrawn.  One :class:`MemallocCap` exists per :class:`~swapio.area.SwapArea` object;
a scheduler that finds it full registers a wake-up and is kicked when a slot frees.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from swapio.area import SwapArea

__all__ = ["MemallocCap", "memalloc_cap"]


class MemallocCap:
    """How many memalloc requests are in flight on one area, against its declared limit."""

    __slots__ = ("_waiters", "inflight", "limit", "peak")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inflight = 0
        self.peak = 0
        self._waiters: dict[Callable[[], None], None] = {}  # ordered, no duplicates

    def available(self) -> bool:
        """True when one more memalloc request may start."""
        return self.inflight < self.limit

    def acquire(self) -> None:
        """Count a memalloc request in flight (the caller checked :meth:`available`)."""
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)

    def release(self) -> None:
        """A memalloc request finished: wake every scheduler that waited for a slot."""
        self.inflight -= 1
        if self._waiters:
            waiters, self._waiters = self._waiters, {}
            for wake in waiters:
                wake()

    def wait(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` once, at the next :meth:`release`."""
        self._waiters[wake] = None


_CAPS: weakref.WeakKeyDictionary[SwapArea, MemallocCap] = weakref.WeakKeyDictionary()


def memalloc_cap(area: SwapArea) -> MemallocCap | None:
    """The cap of ``area``, or None when the area declared no reserve need (its memalloc
    requests need no reserve pages, so only the queue depth bounds them)."""
    caps = area.capabilities
    if caps.reserve_pages_per_request <= 0:
        return None
    cap = _CAPS.get(area)
    if cap is None:
        cap = _CAPS[area] = MemallocCap(max(1, caps.memalloc_requests))
    return cap
