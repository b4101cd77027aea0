"""The user-space pager: addressable pages over a swap area with a bounded resident set.

>>> from swapio.pager import Pager
>>> async with Pager(area, resident_pages=256) as pager:      # doctest: +SKIP
...     await pager.write(1000, b"hello")
...     data = await pager.read(1000)
"""

from __future__ import annotations

from swapio.pager.clock import Clock
from swapio.pager.pager import DEFAULT_READAHEAD, DEFAULT_RECLAIM_BATCH, Pager
from swapio.pager.stats import PagerStats

__all__ = ["DEFAULT_READAHEAD", "DEFAULT_RECLAIM_BATCH", "Clock", "Pager", "PagerStats"]
