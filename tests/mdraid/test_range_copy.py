"""The range copy of the area contract (``SwapArea.copy`` / the ``swap_copy`` hook).

The resync's chunk copy is one request: between two file areas it is the file backend's
``copy_file_range``; between areas of different backends the core copies through a pool
buffer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swapio.area import CreateRequest, SwapArea
from swapio.errors import PageSizeError, SlotRangeError, UsageError
from swapio.plugins import PluginHost
from tests.mdraid.helpers import PAGE, page


async def file_area(host: PluginHost, path: Path, pages: int = 32, **query: str) -> SwapArea:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return await host.activate(
        f"file://{path}?page_size={PAGE}{extra}", create=CreateRequest(pages)
    )


async def test_a_copy_between_file_areas_is_one_swap_copy_request(
    host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = await file_area(host, tmp_path / "a")
    dst = await file_area(host, tmp_path / "b")
    await src.write(4, page(1) + page(2) + page(3))
    calls: list[tuple[int, int, int]] = []
    real = src._ops.swap_copy
    assert real is not None

    async def count(area: SwapArea, slot: int, dest: SwapArea, dest_slot: int, n: int) -> None:
        calls.append((slot, dest_slot, n))
        await real(area, slot, dest, dest_slot, n)

    monkeypatch.setattr(src, "_ops", src._ops.__class__(**{**vars(src._ops), "swap_copy": count}))
    await src.copy(4, dst, 10, 3)
    assert calls == [(4, 10, 3)]
    assert bytes(await dst.read(10, 3)) == page(1) + page(2) + page(3)
    assert bytes(await dst.read(9)) == bytes(PAGE)  # nothing else written
    await src.deactivate()
    await dst.deactivate()


async def test_a_copy_into_a_durable_file_area_is_durable_and_correct(
    host: PluginHost, tmp_path: Path
) -> None:
    src = await file_area(host, tmp_path / "a")
    dst = await file_area(host, tmp_path / "b", durable="1")
    await src.write(0, page(7) * 32)
    await src.copy(0, dst, 0, 32)
    assert (tmp_path / "b").read_bytes() == page(7) * 32
    await src.deactivate()
    await dst.deactivate()


async def test_a_copy_between_backends_goes_through_the_core(
    host: PluginHost, tmp_path: Path
) -> None:
    src = await host.activate("memory://range-copy-src", create=CreateRequest(600))
    dst = await host.activate(f"file://{tmp_path}/b", create=CreateRequest(600))
    data = b"".join(page(i % 250 + 1) for i in range(600))
    await src.write(0, data)
    await src.copy(0, dst, 0, 600)  # more than max_pages_per_request: split by the core
    assert (tmp_path / "b").read_bytes() == data
    await src.deactivate()
    await dst.deactivate()


async def test_a_copy_within_one_area_may_not_overlap(host: PluginHost, tmp_path: Path) -> None:
    area = await file_area(host, tmp_path / "a")
    await area.write(0, page(5))
    with pytest.raises(UsageError, match="overlap"):
        await area.copy(0, area, 2, 4)
    await area.copy(0, area, 4, 4)
    assert bytes(await area.read(4)) == page(5)
    await area.deactivate()


async def test_a_copy_checks_both_ranges_and_page_sizes(host: PluginHost, tmp_path: Path) -> None:
    src = await file_area(host, tmp_path / "a")
    dst = await file_area(host, tmp_path / "b", pages=8)
    big = await host.activate(f"file://{tmp_path}/c?page_size=8192", create=CreateRequest(8, 8192))
    with pytest.raises(SlotRangeError):
        await src.copy(0, dst, 4, 8)
    with pytest.raises(SlotRangeError):
        await src.copy(30, dst, 0, 4)
    with pytest.raises(PageSizeError, match="page sizes differ"):
        await src.copy(0, big, 0, 1)
    for area in (src, dst, big):
        await area.deactivate()
