"""The batched write path: plugging, bits set ahead of a stream, write-back legs flushed.

The invariant is the one of test_crash.py — a chunk that may differ between the legs has
its bit set on stable storage before any leg is written — checked here while many writes
share bitmap flushes.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from swapio_mdraid._mirror import Mirror

from swapio.area import CreateRequest, PageBuffer, SwapArea
from swapio.errors import BackendIOError
from swapio.plugins import PluginHost
from tests.mdraid.helpers import (
    PAGE,
    MirrorFiles,
    create_mirror,
    mirror_of,
    mirror_url,
    page,
    spy_leg_writes,
)

REPO = Path(__file__).resolve().parents[2]


def bits_on_disk(files: MirrorFiles) -> set[int]:
    bitmap = files.read_bitmap()
    return {c for c in range(bitmap.chunks) if bitmap.test(c)}


def slow_bitmap(mirror: Mirror, delay: float) -> list[int]:
    """Make every bitmap flush take ``delay`` seconds; returns the pages of each flush."""
    store = mirror.store
    real = store.write_pages
    flushed: list[int] = []

    async def slow(pages: Iterable[int]) -> None:
        await asyncio.sleep(delay)
        listed = list(pages)
        flushed.append(len(listed))
        await real(listed)

    store.write_pages = slow  # type: ignore[method-assign]
    return flushed


async def test_writes_arriving_during_a_flush_share_the_next_one(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files, pages=512)  # 32 chunks
    mirror = mirror_of(area)
    slow_bitmap(mirror, 0.05)
    before = mirror._plug.flushes
    await asyncio.gather(*(area.write(chunk * 16, page(chunk + 1)) for chunk in range(32)))
    flushes = mirror._plug.flushes - before
    assert flushes <= 2, f"32 concurrent writes to clean chunks took {flushes} bitmap flushes"
    assert bits_on_disk(files) == set(range(32))
    await area.deactivate()


async def test_no_leg_is_written_before_its_bit_is_on_disk_under_concurrency(
    host: PluginHost, files: MirrorFiles
) -> None:
    """At the moment each write reaches its legs, its chunks' bits are in the file."""
    area = await create_mirror(host, files, pages=1024)
    mirror = mirror_of(area)
    slow_bitmap(mirror, 0.002)
    violations: list[int] = []

    async def check(step: str, info: dict[str, int]) -> None:
        if step == "bitmap_flushed" and info["chunk"] not in bits_on_disk(files):
            violations.append(info["chunk"])

    mirror.fault = check
    rng = random.Random(7)
    slots = [rng.randrange(1024) for _ in range(200)]  # many writes share chunks
    sem = asyncio.Semaphore(32)

    async def one(slot: int) -> None:
        async with sem:
            await area.write(slot, page(slot % 251 + 1))

    await asyncio.gather(*(one(s) for s in slots))
    assert violations == []
    assert mirror._plug.flushes < len(slots)
    await area.deactivate()


async def test_a_write_to_a_chunk_whose_bit_is_in_flight_waits_for_that_flush(
    host: PluginHost, files: MirrorFiles
) -> None:
    """Write B finds chunk 3's bit set in memory by A, whose flush is still being written."""
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    slow_bitmap(mirror, 0.2)
    legs_saw: list[bool] = []

    async def record(area: SwapArea, slot: int, pages: object, real: Any) -> None:
        legs_saw.append(3 in bits_on_disk(files))
        await real(area, slot, pages)

    for leg in mirror.legs:
        spy_leg_writes(leg.area, record)
    first = asyncio.ensure_future(area.write(48, page(1)))
    await asyncio.sleep(0.05)  # A's flush is in flight now
    await area.write(49, page(2))  # B: same chunk, no new bit
    await first
    assert legs_saw
    assert all(legs_saw)
    await area.deactivate()


async def test_a_failed_flush_fails_its_writes_and_the_next_write_flushes_again(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    real = mirror.store.write_pages
    fail = True

    async def flaky(pages: object) -> None:
        if fail:
            raise BackendIOError("injected: bitmap write failed")
        await real(pages)  # type: ignore[arg-type]

    mirror.store.write_pages = flaky  # type: ignore[method-assign]
    results = await asyncio.gather(
        area.write(0, page(1)), area.write(16, page(2)), return_exceptions=True
    )
    assert all(isinstance(r, BackendIOError) for r in results)
    assert files.legs[0].read_bytes()[:PAGE] == bytes(PAGE)  # no leg saw the data
    fail = False
    await area.write(32, page(3))
    assert {0, 1, 2} <= bits_on_disk(files)  # the failed bits went out with the next flush
    await area.deactivate()


async def test_a_sequential_stream_finds_its_bits_set_ahead(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files, pages=4096)  # 256 chunks of 64 KiB
    mirror = mirror_of(area)
    data = bytes(64 * PAGE)
    flushes = mirror._plug.flushes
    for slot in range(0, 4096, 64):  # one 256 KiB request at a time: 4 chunks each
        await area.write(slot, data)
    flushes = mirror._plug.flushes - flushes
    assert flushes <= 256 // (mirror.ahead_chunks // 2) + 1, flushes
    assert bits_on_disk(files) == set(range(256))
    for _ in range(2):  # bits set ahead are lazily cleared like any other
        await mirror.sweep()
    assert bits_on_disk(files) == set()
    await area.deactivate()


async def test_bits_set_ahead_are_never_ahead_of_the_disk_for_a_written_chunk(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files, pages=2048)
    mirror = mirror_of(area)
    slow_bitmap(mirror, 0.003)  # the background flush of bits ahead is slow
    late: list[int] = []

    async def check(step: str, info: dict[str, int]) -> None:
        if step == "bitmap_flushed" and info["chunk"] not in bits_on_disk(files):
            late.append(info["chunk"])

    mirror.fault = check
    for slot in range(0, 2048, 16):
        await area.write(slot, bytes(16 * PAGE))
    assert late == []
    await area.deactivate()


# --- write-back legs -------------------------------------------------------------------


async def test_plain_path_legs_are_write_back_with_a_durable_flush_handle(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    for leg in mirror.legs:
        assert not leg.area.capabilities.durable
        assert leg.handle is not None
        assert leg.handle.capabilities.durable
    assert not area.capabilities.durable  # no fdatasync per write: the file default
    await area.deactivate()


async def test_durable_leg_urls_are_written_durably_without_a_handle(
    host: PluginHost, tmp_path: Path
) -> None:
    legs = [f"file://{tmp_path}/leg{i}?durable=1" for i in range(2)]
    area = await host.activate(
        mirror_url(str(tmp_path / "bitmap"), legs), create=CreateRequest(64, PAGE)
    )
    mirror = mirror_of(area)
    assert all(leg.handle is None and leg.area.capabilities.durable for leg in mirror.legs)
    assert area.capabilities.durable
    await area.deactivate()


async def test_a_sweep_that_clears_bits_flushes_every_leg_first(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    events: list[str] = []
    for leg in mirror.legs:
        assert leg.handle is not None
        real = leg.handle.swap_out

        async def flushed(
            slot: int, pages: list[PageBuffer], real: object = real, i: int = leg.index
        ) -> None:
            events.append(f"leg{i} flushed")
            await real(slot, pages)  # type: ignore[operator]

        leg.handle.swap_out = flushed  # type: ignore[method-assign,assignment]
    real_write = mirror.store.write_pages

    async def bitmap_written(pages: object) -> None:
        events.append("bitmap")
        await real_write(pages)  # type: ignore[arg-type]

    await area.write(0, page(1))
    mirror.store.write_pages = bitmap_written  # type: ignore[method-assign]
    await mirror.sweep()  # 2 -> 1: nothing cleared yet
    await mirror.sweep()  # 1 -> 0: the bit is cleared on disk
    assert not bits_on_disk(files)
    last_bitmap = len(events) - 1 - events[::-1].index("bitmap")
    assert {"leg0 flushed", "leg1 flushed"} <= set(events[:last_bitmap])
    await area.deactivate()


async def test_a_leg_that_cannot_be_flushed_fails_and_no_bit_is_cleared(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    await area.write(0, page(1))
    await mirror.sweep()
    handle = mirror.legs[1].handle
    assert handle is not None

    async def broken(slot: int, pages: object) -> None:
        raise BackendIOError("injected: fdatasync failed")

    handle.swap_out = broken  # type: ignore[method-assign]
    with pytest.raises(BackendIOError, match="fdatasync failed"):
        await mirror.sweep()
    assert 0 in bits_on_disk(files)
    assert mirror.legs[1].faulty
    await area.deactivate()


async def test_kill_9_during_concurrent_writes_keeps_the_invariant(tmp_path: Path) -> None:
    """A real crash while 32 writes share bitmap flushes; then the CLI resync repairs."""
    files = MirrorFiles(tmp_path, tmp_path / "bitmap", [tmp_path / "leg0", tmp_path / "leg1"])
    host = PluginHost()
    area = await create_mirror(host, files, pages=1024)
    await area.deactivate()
    script = (
        "import asyncio, os, random, signal, sys\n"
        "from swapio.plugins import PluginHost\n"
        "from tests.mdraid.helpers import MirrorFiles, page\n"
        "from pathlib import Path\n"
        "root = Path(sys.argv[1])\n"
        "files = MirrorFiles(root, root / 'bitmap', [root / 'leg0', root / 'leg1'])\n"
        "async def main():\n"
        "    area = await PluginHost().activate(files.url())\n"
        "    rng = random.Random(3)\n"
        "    n = 0\n"
        "    async def one(slot):\n"
        "        nonlocal n\n"
        "        await area.write(slot, page(slot % 200 + 1))\n"
        "        n += 1\n"
        "        if n == 150:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "    sem = asyncio.Semaphore(32)\n"
        "    async def limited(slot):\n"
        "        async with sem:\n"
        "            await one(slot)\n"
        "    await asyncio.gather(*(limited(rng.randrange(1024)) for _ in range(400)))\n"
        "asyncio.run(main())\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    differing = files.differing_chunks()
    bits = bits_on_disk(files)
    assert set(differing) <= bits, f"chunks {sorted(set(differing) - bits)} differ, bit clear"
    done = subprocess.run(
        ["swapio", "bitmap", "resync", str(files.bitmap), "--source", str(files.legs[0]),
         "--target", str(files.legs[1])],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert files.differing_chunks() == []


async def test_write_back_file_legs_are_written_in_turn_without_a_task_each(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    assert mirror._sequential_legs
    tasks_before = len(asyncio.all_tasks())
    seen: list[int] = []

    async def counted(area: SwapArea, slot: int, pages: object, real: Any) -> None:
        seen.append(len(asyncio.all_tasks()))
        await real(area, slot, pages)

    for leg in mirror.legs:
        spy_leg_writes(leg.area, counted)
    await area.write(3, page(1))
    assert seen == [tasks_before, tasks_before]  # no task was made for the second leg
    assert files.differing_chunks() == []
    await area.deactivate()


async def test_a_leg_flush_and_a_resync_copy_of_chunk_0_never_overlap(
    host: PluginHost, files: MirrorFiles
) -> None:
    """The flush re-writes slot 0 with what it read: a copy into chunk 0 must not be in
    between (it would be undone)."""
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    inside: list[str] = []
    overlaps: list[str] = []

    async def holder(name: str) -> None:
        async with mirror.gate.hold(range(1)):
            if inside:
                overlaps.append(f"{name} inside {inside}")
            inside.append(name)
            await asyncio.sleep(0.01)
            inside.remove(name)

    await asyncio.gather(holder("flush"), holder("resync copy"), holder("another flush"))
    assert overlaps == []
    await area.deactivate()


async def test_a_hold_waits_for_a_write_in_flight_on_its_chunk(
    host: PluginHost, files: MirrorFiles
) -> None:
    """A resync copy or a leg flush holds chunks only once the writes counted on them
    (the write-intent counters) have ended; writes to other chunks never hold it up."""
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    inside = asyncio.Event()
    release = asyncio.Event()
    order: list[str] = []

    async def slow(leg: SwapArea, slot: int, pages: object, real: Any) -> None:
        if slot == 32:
            inside.set()
            await release.wait()
            order.append("write done")
        await real(leg, slot, pages)

    spy_leg_writes(mirror.legs[0].area, slow)
    writer = asyncio.ensure_future(area.write(32, page(4)))  # chunk 2
    await inside.wait()

    async def holder(chunks: range, name: str) -> None:
        async with mirror.gate.hold(chunks):
            order.append(name)

    other = asyncio.ensure_future(holder(range(3, 4), "hold 3"))
    held = asyncio.ensure_future(holder(range(2, 3), "hold 2"))
    await asyncio.sleep(0.05)
    assert order == ["hold 3"]
    release.set()
    # the write's end wakes the holder (a missed wake-up would hang here)
    await asyncio.wait_for(asyncio.gather(writer, other, held), 5)
    assert order == ["hold 3", "write done", "hold 2"]
    await area.deactivate()
