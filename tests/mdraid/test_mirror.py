"""The mirror backend: RAID1 over areas with the bitmap in another area."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from urllib.parse import quote

import pytest
from swapio_mdraid import Bitmap
from swapio_mdraid._store import NotDurableError
from swapio_mdraid.errors import MirrorError

from swapio.area import CreateRequest
from swapio.errors import BackendIOError, LocationError
from swapio.plugins import PluginHost
from tests.mdraid.helpers import PAGE, MirrorFiles, create_mirror, mirror_of, mirror_url, page


async def test_create_writes_identical_legs_and_a_clean_bitmap(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    await area.write(3, page(0xAB))
    await area.deactivate()
    assert files.legs[0].read_bytes() == files.legs[1].read_bytes()
    assert files.legs[0].read_bytes()[3 * PAGE : 4 * PAGE] == page(0xAB)
    bitmap = files.read_bitmap()
    assert bitmap.chunks == 64 * PAGE // files.chunk
    assert bitmap.count_dirty() == 0  # clean stop: three sweeps
    assert bitmap.superblock.events >= 1


async def test_reads_return_what_was_written_after_reactivation(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    for slot in range(0, 64, 7):
        await area.write(slot, page(slot))
    await area.deactivate()
    again = await host.activate(files.url())
    try:
        for slot in range(0, 64, 7):
            assert bytes(await again.read(slot)) == page(slot)
    finally:
        await again.deactivate()


async def test_bit_is_on_disk_before_any_leg_sees_the_data(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    seen: list[tuple[str, bool, bytes]] = []

    async def fault(step: str, info: dict[str, int]) -> None:
        leg0 = files.legs[0].read_bytes()[20 * PAGE : 21 * PAGE]
        seen.append((step, files.read_bitmap().test(1), leg0))

    mirror.fault = fault
    await area.write(20, page(0x55))  # slot 20 is in chunk 1 (16 pages per chunk)
    mirror.fault = None
    await area.deactivate()
    step, bit, leg0 = seen[0]
    assert step == "bitmap_flushed"
    assert bit
    assert leg0 == bytes(PAGE)


async def test_bits_clear_after_two_sweeps_and_events_cleared_follows(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    await area.write(40, page(1))
    assert files.read_bitmap().test(2)
    await mirror.sweep()
    assert files.read_bitmap().test(2)
    await mirror.sweep()
    on_disk = files.read_bitmap()
    assert not on_disk.test(2)
    assert on_disk.superblock.events_cleared == on_disk.superblock.events
    await area.deactivate()


async def test_daemon_clears_bits_by_itself(host: PluginHost, files: MirrorFiles) -> None:
    area = await create_mirror(host, files)
    await area.deactivate()
    # daemon_sleep is 5 s by default; make it 1 s for this test
    bitmap = files.read_bitmap()
    bitmap.update(daemon_sleep=1)
    files.bitmap.write_bytes(bitmap.encode() + bytes(PAGE - len(bitmap.encode())))
    area = await host.activate(files.url(daemon=True))
    try:
        await area.write(0, page(9))
        assert files.read_bitmap().test(0)
        for _ in range(200):
            if not files.read_bitmap().test(0):
                break
            await asyncio.sleep(0.05)
        assert not files.read_bitmap().test(0)
    finally:
        await area.deactivate()


async def test_reads_are_balanced_over_healthy_legs(host: PluginHost, files: MirrorFiles) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    for _ in range(20):
        await area.read(5)
    assert all(leg.reads >= 5 for leg in mirror.legs)
    await area.deactivate()


async def test_failed_leg_degrades_and_keeps_bits_for_readd(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    events = files.read_bitmap().superblock.events
    bad = mirror.legs[1].area

    async def broken(*args: object) -> None:
        raise BackendIOError("injected: leg1 is gone")

    bad._ops = dataclasses.replace(bad._ops, swap_out=broken, swap_in=broken)
    await area.write(50, page(7))  # chunk 3
    assert mirror.legs[1].faulty
    assert mirror.degraded
    assert bytes(await area.read(50)) == page(7)
    for _ in range(3):
        await mirror.sweep()
    on_disk = files.read_bitmap()
    assert on_disk.test(3), "a degraded mirror must keep the bit for the re-add"
    assert on_disk.superblock.events > events
    await area.deactivate()
    assert files.read_bitmap().test(3)


async def test_all_legs_failing_is_an_io_error(host: PluginHost, files: MirrorFiles) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)

    async def broken(*args: object) -> None:
        raise BackendIOError("injected")

    for leg in mirror.legs:
        leg.area._ops = dataclasses.replace(leg.area._ops, swap_out=broken, swap_in=broken)
    with pytest.raises(BackendIOError):
        await area.write(0, page(1))
    with pytest.raises(BackendIOError):
        await area.read(0)
    await area.deactivate()


async def test_mirror_over_three_legs_on_mixed_backends(host: PluginHost, tmp_path: Path) -> None:
    legs = [str(tmp_path / "a"), "memory://mdraid-mixed-leg", str(tmp_path / "c")]
    url = mirror_url(str(tmp_path / "bm"), legs, name="mixed")
    area = await host.activate(url, create=CreateRequest(32, PAGE))
    try:
        assert not area.capabilities.durable  # a memory leg is not durable
        await area.write(31, page(3))
        assert (tmp_path / "a").read_bytes()[31 * PAGE :] == page(3)
        assert (tmp_path / "c").read_bytes()[31 * PAGE :] == page(3)
    finally:
        await area.deactivate()
        from swapio_memory.plugin import forget

        forget("mdraid-mixed-leg")


async def test_config_file_names_a_mirror(host: PluginHost, tmp_path: Path) -> None:
    conf = tmp_path / "m1.toml"
    conf.write_text('bitmap = "m1.bitmap"\nlegs = ["a.img", "b.img"]\nchunk_size = 8192\n')
    area = await host.activate(f"mirror://{quote(str(conf))}", create=CreateRequest(8, PAGE))
    try:
        await area.write(1, page(1))
        assert mirror_of(area).chunk_size == 8192
    finally:
        await area.deactivate()
    assert (tmp_path / "a.img").read_bytes() == (tmp_path / "b.img").read_bytes()
    assert (tmp_path / "m1.bitmap").read_bytes()[:4] == b"bitm"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("bitmap=x&leg0=a", "at least 2 legs"),
        ("bitmap=x&leg0=a&leg1=a", "same leg twice"),
        ("bitmap=a&leg0=a&leg1=b", "cannot be one of the legs"),
        ("bitmap=x&leg0=a&leg2=b", "unknown mirror parameter"),
        ("bitmap=x&leg0=a&leg1=b&chunk_size=1000", "not a power of two"),
    ],
)
async def test_bad_mirror_urls_are_refused(host: PluginHost, query: str, message: str) -> None:
    with pytest.raises(LocationError, match=message):
        await host.activate(f"mirror://m?{query}")


async def test_missing_config_file(host: PluginHost, tmp_path: Path) -> None:
    with pytest.raises(LocationError, match="no such file"):
        await host.activate(f"mirror://{tmp_path}/none.toml")


async def test_legs_of_different_sizes_are_refused(host: PluginHost, files: MirrorFiles) -> None:
    area = await create_mirror(host, files)
    await area.deactivate()
    with open(files.legs[1], "ab") as fh:
        fh.write(bytes(PAGE))
    with pytest.raises(MirrorError, match="legs differ in size"):
        await host.activate(files.url())


async def test_bitmap_sync_size_must_match_the_legs(host: PluginHost, files: MirrorFiles) -> None:
    area = await create_mirror(host, files)
    await area.deactivate()
    for leg in files.legs:
        with open(leg, "ab") as fh:
            fh.write(bytes(PAGE))
    with pytest.raises(MirrorError, match="does not match the legs"):
        await host.activate(files.url())


async def test_bitmap_on_a_non_durable_area_is_refused(host: PluginHost, tmp_path: Path) -> None:
    url = mirror_url("memory://mdraid-bm", [str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(NotDurableError, match="not durable"):
        await host.activate(url, create=CreateRequest(8, PAGE))
    from swapio_memory.plugin import forget

    forget("mdraid-bm")


async def test_only_the_bitmap_page_holding_the_bit_is_flushed(
    host: PluginHost, tmp_path: Path
) -> None:
    """A bitmap on a URL with 512-byte pages: a write flushes just the page with its bit."""
    bitmap_url = f"file://{quote(str(tmp_path / 'bm'))}?durable=1&page_size=512"
    url = mirror_url(bitmap_url, [str(tmp_path / "a"), str(tmp_path / "b")], chunk=512)
    area = await host.activate(url, create=CreateRequest(1024, PAGE))  # 8192 chunks
    mirror = mirror_of(area)
    assert mirror.store.page_size == 512
    written: list[int] = []
    real = mirror.store.area.swap_out

    async def spy(slot: int, pages: list[bytes]) -> None:
        written.append(slot)
        await real(slot, pages)

    mirror.store.area.swap_out = spy  # type: ignore[method-assign]
    await area.write(1000, page(1))  # chunks 8000..8007: bitmap bytes 1256: page 2
    assert written == [2]
    await area.write(1001, page(1))  # same bitmap page, new bits: flushed again
    assert written == [2, 2]
    await area.write(1000, page(2))  # bits already set: no bitmap I/O at all
    assert written == [2, 2]
    await area.deactivate()
    on_disk = Bitmap.decode((tmp_path / "bm").read_bytes())
    assert on_disk.count_dirty() == 0


def break_leg(leg_area: object) -> object:
    """Make a leg's store fail; return what restores it."""

    async def broken(*args: object) -> None:
        raise BackendIOError("injected: the leg is gone")

    saved = leg_area._ops  # type: ignore[attr-defined]
    leg_area._ops = dataclasses.replace(saved, swap_out=broken, swap_in=broken)  # type: ignore[attr-defined]
    return saved


async def test_readd_then_online_resync_brings_the_leg_back(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    saved = break_leg(mirror.legs[1].area)
    await area.write(50, page(7))  # chunk 3, degraded
    await area.write(40, page(8))  # chunk 2
    mirror.legs[1].area._ops = saved  # type: ignore[assignment]  # the disk is back
    await mirror.readd(1)
    assert not mirror.legs[1].in_sync
    assert files.differing_chunks() == [2, 3]
    for _ in range(4):  # reads of out-of-sync chunks must not come from the stale leg
        assert bytes(await area.read(50)) == page(7)
    assert await mirror.resync() == 2
    assert mirror.legs[1].in_sync
    assert files.differing_chunks() == []
    await mirror.sweep()
    await mirror.sweep()
    assert files.read_bitmap().count_dirty() == 0
    await area.deactivate()


def leave_crashed(files: MirrorFiles) -> None:
    """What a crash between the legs leaves: leg 0 written, leg 1 not, the bit set."""
    with open(files.legs[0], "r+b") as fh:
        fh.seek(20 * PAGE)
        fh.write(page(0x42))
    bitmap = files.read_bitmap()
    bitmap.set(1)
    image = bitmap.encode()
    files.bitmap.write_bytes(image + bytes(-len(image) % PAGE))


async def test_assembly_after_a_crash_resyncs_in_the_background(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    await area.deactivate()
    leave_crashed(files)
    area = await host.activate(files.url())
    mirror = mirror_of(area)
    assert bytes(await area.read(20)) == page(0x42)  # served by the in-sync source meanwhile
    assert await mirror.wait_resync() == 1
    assert files.differing_chunks() == []
    await area.deactivate()
    assert files.read_bitmap().count_dirty() == 0


async def test_resync_on_demand_copies_from_the_first_leg(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    await area.deactivate()
    leave_crashed(files)
    area = await host.activate(files.url(resync=False))
    mirror = mirror_of(area)
    assert await mirror.wait_resync() == 0  # none started
    assert files.differing_chunks() == [1]
    assert bytes(await area.read(20)) == page(0x42)
    assert await mirror.resync() == 1
    assert files.differing_chunks() == []
    await area.deactivate()
    assert files.read_bitmap().count_dirty() == 0


async def test_stopping_mid_resync_keeps_the_bits_of_unfinished_chunks(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    await area.deactivate()
    bitmap = files.read_bitmap()
    for chunk in range(bitmap.chunks):
        bitmap.set(chunk)
    image = bitmap.encode()
    files.bitmap.write_bytes(image + bytes(-len(image) % PAGE))
    area = await host.activate(files.url())
    mirror = mirror_of(area)
    real_copy = mirror.online.copy_chunk
    copies = 0

    async def slow_copy(first: int, count: int, source: object, targets: object) -> bool:
        nonlocal copies
        copies += 1
        if copies == 2:
            await asyncio.sleep(3600)  # stop() cancels us here
        return await real_copy(first, count, source, targets)  # type: ignore[arg-type]

    mirror.online.copy_chunk = slow_copy  # type: ignore[method-assign]
    for _ in range(50):
        if copies == 2:
            break
        await asyncio.sleep(0.01)
    await area.deactivate()
    left = files.read_bitmap()
    assert not left.test(0)  # copied, then cleared by the stop's sweeps
    assert left.test(1)  # cancelled mid-copy: still needs a resync
    assert left.count_dirty() == bitmap.chunks - 1


async def test_writes_racing_an_online_resync_end_identical(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    saved = break_leg(mirror.legs[1].area)
    for slot in range(0, 64, 3):
        await area.write(slot, page(slot))
    mirror.legs[1].area._ops = saved  # type: ignore[assignment]
    await mirror.readd(1)
    writes = [area.write(slot, page(0x80 + slot)) for slot in range(1, 64, 5)]
    await asyncio.gather(mirror.resync(), *writes)
    assert files.differing_chunks() == []
    await area.deactivate()
    assert files.read_bitmap().count_dirty() == 0


async def test_readd_of_a_healthy_leg_is_refused(host: PluginHost, files: MirrorFiles) -> None:
    area = await create_mirror(host, files)
    with pytest.raises(MirrorError, match="is not faulty"):
        await mirror_of(area).readd(0)
    await area.deactivate()


async def test_failed_bitmap_flush_fails_the_write_before_any_leg_and_retries(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    saved = break_leg(mirror.store.area)
    with pytest.raises(BackendIOError):
        await area.write(20, page(5))  # chunk 1
    assert files.legs[0].read_bytes()[20 * PAGE : 21 * PAGE] == bytes(PAGE)
    assert files.legs[1].read_bytes()[20 * PAGE : 21 * PAGE] == bytes(PAGE)
    assert not files.read_bitmap().test(1)
    mirror.store.area._ops = saved  # type: ignore[assignment]
    seen: list[bool] = []

    async def fault(step: str, info: dict[str, int]) -> None:
        if step == "bitmap_flushed":
            seen.append(files.read_bitmap().test(1))

    mirror.fault = fault
    await area.write(21, page(6))  # same chunk: the bit must reach disk first this time
    assert seen == [True]
    await area.deactivate()


async def test_daemon_survives_a_failing_sweep(host: PluginHost, files: MirrorFiles) -> None:
    area = await create_mirror(host, files)
    await area.deactivate()
    bitmap = files.read_bitmap()
    bitmap.update(daemon_sleep=1)
    image = bitmap.encode()
    files.bitmap.write_bytes(image + bytes(-len(image) % PAGE))
    area = await host.activate(files.url(daemon=True))
    mirror = mirror_of(area)
    await area.write(0, page(1))
    saved = break_leg(mirror.store.area)
    for _ in range(100):
        if mirror.daemon_error is not None:
            break
        await asyncio.sleep(0.05)
    assert isinstance(mirror.daemon_error, BackendIOError)
    mirror.store.area._ops = saved  # type: ignore[assignment]
    for _ in range(100):
        if not files.read_bitmap().test(0):
            break
        await asyncio.sleep(0.05)
    assert not files.read_bitmap().test(0)
    await area.deactivate()
