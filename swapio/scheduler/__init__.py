"""The reserve-aware asyncio I/O scheduler.

>>> from swapio.scheduler import IOScheduler, Priority
>>> sched = IOScheduler()                                   # doctest: +SKIP
>>> await sched.swap_out(area, slot, [page])                # RECLAIM, memalloc context
>>> await sched.swap_in(area, slot, [view])                 # DEMAND
>>> req = sched.submit(area, Direction.SWAP_IN, slot, [view], priority=Priority.READAHEAD)
"""

from __future__ import annotations

from swapio.scheduler.histogram import HistogramSummary, LatencyHistogram
from swapio.scheduler.request import Direction, IORequest, Priority, RequestState
from swapio.scheduler.scheduler import (
    DEFAULT_AGING_INTERVAL,
    DEFAULT_ANTICIPATION,
    DEFAULT_BACKGROUND_SHARE,
    DEFAULT_REQUEST_TIMEOUT,
    IOScheduler,
)
from swapio.scheduler.stats import AreaStatsSnapshot

__all__ = [
    "DEFAULT_AGING_INTERVAL",
    "DEFAULT_ANTICIPATION",
    "DEFAULT_BACKGROUND_SHARE",
    "DEFAULT_REQUEST_TIMEOUT",
    "AreaStatsSnapshot",
    "Direction",
    "HistogramSummary",
    "IORequest",
    "IOScheduler",
    "LatencyHistogram",
    "Priority",
    "RequestState",
]
