"""``swapio flash inspect``'s report of a mounted log: per-block space, wear, files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swapio_flashlog._blocks import BlockReport, BlockState, LogReport

if TYPE_CHECKING:
    from swapio_flashlog.log import FlashLog

ROOT_INO = 1


def build_report(log: FlashLog) -> LogReport:
    """Space per erase block (live / dirty / free bytes), erase counts, file sizes."""
    log.build_index()
    counts = log.device.erase_counts()
    rows = []
    for b in log.blocks:
        free = log.eb - b.pos if b.state in (BlockState.FREE, BlockState.OPEN) else 0
        if b.state is BlockState.ERASE:
            free = log.eb
        rows.append(
            BlockReport(
                b.index,
                b.state.value,
                counts[b.index],
                len(b.nodes),
                sum(1 for r in b.nodes if r.refs > 0),
                b.live,
                0 if b.state is BlockState.BAD else log.eb - b.live - free,
                free,
                b.summarized,
            )
        )
    good = [counts[b.index] for b in log.blocks if b.state is not BlockState.BAD] or [0]
    parent: dict[int, tuple[int, bytes]] = {}
    for (pino, name), ref in log.dirents.by_name.items():
        if ref.dirent is not None and ref.dirent.ino:
            parent[ref.dirent.ino] = (pino, name)
    files = {}
    for ino, (first_parent, name) in parent.items():
        if ino not in log.files:
            continue
        parts = [name]
        pino = first_parent
        while pino != ROOT_INO and pino in parent and len(parts) < 64:
            pino, up = parent[pino]
            parts.append(up)
        files["/".join(p.decode(errors="replace") for p in reversed(parts))] = log.files[ino].isize
    return LogReport(
        log.geometry,
        log.cleanmarkers,
        tuple(rows),
        min(good),
        sum(good) / len(good),
        max(good),
        log.device.programmed_bytes,
        log.device.host_bytes,
        files,
    )
