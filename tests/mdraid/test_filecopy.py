"""Resync between file legs: a batch of runs is one owner-thread job of range copies into
the target (``_filecopy.FileRanges``), no bulk twin, and the barrier is one ``fdatasync``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from swapio_mdraid import _copier, _filecopy, _pipeline
from swapio_mdraid._locate import activate
from swapio_mdraid._resync import resync
from swapio_mdraid._store import BitmapStore
from swapio_memory.plugin import forget

from swapio.area import CreateRequest
from swapio.errors import BackendIOError
from swapio.plugins import PluginHost
from tests.mdraid.helpers import make_image
from tests.mdraid.test_resync_pipeline import (
    CHUNK,
    SIZE,
    differing,
    make_bitmap,
    make_legs,
    on_disk,
    run_resync,
    scattered,
)


async def test_a_batch_between_file_legs_is_one_job_and_no_twin_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pipeline, "BATCH_BYTES", 16 * CHUNK)
    dirty = scattered(4, 60)
    legs = make_legs(tmp_path, dirty)
    host = PluginHost()
    await make_bitmap(host, tmp_path / "bm", dirty)
    jobs: list[int] = []
    real_copy = _filecopy.FileRanges.copy

    async def counted(ranges: _filecopy.FileRanges, source: Any, spans: Any) -> Any:
        jobs.append(len(spans))
        return await real_copy(ranges, source, spans)

    async def no_twin(*args: object) -> None:
        raise AssertionError("a bulk twin was opened between file legs")

    monkeypatch.setattr(_filecopy.FileRanges, "copy", counted)
    monkeypatch.setattr(_copier, "_open_twin", no_twin)
    report: Any = await run_resync(host, tmp_path / "bm", legs)
    assert report.copied == len(dirty)
    assert differing(legs[0], legs[1]) == []
    assert on_disk(tmp_path / "bm").count_dirty() == 0

    # one job per batch, carrying every run of its batch
    class Leg:
        page_size = 4096
        pages = SIZE // 4096

    runs = _copier._Copier(Leg(), [], CHUNK).runs(dirty, _pipeline.RUN_BYTES)  # type: ignore[arg-type]
    batches = list(_pipeline._batches(runs, 16 * CHUNK))
    assert sorted(jobs) == sorted(len(batch) for batch in batches)
    assert len(jobs) < len(runs) < len(dirty)


async def test_copies_into_a_durable_target_are_synced_once_per_barrier_not_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirty = scattered(5, 50)
    legs = make_legs(tmp_path, dirty)
    host = PluginHost()
    await make_bitmap(host, tmp_path / "bm", dirty)
    target = os.stat(legs[1])
    synced: list[int] = []
    real_sync = os.fdatasync

    def watched(fd: int) -> None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            synced.append(fd)
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", watched)
    report: Any = await run_resync(host, tmp_path / "bm", legs)
    assert report.copied == len(dirty)
    assert len(synced) == 1  # a short resync: the final checkpoint's barrier only
    assert differing(legs[0], legs[1]) == []


def test_a_failed_range_fails_it_and_the_rest_of_its_job_not_the_ranges_before(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "src", tmp_path / "dst"
    source.write_bytes(b"\x5a" * 3 * CHUNK)  # shorter than the last range: a short copy
    make_image(target, 6 * CHUNK)

    class Store:
        def __init__(self, path: Path) -> None:
            self.path = str(path)
            self.fd = os.open(path, os.O_RDWR)

    src, dst = Store(source), Store(target)
    try:
        spans = [(0, CHUNK), (2 * CHUNK, CHUNK), (4 * CHUNK, CHUNK), (5 * CHUNK, CHUNK)]
        results = _filecopy._copy_spans(src, dst, spans)
    finally:
        os.close(src.fd)
        os.close(dst.fd)
    assert results[:2] == [None, None]
    assert isinstance(results[2], BackendIOError)
    assert str(results[2]).endswith("short copy at byte 65536; file truncated?")
    assert results[3] is results[2]  # not tried
    data = target.read_bytes()
    assert data[:CHUNK] == data[2 * CHUNK : 3 * CHUNK] == b"\x5a" * CHUNK
    assert data[5 * CHUNK :] == bytes(CHUNK)


async def test_a_source_that_is_not_a_file_area_copies_through_the_twin(
    tmp_path: Path,
) -> None:
    """A memory source: no file descriptor to range-copy from, so the generic path (one
    SwapArea.copy per run into the target's bulk twin) does the work."""
    dirty = scattered(6, 30)
    legs = make_legs(tmp_path, dirty)
    host = PluginHost()
    await make_bitmap(host, tmp_path / "bm", dirty)
    source = await host.activate("memory://mdraid-filecopy", create=CreateRequest(SIZE // 4096))
    await source.write(0, legs[0].read_bytes())
    store = await BitmapStore.open(host, str(tmp_path / "bm"))
    target = await activate(host, str(legs[1]))
    try:
        copier = await _copier._Copier.open(source, [target], CHUNK, bulk=True)
        assert copier.targets[0].direct is None
        assert copier.targets[0].twin is not None
        await copier.close()
        report = await resync(store, source, [target])
    finally:
        for area in (source, target):
            await area.deactivate()
        await store.close()
        forget("mdraid-filecopy")
    assert report.copied == len(dirty)
    assert differing(legs[0], legs[1]) == []
