"""Pager statistics (``/proc/vmstat`` for one pager)."""

from __future__ import annotations

from dataclasses import dataclass, field

from swapio.scheduler.histogram import HistogramSummary, LatencyHistogram


@dataclass
class PagerCounters:
    """Live counters; read them through :meth:`Pager.stats`."""

    accesses: int = 0
    hits: int = 0
    major_faults: int = 0  #: faults that read the page from the area (``pgmajfault``)
    minor_faults: int = 0  #: faults on never-written pages, zero-filled without I/O
    fault_errors: int = 0
    readahead_issued: int = 0
    readahead_hits: int = 0
    evictions: int = 0
    clean_drops: int = 0  #: evictions of clean pages with a valid copy: no I/O (swap cache)
    writebacks: int = 0  #: pages written to the area
    writeback_errors: int = 0
    direct_reclaims: int = 0
    kswapd_runs: int = 0
    frame_waits: int = 0  #: faults that had to wait for a frame
    dirty_throttles: int = 0
    fault_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    writeback_latency: LatencyHistogram = field(default_factory=LatencyHistogram)


@dataclass(frozen=True)
class PagerStats:
    """A snapshot of a pager's counters, occupancy and latency summaries."""

    pages: int
    resident_budget: int
    resident: int
    dirty: int
    accesses: int
    hits: int
    major_faults: int
    minor_faults: int
    fault_errors: int
    readahead_issued: int
    readahead_hits: int
    evictions: int
    clean_drops: int
    writebacks: int
    writeback_errors: int
    direct_reclaims: int
    kswapd_runs: int
    frame_waits: int
    dirty_throttles: int
    reserve_dips: int
    throttle_waits: int
    fault_latency: HistogramSummary
    writeback_latency: HistogramSummary

    @property
    def faults(self) -> int:
        """Major plus minor faults."""
        return self.major_faults + self.minor_faults
