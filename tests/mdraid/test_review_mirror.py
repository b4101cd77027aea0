"""Review fixes on the mirror's data path: which leg errors fail a leg, concurrent legs.

The timeout case uses a real peer: a ``swapio serve`` process stopped with SIGSTOP, so the
http leg's requests time out exactly as they would behind a hung server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from swapio.area import CreateRequest, PageBuffer, SwapArea
from swapio.errors import (
    AreaInactiveError,
    BackendIOError,
    PageSizeError,
    RemoteProtocolError,
    SlotRangeError,
    SwapioError,
    SwapTimeoutError,
)
from swapio.plugins import PluginHost
from tests.mdraid.conftest import TOKEN
from tests.mdraid.helpers import PAGE, MirrorFiles, create_mirror, mirror_of, mirror_url, page


async def test_stopped_http_leg_times_out_and_the_mirror_runs_degraded(
    host: PluginHost,
    tmp_path: Path,
    server: tuple[subprocess.Popen[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWAPIO_TOKEN", TOKEN)
    proc, base = server
    leg1 = f"{base}/areas/review-leg1?timeout=1"
    url = mirror_url(str(tmp_path / "bm"), [str(tmp_path / "leg0"), leg1], name="rv")
    area = await host.activate(url, create=CreateRequest(16, PAGE))
    mirror = mirror_of(area)
    try:
        await area.write(0, page(1))  # both legs up
        assert [leg.faulty for leg in mirror.legs] == [False, False]
        proc.send_signal(signal.SIGSTOP)
        await area.write(3, page(2))  # leg1 times out: degraded, not failed
        assert [leg.faulty for leg in mirror.legs] == [False, True]
        assert (tmp_path / "leg0").read_bytes()[3 * PAGE : 4 * PAGE] == page(2)
        assert bytes(await area.read(3)) == page(2)
        await area.write(5, page(3))  # later writes go on degraded
        for _ in range(3):
            await mirror.sweep()
        assert mirror.store.bitmap.test(0), "a degraded mirror keeps the bit for the re-add"
    finally:
        proc.send_signal(signal.SIGCONT)
        await area.deactivate()


LEG_FAILURES: list[SwapioError] = [
    BackendIOError("injected"),
    SwapTimeoutError("injected: no answer within 1 s"),
    RemoteProtocolError("injected: response truncated"),
    AreaInactiveError("injected: leg deactivated"),
]


@pytest.mark.parametrize("error", LEG_FAILURES, ids=lambda e: type(e).__name__)
async def test_any_leg_failure_degrades_the_mirror(
    host: PluginHost, files: MirrorFiles, error: SwapioError
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)

    async def broken(*args: object) -> None:
        raise error

    bad = mirror.legs[1].area
    bad._ops = dataclasses.replace(bad._ops, swap_out=broken, swap_in=broken)
    await area.write(50, page(7))
    assert [leg.faulty for leg in mirror.legs] == [False, True]
    assert bytes(await area.read(50)) == page(7)
    await area.deactivate()
    assert files.read_bitmap().test(3)  # chunk 3 kept for the re-add


@pytest.mark.parametrize("error", LEG_FAILURES, ids=lambda e: type(e).__name__)
async def test_any_leg_failure_on_read_fails_over(
    host: PluginHost, files: MirrorFiles, error: SwapioError
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    await area.write(9, page(4))

    async def broken(*args: object) -> None:
        raise error

    bad = mirror.legs[0].area
    bad._ops = dataclasses.replace(bad._ops, swap_in=broken)
    for _ in range(4):  # the balancer reaches leg0 within two reads
        assert bytes(await area.read(9)) == page(4)
    assert [leg.faulty for leg in mirror.legs] == [True, False]
    await area.deactivate()


@pytest.mark.parametrize(
    "error",
    [SlotRangeError("injected: slot out of range"), PageSizeError("injected: bad page size")],
    ids=lambda e: type(e).__name__,
)
async def test_caller_errors_fail_no_leg(
    host: PluginHost, files: MirrorFiles, error: SwapioError
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)

    async def refuse(*args: object) -> None:
        raise error

    for leg in mirror.legs:
        leg.area._ops = dataclasses.replace(leg.area._ops, swap_out=refuse)
    with pytest.raises(type(error)):
        await area.write(0, page(1))
    assert [leg.faulty for leg in mirror.legs] == [False, False]
    await area.deactivate()


async def test_durable_legs_are_written_concurrently_after_the_bitmap(
    host: PluginHost, tmp_path: Path
) -> None:
    """Legs that wait for a device (durable=1) or a server go at once: the slowest sets the
    write's latency.  (Write-back file legs are page-cache copies, written in turn.)"""
    legs = [f"file://{tmp_path}/leg{i}?durable=1" for i in range(2)]
    files = MirrorFiles(tmp_path, tmp_path / "bitmap", [tmp_path / "leg0", tmp_path / "leg1"])
    area = await host.activate(mirror_url(str(files.bitmap), legs), create=CreateRequest(64, PAGE))
    mirror = mirror_of(area)
    started: list[int] = []
    both = asyncio.Event()
    order: list[str] = []
    bitmap_area = mirror.store.area
    real_bitmap_out = bitmap_area._ops.swap_out

    async def bitmap_out(a: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
        order.append("bitmap")
        await real_bitmap_out(a, slot, pages)

    bitmap_area._ops = dataclasses.replace(bitmap_area._ops, swap_out=bitmap_out)
    for leg in mirror.legs:
        real = leg.area._ops.swap_out

        async def gated(
            a: SwapArea,
            slot: int,
            pages: Sequence[PageBuffer],
            index: int = leg.index,
            real: object = real,
        ) -> None:
            order.append(f"leg{index}")
            started.append(index)
            if len(started) == len(mirror.legs):
                both.set()
            # a leg written alone would wait here forever: the other must have started
            await asyncio.wait_for(both.wait(), 5)
            await real(a, slot, pages)  # type: ignore[operator]

        leg.area._ops = dataclasses.replace(leg.area._ops, swap_out=gated)
    await area.write(20, page(9))
    assert sorted(started) == [0, 1]
    assert order[0] == "bitmap", order  # the bit is on disk before any leg sees data
    assert [leg.faulty for leg in mirror.legs] == [False, False]
    await area.deactivate()
    assert files.differing_chunks() == []
