"""Adaptive swap readahead, sans-I/O: the window of ``__swapin_nr_pages()`` (mm/swap_state.c).

Linux sizes each swap-in's readahead from the readahead *hits* since the previous fault:

* ``pages = hits + 2``; with no hits (``pages == 2``) the fault reads only its own page
  unless it is adjacent to the previous fault (``offset == prev_offset ± 1``), so a random
  workload issues no readahead at all and a sequential one starts it at once;
* otherwise ``pages`` is rounded up to a power of two (at least 4), capped at
  ``1 << page_cluster``;
* the window never shrinks faster than by half per fault (``last_ra = prev_win / 2``), so one
  stray fault in a sequential scan does not collapse it;
* the hit counter is reset at every fault (``atomic_xchg(&swapin_readahead_hits, 0)``).

The window is aligned (``swap_cluster_readahead``: ``start = offset & ~mask``), so a sequential
scan faults once per window and hits the rest.  :class:`Readahead` holds that state; the pager
tells it about hits and faults and asks for the window of each fault.
"""

from __future__ import annotations

__all__ = ["Readahead"]

_MIN_ROUNDUP = 4


class Readahead:
    """The window state of one pager (``swapin_readahead_hits``, ``prev_offset``, ``prev_win``).

    :param max_pages: the largest window, a power of two (``1 << page_cluster``); 0 or 1
        disables readahead.
    """

    __slots__ = ("_hits", "_prev_offset", "_prev_win", "max_pages")

    def __init__(self, max_pages: int) -> None:
        self.max_pages = max_pages if max_pages > 1 else 0
        self._hits = 0
        self._prev_offset = -2
        self._prev_win = 1

    def hit(self) -> None:
        """A page brought in by readahead was used (``SetPageReadahead`` → hit counted)."""
        self._hits += 1

    def window(self, offset: int) -> int:
        """Pages to read for a fault at ``offset`` (1 means no readahead); updates the state."""
        if not self.max_pages:
            return 1
        hits, self._hits = self._hits, 0
        pages = hits + 2
        if pages == 2:
            if offset not in (self._prev_offset + 1, self._prev_offset - 1):
                pages = 1
        else:
            roundup = _MIN_ROUNDUP
            while roundup < pages:
                roundup <<= 1
            pages = roundup
        pages = min(pages, self.max_pages)
        pages = max(pages, self._prev_win // 2)  # do not shrink too fast
        self._prev_offset = offset
        self._prev_win = pages
        return pages

    def collapse(self) -> None:
        """Memory is short: the next window starts from nothing (readahead is dropped first)."""
        self._hits = 0
        self._prev_win = 1
