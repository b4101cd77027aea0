"""``--plot FILE.png``: throughput bars per workload and latency CDFs (matplotlib, optional)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from swapio.bench.results import Result
from swapio.errors import UsageError


def _pyplot() -> Any:
    try:
        import matplotlib  # noqa: PLC0415 (optional extra, imported on use)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib: pip install 'swapio[plot]' (or pip install matplotlib)"
        ) from None
    return plt


def check_available() -> None:
    """Raise :class:`UsageError` now, before a long run, if matplotlib is missing."""
    _pyplot()


def check_target(path: str) -> None:
    """Raise :class:`UsageError` now, before a long run, if ``path`` cannot be written."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"--plot {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--plot {path}: directory {parent} is not writable")
    if os.path.isdir(path):
        raise UsageError(f"--plot {path}: is a directory")


def plot(results: Sequence[Result], workloads: Sequence[str], path: str) -> None:
    """Draw throughput bars (log scale) and per-call latency CDFs into ``path``."""
    plt = _pyplot()
    present = [w for w in workloads if any(r.workload == w for r in results)]
    targets = list(dict.fromkeys(r.target for r in results))
    cdf_workloads = [w for w in present if any(r.samples for r in results if r.workload == w)]
    ncdf = len(cdf_workloads)
    fig, axes = plt.subplots(1 + ncdf, 1, figsize=(11, 4 + 3.2 * ncdf), squeeze=False)
    bars = axes[0][0]
    width = 0.8 / max(len(targets), 1)
    by = {(r.target, r.workload): r for r in results}
    for i, target in enumerate(targets):
        xs, ys = [], []
        for j, workload in enumerate(present):
            r = by.get((target, workload))
            if r is not None and r.pages_per_s > 0:
                xs.append(j + i * width)
                ys.append(r.pages_per_s)
        bars.bar(xs, ys, width=width, label=target)
    bars.set_xticks([j + 0.4 - width / 2 for j in range(len(present))], present)
    bars.set_yscale("log")
    bars.set_ylabel("pages/s (log)")
    bars.set_title(f"swapio bench: throughput ({results[0].page_size} B pages)" if results else "")
    bars.legend(fontsize="small", ncol=min(len(targets), 5))
    for k, workload in enumerate(cdf_workloads, start=1):
        ax = axes[k][0]
        for r in results:
            if r.workload != workload or not r.samples:
                continue
            xs = sorted(s / 1000 for s in r.samples)
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.plot(xs, ys, label=r.target)
        ax.set_xscale("log")
        ax.set_xlabel("latency per call (us, log)")
        ax.set_ylabel("CDF")
        ax.set_title(f"{workload}: latency CDF")
        ax.legend(fontsize="small", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
