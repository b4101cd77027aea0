"""The flashlog backend through swapio's plugin host: conformance kit and URL behaviour."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from swapio_flashlog.log import FlashLog

from swapio import CreateRequest, PluginHost
from swapio.area import SwapArea
from swapio.errors import AreaExistsError, AreaFormatError, AreaNotFoundError, LocationError
from swapio.testing import BackendTests, page_pattern


class TestFlashlogConformance(BackendTests):
    @pytest.fixture
    def area_url(self, tmp_path: Path, page_size: int) -> str:
        # a swap file in an image records its size, not its page size: the URL does
        return f"flashlog://{tmp_path}/flash.img?name=/swapfile&page_size={page_size}"

    async def inject_fault(self, area: SwapArea) -> None:
        area.private.log.device.io_error = "injected I/O error"

    async def clear_fault(self, area: SwapArea) -> None:
        area.private.log.device.io_error = None


class TestFlashlogNoSummaryConformance(TestFlashlogConformance):
    @pytest.fixture
    def area_url(self, tmp_path: Path, page_size: int) -> str:
        return (
            f"flashlog://{tmp_path}/flash.img?name=/swapfile&summary=0&write_unit=16"
            f"&page_size={page_size}"
        )


@pytest.fixture
def host() -> PluginHost:
    return PluginHost()


async def test_two_swap_files_share_one_image(host: PluginHost, tmp_path: Path) -> None:
    a = await host.activate(f"flashlog://{tmp_path}/f.img?name=/a", create=CreateRequest(16))
    b = await host.activate(f"flashlog://{tmp_path}/f.img?name=/b", create=CreateRequest(8))
    await a.write(3, page_pattern(3, 1, 4096))
    await b.write(3, page_pattern(3, 2, 4096))
    assert a.private.shared is b.private.shared
    assert a.private.reserve_erase_blocks == 2
    # one erase block of scratch per request, in pool pages (64 KiB / 4 KiB)
    assert a.capabilities.reserve_need == 65536 // 4096
    await a.deactivate()
    await b.deactivate()
    log = FlashLog.open(str(tmp_path / "f.img"), readonly=True)
    try:
        assert sorted(log.report().files) == ["a", "b"]
    finally:
        log.close()
    again = await host.activate(f"flashlog://{tmp_path}/f.img?name=/b")
    assert again.pages == 8
    assert bytes(await again.read(3)) == page_pattern(3, 2, 4096)
    await again.deactivate()


async def test_missing_name_in_existing_image_is_not_found(
    host: PluginHost, tmp_path: Path
) -> None:
    a = await host.activate(f"flashlog://{tmp_path}/f.img?name=/a", create=CreateRequest(4))
    await a.deactivate()
    with pytest.raises(AreaNotFoundError, match="no file '/nope'"):
        await host.activate(f"flashlog://{tmp_path}/f.img?name=/nope")


async def test_create_of_an_existing_name_refuses(host: PluginHost, tmp_path: Path) -> None:
    url = f"flashlog://{tmp_path}/f.img"
    a = await host.activate(url, create=CreateRequest(4))
    await a.write(0, page_pattern(0, 0, 4096))
    await a.deactivate()
    with pytest.raises(AreaExistsError):
        await host.activate(url, create=CreateRequest(4))
    b = await host.activate(url)
    assert bytes(await b.read(0)) == page_pattern(0, 0, 4096)
    await b.deactivate()


async def test_an_area_too_big_for_the_flash_is_refused(host: PluginHost, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="does not fit"):
        await host.activate(
            f"flashlog://{tmp_path}/f.img?size=327680", create=CreateRequest(pages=100)
        )


async def test_unknown_url_parameter_is_a_location_error(host: PluginHost, tmp_path: Path) -> None:
    with pytest.raises(LocationError, match="erase_blok"):
        await host.activate(f"flashlog://{tmp_path}/f.img?erase_blok=4096", create=CreateRequest(4))
    assert not os.path.exists(tmp_path / "f.img")


async def test_a_foreign_file_is_refused_untouched(host: PluginHost, tmp_path: Path) -> None:
    image = tmp_path / "random.img"
    content = os.urandom(512 * 1024)
    image.write_bytes(content)
    with pytest.raises(AreaFormatError, match="not a JFFS2 image"):
        await host.activate(f"flashlog://{image}")
    assert image.read_bytes() == content
    assert not os.path.exists(str(image) + ".flash")


async def test_page_size_must_divide_the_file(host: PluginHost, tmp_path: Path) -> None:
    url = f"flashlog://{tmp_path}/f.img"
    a = await host.activate(url, create=CreateRequest(3, 4096))
    await a.deactivate()
    with pytest.raises(AreaFormatError, match="not a positive multiple"):
        await host.activate(url + "?page_size=8192")


@pytest.mark.parametrize("page_size", [512, 4096, 16384])
async def test_default_image_size_fits_the_area_at_any_page_size(
    host: PluginHost, tmp_path: Path, page_size: int
) -> None:
    pages = 300 * 4096 // page_size
    area = await host.activate(
        f"flashlog://{tmp_path}/f.img", create=CreateRequest(pages, page_size)
    )
    for generation in range(3):  # overwrite everything: GC has to keep up
        for slot in range(0, pages, 16):
            count = min(16, pages - slot)
            data = b"".join(page_pattern(slot + i, generation, page_size) for i in range(count))
            await area.write(slot, data)
    assert bytes(await area.read(pages - 1)) == page_pattern(pages - 1, 2, page_size)
    await area.deactivate()


async def test_concurrent_io_on_two_areas_of_one_image(host: PluginHost, tmp_path: Path) -> None:
    url = f"flashlog://{tmp_path}/f.img?size={24 * 65536}"
    a = await host.activate(url + "&name=/a", create=CreateRequest(64))
    b = await host.activate(url + "&name=/b", create=CreateRequest(64))

    async def churn(area: SwapArea, tag: int) -> None:
        for generation in range(4):
            for slot in range(0, 64, 4):
                await area.write(
                    slot,
                    b"".join(page_pattern(slot + i, tag * 10 + generation, 4096) for i in range(4)),
                )
                got = bytes(await area.read(slot))
                assert got == page_pattern(slot, tag * 10 + generation, 4096)

    await asyncio.gather(churn(a, 1), churn(b, 2), churn(a, 1), churn(b, 2))
    assert a.private.log.gc_steps > 0
    for slot in range(64):
        assert bytes(await a.read(slot)) == page_pattern(slot, 13, 4096)
        assert bytes(await b.read(slot)) == page_pattern(slot, 23, 4096)
    await a.deactivate()
    await b.deactivate()
