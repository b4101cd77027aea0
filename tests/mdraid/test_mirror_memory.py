"""The mirror under memory pressure: every part allocates from the mirror area's pool.

The legs (one of them on a real ``swapio serve``, whose client takes its frames from the
pool), the bitmap store and the mirror's own buffers come out of the pool the mirror was
activated on, and the reserve that pool holds covers one mirror request; so a memalloc
swap-out completes when every ordinary page of a bounded pool is taken.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from swapio_mdraid import Bitmap

from swapio.area import CreateRequest
from swapio.errors import AllocationTimeout
from swapio.memalloc import memalloc
from swapio.plugins import PluginHost
from swapio.pool import PagePool, PoolBuffer
from tests.mdraid.conftest import TOKEN
from tests.mdraid.helpers import PAGE, MirrorFiles, mirror_of, mirror_url, page, spy_leg_writes


def exhaust(pool: PagePool) -> list[PoolBuffer]:
    """Take every page down to *min*, as a pager's fault frames do: only the reserve is left."""
    held: list[PoolBuffer] = []
    while (buf := pool.try_alloc(PAGE, to_min=True)) is not None:
        held.append(buf)
    assert pool.free_pages == pool.min_pages
    return held


async def test_every_part_of_the_mirror_is_on_the_mirror_pool(
    host: PluginHost, files: MirrorFiles
) -> None:
    pool = PagePool.for_resident(64)
    area = await host.activate(files.url(), create=CreateRequest(64, PAGE), pool=pool)
    mirror = mirror_of(area)
    parts = [mirror.store.area, *(leg.area for leg in mirror.legs)]
    parts += [leg.handle for leg in mirror.legs if leg.handle is not None]
    assert all(part.pool is pool for part in parts)
    await area.deactivate()


async def test_a_memalloc_write_draws_the_bitmap_flush_from_the_reserve(
    host: PluginHost, files: MirrorFiles
) -> None:
    pool = PagePool.for_resident(64)
    area = await host.activate(files.url(), create=CreateRequest(64, PAGE), pool=pool)
    held = exhaust(pool)
    try:
        dips = pool.snapshot().reserve_dips
        with memalloc():
            await asyncio.wait_for(area.write(0, page(7)), 10)
        assert pool.snapshot().reserve_dips > dips  # the bitmap page came from the reserve
        assert files.legs[0].read_bytes()[:PAGE] == page(7)
    finally:
        for buf in held:
            buf.release()
        await area.deactivate()


async def test_the_mirror_declares_what_one_request_needs_across_its_parts(
    host: PluginHost, tmp_path: Path, server: tuple[subprocess.Popen[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("SWAPIO_TOKEN", TOKEN)
    _, base = server
    url = mirror_url(str(tmp_path / "bm"), [str(tmp_path / "leg0"), f"{base}/areas/mem-decl"])
    area = await host.activate(url, create=CreateRequest(64, PAGE), pool=PagePool(1024))
    mirror = mirror_of(area)
    http_need = mirror.legs[1].area.capabilities.reserve_pages_per_request
    assert http_need > 0
    own = mirror.store.pages_per_request(mirror.chunks_of(0, 64).stop)
    assert area.capabilities.reserve_pages_per_request >= http_need + own
    await area.deactivate()


async def test_a_memalloc_write_through_an_http_leg_completes_on_a_full_bounded_pool(
    host: PluginHost, tmp_path: Path, server: tuple[subprocess.Popen[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("SWAPIO_TOKEN", TOKEN)
    _, base = server
    pool = PagePool.for_resident(32)
    url = mirror_url(str(tmp_path / "bm"), [str(tmp_path / "leg0"), f"{base}/areas/mem-leg1"])
    area = await host.activate(url, create=CreateRequest(64, PAGE), pool=pool)
    mirror = mirror_of(area)
    assert mirror.legs[1].area.pool is pool
    held = exhaust(pool)
    try:
        dips = pool.snapshot().reserve_dips
        with memalloc():
            await asyncio.wait_for(area.write(5, page(9)), 20)
        assert pool.snapshot().reserve_dips > dips
        assert not any(leg.faulty for leg in mirror.legs)  # the http leg took the write too
    finally:
        for buf in held:
            buf.release()
    assert bytes(await mirror.legs[1].area.read(5)) == page(9)
    await area.deactivate()


async def test_memory_pressure_in_a_leg_fails_the_write_not_the_leg(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await host.activate(files.url(), create=CreateRequest(64, PAGE))
    mirror = mirror_of(area)
    leg = mirror.legs[1].area

    async def starved(*args: object, real: object) -> None:
        raise AllocationTimeout("injected: no buffer within the timeout")

    saved = spy_leg_writes(leg, starved)
    with pytest.raises(AllocationTimeout):
        await area.write(0, page(3))
    assert not mirror.legs[1].faulty
    leg._ops = saved
    for _ in range(3):
        await mirror.sweep()
    assert Bitmap.decode(files.bitmap.read_bytes()).test(0)  # the legs may differ: kept
    await area.deactivate()
