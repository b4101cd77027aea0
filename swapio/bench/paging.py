"""Workloads above the device: the pager (``pager-50/75/100``) and the scheduler (``pressure``).

They need :mod:`swapio.pager` and :mod:`swapio.scheduler`; where those are not installed the
workload raises :class:`Unavailable` and the run lists it as skipped.
"""

from __future__ import annotations

from swapio.bench.results import Result
from swapio.bench.targets import Target
from swapio.bench.workloads import BenchConfig, Workload


class Unavailable(Exception):
    """The workload cannot run here (a layer it needs is not installed)."""


async def _pager(target: Target, cfg: BenchConfig, resident_pct: int) -> Result:
    raise Unavailable("swapio.pager is not installed yet")


async def pager_50(target: Target, cfg: BenchConfig) -> Result:
    return await _pager(target, cfg, 50)


async def pager_75(target: Target, cfg: BenchConfig) -> Result:
    return await _pager(target, cfg, 75)


async def pager_100(target: Target, cfg: BenchConfig) -> Result:
    return await _pager(target, cfg, 100)


async def pressure(target: Target, cfg: BenchConfig) -> Result:
    raise Unavailable("the scheduler's pressure workload is not installed yet")


PAGING_WORKLOADS: dict[str, Workload] = {
    "pager-50": pager_50,
    "pager-75": pager_75,
    "pager-100": pager_100,
    "pressure": pressure,
}
