"""Background garbage collection driven beside the I/O scheduler."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from swapio_flashlog.log import CHUNK_COST, BlockState
from swapio_flashlog.plugin import gc_step, run_background_gc

from swapio import CreateRequest, PluginHost
from swapio.scheduler import IOScheduler
from swapio.testing import page_pattern


async def test_background_gc_frees_space_while_the_scheduler_serves_io(tmp_path: Path) -> None:
    host = PluginHost()
    area = await host.activate(
        f"flashlog://{tmp_path}/f.img?size={32 * 65536}", create=CreateRequest(pages=200)
    )
    log = area.private.log
    async with IOScheduler() as sched:
        rng = random.Random(1)
        model: dict[int, bytes] = {}
        for i in range(700):  # fill and churn until free space runs low
            slot = rng.randrange(200)
            model[slot] = page_pattern(slot, i, 4096)
            await sched.swap_out(area, slot, [model[slot]])
        assert await area.private.shared.owner.submit(log.gc_wanted)
        free_before = len(log.free_blocks())
        stop = asyncio.Event()
        collector = asyncio.create_task(run_background_gc(area, sched, interval=0.01, stop=stop))
        for i in range(50):  # foreground I/O keeps flowing while GC works in the gaps
            slot = rng.randrange(200)
            model[slot] = page_pattern(slot, 1000 + i, 4096)
            await sched.swap_out(area, slot, [model[slot]])
            await asyncio.sleep(0)
        for _ in range(200):
            if not await area.private.shared.owner.submit(log.gc_wanted):
                break
            await asyncio.sleep(0.01)
        stop.set()
        steps = await collector
        assert steps > 0
        assert len(log.free_blocks()) > free_before
        assert not await area.private.shared.owner.submit(log.gc_wanted)
        for slot, data in model.items():
            view = memoryview(bytearray(4096))
            await sched.swap_in(area, slot, [view])
            assert bytes(view) == data
    await area.deactivate()


async def test_a_direct_gc_step_collects_until_nothing_is_left(tmp_path: Path) -> None:
    area = await PluginHost().activate(
        f"flashlog://{tmp_path}/f.img?size={32 * 65536}", create=CreateRequest(pages=200)
    )
    log = area.private.log
    for generation in range(2):  # the second pass leaves the first one's blocks dirty
        for slot in range(200):
            await area.swap_out(slot, [page_pattern(slot, generation, 4096)])

    def collectable() -> list[int]:
        return [
            b.index
            for b in log.blocks
            if b.state is BlockState.FULL and not b.pinned and b.gain(log.eb) >= CHUNK_COST
        ]

    assert collectable()
    steps = log.gc_steps
    assert await gc_step(area) is True
    assert log.gc_steps == steps + 1
    for _ in range(4 * len(log.blocks)):
        if not await gc_step(area):
            break
    else:
        pytest.fail("gc_step kept finding work")
    assert collectable() == []
    assert await gc_step(area) is False
    for slot in range(200):
        assert bytes(await area.read(slot)) == page_pattern(slot, 1, 4096)
    await area.deactivate()
