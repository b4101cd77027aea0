"""``--plot FILE.png``: one figure, a row of panels per workload (matplotlib, optional).

Each throughput workload gets a bar panel (median pages/s, log scale, whiskers from the
slowest to the fastest repeat) and, when per-call latencies were recorded, a latency CDF
panel beside it.  Workloads ranked by time (the resync) get a bar panel of seconds with the
spread and the bytes copied.  Every target keeps one colour and hatch across all panels;
its durability class is in the legend and on each bar's label.  The panel titles are also
stored in the PNG's ``swapio:panels`` text chunk so a reader (or a test) can list them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from swapio.bench.results import Result
from swapio.errors import UsageError

PANELS_KEY = "swapio:panels"
_HATCHES = ("", "//", "\\\\", "xx", "..", "++", "oo", "--", "**", "||")
_DURABILITY_MARK = {"volatile": "V", "page cache": "P", "durable": "D", "remote": "R"}


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


def styles(targets: Sequence[str]) -> dict[str, tuple[Any, str]]:
    """A distinct (colour, hatch) per target.

    tab20's colours come in light/dark pairs, so neighbours also differ in hatch; after 20
    targets the colours repeat with the hatches shifted, so no pair repeats for 200 targets.
    """
    plt = _pyplot()
    palette = plt.get_cmap("tab20").colors
    n = len(palette)
    return {
        name: (palette[i % n], _HATCHES[(i + i // n) % len(_HATCHES)])
        for i, name in enumerate(targets)
    }


def _label(r: Result) -> str:
    return f"{r.target} [{_DURABILITY_MARK.get(r.durability, '?')}]"


def _runs(r: Result, by_seconds: bool) -> list[float]:
    key = "runs_seconds" if by_seconds else "runs_pages_per_s"
    values = r.extra.get(key) or [r.seconds if by_seconds else r.pages_per_s]
    return [float(v) for v in values]


def _bars(ax: Any, rows: Sequence[Result], style: dict[str, tuple[Any, str]], timed: bool) -> None:
    values = [r.seconds if timed else r.pages_per_s for r in rows]
    lows = [v - min(_runs(r, timed)) for v, r in zip(values, rows, strict=True)]
    highs = [max(_runs(r, timed)) - v for v, r in zip(values, rows, strict=True)]
    ys = list(range(len(rows)))
    for y, r, value, low, high in zip(ys, rows, values, lows, highs, strict=True):
        colour, hatch = style[r.target]
        ax.barh(
            y,
            value,
            xerr=[[max(low, 0.0)], [max(high, 0.0)]],
            color=colour,
            hatch=hatch,
            edgecolor="black",
            linewidth=0.5,
            capsize=3,
        )
    ax.set_yticks(ys, [_label(r) for r in rows], fontsize="small")
    ax.invert_yaxis()
    ax.set_xscale("log")


def plot(
    results: Sequence[Result], workloads: Sequence[str], path: str, timed: Sequence[str] = ()
) -> list[str]:
    """Draw the figure into ``path``; return the panel titles, top to bottom."""
    plt = _pyplot()
    present = [w for w in workloads if any(r.workload == w for r in results)]
    targets = list(dict.fromkeys(r.target for r in results))
    style = styles(targets)
    rows = max(len(present), 1)
    fig, axes = plt.subplots(rows, 2, figsize=(15, 2.2 + 2.6 * rows), squeeze=False)
    titles: list[str] = []
    for row, workload in enumerate(present):
        is_timed = workload in timed
        mine = [r for r in results if r.workload == workload]
        mine.sort(key=lambda r: r.seconds if is_timed else -r.pages_per_s)
        bars, cdf = axes[row]
        _bars(bars, mine, style, is_timed)
        if is_timed:
            title = f"{workload}: seconds (less is better), whiskers = spread of repeats"
            bars.set_xlabel("seconds (log)")
        else:
            title = f"{workload}: pages/s (median), whiskers = spread of repeats"
            bars.set_xlabel("pages/s (log)")
        bars.set_title(title, fontsize="medium")
        titles.append(title)
        sampled = [r for r in mine if r.samples]
        if not sampled:
            cdf.set_axis_off()
            continue
        for r in sampled:
            colour, hatch = style[r.target]
            xs = sorted(s / 1000 for s in r.samples)
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            line = "-" if hatch in ("", "..", "oo", "**") else "--"
            cdf.plot(xs, ys, color=colour, linestyle=line, label=_label(r))
        cdf.set_xscale("log")
        cdf.set_xlabel("latency per call (us, log)")
        cdf.set_ylabel("CDF")
        cdf_title = f"{workload}: latency CDF"
        cdf.set_title(cdf_title, fontsize="medium")
        titles.append(cdf_title)
    handles = [
        plt.Rectangle((0, 0), 1, 1, facecolor=style[t][0], hatch=style[t][1], edgecolor="black")
        for t in targets
    ]
    durability = {r.target: r.durability for r in results}
    labels = [f"{t} ({durability.get(t) or '?'})" for t in targets]
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=min(len(targets), 6),
        fontsize="small",
        title="target (durability: V volatile, P page cache, D durable, R remote)",
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 1.2 / (2.2 + 2.6 * rows)))
    fig.savefig(path, dpi=80, metadata={PANELS_KEY: "\n".join(titles)})
    plt.close(fig)
    return titles
