"""Human output of ``swapio bench``: tables, peer ratios, the summary, the progress bar."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from swapio.bench.results import Kind, Result, Skipped

_MIB = 1 << 20


def _us(ns: int) -> str:
    if ns >= 10_000_000:
        return f"{ns / 1e6:.0f}ms"
    if ns >= 1_000_000:
        return f"{ns / 1e6:.1f}ms"
    return f"{ns / 1e3:.0f}us"


def _seconds(s: float) -> str:
    return f"{s:.3f}" if s < 10 else f"{s:.1f}"


def _bytes(n: int) -> str:
    if n >= _MIB:
        return f"{n / _MIB:,.1f} MiB"
    return f"{n / 1024:,.0f} KiB"


def _spread(r: Result) -> str:
    spread = r.extra.get("spread_pct")
    return "-" if spread is None or r.extra.get("repeat", 1) < 2 else f"{spread:.0f}%"


def _grid(lines: list[tuple[str, ...]], left: int) -> list[str]:
    """Align columns: the first ``left`` columns flush left, the rest right."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    previous = None
    for index, line in enumerate(lines):
        if index > 1 and line[0] != previous:
            out.append("")
        previous = line[0]
        cells = [
            cell.ljust(width) if col < left else cell.rjust(width)
            for col, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def table(results: Sequence[Result], workload_order: Sequence[str]) -> str:
    """Throughput workloads: one row per result, by workload in run order, fastest first."""
    order = {name: i for i, name in enumerate(workload_order)}
    rows = sorted(
        (r for r in results if r.workload in order),
        key=lambda r: (order[r.workload], -r.pages_per_s),
    )
    header = (
        "workload", "target", "durability", "kind", "pages", "seconds", "pages/s", "spread",
        "MiB/s", "p50", "p99", "max",
    )  # fmt: skip
    lines: list[tuple[str, ...]] = [header]
    for r in rows:
        lat = r.latency
        timed = lat.max > 0  # peers measured elsewhere may report no per-call latency
        lines.append(
            (
                r.workload,
                r.target,
                r.durability,
                r.kind.value,
                str(r.pages),
                _seconds(r.seconds),
                f"{r.pages_per_s:,.0f}",
                _spread(r),
                f"{r.bw_bytes / _MIB:,.1f}",
                _us(lat.p50) if timed else "-",
                _us(lat.p99) if timed else "-",
                _us(lat.max) if timed else "-",
            )
        )
    return "\n".join(_grid(lines, 4)) if rows else ""


def timed_table(results: Sequence[Result], workloads: Sequence[str]) -> str:
    """Workloads ranked by time (a resync): seconds and bytes copied, quickest first."""
    order = {name: i for i, name in enumerate(workloads)}
    rows = sorted(
        (r for r in results if r.workload in order), key=lambda r: (order[r.workload], r.seconds)
    )
    if not rows:
        return ""
    header = ("workload", "target", "durability", "kind", "seconds", "spread", "bytes copied")
    lines: list[tuple[str, ...]] = [header]
    for r in rows:
        copied = r.extra.get("bytes_copied", r.pages * r.page_size)
        lines.append(
            (
                r.workload, r.target, r.durability, r.kind.value, _seconds(r.seconds),
                _spread(r), _bytes(int(copied)),
            )
        )  # fmt: skip
    return "\n".join(_grid(lines, 4))


def peer_lines(results: Sequence[Result], peer_of: Mapping[str, str]) -> str:
    """For each peer, the backend it is compared with, as a ratio per shared workload."""
    by = {(r.target, r.workload): r for r in results}
    lines = []
    for r in results:
        backend = peer_of.get(r.target)
        if r.kind is not Kind.PEER or backend is None:
            continue
        mine = by.get((backend, r.workload))
        if mine is None or r.pages_per_s <= 0:
            continue
        lines.append(
            f"{backend} {r.workload}: {mine.pages_per_s / r.pages_per_s:.2f}x {r.target} "
            f"({mine.pages_per_s:,.0f} vs {r.pages_per_s:,.0f} pages/s)"
        )
    return "\n".join(lines)


def pressure_lines(results: Sequence[Result]) -> str:
    """Whether each backend survived the deadlock workload, and how deep it dipped."""
    lines = []
    for r in results:
        if r.workload != "pressure":
            continue
        done = "completed" if r.extra.get("completed") else "STALLED"
        line = (
            f"pressure {r.target}: {done}; reserve {r.extra.get('reserve_pages')} pages, "
            f"peak used {r.extra.get('peak_reserve_used_pages')}, "
            f"dips {r.extra.get('reserve_dips')}"
        )
        if "without_reserve_stalled" in r.extra:
            stalled = r.extra["without_reserve_stalled"]
            line += "; without the reserve: " + (
                "stall detected" if stalled else "no stall (unexpected)"
            )
        if "without_reserve_error" in r.extra:
            line += f"; the run without the reserve failed: {r.extra['without_reserve_error']}"
        lines.append(line)
    return "\n".join(lines)


def _figure(item: Mapping[str, Any], unit: str) -> str:
    value = float(item["value"])
    if unit == "ns":
        text = _us(int(value))
    elif unit == "pages/s":
        text = f"{value:,.0f} pages/s"
    else:
        text = f"{value:.2f}x"
    return f"{item['target']} {text}"


def summary_lines(summary: Sequence[Mapping[str, Any]]) -> str:
    """``need: winner figure (workload); runner-up figure`` for each need."""
    width = max((len(s["title"]) for s in summary), default=0)
    lines = ["which backend for what (backends only; peers are yardsticks):"]
    for s in summary:
        title = f"  {s['title']:<{width}}  "
        if s["winner"] is None:
            lines.append(f"{title}- ({s['reason']})")
            continue
        unit = s["unit"]
        line = f"{title}{_figure(s['winner'], unit)} ({s['workload']})"
        runner = s["runner_up"]
        line += f"; runner-up {_figure(runner, unit)}" if runner else "; no runner-up"
        lines.append(line)
    return "\n".join(lines)


def skipped_lines(skipped: Sequence[Skipped], verb: str = "skipped") -> str:
    """One line per target and reason, listing its workloads."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for s in skipped:
        grouped.setdefault((s.target, s.reason), []).append(s.workload)
    return "\n".join(
        f"{verb} {target} ({', '.join(workloads)}): {reason}"
        for (target, reason), workloads in grouped.items()
    )


class ProgressBar:
    """A one-line progress bar redrawn in place on a terminal (stderr)."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self._shown = False

    def __call__(self, done: int, total: int, label: str) -> None:
        filled = self.width * (done - 1) // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r\x1b[K[{bar}] {done}/{total} {label}")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
