"""The closing summary: for each need an operator picks a swap backend by, the winner.

Each need ranks the **backends** measured in the run (never peers or the model) on one
figure of one workload, among the durability classes the need is about:

========================  ===================  ==============================  =========
need                      workload             figure                          classes
========================  ===================  ==============================  =========
fastest durable           seq-out (rand-out)   pages/s, higher is better       durable
fastest remote            seq-out (rand-out)   pages/s, higher is better       remote
lowest p99 demand read    rand-in (pager-50)   p99 latency, lower is better    all
best under memory         pressure             pages/s of runs that completed  all
pressure
least flash wear          rand-out (seq-out)   bytes written to the medium     page cache,
                                               per byte swapped out, lower     durable
========================  ===================  ==============================  =========

The first workload listed that was measured is used.  A need with no candidate says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from swapio.bench.hook import Durability
from swapio.bench.results import Kind, Result

_ALL = frozenset(Durability)


@dataclass(frozen=True)
class Need:
    """One question the summary answers."""

    key: str
    title: str
    workloads: tuple[str, ...]
    classes: frozenset[Durability]
    metric: str
    unit: str
    value: Callable[[Result], float | None]
    higher_is_better: bool


def _rate(r: Result) -> float | None:
    return r.pages_per_s


def _p99(r: Result) -> float | None:
    p99 = r.latency.p99
    return float(p99) if p99 > 0 else None


def _completed_rate(r: Result) -> float | None:
    return r.pages_per_s if r.extra.get("completed") is True else None


def _amplification(r: Result) -> float | None:
    value = r.extra.get("write_amplification")
    return float(value) if isinstance(value, int | float) else None


NEEDS: tuple[Need, ...] = (
    Need(
        "fastest_durable",
        "fastest durable",
        ("seq-out", "rand-out"),
        frozenset({Durability.DURABLE}),
        "pages_per_s",
        "pages/s",
        _rate,
        True,
    ),
    Need(
        "fastest_remote",
        "fastest remote",
        ("seq-out", "rand-out"),
        frozenset({Durability.REMOTE}),
        "pages_per_s",
        "pages/s",
        _rate,
        True,
    ),
    Need(
        "lowest_p99_demand_read",
        "lowest p99 demand read",
        ("rand-in", "pager-50"),
        _ALL,
        "lat_ns.p99",
        "ns",
        _p99,
        False,
    ),
    Need(
        "best_under_pressure",
        "best under memory pressure",
        ("pressure",),
        _ALL,
        "pages_per_s",
        "pages/s",
        _completed_rate,
        True,
    ),
    Need(
        "least_flash_wear",
        "least flash wear",
        ("rand-out", "seq-out"),
        frozenset({Durability.PAGE_CACHE, Durability.DURABLE}),
        "write_amplification",
        "bytes written per byte swapped out",
        _amplification,
        False,
    ),
)


def _entry(r: Result, value: float) -> dict[str, Any]:
    return {"target": r.target, "durability": r.durability, "value": value}


def answer(need: Need, results: Sequence[Result]) -> dict[str, Any]:
    """The winner and runner-up of ``need`` among ``results`` (a ``summary`` JSON item)."""
    out: dict[str, Any] = {
        "need": need.key,
        "title": need.title,
        "metric": need.metric,
        "unit": need.unit,
        "higher_is_better": need.higher_is_better,
        "workload": None,
        "winner": None,
        "runner_up": None,
        "reason": None,
    }
    backends = [r for r in results if r.kind is Kind.BACKEND and r.durability in need.classes]
    for workload in need.workloads:
        scored = [
            (value, r)
            for r in backends
            if r.workload == workload and (value := need.value(r)) is not None
        ]
        if not scored:
            continue
        scored.sort(key=lambda item: -item[0] if need.higher_is_better else item[0])
        out["workload"] = workload
        out["winner"] = _entry(scored[0][1], scored[0][0])
        if len(scored) > 1:
            out["runner_up"] = _entry(scored[1][1], scored[1][0])
        return out
    classes = ", ".join(sorted(need.classes))
    out["reason"] = (
        f"no {classes} backend measured {' or '.join(need.workloads)}"
        if need.classes != _ALL
        else f"no backend measured {' or '.join(need.workloads)}"
    )
    return out


def summarise(results: Sequence[Result]) -> list[dict[str, Any]]:
    """Every need's answer, in the order of :data:`NEEDS`."""
    return [answer(need, results) for need in NEEDS]
