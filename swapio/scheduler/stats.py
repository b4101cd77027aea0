"""Scheduler statistics: counters per area and latency histograms per priority class."""

from __future__ import annotations

from dataclasses import dataclass, field

from swapio.scheduler.histogram import HistogramSummary, LatencyHistogram
from swapio.scheduler.request import Batch, Direction, Priority


@dataclass
class AreaStats:
    """Counters of one area's queue (mutable; read them through :meth:`snapshot`)."""

    submitted: int = 0
    merged: int = 0  #: requests that rode along in another request's batch
    batches: int = 0  #: calls made to the area
    pages: dict[Direction, int] = field(default_factory=lambda: dict.fromkeys(Direction, 0))
    errors: int = 0  #: requests that completed with an error
    timeouts: int = 0  #: batches the backend did not finish in time
    cancelled: int = 0  #: requests cancelled while still queued
    inflight: int = 0
    inflight_memalloc: int = 0
    pending: int = 0
    peak_inflight: int = 0
    peak_pending: int = 0
    latency: dict[Priority, LatencyHistogram] = field(
        default_factory=lambda: {p: LatencyHistogram() for p in Priority}
    )

    def queued(self, pending: int) -> None:
        """A request was accepted into the queue, which now holds ``pending``."""
        self.submitted += 1
        self.pending = pending
        self.peak_pending = max(self.peak_pending, pending)

    def dequeued(self, pending: int, *, cancelled: bool = False) -> None:
        """Requests left the queue (dispatched, or cancelled by their waiter)."""
        self.pending = pending
        if cancelled:
            self.cancelled += 1

    def started(self, batch: Batch) -> None:
        """The queued requests of ``batch`` were handed to the area."""
        if len(batch.requests) > 1:
            self.merged += len(batch.requests) - 1
        self.batches += 1
        inflight = self.inflight = self.inflight + 1
        self.peak_inflight = max(self.peak_inflight, inflight)
        if batch.memalloc:
            self.inflight_memalloc += 1

    def started_direct(self, memalloc: bool) -> None:
        """A request was issued directly, never queued: submitted and started at once."""
        self.submitted += 1
        self.batches += 1
        inflight = self.inflight = self.inflight + 1
        self.peak_inflight = max(self.peak_inflight, inflight)
        if memalloc:
            self.inflight_memalloc += 1

    def finished_direct(
        self,
        direction: Direction,
        priority: Priority,
        pages: int,
        memalloc: bool,
        error: BaseException | None,
        latency_ns: int,
    ) -> None:
        """A directly issued request settled after ``latency_ns``."""
        self.latency[priority].record(latency_ns)
        if error is None:
            self.pages[direction] += pages
        else:
            self.errors += 1
        self.inflight -= 1
        if memalloc:
            self.inflight_memalloc -= 1

    def finished(self, batch: Batch, error: BaseException | None, now_ns: int) -> None:
        """``batch`` settled at ``now_ns``: submit-to-completion latency of every member."""
        requests = batch.requests
        if len(requests) == 1:  # a direct issue, or a batch nothing merged with
            req = requests[0]
            self.latency[req.priority].record(now_ns - req.submitted_ns)
            pages = req.count
        else:
            latency = self.latency
            hist = None
            hist_priority = None
            pages = 0
            for req in requests:
                pages += req.count
                if req.priority is not hist_priority:
                    hist_priority = req.priority
                    hist = latency[hist_priority]
                assert hist is not None
                hist.record(now_ns - req.submitted_ns)
        if error is None:
            self.pages[batch.direction] += pages
        else:
            self.errors += len(batch.requests)
        self.inflight -= 1
        if batch.memalloc:
            self.inflight_memalloc -= 1

    def snapshot(self) -> AreaStatsSnapshot:
        """A frozen copy with latency summaries."""
        return AreaStatsSnapshot(
            submitted=self.submitted,
            merged=self.merged,
            batches=self.batches,
            pages_out=self.pages[Direction.SWAP_OUT],
            pages_in=self.pages[Direction.SWAP_IN],
            pages_discarded=self.pages[Direction.DISCARD],
            errors=self.errors,
            timeouts=self.timeouts,
            cancelled=self.cancelled,
            inflight=self.inflight,
            inflight_memalloc=self.inflight_memalloc,
            pending=self.pending,
            peak_inflight=self.peak_inflight,
            peak_pending=self.peak_pending,
            latency={p.name.lower(): h.summary() for p, h in self.latency.items() if h.count},
        )


@dataclass(frozen=True)
class AreaStatsSnapshot:
    """What :meth:`IOScheduler.stats` reports for one area."""

    submitted: int
    merged: int
    batches: int
    pages_out: int
    pages_in: int
    pages_discarded: int
    errors: int
    timeouts: int
    cancelled: int
    inflight: int
    inflight_memalloc: int
    pending: int
    peak_inflight: int
    peak_pending: int
    latency: dict[str, HistogramSummary]
