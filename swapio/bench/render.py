"""Human output of ``swapio bench``: the results table and the stderr progress bar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from swapio.bench.results import Result, Skipped

_MIB = 1 << 20


def _us(ns: int) -> str:
    if ns >= 10_000_000:
        return f"{ns / 1e6:.0f}ms"
    if ns >= 1_000_000:
        return f"{ns / 1e6:.1f}ms"
    return f"{ns / 1e3:.0f}us"


def table(results: Sequence[Result], workload_order: Sequence[str]) -> str:
    """One row per result, grouped by workload in run order, fastest first."""
    order = {name: i for i, name in enumerate(workload_order)}
    rows = sorted(results, key=lambda r: (order.get(r.workload, len(order)), -r.pages_per_s))
    header = ("workload", "target", "kind", "pages", "pages/s", "MiB/s", "p50", "p99", "max")
    lines: list[tuple[str, ...]] = [header]
    for r in rows:
        lat = r.latency
        timed = lat.max > 0  # peers measured elsewhere may report no per-call latency
        lines.append(
            (
                r.workload,
                r.target,
                r.kind.value,
                str(r.pages),
                f"{r.pages_per_s:,.0f}",
                f"{r.bw_bytes / _MIB:,.1f}",
                _us(lat.p50) if timed else "-",
                _us(lat.p99) if timed else "-",
                _us(lat.max) if timed else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    previous = None
    for index, line in enumerate(lines):
        if index > 1 and line[0] != previous:
            out.append("")
        previous = line[0]
        cells = [
            cell.ljust(width) if col < 3 else cell.rjust(width)
            for col, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def skipped_lines(skipped: Sequence[Skipped]) -> str:
    """One line per skipped (target, workload) group, sharing reasons."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for s in skipped:
        grouped.setdefault((s.target, s.reason), []).append(s.workload)
    return "\n".join(
        f"skipped {target} ({', '.join(workloads)}): {reason}"
        for (target, reason), workloads in grouped.items()
    )


def ratio_lines(results: Sequence[Result]) -> str:
    """The comparisons the issue asks for, when both sides were measured."""
    by = {(r.target, r.workload): r for r in results}
    lines = []
    http, file = by.get(("http", "seq-out")), by.get(("file", "seq-out"))
    if http and file and file.pages_per_s:
        lines.append(
            f"http/file seq-out throughput ratio: {http.pages_per_s / file.pages_per_s:.2f}"
        )
    nfs, nfs_cp = by.get(("nfs", "seq-out")), by.get(("nfs-cp", "seq-out"))
    if nfs and nfs_cp and nfs_cp.pages_per_s:
        lines.append(
            f"nfs/nfs-cp seq-out throughput ratio: {nfs.pages_per_s / nfs_cp.pages_per_s:.2f}"
        )
    nfs_in, py_in = by.get(("nfs", "rand-in")), by.get(("pynfsclient", "rand-in"))
    if nfs_in and py_in and py_in.pages_per_s:
        lines.append(
            f"nfs rand-in QD{nfs_in.extra.get('qd')} / pyNfsClient one at a time: "
            f"{nfs_in.pages_per_s / py_in.pages_per_s:.2f}x"
        )
    for r in results:
        if r.workload == "rand-in" and r.target == "http":
            lat = r.latency
            qd = r.extra.get("qd")
            lines.append(f"http rand-in QD{qd}: p50 {_us(lat.p50)}, p99 {_us(lat.p99)}")
    for r in results:
        if r.workload == "pressure":
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
            lines.append(line)
    return "\n".join(lines)


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
