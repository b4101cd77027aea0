"""Offline resync: copy every chunk whose bit is set from a source leg to target legs.

As md's resync after a crash (``md_bitmap_start_sync`` / ``md_bitmap_end_sync``), only
chunks whose bit is set are copied.  A bit is cleared only after the chunk's copy reached
every (durable) target, and cleared bits are written back at checkpoints, so an interrupted
resync resumes where it stopped.  On success ``events`` is bumped and ``events_cleared``
follows it (``md_bitmap_endwrite`` on a non-degraded array).  ``verify`` compares every
chunk of every target with the source — md's ``check``/``repair`` — and repairs differences
unless ``dry_run``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from swapio.area import SwapArea
from swapio_mdraid._copier import _Copier
from swapio_mdraid._format import SECTOR_SIZE
from swapio_mdraid._pipeline import Progress, _DirtyCopy, complete
from swapio_mdraid._store import BitmapStore, check_durable
from swapio_mdraid.errors import ResyncError

__all__ = ["Progress", "ResyncReport", "check_legs", "resync"]


@dataclass
class ResyncReport:
    """What a resync did (the ``--json`` summary; keys in docs/bitmap-and-mirror.md)."""

    chunks: int
    chunk_size: int
    dirty_before: int
    copied: int = 0
    bytes_copied: int = 0
    verified: int = 0
    mismatched: list[int] = field(default_factory=list)
    mismatched_outside_bitmap: list[int] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0
    events: int = 0
    events_cleared: int = 0
    dirty_after: int = 0
    would_copy: list[int] = field(default_factory=list)
    interrupted: bool = False


def check_legs(
    store: BitmapStore,
    source: SwapArea,
    targets: Sequence[SwapArea],
    names: Sequence[str] | None = None,
) -> int:
    """Refuse mismatched input before anything is written; return the leg size in bytes.

    ``names``: the source and targets as the user typed them (messages use those, not the
    URLs a path was turned into)."""
    typed = dict(zip((id(a) for a in (source, *targets)), names or (), strict=False))

    def name(area: SwapArea) -> str:
        return typed.get(id(area), str(area.location))

    if not targets:
        raise ResyncError("resync needs at least one --target leg")
    urls = [source.location.url, *(t.location.url for t in targets)]
    if len(set(urls)) != len(urls):
        raise ResyncError("a target leg is the source leg or is named twice")
    size = source.pages * source.page_size
    for target in targets:
        other = target.pages * target.page_size
        if other != size:
            raise ResyncError(
                f"legs differ in size: source {name(source)} has {size} bytes, "
                f"target {name(target)} has {other}"
            )
        if target.page_size != source.page_size:
            raise ResyncError(
                f"legs differ in page size: source {name(source)} has "
                f"{source.page_size}-byte pages, target {name(target)} {target.page_size}"
            )
    sync = store.bitmap.superblock.sync_size * SECTOR_SIZE
    if sync != size:
        raise ResyncError(
            f"bitmap sync size {sync} bytes ({sync // SECTOR_SIZE} sectors) does not match "
            f"the legs ({size} bytes)"
        )
    return size


async def resync(
    store: BitmapStore,
    source: SwapArea,
    targets: Sequence[SwapArea],
    *,
    dry_run: bool = False,
    verify: bool = False,
    max_speed: int | None = None,
    progress: Progress | None = None,
    started: Callable[[ResyncReport], None] | None = None,
    names: Sequence[str] | None = None,
) -> ResyncReport:
    """Copy dirty chunks source → targets and clear their bits; see the module docstring.

    ``started`` receives the report as soon as it exists: it is filled in as the resync
    goes, so a caller interrupted meanwhile can still say what was done.
    """
    check_legs(store, source, targets, names)
    if not dry_run:
        for index, target in enumerate(targets, 1):
            check_durable(target, "target leg", names[index] if names else None)
    bitmap = store.bitmap
    sb = bitmap.superblock
    dirty = list(bitmap.dirty_chunks())
    report = ResyncReport(
        chunks=bitmap.chunks, chunk_size=sb.chunksize, dirty_before=len(dirty), dry_run=dry_run
    )
    begin = time.monotonic()
    if started is not None:
        started(report)
    copier: _Copier | None = None
    try:
        copier = await _Copier.open(source, targets, sb.chunksize, bulk=not dry_run, reads=verify)
        if verify:
            await _verify(store, copier, report, dirty, dry_run, progress)
        elif dry_run:
            report.would_copy = dirty
        else:
            await _DirtyCopy(store, copier, report, max_speed, progress).run(dirty)
    finally:
        if copier is not None:
            await copier.close()
        report.events = bitmap.superblock.events
        report.events_cleared = bitmap.superblock.events_cleared
        report.dirty_after = bitmap.count_dirty()
        report.seconds = time.monotonic() - begin
    return report


async def _verify(
    store: BitmapStore,
    copier: _Copier,
    report: ResyncReport,
    dirty: list[int],
    dry_run: bool,
    progress: Progress | None,
) -> None:
    """md's ``check`` / ``repair``: compare every chunk's own bytes on every target.

    Chunks smaller than a page share a read span; the span is read once from every leg,
    each chunk is judged by its own bytes in it, and a repair copies the span once, after
    all of its chunks were judged — so a difference is charged to the chunk holding it.
    """
    bitmap = store.bitmap
    dirty_set = set(dirty)
    size = copier.chunk_size
    chunk = 0
    while chunk < bitmap.chunks:
        start, end = copier.span(chunk, copier.unit)
        group = range(chunk, min(-(-end // size), bitmap.chunks))
        data = await copier.read(copier.source, chunk)
        others = [await copier.read(target.bulk, chunk) for target in copier.targets]
        differing = []
        for c in group:
            lo = c * size - start
            hi = min(lo + size, end - start)
            if any(other[lo:hi] != data[lo:hi] for other in others):
                differing.append(c)
        report.verified += len(group)
        report.mismatched += differing
        report.mismatched_outside_bitmap += [c for c in differing if c not in dirty_set]
        if differing and not dry_run:
            await copier.copy(chunk, data)
            report.bytes_copied += len(differing) * min(size, end - start)
            report.copied += len(differing)
        if progress is not None:
            progress(group.stop, bitmap.chunks)
        chunk = group.stop
    if dry_run:
        report.would_copy = list(report.mismatched)
    if not dry_run:
        await copier.barrier()
        for chunk in dirty:
            bitmap.clear(chunk)
        if dirty or report.mismatched:
            complete(bitmap)
        await store.write_pages(range(bitmap.image_pages(store.page_size)))
