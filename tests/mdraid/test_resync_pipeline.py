"""The pipelined resync engine: runs, batches, background checkpoints and their invariant.

Many chunk copies are in flight and checkpoints run while copies go on, so these tests
check, at every bitmap write, that each bit cleared on disk covers a copy that a completed
barrier made durable — and that a failure or an interruption anywhere keeps that true and
lets a second resync finish the job.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from swapio_mdraid import Bitmap, _copier, _pipeline
from swapio_mdraid._locate import activate
from swapio_mdraid._resync import resync
from swapio_mdraid._store import BitmapStore

from swapio.errors import BackendIOError
from swapio.plugins import PluginHost
from tests.mdraid.helpers import make_image

CHUNK = 16384
CHUNKS = 512
SIZE = CHUNK * CHUNKS


def scattered(seed: int, count: int) -> list[int]:
    """Dirty chunks with isolated ones and adjacent runs (merged into one request)."""
    rng = random.Random(seed)
    chunks = set(rng.sample(range(CHUNKS), count))
    start = rng.randrange(CHUNKS - 40)
    chunks.update(range(start, start + 40))  # a run longer than one request
    return sorted(chunks)


def make_legs(tmp_path: Path, dirty: Iterable[int], targets: int = 1) -> list[Path]:
    """A source with random bytes in every dirty chunk; targets of zeros."""
    source = tmp_path / "src.img"
    make_image(source, SIZE)
    rng = random.Random(7)
    with open(source, "r+b") as fh:
        for chunk in dirty:
            fh.seek(chunk * CHUNK)
            fh.write(rng.randbytes(CHUNK))
    legs = [source]
    for i in range(targets):
        legs.append(tmp_path / f"t{i}.img")
        make_image(legs[-1], SIZE)
    return legs


async def make_bitmap(host: PluginHost, path: Path, dirty: Iterable[int]) -> None:
    bitmap = Bitmap.create(sync_size_bytes=SIZE, chunk_size=CHUNK, all_dirty=False)
    for chunk in dirty:
        bitmap.set(chunk)
    await (await BitmapStore.create(host, str(path), bitmap)).close()


def differing(a: Path, b: Path) -> list[int]:
    da, db = a.read_bytes(), b.read_bytes()
    return [
        c
        for c in range(CHUNKS)
        if da[c * CHUNK : (c + 1) * CHUNK] != db[c * CHUNK : (c + 1) * CHUNK]
    ]


def on_disk(path: Path) -> Bitmap:
    return Bitmap.decode(path.read_bytes())


async def run_resync(host: PluginHost, bitmap: Path, legs: list[Path], **kw: object) -> object:
    store = await BitmapStore.open(host, str(bitmap))
    areas = [await activate(host, str(leg)) for leg in legs]
    try:
        return await resync(store, areas[0], areas[1:], **kw)  # type: ignore[arg-type]
    finally:
        for area in areas:
            await area.deactivate()
        await store.close()


class Ledger:
    """Watches the engine: which chunk copies completed, which a barrier made durable.

    A barrier makes durable every bulk write to *its* target that completed before the
    barrier started.  At every bitmap write, each chunk whose bit is clear in memory must
    be durable on every target — the engine's invariant, checked while copies overlap.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, dirty: list[int]) -> None:
        self.dirty = dirty
        self.seq = 0
        self.written: dict[tuple[int, int], int] = {}  # (target, chunk) -> completion seq
        self.durable: dict[int, int] = {}  # target -> seq made durable
        self.checks = 0
        self.barriers = 0
        self.max_inflight = 0
        self.inflight = 0
        real_copy = _copier._Target.copy_batch
        real_barrier = _copier._Target.barrier
        real_pages = BitmapStore.write_pages
        ledger = self

        async def copy(
            target: _copier._Target, source: object, runs: list[_copier._Run]
        ) -> list[BaseException | None]:
            ledger.inflight += 1
            ledger.max_inflight = max(ledger.max_inflight, ledger.inflight)
            try:
                results = await real_copy(target, source, runs)  # type: ignore[arg-type]
            finally:
                ledger.inflight -= 1
            for run, result in zip(runs, results, strict=True):
                if result is not None:
                    continue
                ledger.seq += 1
                first = run.offset // CHUNK
                for chunk in range(first, first + max(1, run.length // CHUNK)):
                    ledger.written[(id(target), chunk)] = ledger.seq
            return results

        async def barrier(target: _copier._Target) -> None:
            start = ledger.seq
            await real_barrier(target)
            ledger.barriers += 1
            ledger.durable[id(target)] = max(ledger.durable.get(id(target), 0), start)

        async def write_pages(store: BitmapStore, pages: Iterable[int]) -> None:
            ledger.check(store.bitmap)
            await real_pages(store, pages)

        self.targets: set[int] = set()
        real_open = _copier._Target.open.__func__  # type: ignore[attr-defined]

        async def open_target(
            cls: type, area: object, batched: bool, page_size: int, direct: bool = False
        ) -> object:
            target = await real_open(cls, area, batched, page_size, direct)
            ledger.targets.add(id(target))
            return target

        monkeypatch.setattr(_copier._Target, "copy_batch", copy)
        monkeypatch.setattr(_copier._Target, "barrier", barrier)
        monkeypatch.setattr(_copier._Target, "open", classmethod(open_target))
        monkeypatch.setattr(BitmapStore, "write_pages", write_pages)

    def check(self, bitmap: Bitmap) -> None:
        self.checks += 1
        for chunk in self.dirty:
            if bitmap.test(chunk):
                continue
            for target in self.targets:
                done = self.written.get((target, chunk))
                assert done is not None, f"chunk {chunk}: bit cleared, never copied"
                assert done <= self.durable.get(target, 0), (
                    f"chunk {chunk}: bit cleared before a barrier covered its copy"
                )


def test_runs_merge_adjacent_chunks_within_the_limit() -> None:
    class Area:
        page_size = 4096
        pages = SIZE // 4096

    copier = _copier._Copier(Area(), [], CHUNK)  # type: ignore[arg-type]
    runs = copier.runs([1, 2, 3, 7, 8, 20], limit=2 * CHUNK)
    assert [(r.first, r.count, r.offset, r.length) for r in runs] == [
        (1, 2, CHUNK, 2 * CHUNK),
        (3, 1, 3 * CHUNK, CHUNK),
        (7, 2, 7 * CHUNK, 2 * CHUNK),
        (20, 1, 20 * CHUNK, CHUNK),
    ]
    assert sum(len(r.chunks) for r in runs) == 6


def test_runs_of_chunks_smaller_than_a_page_copy_each_page_once() -> None:
    class Area:
        page_size = 4096
        pages = 16

    copier = _copier._Copier(Area(), [], 512)  # type: ignore[arg-type]
    runs = copier.runs([0, 3, 7, 8, 30], limit=1 << 20)
    # chunks 0..7 share page 0, chunk 8 is page 1 (adjacent to 7), chunk 30 is page 3
    assert [(r.offset, r.length, list(r.chunks)) for r in runs] == [
        (0, 4096, [0]),
        (0, 4096, [3]),
        (0, 8192, [7, 8]),
        (12288, 4096, [30]),
    ]
    assert copier.chunk_bytes(7) == 4096


def test_batches_hold_at_most_the_limit_and_at_least_one_run() -> None:
    runs = [_copier._Run(i, 1, i * 10, 10) for i in range(5)] + [_copier._Run(9, 9, 90, 90)]
    batches = list(_pipeline._batches(runs, 25))
    assert [[r.first for r in b] for b in batches] == [[0, 1], [2, 3], [4], [9]]


@pytest.mark.parametrize("targets", [1, 2])
async def test_every_cleared_bit_covers_a_durable_copy_while_copies_overlap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, targets: int
) -> None:
    monkeypatch.setattr(_pipeline, "CHECKPOINT_CHUNKS", 8)  # many checkpoints amid copies
    monkeypatch.setattr(_pipeline, "BATCH_BYTES", 4 * CHUNK)
    dirty = scattered(1, 120)
    legs = make_legs(tmp_path, dirty, targets)
    host = PluginHost()
    await make_bitmap(host, tmp_path / "bm", dirty)
    ledger = Ledger(monkeypatch, dirty)
    # --max-speed stretches the copy over ~0.3 s, so that many checkpoints happen amid it
    report = await run_resync(host, tmp_path / "bm", legs, max_speed=8 << 20)
    assert report.copied == len(dirty)  # type: ignore[attr-defined]
    assert ledger.max_inflight > 1, "copies should overlap"
    assert ledger.checks > 2
    assert ledger.barriers > 2 * targets
    for target in legs[1:]:
        assert differing(legs[0], target) == []
    bitmap = on_disk(tmp_path / "bm")
    assert bitmap.count_dirty() == 0
    assert bitmap.superblock.events_cleared == bitmap.superblock.events == 1


async def test_events_are_bumped_when_background_checkpoints_cleared_every_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pipeline, "CHECKPOINT_CHUNKS", 1)
    dirty = list(range(0, 64, 2))
    legs = make_legs(tmp_path, dirty)
    host = PluginHost()
    await make_bitmap(host, tmp_path / "bm", dirty)
    await run_resync(host, tmp_path / "bm", legs)
    sb = on_disk(tmp_path / "bm").superblock
    assert sb.events == 1
    assert sb.events_cleared == 1


async def test_a_failing_barrier_keeps_bits_of_copies_it_did_not_cover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pipeline, "CHECKPOINT_CHUNKS", 16)
    monkeypatch.setattr(_pipeline, "BATCH_BYTES", 4 * CHUNK)
    dirty = scattered(2, 150)
    legs = make_legs(tmp_path, dirty)
    host = PluginHost()
    await make_bitmap(host, tmp_path / "bm", dirty)
    ledger = Ledger(monkeypatch, dirty)
    real_barrier = _copier._Target.barrier
    calls = 0

    async def failing_barrier(target: _copier._Target) -> None:
        nonlocal calls
        calls += 1
        if calls >= 3:
            raise BackendIOError("injected: fdatasync failed")
        await real_barrier(target)

    monkeypatch.setattr(_copier._Target, "barrier", failing_barrier)
    with pytest.raises(BackendIOError, match="fdatasync failed"):
        # paced (~0.5 s for the 150 chunks) so that several checkpoints run whatever the
        # machine's speed: the third barrier fails with copies before and after it
        await run_resync(host, tmp_path / "bm", legs, max_speed=20_000_000)
    bitmap = on_disk(tmp_path / "bm")
    left = bitmap.count_dirty()
    assert 0 < left < len(dirty)
    assert ledger.checks >= 2
    assert all(bitmap.test(c) for c in differing(legs[0], legs[1]))  # the invariant
    monkeypatch.undo()
    report = await run_resync(host, tmp_path / "bm", legs)
    assert report.copied == left  # type: ignore[attr-defined]
    assert differing(legs[0], legs[1]) == []


async def test_a_copy_failing_mid_pipeline_keeps_the_progress_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pipeline, "BATCH_BYTES", 4 * CHUNK)
    dirty = scattered(3, 100)
    legs = make_legs(tmp_path, dirty)
    host = PluginHost()
    await make_bitmap(host, tmp_path / "bm", dirty)
    real_copy = _copier._Copier.copy_runs
    batches = 0

    async def failing_copy(copier: _copier._Copier, runs: object) -> object:
        nonlocal batches
        batches += 1
        if batches == 10:
            raise BackendIOError("injected: source read failed")
        return await real_copy(copier, runs)  # type: ignore[arg-type]

    monkeypatch.setattr(_copier._Copier, "copy_runs", failing_copy)
    with pytest.raises(BackendIOError, match="source read failed"):
        await run_resync(host, tmp_path / "bm", legs)
    bitmap = on_disk(tmp_path / "bm")
    left = bitmap.count_dirty()
    assert 0 < left < len(dirty)
    assert all(bitmap.test(c) for c in differing(legs[0], legs[1]))
    monkeypatch.undo()
    report = await run_resync(host, tmp_path / "bm", legs)
    assert report.copied == left  # type: ignore[attr-defined]
    assert differing(legs[0], legs[1]) == []


def test_kill_9_mid_pipeline_keeps_the_invariant_then_resumes(tmp_path: Path) -> None:
    dirty = scattered(4, 300)
    legs = make_legs(tmp_path, dirty)
    bitmap = tmp_path / "bm"
    asyncio.run(make_bitmap(PluginHost(), bitmap, dirty))
    total = on_disk(bitmap).count_dirty()
    proc = subprocess.Popen(
        ["swapio", "bitmap", "resync", str(bitmap), "--source", str(legs[0]),
         "--target", str(legs[1]), "--max-speed", "2M"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while on_disk(bitmap).count_dirty() == total and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -9
    after = on_disk(bitmap)
    assert 0 < after.count_dirty() < total, "the kill should land mid-resync"
    assert all(after.test(c) for c in differing(legs[0], legs[1]))  # the invariant
    done = subprocess.run(
        ["swapio", "bitmap", "resync", str(bitmap), "--source", str(legs[0]),
         "--target", str(legs[1])],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert differing(legs[0], legs[1]) == []
    assert on_disk(bitmap).count_dirty() == 0
