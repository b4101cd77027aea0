"""Benchmark results: one record per (target, workload), latency percentiles, the JSON document.

Field names carry their unit as fio's do (``lat_ns``, ``bw_bytes`` in bytes per second).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

SCHEMA_VERSION: Final = 1


class Kind(enum.StrEnum):
    """A swapio backend, a peer tool it is compared with, or the scheduler's model backend."""

    BACKEND = "backend"
    PEER = "peer"
    MODEL = "model"


@dataclass(frozen=True)
class Latency:
    """Latency percentiles of the measured calls, in nanoseconds (nearest-rank)."""

    p50: int
    p99: int
    max: int

    @classmethod
    def of(cls, samples: Sequence[int]) -> Latency:
        if not samples:
            return cls(0, 0, 0)
        ordered = sorted(samples)
        return cls(p50=percentile(ordered, 50), p99=percentile(ordered, 99), max=ordered[-1])

    def to_json(self) -> dict[str, int]:
        return {"p50": self.p50, "p99": self.p99, "max": self.max}


def percentile(ordered: Sequence[int], pct: float) -> int:
    """Nearest-rank percentile of an ascending sequence (pct in (0, 100])."""
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Result:
    """One measured (target, workload) pair.

    ``pages`` is the number of pages moved (or accessed, for pager workloads) in ``seconds``
    of wall time; ``samples`` are per-call latencies in ns (kept for the plot, not in JSON).
    """

    target: str
    kind: Kind
    workload: str
    page_size: int
    pages: int
    seconds: float
    samples: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    #: Percentiles measured elsewhere (a peer's own benchmark) when there are no samples.
    reported: Latency | None = None
    #: The target's durability class (``volatile``, ``page cache``, ``durable``, ``remote``).
    durability: str = ""

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else 0.0

    @property
    def bw_bytes(self) -> float:
        return self.pages_per_s * self.page_size

    @property
    def latency(self) -> Latency:
        if not self.samples and self.reported is not None:
            return self.reported
        return Latency.of(self.samples)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "target": self.target,
            "kind": self.kind.value,
            "workload": self.workload,
            "page_size": self.page_size,
            "pages": self.pages,
            "seconds": round(self.seconds, 6),
            "pages_per_s": round(self.pages_per_s, 1),
            "bw_bytes": round(self.bw_bytes),
            "lat_ns": self.latency.to_json(),
            "durability": self.durability,
        }
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        return doc


@dataclass(frozen=True)
class Skipped:
    """A (target, workload) pair that was not measured, and why."""

    target: str
    workload: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"target": self.target, "workload": self.workload, "reason": self.reason}


def document(
    results: Sequence[Result],
    skipped: Sequence[Skipped],
    meta: dict[str, Any],
    summary: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The ``--json`` document: ``schema_version``, run metadata, ``results``, ``skipped``,
    ``summary`` (see ``swapio/bench/schema.json``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        **meta,
        "results": [r.to_json() for r in results],
        "skipped": [s.to_json() for s in skipped],
        "summary": list(summary),
    }


def schema() -> dict[str, Any]:
    """The JSON schema of the ``--json`` document (``swapio/bench/schema.json``, shipped)."""
    import json  # noqa: PLC0415
    from importlib.resources import files  # noqa: PLC0415

    loaded: dict[str, Any] = json.loads(files("swapio.bench").joinpath("schema.json").read_text())
    return loaded
