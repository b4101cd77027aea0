"""Swap-out batches on the event loop: when the owner thread is idle and the batch is small."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from swapio_flashlog._inline import FIRST_BACKOFF_S, InlineRule

from swapio import CreateRequest, PluginHost
from swapio.area import SwapArea
from swapio.testing import page_pattern


async def _area(tmp_path: Path, query: str = "") -> SwapArea:
    url = f"flashlog://{tmp_path}/f.img{query}"
    return await PluginHost().activate(url, create=CreateRequest(256))


def _record_threads(area: SwapArea) -> list[int]:
    """The thread each write batch of the area's log runs in, in order."""
    log = area.private.log
    seen: list[int] = []
    original = log.write_many

    def write_many(*args: Any) -> None:
        seen.append(threading.get_ident())
        original(*args)

    log.write_many = write_many
    area.private.writes._write_many = write_many
    return seen


async def test_swap_outs_in_flight_together_run_as_one_batch_on_the_loop(tmp_path: Path) -> None:
    area = await _area(tmp_path)
    seen = _record_threads(area)
    await asyncio.gather(*(area.swap_out(s, [page_pattern(s, 1, 4096)]) for s in range(32)))
    assert seen == [threading.get_ident()]  # one batch, on the event loop's thread
    for slot in range(32):
        assert bytes(await area.read(slot)) == page_pattern(slot, 1, 4096)
    await area.deactivate()


async def test_a_batch_of_more_than_64_pages_goes_to_the_owner_thread(tmp_path: Path) -> None:
    area = await _area(tmp_path)
    seen = _record_threads(area)
    pages = [page_pattern(s, 2, 4096) for s in range(128)]
    await asyncio.gather(area.swap_out(0, pages[:64]), area.swap_out(64, pages[64:]))
    assert len(seen) == 1
    assert seen[0] != threading.get_ident()
    for slot in (0, 63, 64, 127):
        assert bytes(await area.read(slot)) == pages[slot]
    await area.deactivate()


async def test_a_sync_log_never_writes_on_the_loop(tmp_path: Path) -> None:
    area = await _area(tmp_path, "?sync=1")
    seen = _record_threads(area)
    await area.swap_out(3, [page_pattern(3, 3, 4096)])
    assert len(seen) == 1
    assert seen[0] != threading.get_ident()
    await area.deactivate()


async def test_a_batch_that_finds_the_owner_busy_goes_to_the_owner(tmp_path: Path) -> None:
    area = await _area(tmp_path)
    await area.swap_out(9, [page_pattern(9, 4, 4096)])
    seen = _record_threads(area)
    # the swap-out queues its batch for the loop; the read, in the same round of the loop,
    # hands work to the owner thread before the batch starts: the batch must not race it
    write = asyncio.ensure_future(area.swap_out(5, [page_pattern(5, 4, 4096)]))
    read = asyncio.ensure_future(area.read(9))
    await asyncio.gather(write, read)
    assert bytes(read.result()) == page_pattern(9, 4, 4096)
    assert len(seen) == 1
    assert seen[0] != threading.get_ident()
    await area.deactivate()


class _Owner:
    idle = True


def test_a_batch_that_slept_in_the_kernel_stops_inline_batches_for_a_while() -> None:
    now = [100.0]
    switches = [0]

    def slept() -> int:
        switches[0] += 1  # every batch here "sleeps": a voluntary switch each time
        return switches[0]

    rule = InlineRule(_Owner(), clock=lambda: now[0], slept=slept)  # type: ignore[arg-type]
    rule.run(lambda: None)  # no time asleep: no stall
    assert rule.allows(1)
    rule.run(lambda: time.sleep(0.005))  # 5 ms asleep, more than STALL_S
    assert rule.stalls == 1
    assert not rule.allows(1)
    now[0] += FIRST_BACKOFF_S + 0.01
    assert rule.allows(1)
    rule.run(lambda: time.sleep(0.005))
    now[0] += FIRST_BACKOFF_S + 0.01
    assert not rule.allows(1)  # the back-off doubled
    now[0] += FIRST_BACKOFF_S
    assert rule.allows(1)
