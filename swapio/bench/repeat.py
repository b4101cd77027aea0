"""Repeated runs of one (target, workload): the median run, and how far the runs spread.

A figure measured once on a shared machine may be off by 10x; every pair is run
``--repeat`` times (default 3).  The reported run is the median one; ``spread_pct`` is the
range of the runs relative to that median, ``(max - min) / median``, in percent — over
pages/s, or over seconds for workloads ranked by time (a resync).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from swapio.bench.results import Result

#: A pair whose runs spread wider than this is flagged as unreliable.
SPREAD_WARN_PCT = 50.0


def combine(runs: Sequence[Result], *, by_seconds: bool = False) -> Result:
    """The median of ``runs`` with ``runs_pages_per_s``, ``runs_seconds``, ``spread_pct``."""
    if not runs:
        raise ValueError("no runs to combine")

    def metric(r: Result) -> float:
        return r.seconds if by_seconds else r.pages_per_s

    ordered = sorted(runs, key=metric)
    median = ordered[(len(ordered) - 1) // 2] if by_seconds else ordered[len(ordered) // 2]
    centre = metric(median)
    spread = 100.0 * (metric(ordered[-1]) - metric(ordered[0])) / centre if centre > 0 else 0.0
    extra = {
        **median.extra,
        "repeat": len(runs),
        "runs_pages_per_s": [round(r.pages_per_s, 1) for r in runs],
        "runs_seconds": [round(r.seconds, 6) for r in runs],
        "spread_pct": round(spread, 1),
    }
    return dataclasses.replace(median, extra=extra)


def unsteady(results: Sequence[Result], limit: float = SPREAD_WARN_PCT) -> list[Result]:
    """The results whose repeated runs spread more than ``limit`` percent."""
    return [r for r in results if float(r.extra.get("spread_pct", 0.0)) > limit]
