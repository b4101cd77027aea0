"""Stacked areas: another plugin calls an area's hooks itself through ``begin_request`` /
``end_request`` (swapio/area.py, docs/plugin-authors.md "Stacked areas"), and the area
contract holds as for the area's own methods: no I/O unless active, drained before release."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Sequence

import pytest

import swapio
from swapio.area import AreaState, PageBuffer, SwapArea, SwapInfo
from swapio.errors import AreaInactiveError, SwapTimeoutError
from swapio.plugins import PluginHost

#: A guard against a hang, not a timing: a drain that works finishes at once.
HANG_S = 5.0


def released_plugin(released: list[str]) -> types.SimpleNamespace:
    """A backend of scheme ``stk`` that records each ``swapfile(activate=False)``."""

    @swapio.hookimpl
    def swapio_backend() -> swapio.BackendInfo:
        return swapio.BackendInfo(name="stk", version="1", schemes=("stk",))

    @swapio.hookimpl
    async def swapfile(area: SwapArea, activate: bool) -> SwapInfo | None:
        if activate:
            return SwapInfo(pages=4, page_size=4096)
        released.append(area.location.url)
        return None

    @swapio.hookimpl
    async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
        return None

    @swapio.hookimpl
    async def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
        return None

    return types.SimpleNamespace(
        swapio_backend=swapio_backend, swapfile=swapfile, swap_out=swap_out, swap_in=swap_in
    )


@pytest.fixture
def released() -> list[str]:
    return []


@pytest.fixture
async def area(released: list[str]) -> SwapArea:
    host = PluginHost(autoload=False)
    host.register(released_plugin(released), "stk")
    return await host.activate("stk://leg")


async def test_begin_request_counts_in_flight_and_returns_the_areas_hooks(
    area: SwapArea,
) -> None:
    hooks = area.begin_request()
    assert hooks is area.hooks
    assert hooks.plugin_name == area.owner == "stk"
    assert area.inflight == 1
    area.end_request()
    assert area.inflight == 0
    await asyncio.wait_for(area.deactivate(), HANG_S)


async def test_deactivate_waits_for_a_request_begun_by_a_stacked_area(
    area: SwapArea, released: list[str]
) -> None:
    area.begin_request()
    stopping = asyncio.create_task(area.deactivate())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not stopping.done()
    state = area.state  # a local: mypy would keep area.state narrowed past the awaits
    assert state is AreaState.DRAINING
    assert released == []  # the store is not released under the request
    area.end_request()
    await asyncio.wait_for(stopping, HANG_S)
    assert area.state is AreaState.INACTIVE
    assert released == ["stk://leg"]


async def test_a_request_begun_by_a_stacked_area_times_deactivate_out(
    area: SwapArea, released: list[str]
) -> None:
    area.begin_request()
    with pytest.raises(SwapTimeoutError, match="1 request"):
        await area.deactivate(timeout=0)
    assert area.state is AreaState.DRAINING
    assert released == []
    area.end_request()
    await asyncio.wait_for(area.deactivate(), HANG_S)
    assert released == ["stk://leg"]


async def test_begin_request_refuses_a_draining_area_with_call_validateds_error(
    area: SwapArea,
) -> None:
    area.begin_request()
    stopping = asyncio.create_task(area.deactivate())
    await asyncio.sleep(0)
    with pytest.raises(AreaInactiveError) as stacked:
        area.begin_request()
    with pytest.raises(AreaInactiveError) as core:
        await area.call_validated("swap_in", 0, [memoryview(bytearray(4096))], 1)
    assert str(stacked.value) == str(core.value) == "area stk://leg is draining; no new I/O"
    assert area.inflight == 1  # the refused request was not counted
    area.end_request()
    await asyncio.wait_for(stopping, HANG_S)


async def test_begin_request_refuses_an_inactive_area(area: SwapArea) -> None:
    await asyncio.wait_for(area.deactivate(), HANG_S)
    with pytest.raises(AreaInactiveError, match="is inactive; no new I/O"):
        area.begin_request()
    assert area.inflight == 0
