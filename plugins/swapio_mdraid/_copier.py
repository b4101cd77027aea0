"""Moving chunk bytes between legs: bulk twins, targets with a durability barrier, runs.

When the source and a target are both ``file`` areas, a batch of runs is one owner-thread
job of range copies into the target (:class:`~swapio_mdraid._filecopy.FileRanges`, no
``fdatasync`` per run) and the barrier is one ``fdatasync`` of the target.  Otherwise a
``file://`` target leg is opened a second time without ``durable`` (its *bulk twin*):
copies go into the twin (no ``fdatasync`` per chunk; one range copy per run) and a barrier
through the durable area makes them durable.  When chunks are read through this process
(``--verify``) the twins get pages as large as a chunk (one buffer per chunk) and the
source gets one too; range copies need neither.  Adjacent dirty chunks are merged into
runs, each copied as one request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from swapio.area import SwapArea
from swapio_mdraid._filecopy import FileRanges, file_store

#: Largest page size of the bulk twins (the file backend's and swapio's page size limit).
TWIN_PAGE_MAX = 1 << 20


def twin_page_size(area: SwapArea, chunk_size: int) -> int:
    """Page size for a bulk twin of ``area``: one chunk per page where the geometry allows.

    Larger pages mean fewer buffers per request (one ``pwritev`` element per chunk instead
    of one per 4 KiB).  The twin must still cover the leg exactly, so the page size must
    divide the leg's size; otherwise the leg's own page size is kept.
    """
    size = area.pages * area.page_size
    page = min(max(chunk_size, area.page_size), TWIN_PAGE_MAX)
    return page if size % page == 0 else area.page_size


async def _open_twin(area: SwapArea, page_size: int) -> SwapArea | None:
    """A second, non-durable activation of a ``file://`` leg, or None for other backends."""
    loc = area.location
    if loc.scheme != "file" or area.host is None:
        return None
    url = f"file://{quote(loc.path)}?durable=0&page_size={page_size}"
    return await area.host.activate(url)


async def _read_into(area: SwapArea, offset: int, view: memoryview) -> None:
    """Fill ``view`` from byte ``offset`` of ``area`` (both whole pages of ``area``)."""
    size = area.page_size
    await area.swap_in(offset // size, [view[i : i + size] for i in range(0, len(view), size)])


class _Target:
    """A target leg: its durable area, and a non-durable twin for bulk copies if it has one.

    A ``file://`` leg is opened a second time without ``durable`` (and with pages as large
    as a chunk): chunks are copied through the twin (no ``fdatasync`` per chunk) and
    :meth:`barrier` re-writes one copied page through the durable area, whose ``fdatasync``
    flushes every earlier write to the same file.  Bits are cleared only after the barrier,
    so a crash never finds a clear bit over a lost copy.  Other backends have no such twin:
    each copy is durable when it completes.
    """

    def __init__(
        self, area: SwapArea, twin: SwapArea | None, direct: FileRanges | None = None
    ) -> None:
        self.area = area
        self.twin = twin
        #: batched range copies straight into a file leg (no twin; the barrier is an
        #: ``fdatasync``), when the source is a file leg too
        self.direct = direct
        self.last: int | None = None  # a copied slot of the durable area, re-written as barrier
        self.written = 0  # bulk copies completed
        self.flushed = 0  # bulk copies known durable

    @classmethod
    async def open(
        cls, area: SwapArea, batched: bool, page_size: int | None = None, direct: bool = False
    ) -> _Target:
        """``batched``: copies go in bulk, made durable by :meth:`barrier`; ``direct``: by
        :class:`FileRanges` where ``area`` is a file leg (no twin)."""
        if not batched:
            return cls(area, None)
        ranges = FileRanges.of(area) if direct else None
        if ranges is not None:
            return cls(area, None, ranges)
        return cls(area, await _open_twin(area, page_size or area.page_size))

    @property
    def bulk(self) -> SwapArea:
        return self.twin if self.twin is not None else self.area

    def _copied(self, offset: int) -> None:
        if self.twin is not None:
            self.last = offset // self.area.page_size
            self.written += 1

    async def copy_from(self, source: SwapArea, offset: int, length: int) -> None:
        """Copy ``length`` bytes at byte ``offset`` from ``source`` (a leg of the same geometry):
        one range copy (:meth:`SwapArea.copy`) into the bulk area, or the leg's own when the
        page sizes differ."""
        bulk = self.bulk if self.bulk.page_size == source.page_size else self.area
        size = source.page_size
        await source.copy(offset // size, bulk, offset // size, length // size)
        if bulk is self.twin:
            self._copied(offset)

    async def copy_batch(
        self, source: SwapArea, runs: Sequence[_Run]
    ) -> list[BaseException | None]:
        """Copy every run from ``source``; per run None or the exception that stopped it.

        One owner-thread job for the whole batch when both legs are file areas
        (:class:`FileRanges`); else one :meth:`copy_from` per run, all queued at once."""
        if self.direct is not None and file_store(source) is not None:
            results = await self.direct.copy(source, [(r.offset, r.length) for r in runs])
            if any(result is None for result in results):
                self.written += 1  # the next barrier must sync
            return results
        done = await asyncio.gather(
            *(self.copy_from(source, r.offset, r.length) for r in runs), return_exceptions=True
        )
        return [d if isinstance(d, BaseException) else None for d in done]

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` (whole pages of the bulk area) at byte ``offset`` of the leg."""
        await self.bulk.write(offset // self.bulk.page_size, data)
        self._copied(offset)

    async def barrier(self) -> None:
        """Every bulk copy completed before this call is durable when it returns.

        Copies go on concurrently: re-writing any page already copied (with the bytes it
        already holds; nothing else writes an offline leg) is enough, since the
        ``fdatasync`` covers the whole file.
        """
        if self.flushed == self.written:
            return
        upto = self.written
        if self.direct is not None:
            await self.direct.sync()  # one fdatasync covers every copy into the file
        elif self.last is not None:
            slot = self.last
            await self.area.write(slot, await self.area.read(slot))
        else:
            return
        self.flushed = max(self.flushed, upto)

    async def close(self) -> None:
        if self.twin is not None:
            await self.twin.deactivate()


@dataclass(frozen=True)
class _Run:
    """Adjacent dirty chunks ``first .. first + count - 1``, copied as one request."""

    first: int
    count: int
    offset: int  # bytes
    length: int  # bytes

    @property
    def chunks(self) -> range:
        return range(self.first, self.first + self.count)


class _Copier:
    """Moves chunk bytes between legs, whatever their page sizes."""

    def __init__(
        self,
        source: SwapArea,
        targets: Sequence[_Target],
        chunk_size: int,
        bulk_source: SwapArea | None = None,
    ) -> None:
        self.source = source
        self.bulk_source = bulk_source or source
        self.targets = targets
        self.chunk_size = chunk_size
        self.page_size = source.page_size
        self.size = source.pages * source.page_size
        #: Requests are aligned to this: every page size involved divides it.
        self.unit = max(
            self.page_size,
            self.bulk_source.page_size,
            *(t.bulk.page_size for t in targets),
        )

    @classmethod
    async def open(
        cls,
        source: SwapArea,
        targets: Sequence[SwapArea],
        chunk_size: int,
        bulk: bool,
        *,
        reads: bool = False,
    ) -> _Copier:
        """Open the bulk twins (when ``bulk``) of every leg at once; close them on failure.

        ``reads``: chunks will be read through this process (``--verify``), so the twins get
        pages as large as a chunk (one buffer per chunk) and the source gets a twin too.
        Without it every byte moves by range copy, where the page size changes nothing: the
        target twins keep the source's page size (a range copy needs equal ones) and the
        source is copied from as it is — one activation (and owner thread) fewer.
        """

        def page_size(area: SwapArea) -> int:
            return twin_page_size(area, chunk_size) if reads else source.page_size

        async def source_twin() -> SwapArea | None:
            return await _open_twin(source, page_size(source)) if bulk and reads else None

        # range copies only, between file legs: one job per batch and target, no twins
        direct = bulk and not reads and file_store(source) is not None
        opened = await asyncio.gather(
            source_twin(),
            *(
                _Target.open(t, batched=bulk, page_size=page_size(t), direct=direct)
                for t in targets
            ),
            return_exceptions=True,
        )
        twin, legs = opened[0], opened[1:]
        copier = cls(
            source,
            [leg for leg in legs if isinstance(leg, _Target)],
            chunk_size,
            twin if isinstance(twin, SwapArea) else None,
        )
        for failure in opened:
            if isinstance(failure, BaseException):
                await copier.close()
                raise failure
        return copier

    async def close(self) -> None:
        """Release the twins (idempotent); every bulk write before this is in the file."""
        closing = [leg.close() for leg in self.targets]
        if self.bulk_source is not self.source:
            closing.append(self.bulk_source.deactivate())
        for failure in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(failure, BaseException):
                raise failure

    def span(self, chunk: int, unit: int | None = None) -> tuple[int, int]:
        """Byte range covering the chunk, widened to whole ``unit``s (default: leg pages).

        A chunk smaller than a page copies the whole page.
        """
        unit = unit or self.page_size
        first = chunk * self.chunk_size
        end = min(first + self.chunk_size, self.size)
        start = first - first % unit
        return start, min(-(-end // unit) * unit, self.size)

    def chunk_bytes(self, chunk: int) -> int:
        """Bytes a chunk accounts for in the report (whole leg pages)."""
        start, end = self.span(chunk)
        return end - start

    def slots(self, chunk: int) -> range:
        """Slots of the leg covering the chunk."""
        start, end = self.span(chunk)
        return range(start // self.page_size, end // self.page_size)

    def runs(self, chunks: Sequence[int], limit: int) -> list[_Run]:
        """Sorted ``chunks`` as runs of adjacent (or page-sharing) chunks, each <= ``limit``
        bytes unless a single chunk is larger."""
        out: list[_Run] = []
        first = count = start = end = -1
        for chunk in chunks:
            lo, hi = self.span(chunk, self.unit)
            if count > 0 and chunk == first + count and lo <= end and hi - start <= limit:
                count += 1
                end = max(end, hi)
                continue
            if count > 0:
                out.append(_Run(first, count, start, end - start))
            first, count, start, end = chunk, 1, lo, hi
        if count > 0:
            out.append(_Run(first, count, start, end - start))
        return out

    async def read(self, area: SwapArea, chunk: int) -> bytearray:
        """The chunk's bytes in ``area`` (widened to whole ``unit``s)."""
        start, end = self.span(chunk, self.unit)
        out = bytearray(end - start)
        await _read_into(area, start, memoryview(out))
        return out

    async def copy_runs(self, runs: Sequence[_Run]) -> list[BaseException | None]:
        """Copy every run to every target at once (:meth:`_Target.copy_batch`: one job per
        target between file legs, else one range copy per run and target, all queued
        together so each target's owner thread takes them in one wake-up).

        Returns, per run, None when it reached every target or the first exception one of
        its copies raised: the caller keeps the runs that completed (a failure in a large
        batch does not throw away the copies that succeeded) and raises the failure.
        """
        targets = self.targets
        if len(targets) == 1:  # the common case: no task
            target = targets[0]
            try:
                return await target.copy_batch(self._source_for(target), runs)
            except Exception as exc:  # nothing of the batch is known copied
                return [exc] * len(runs)
        per_target = await asyncio.gather(
            *(t.copy_batch(self._source_for(t), runs) for t in targets),
            return_exceptions=True,
        )
        failed: list[BaseException | None] = [None] * len(runs)
        for outcome in per_target:
            results = [outcome] * len(runs) if isinstance(outcome, BaseException) else outcome
            for i, result in enumerate(results):
                if failed[i] is None and result is not None:
                    failed[i] = result
        return failed

    def _source_for(self, target: _Target) -> SwapArea:
        """The source twin when its pages match the target's bulk area, else the leg."""
        if target.bulk.page_size == self.bulk_source.page_size:
            return self.bulk_source
        return self.source

    async def copy(self, chunk: int, data: bytes | bytearray | None = None) -> int:
        """Copy one chunk (``data``: its bytes as :meth:`read` returned them, if read)."""
        if data is None:
            data = await self.read(self.bulk_source, chunk)
        start, _ = self.span(chunk, self.unit)
        await asyncio.gather(*(t.write(start, data) for t in self.targets))
        return self.chunk_bytes(chunk)

    async def barrier(self) -> None:
        await asyncio.gather(*(t.barrier() for t in self.targets))
