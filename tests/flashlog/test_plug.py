"""Plugged swap-outs: requests queued while a batch is programmed go out together."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from swapio import CreateRequest, PluginHost
from swapio.pool import PagePool
from swapio.testing import page_pattern


async def test_concurrent_swap_outs_share_programs_and_all_read_back(tmp_path: Path) -> None:
    area = await PluginHost().activate(f"flashlog://{tmp_path}/f.img", create=CreateRequest(256))
    device = area.private.log.device
    before = device.ops
    await asyncio.gather(*(area.swap_out(s, [page_pattern(s, 1, 4096)]) for s in range(128)))
    programs = device.ops - before
    assert programs < 64  # 128 single-page requests, far fewer programs (at most 1 per 2)
    for slot in range(128):
        assert bytes(await area.read(slot)) == page_pattern(slot, 1, 4096)
    await area.deactivate()


async def test_every_request_of_a_failed_batch_fails_and_frees_its_buffer(tmp_path: Path) -> None:
    pool = PagePool(4096, 4096)
    area = await PluginHost().activate(
        f"flashlog://{tmp_path}/f.img", create=CreateRequest(64), pool=pool
    )
    area.private.log.device.io_error = "the chip stopped answering"
    results = await asyncio.gather(
        *(area.swap_out(s, [page_pattern(s, 2, 4096)]) for s in range(16)),
        return_exceptions=True,
    )
    assert all(isinstance(r, Exception) and "stopped answering" in str(r) for r in results)
    assert pool.snapshot().buffers_outstanding == 0
    area.private.log.device.io_error = None
    await area.deactivate()


async def test_a_cancelled_swap_out_keeps_its_buffer_until_the_batch_is_done(
    tmp_path: Path,
) -> None:
    pool = PagePool(4096, 4096)
    area = await PluginHost().activate(
        f"flashlog://{tmp_path}/f.img", create=CreateRequest(64), pool=pool
    )
    tasks = [asyncio.create_task(area.swap_out(s, [page_pattern(s, 3, 4096)])) for s in range(8)]
    await asyncio.sleep(0)  # all queued
    tasks[5].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[5]
    await asyncio.gather(*tasks[:5], *tasks[6:])
    await asyncio.sleep(0.05)
    assert pool.snapshot().buffers_outstanding == 0
    await area.deactivate()


async def test_swap_outs_joining_a_waiting_batch_take_no_buffer_of_their_own(
    tmp_path: Path,
) -> None:
    pool = PagePool(4096, 4096)
    area = await PluginHost().activate(
        f"flashlog://{tmp_path}/f.img", create=CreateRequest(256), pool=pool
    )
    need = area.private.scratch_bytes // 4096  # one erase block per batch
    before = pool.snapshot().allocations
    await asyncio.gather(*(area.swap_out(s, [page_pattern(s, 4, 4096)]) for s in range(128)))
    snap = pool.snapshot()
    # the batch being programmed and the one waiting behind it, never one per request
    assert snap.peak_used_pages <= 2 * need
    assert snap.allocations - before < 64
    assert snap.buffers_outstanding == 0
    for slot in range(128):
        assert bytes(await area.read(slot)) == page_pattern(slot, 4, 4096)
    await area.deactivate()
